package knock

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// refTracker is a plain model of the tracker's contract, for the fuzzer and
// for TestTrackerModel. It supports the UTC rule only.
type refTracker struct {
	p       Params
	users   []User
	oneTime bool
	nonces  int
	timeout time.Duration
	max     int
	clock   int
	srcs    map[netip.Addr]*refSrc
	seqs    map[refSeq][]uint16          // memo of sequence
	byPorts map[refSeq]map[string]uint32 // one-time: (label, user, kind) -> ports -> lowest nonce
	used    map[refSeq]bool              // one-time: the sequences used
	label   int64                        // the period of the last rotation
}

// refSeq names a sequence: the C-compatible one with nonce -1.
type refSeq struct {
	label      int64
	user, kind int
	nonce      int
}

func newRefTracker(p Params, users []User, oneTime bool, nonces, max int) *refTracker {
	if users == nil {
		users = []User{{OpenSecret: p.OpenSecret, CloseSecret: p.CloseSecret}}
	}
	return &refTracker{
		p: p, users: users, oneTime: oneTime, nonces: nonces, timeout: 10 * time.Second, max: max,
		srcs: map[netip.Addr]*refSrc{}, seqs: map[refSeq][]uint16{},
		byPorts: map[refSeq]map[string]uint32{}, used: map[refSeq]bool{}, label: -1,
	}
}

// sequence returns the sequence q.
func (r *refTracker) sequence(q refSeq) []uint16 {
	s, ok := r.seqs[q]
	if !ok {
		secret := r.users[q.user].OpenSecret
		if q.kind == 1 {
			secret = r.users[q.user].CloseSecret
		}
		if q.nonce < 0 {
			s = Sequence(r.p.Digest, secret, q.label, r.p.Range)
		} else {
			s = OneTimeSequence(r.p.Digest, secret, q.label, uint32(q.nonce), r.p.Range)
		}
		r.seqs[q] = s
	}
	return s
}

// nonceOf returns the lowest nonce of the one-time sequence ports of the
// user and kind in the period.
func (r *refTracker) nonceOf(label int64, user, kind int, ports []uint16) (uint32, bool) {
	key := refSeq{label: label, user: user, kind: kind}
	m, ok := r.byPorts[key]
	if !ok {
		m = map[string]uint32{}
		for nonce := r.nonces - 1; nonce >= 0; nonce-- {
			m[portsKey(r.sequence(refSeq{label, user, kind, nonce}))] = uint32(nonce)
		}
		r.byPorts[key] = m
	}
	nonce, ok := m[portsKey(ports)]
	return nonce, ok
}

func portsKey(ports []uint16) string {
	b := make([]byte, 0, 2*len(ports))
	for _, p := range ports {
		b = append(b, byte(p>>8), byte(p))
	}
	return string(b)
}

type refSrc struct {
	ports  []uint16
	last   time.Time
	sport  uint16
	seq    uint32
	opened bool
	seen   int
}

func (r *refTracker) knock(k *Knock, now time.Time) Verdict {
	if !r.p.Range.Contains(k.DstPort) || !k.Src.IsValid() {
		return Verdict{}
	}
	period := int64(r.p.Period / time.Second)
	ps := r.p.PeriodStart(now)
	if ps != r.label {
		// The tracker keeps the used sequences of the periods around the
		// current one only.
		r.label = ps
		for q := range r.used {
			if q.label < ps-period || q.label > ps+period {
				delete(r.used, q)
			}
		}
	}
	key := k.Src.WithZone("")
	r.clock++
	s, ok := r.srcs[key]
	if !ok {
		if len(r.srcs) == r.max {
			var oldest netip.Addr
			min := r.clock
			for a, s := range r.srcs {
				if s.seen < min {
					oldest, min = a, s.seen
				}
			}
			delete(r.srcs, oldest)
		}
		r.srcs[key] = &refSrc{ports: []uint16{k.DstPort}, last: now, sport: k.SrcPort, seq: k.Seq, seen: r.clock}
		return Verdict{}
	}
	s.seen = r.clock
	if s.sport == k.SrcPort && s.seq == k.Seq && now.Sub(s.last) <= r.timeout {
		return Verdict{} // a retransmission; after a longer gap the window starts afresh
	}
	if now.Sub(s.last) > r.timeout {
		s.ports = s.ports[:0]
	}
	s.last, s.sport, s.seq = now, k.SrcPort, k.Seq
	s.ports = append(s.ports, k.DstPort)
	n := r.p.Digest.SeqLen()
	if len(s.ports) > n {
		s.ports = s.ports[1:]
	}
	if len(s.ports) < n {
		return Verdict{}
	}
	starts := []int64{ps}
	if now.Sub(time.Unix(ps, 0)) < r.p.Grace {
		starts = append(starts, ps-period)
	}
	if time.Unix(ps+period, 0).Sub(now) < r.p.Grace {
		starts = append(starts, ps+period)
	}
	// The first sequence of each kind: by period (current, previous,
	// next), then by user, then by nonce.
	var found [2]*refSeq
	for _, st := range starts {
		for kind := range 2 {
			for u := range r.users {
				if found[kind] != nil {
					break
				}
				c := refSeq{st, u, kind, -1}
				switch {
				case !r.oneTime:
					if slices.Equal(s.ports, r.sequence(c)) {
						found[kind] = &c
					}
				case s.ports[0] == r.sequence(c)[0]:
					if nonce, ok := r.nonceOf(st, u, kind, s.ports); ok {
						found[kind] = &refSeq{st, u, kind, int(nonce)}
					}
				}
			}
		}
	}
	kind := 0
	switch {
	case found[0] == nil && found[1] == nil:
		return Verdict{}
	case found[0] == nil, found[1] != nil && s.opened:
		kind = 1
	}
	q := *found[kind]
	v := Verdict{Action: Open, Kind: Open, User: q.user, Seq: SeqID{Period: q.label}}
	if kind == 1 {
		v.Action, v.Kind = Close, Close
	}
	s.ports = s.ports[:0]
	if r.oneTime {
		v.Seq.Nonce = uint32(q.nonce)
		if r.used[q] {
			v.Action = Replay
			return v
		}
		r.used[q] = true
	}
	s.opened = kind == 0
	return v
}

// The sequences a source of fuzzStream follows.
const (
	seqPrevOpen = iota
	seqPrevClose
	seqCurOpen
	seqCurClose
	seqNextOpen
	seqNextClose
	seqCOpen  // the C-compatible sequences of the current period, also
	seqCClose // in one-time mode
)

// fuzzStream decodes data into knocks against a tracker and the model and
// reports the first difference. Three bytes configure:
//
//	data[0]: the digest (bits 0-1), the period (bits 2-7)
//	data[1]: the range (bits 0-4), the maximum of sources (bits 5-7)
//	data[2]: the users (bits 0-1: 0 those of Params, else 1..3 users),
//	         one-time with 4 nonces (bit 2), the second user with the
//	         first's secrets (bit 3)
//
// Each knock takes 3 bytes:
//
//	b0: source (low 4 bits: 14 is the invalid address, 15 one of 256 more
//	    chosen by b2), retransmission (bit 4), time step (bits 5-7)
//	b1 < 0x20: a raw port 990 + b2 (in the range or not)
//	b1 < 0x40: the source follows sequence b1&7 (see seqPrevOpen...) of
//	           user b1>>3&3, nonce b2>>6, from port (b2&63) % n on
//	otherwise: the next port of the sequence the source follows
//
// It returns how many verdicts of each action it saw, and how many named
// a user other than the first.
func fuzzStream(t testing.TB, data []byte) (seen [Replay + 2]int) {
	if len(data) < 3 {
		return seen
	}
	p := testParams()
	p.Digest = Digest(data[0] % 4)
	p.Range = Range{1000, 1000 + uint16(data[1]&31) + 1}
	p.Period = time.Duration(60+int(data[0]>>2)*60) * time.Second
	p.Grace = p.Period / 4
	maxSources := int(data[1]>>5) + 1
	var users []User
	for i := range int(data[2] & 3) {
		users = append(users, User{OpenSecret: "open " + string(rune('a'+i)), CloseSecret: "close " + string(rune('a'+i))})
	}
	if len(users) > 1 && data[2]&8 != 0 {
		users[1].OpenSecret, users[1].CloseSecret = users[0].OpenSecret, users[0].CloseSecret
	}
	oneTime := data[2]&4 != 0
	const nonces = 4
	data = data[3:]
	tr, err := NewTracker(TrackerConfig{Params: p, Users: users, OneTime: oneTime, Timeout: 10 * time.Second, MaxSources: maxSources, nonces: nonces})
	if err != nil {
		t.Fatal(err)
	}
	ref := newRefTracker(p, users, oneTime, nonces, maxSources)
	srcs := []netip.Addr{
		netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"),
		netip.MustParseAddr("::ffff:10.0.0.1"), netip.MustParseAddr("2001:db8::1"),
		netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("fe80::1%eth0"),
		netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("::"),
		netip.MustParseAddr("255.255.255.255"), netip.MustParseAddr("ffff::ffff"),
		netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("192.0.2.8"),
		netip.MustParseAddr("192.0.2.9"), netip.MustParseAddr("192.0.2.10"),
		{}, {},
	}
	steps := [8]time.Duration{0, time.Millisecond, time.Second, 5 * time.Second, 11 * time.Second,
		p.Grace / 2, p.Period / 3, -time.Second}
	now := t0.Add(-p.Grace - time.Second)
	var sport uint16
	var seq uint32
	type follow struct{ which, user, nonce, cursor int }
	var fol [16]follow
	fol[0].which, fol[1].which = seqCurOpen, seqCurClose
	n := p.Digest.SeqLen()
	for i := 0; i+3 <= len(data); i += 3 {
		b0, b1, b2 := data[i], data[i+1], data[i+2]
		now = now.Add(steps[b0>>5])
		if b0&0x10 == 0 {
			sport++
			seq += 104729
		}
		src := b0 & 15
		f := &fol[src]
		var port uint16
		if b1 < 0x20 {
			port = 990 + uint16(b2)
		} else {
			if b1 < 0x40 {
				*f = follow{which: int(b1 & 7), user: int(b1>>3&3) % len(ref.users), nonce: int(b2 >> 6), cursor: int(b2&63) % n}
			}
			q := refSeq{label: p.PeriodStart(now), user: f.user, kind: f.which & 1, nonce: f.nonce}
			if f.which < seqCOpen {
				q.label += (int64(f.which)/2 - 1) * int64(p.Period/time.Second)
			}
			if !oneTime || f.which >= seqCOpen {
				q.nonce = -1
			}
			port = ref.sequence(q)[f.cursor]
			f.cursor = (f.cursor + 1) % n
		}
		a := srcs[src]
		if src == 15 { // many sources: 256 more
			a = netip.AddrFrom4([4]byte{10, 9, 0, b2})
		}
		k := Knock{Src: a, SrcPort: sport, DstPort: port, Seq: seq}
		got, want := tr.Knock(&k, now), ref.knock(&k, now)
		if got != want {
			t.Fatalf("knock %d (%+v at %v): tracker %+v, model %+v", i/3, k, now, got, want)
		}
		seen[got.Action]++
		if got.User > 0 {
			seen[Replay+1]++
		}
		if tr.Len() > maxSources || tr.Len() != len(ref.srcs) {
			t.Fatalf("knock %d: Len %d, model %d, max %d", i/3, tr.Len(), len(ref.srcs), maxSources)
		}
	}
	// The sources and their windows agree.
	tr.Each(func(src netip.Addr, last time.Time, knocks int) {
		s, ok := ref.srcs[src]
		if !ok || !s.last.Equal(last) || len(s.ports) != knocks {
			t.Fatalf("source %v (last %v, %d knocks) not in the model as such", src, last, knocks)
		}
	})
	return seen
}

// TestTrackerModel runs random knock streams against the model, in C and
// one-time mode, with one to three users.
func TestTrackerModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var seen [Replay + 2]int
	for i := range 400 {
		data := []byte{byte(rng.Uint32()), byte(rng.Uint32()) | 0x60, byte(i)}
		if rng.IntN(2) == 0 {
			data[0] &^= 3 // md5
		}
		// Bias the stream towards few sources, small steps and sequence
		// ports, so that sequences complete.
		for range rng.IntN(400) {
			b0 := byte(rng.IntN(4))
			if rng.IntN(10) == 0 {
				b0 = byte(rng.IntN(16))
			}
			if rng.IntN(20) == 0 {
				b0 |= 0x10
			}
			if rng.IntN(20) == 0 {
				b0 |= byte(rng.IntN(8)) << 5
			}
			b1 := byte(0x40 + rng.IntN(0xc0))
			switch rng.IntN(40) {
			case 0:
				b1 = byte(rng.IntN(0x20))
			case 1, 2:
				b1 = byte(0x20 + rng.IntN(0x20))
			}
			data = append(data, b0, b1, byte(rng.Uint32()))
		}
		for a, n := range fuzzStream(t, data) {
			seen[a] += n
		}
	}
	// The streams exercise every verdict, and users other than the first.
	t.Logf("none %d, open %d, close %d, replay %d, other users %d", seen[None], seen[Open], seen[Close], seen[Replay], seen[Replay+1])
	for a, n := range seen {
		if n < 20 {
			t.Errorf("only %d knocks of kind %d", n, a)
		}
	}
}
