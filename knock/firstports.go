package knock

import (
	"cmp"
	"slices"
	"time"
)

// FirstPort is the first port of a sequence and the instant until which a
// knock to it may begin that sequence.
type FirstPort struct {
	Port  uint16
	Until time.Time
}

// firstWindow is the first port of one sequence and the span, in Unix
// nanoseconds, in which a knock to it may begin a sequence that is then
// accepted: from lead before the sequence's acceptance begins (a sequence
// takes up to lead to knock) until its acceptance ends.
type firstWindow struct {
	port        uint16
	from, until int64
}

// Lead returns how long a sequence can take to knock: n-1 gaps of at most
// timeout (n = the sequence length). A sequence that ends just after its
// acceptance begins may have begun that long before.
func (p Params) Lead(timeout time.Duration) time.Duration {
	return time.Duration(p.Digest.SeqLen()-1) * timeout
}

// periodWindows calls fn, in order, for every period whose first-port
// window (see firstWindow, with lead) meets [from, to), with the period's
// start and its window.
func (p Params) periodWindows(from, to time.Time, lead time.Duration, fn func(label, begin, end int64)) {
	grace := int64(p.Grace)
	_, wFrom, _ := p.window(from)
	// The period before from's is accepted grace into from's.
	t := time.Unix(wFrom-1, 0)
	for range 1 << 16 {
		label, f, u := p.window(t)
		begin := secToNs(f) - grace - int64(lead)
		if begin >= to.UnixNano() {
			return
		}
		if end := secToNs(u) + grace; end > from.UnixNano() {
			fn(label, begin, end)
		}
		t = time.Unix(u, 0)
	}
}

// FirstPorts returns the first ports of the open and close sequences that a
// knock at some instant from now to until may begin, a sequence that takes
// up to lead to knock (see Lead) included, each until the end of its
// sequence's acceptance (the end of its period plus the grace), and the
// first instant after until at which another period's ports join. A port
// that starts two sequences appears once, with the later end. The kernel
// filter keeps these ports in a set, so that only sources that knocked one
// reach the daemon. A one-time sequence begins with the port of the
// C-compatible sequence of its secret and period: the set is the same.
func (p Params) FirstPorts(now, until time.Time, lead time.Duration) (ports []FirstPort, next time.Time) {
	return UsersFirstPorts(p, nil, now, until, lead)
}

// UsersFirstPorts is FirstPorts for the sequences of users (nil: the user
// of p's secrets): the union of their first ports, each with the latest
// end.
func UsersFirstPorts(p Params, users []User, now, until time.Time, lead time.Duration) (ports []FirstPort, next time.Time) {
	if users == nil {
		users = []User{{OpenSecret: p.OpenSecret, CloseSecret: p.CloseSecret}}
	}
	next = until.Add(100 * 365 * 24 * time.Hour)
	p.periodWindows(now, until.Add(p.Period+lead+p.Grace+time.Second), lead, func(label, begin, end int64) {
		if begin > until.UnixNano() {
			if t := time.Unix(0, begin); t.Before(next) {
				next = t
			}
			return
		}
		e := time.Unix(0, end)
		for _, u := range users {
			for _, secret := range [2]string{u.OpenSecret, u.CloseSecret} {
				port := Sequence(p.Digest, secret, label, p.Range)[0]
				i := slices.IndexFunc(ports, func(f FirstPort) bool { return f.Port == port })
				switch {
				case i < 0:
					ports = append(ports, FirstPort{Port: port, Until: e})
				case ports[i].Until.Before(e):
					ports[i].Until = e
				}
			}
		}
	})
	return ports, next
}

// allocFirsts allocates, with admit, room for the first ports of every
// period a rotation may need (periods at least Period long, as without
// LocalHour; a shorter local hour may make rotate allocate).
func (t *Tracker) allocFirsts() {
	if !t.admit {
		return
	}
	p := t.params
	periods := 3 + int((2*p.Grace+t.lead+p.Period-1)/p.Period)
	if need := 2 * len(t.cat.users) * periods; cap(t.firsts) < need {
		t.firsts = make([]firstWindow, 0, need)
	}
	need := 0
	for _, u := range t.cat.users {
		need = max(need, len(u.OpenSecret), len(u.CloseSecret))
	}
	if need += 24; cap(t.buf) < need {
		t.buf = make([]byte, 0, need)
	}
}

// setFirsts computes the first ports a knock in the period [from, until)
// (Unix seconds) may begin a sequence with: the first ports of every
// period whose window meets it, sorted by port, and their bitmap.
func (t *Tracker) setFirsts(from, until int64) {
	p := &t.params
	t.firsts = t.firsts[:0]
	clear(t.firstBits[:])
	var seq [maxSeqLen]uint16
	s := seq[:t.n]
	p.periodWindows(time.Unix(from, 0), time.Unix(until, 0), t.lead, func(label, begin, end int64) {
		for _, u := range t.cat.users {
			for _, secret := range [2]string{u.OpenSecret, u.CloseSecret} {
				sequenceInto(s, &t.buf, p.Digest, secret, label, p.Range)
				t.firsts = append(t.firsts, firstWindow{port: s[0], from: begin, until: end})
				setBit(t.firstBits[:], uint32(s[0]))
			}
		}
	})
	slices.SortFunc(t.firsts, func(a, b firstWindow) int { return cmp.Compare(a.port, b.port) })
}

// isFirst reports whether a knock at ns to port may begin a sequence that
// is accepted when it ends: port is the first port of a sequence of a
// period whose acceptance begins at most lead after ns and has not ended.
// t.firsts covers every such period of the window [fromNs, untilNs). It
// costs a bitmap test, and for a first port a binary search and a look at
// its windows (one per period and secret that begins with it).
func (t *Tracker) isFirst(port uint16, ns int64) bool {
	if !bitSet(t.firstBits[:], uint32(port)) {
		return false
	}
	i, _ := slices.BinarySearchFunc(t.firsts, port, func(w firstWindow, p uint16) int { return cmp.Compare(w.port, p) })
	for ; i < len(t.firsts) && t.firsts[i].port == port; i++ {
		if w := &t.firsts[i]; ns > w.from && ns < w.until {
			return true
		}
	}
	return false
}
