package knock

import (
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

// firstWindows calls fn for the first ports of the open and close
// sequences of every period whose window (see firstWindow, with lead)
// meets [from, to), in order of the periods.
func (p Params) firstWindows(from, to time.Time, lead time.Duration, fn func(w firstWindow)) {
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
		end := secToNs(u) + grace
		if end > from.UnixNano() {
			for _, secret := range []string{p.OpenSecret, p.CloseSecret} {
				fn(firstWindow{port: Sequence(p.Digest, secret, label, p.Range)[0], from: begin, until: end})
			}
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
// reach the daemon.
func (p Params) FirstPorts(now, until time.Time, lead time.Duration) (ports []FirstPort, next time.Time) {
	next = until.Add(100 * 365 * 24 * time.Hour)
	p.firstWindows(now, until.Add(p.Period+lead+p.Grace+time.Second), lead, func(w firstWindow) {
		if w.from > until.UnixNano() {
			if t := time.Unix(0, w.from); t.Before(next) {
				next = t
			}
			return
		}
		end := time.Unix(0, w.until)
		i := slices.IndexFunc(ports, func(f FirstPort) bool { return f.Port == w.port })
		switch {
		case i < 0:
			ports = append(ports, FirstPort{Port: w.port, Until: end})
		case ports[i].Until.Before(end):
			ports[i].Until = end
		}
	})
	return ports, next
}
