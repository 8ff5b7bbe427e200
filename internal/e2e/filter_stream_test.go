package e2e

// The random knock streams of the kernel filter's differential test
// (filter_equiv_test.go): sources that knock open and close sequences with
// wrong knocks, gaps, retransmissions and partial sequences around a
// rotation, planned in process, and TestFilterStreams, which checks them
// without root.

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/syngen"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/knock"
)

// filterSeedEnv overrides the seed of the random knock streams.
const filterSeedEnv = "NFQKNOCKD_FILTER_SEED"

// The parameters of the differential test: a short --timeout, and a short
// period so that a rotation falls in every run.
const (
	eqTimeout = 2 * time.Second
	eqPeriod  = 10 * time.Second
	eqGrace   = 3 * time.Second
	// eqKnocking is how long the kernel keeps queueing a knocking source
	// after its last SYN: --timeout plus the daemon's margin of 2s
	// (knockTimeoutMargin in cmd/nfqknockd).
	eqKnocking = eqTimeout + 2*time.Second
)

// eqFlags are the daemon's flags of the differential test (-v logs every
// knock it sees, for the report of a failure).
var eqFlags = []string{"-t", "2", "--period", "10s", "--grace", "3s", "-v"}

func eqParams() knock.Params {
	return knock.Params{Digest: knock.MD5, Range: knock.FullRange, OpenSecret: openSecret, CloseSecret: closeSecret,
		Period: eqPeriod, Grace: eqGrace}
}

// eqCritical are the instants, from the rotation R, where the tracker's
// verdict on a knock changes (the grace of R-10s ends at -7s, the next
// period's sequences begin at -3s, the rotation, the end of the grace) or
// where the kernel's first-port set changes (-4s, +4s, +6s: one second
// before and after). A knock near one could get another verdict in the
// daemon, which reads it a little later than it was sent: the streams keep
// eqNear away from them.
var eqCritical = []time.Duration{-7 * time.Second, -6 * time.Second, -4 * time.Second, -3 * time.Second, 0,
	3 * time.Second, 4 * time.Second, 6 * time.Second, 7 * time.Second}

const (
	eqNear      = 120 * time.Millisecond // from a critical instant
	eqNearGap   = 150 * time.Millisecond // from a gap of exactly --timeout
	eqNearQueue = 300 * time.Millisecond // from a gap of exactly the knocking timeout
	eqEnd       = 8500 * time.Millisecond
)

// eqStep is one SYN of a stream: its source (an index), when (from the
// rotation), and what it is for.
type eqStep struct {
	src  int
	at   time.Duration
	syn  testutil.SYN
	note string
}

// eqStream is a knock stream around one rotation.
type eqStream struct {
	seed    uint64
	rot     time.Time
	sources []netip.Addr
	steps   []eqStep // in the order of at
	// episodes counts the random episodes by kind; bystanders are the
	// sources that never knock a sequence port.
	episodes   [numEpisodes]int
	bystanders []netip.Addr
}

// eqGen generates a stream.
type eqGen struct {
	rng   *rand.Rand
	p     knock.Params
	rot   time.Time
	inSeq map[uint16]bool // ports of every sequence of the periods around the rotation
	st    *eqStream
}

// eqSrc is one source of a stream being generated.
type eqSrc struct {
	g      *eqGen
	idx    int
	addr   netip.Addr
	dst    netip.Addr
	gaps   eqGaps
	last   testutil.SYN
	cursor time.Duration // of its last SYN
	over   bool          // it reached eqEnd: no more SYNs
}

// seqs returns the open and close sequences of period k (0: the one
// starting at the rotation, -1: the one before).
func (g *eqGen) seqs(k int) (open, close []uint16) {
	return g.p.Sequences(g.rot.Add(time.Duration(k) * eqPeriod))
}

// wrong returns a port outside every sequence around the rotation, and
// neither the guarded nor the free port.
func (g *eqGen) wrong() uint16 {
	for {
		p := uint16(1024 + g.rng.IntN(65535-1024))
		if !g.inSeq[p] && p != guardPort && p != freePort {
			return p
		}
	}
}

// eqGaps follows the SYNs of one source for the margins a stream keeps:
// the instant of its last SYN (the kernel's knocking timeout counts from
// there) and of its last knock that the tracker counts, a SYN with another
// source port or sequence number than the counted one before (--timeout
// counts from there).
type eqGaps struct {
	seen        bool
	last, knock time.Duration
	sport       uint16
	seq         uint32
}

func (g *eqGaps) add(at time.Duration, syn testutil.SYN) {
	if !g.seen || syn.SrcPort != g.sport || syn.Seq != g.seq {
		g.knock, g.sport, g.seq = at, syn.SrcPort, syn.Seq
	}
	g.last, g.seen = at, true
}

// clash returns where a SYN at t must move to be eqNear/div away from every
// critical instant, eqNearGap/div away from --timeout after the last
// counted knock and eqNearQueue/div away from the knocking timeout after
// the last SYN, and whether it must.
func (g *eqGaps) clash(t time.Duration, div time.Duration) (time.Duration, string) {
	for _, c := range eqCritical {
		if t > c-eqNear/div && t < c+eqNear/div {
			return c + eqNear/div, fmt.Sprintf("%v from the instant %v", t-c, c)
		}
	}
	if !g.seen {
		return t, ""
	}
	if d := t - g.knock; d > eqTimeout-eqNearGap/div && d < eqTimeout+eqNearGap/div {
		return g.knock + eqTimeout + eqNearGap/div, fmt.Sprintf("%v after the last counted knock", d)
	}
	if d := t - g.last; d > eqKnocking-eqNearQueue/div && d < eqKnocking+eqNearQueue/div {
		return g.last + eqKnocking + eqNearQueue/div, fmt.Sprintf("%v after the last SYN", d)
	}
	return t, ""
}

// place returns the first instant from t on where a SYN of the source
// clashes with nothing: the tracker and the kernel then agree on every gap
// and every instant, whatever a millisecond of delay.
func (s *eqSrc) place(t time.Duration) time.Duration {
	for {
		u, why := s.gaps.clash(t, 1)
		if why == "" {
			return t
		}
		t = u
	}
}

// emit adds a SYN gap after the source's last one (placed); false when
// that is past eqEnd (the source then sends nothing more).
func (s *eqSrc) emit(gap time.Duration, syn testutil.SYN, note string) bool {
	if s.over {
		return false
	}
	at := s.place(s.cursor + gap)
	if at > eqEnd {
		s.over = true
		return false
	}
	s.gaps.add(at, syn)
	s.cursor, s.last = at, syn
	s.g.st.steps = append(s.g.st.steps, eqStep{src: s.idx, at: at, syn: syn, note: note})
	return true
}

// knock sends a new knock (a fresh source port and sequence number, with
// or without an MSS option) to port.
func (s *eqSrc) knock(gap time.Duration, port uint16, note string) bool {
	rng := s.g.rng
	syn := testutil.SYN{Src: s.addr, Dst: s.dst, SrcPort: uint16(10000 + rng.IntN(50000)), DstPort: port, Seq: rng.Uint32()}
	if rng.IntN(2) == 0 {
		syn.MSS = 1460
		if s.dst.Is6() {
			syn.MSS = 1440
		}
	}
	return s.emit(gap, syn, note)
}

// retrans sends the source's last SYN again: a retransmission.
func (s *eqSrc) retrans(gap time.Duration, note string) bool {
	return s.emit(gap, s.last, note)
}

// sameIdentity sends a SYN to port with the source port and sequence
// number of the last one: a retransmission as the tracker defines it.
func (s *eqSrc) sameIdentity(gap time.Duration, port uint16, note string) bool {
	syn := s.last
	syn.DstPort = port
	return s.emit(gap, syn, note)
}

func (g *eqGen) dur(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(g.rng.Int64N(int64(hi-lo)+1))
}

// gapIn is a gap between two knocks of a sequence: mostly short, some
// long (below --timeout).
func (g *eqGen) gapIn() time.Duration {
	if g.rng.IntN(10) == 0 {
		return g.dur(600*time.Millisecond, 1500*time.Millisecond)
	}
	return g.dur(40*time.Millisecond, 250*time.Millisecond)
}

// sequence picks the sequence a client with a clock off by up to 2.5 s
// (within the grace) knocks when it starts at start.
func (s *eqSrc) sequence(start time.Duration, close bool) ([]uint16, string) {
	k := -1
	if start+s.g.dur(-2500*time.Millisecond, 2500*time.Millisecond) >= 0 {
		k = 0
	}
	o, c := s.g.seqs(k)
	name := fmt.Sprintf("P%d open", k+1)
	if close {
		o, name = c, fmt.Sprintf("P%d close", k+1)
	}
	return o, name
}

// Episode kinds: what a source does once.
const (
	epOpen         = iota // its open sequence
	epClose               // its close sequence
	epWrongMid            // the open sequence with a wrong knock in the middle
	epGapMid              // the open sequence with a gap longer than --timeout in the middle
	epRetransMid          // the open sequence with one knock retransmitted
	epRetransFill         // the open sequence with one knock replaced by a retransmission of the one before
	epSameIdentity        // the open sequence with one knock sent with the source port and sequence of the one before
	epDouble              // the open sequence with one port knocked twice (two knocks)
	epPartial             // the beginning of a sequence
	epNoise               // wrong knocks
	epLateRetrans         // a retransmission of its last SYN, long after
	numEpisodes
)

var epWeights = [numEpisodes]int{30, 12, 10, 8, 12, 6, 5, 5, 5, 4, 3}

var epTotal = func() (n int) {
	for _, w := range epWeights {
		n += w
	}
	return n
}()

// episode sends one episode of kind, its first SYN gap after the last.
func (s *eqSrc) episode(kind int, gap time.Duration) {
	g := s.g
	g.st.episodes[kind]++
	start := s.cursor + gap
	seq, name := s.sequence(start, kind == epClose || kind == epPartial && g.rng.IntN(2) == 0)
	n := len(seq)
	mid := 1 + g.rng.IntN(n-1) // a knock in the middle: 1..n-1
	note := func(i int) string { return fmt.Sprintf("%s %d/%d", name, i+1, len(seq)) }
	first := true
	next := func() time.Duration {
		if first {
			first = false
			return gap
		}
		return g.gapIn()
	}
	switch kind {
	case epNoise:
		for range 1 + g.rng.IntN(4) {
			s.knock(next(), g.wrong(), "wrong")
		}
		return
	case epLateRetrans:
		if s.last.Src.IsValid() {
			s.retrans(gap, "late retransmission of the last")
		}
		return
	case epPartial:
		n = 1 + g.rng.IntN(n-1)
	}
	for i := range n {
		switch {
		case i == mid && kind == epWrongMid:
			s.knock(next(), g.wrong(), "wrong, mid-sequence")
		case i == mid && kind == epGapMid:
			first = true
			gap = g.dur(eqTimeout+200*time.Millisecond, 5*time.Second)
			s.knock(next(), seq[i], note(i)+" after a gap over --timeout")
			continue
		case i == mid && kind == epRetransFill:
			s.retrans(next(), fmt.Sprintf("retransmission of %d/%d in place of %d/%d", i, len(seq), i+1, len(seq)))
			continue
		case i == mid && kind == epSameIdentity:
			s.sameIdentity(next(), seq[i], note(i)+" with the sport and seq of the one before")
			continue
		}
		s.knock(next(), seq[i], note(i))
		switch {
		case i == mid && kind == epRetransMid:
			s.retrans(next(), "retransmission of "+note(i))
		case i == mid && kind == epDouble:
			s.knock(next(), seq[i], note(i)+" again, a new knock")
		}
	}
}

// anchored sends the open or close sequence of period k (0 or -1) from
// start on, with short gaps: the runs that every stream holds.
func (s *eqSrc) anchored(start time.Duration, k int, close bool) {
	s.run(start, k, close, func() time.Duration { return s.g.dur(40*time.Millisecond, 120*time.Millisecond) })
}

// run sends the open or close sequence of period k (0 or -1) from start
// on, with the gaps that gap returns.
func (s *eqSrc) run(start time.Duration, k int, close bool, gap func() time.Duration) {
	o, c := s.g.seqs(k)
	seq, name := o, fmt.Sprintf("P%d open", k+1)
	if close {
		seq, name = c, fmt.Sprintf("P%d close", k+1)
	}
	d := start - s.cursor
	for i, p := range seq {
		s.knock(d, p, fmt.Sprintf("%s %d/%d (fixed)", name, i+1, len(seq)))
		d = gap()
	}
}

// eqAnchors are the fixed runs of a stream, by source: the new period's
// sequence just after the rotation, the previous one within the grace and
// after it, the next one before the rotation, and a close within the
// grace. The random episodes of these sources come after them.
var eqAnchors = map[int][]struct {
	at     time.Duration
	period int
	close  bool
}{
	0: {{400 * time.Millisecond, 0, false}},
	1: {{500 * time.Millisecond, -1, false}},
	2: {{-2200 * time.Millisecond, 0, false}},
	3: {{3400 * time.Millisecond, -1, false}},
	4: {{-5500 * time.Millisecond, -1, false}, {1000 * time.Millisecond, -1, true}},
	5: {{-1500 * time.Millisecond, 0, true}},
}

// newEqGen returns a generator of a stream of seed around the rotation rot.
func newEqGen(seed uint64, rot time.Time) *eqGen {
	g := &eqGen{rng: rand.New(rand.NewPCG(seed, 0x6e66716b6e6f636b)), p: eqParams(), rot: rot, inSeq: map[uint16]bool{}}
	g.st = &eqStream{seed: seed, rot: rot}
	for k := -2; k <= 1; k++ {
		o, c := g.seqs(k)
		for _, p := range slices.Concat(o, c) {
			g.inSeq[p] = true
		}
	}
	return g
}

// source adds source i: spoofed from syngen's ranges, IPv4 when i is
// even, IPv6 when odd.
func (g *eqGen) source(i int) *eqSrc {
	s := &eqSrc{g: g, idx: i}
	if i%2 == 0 {
		s.addr, s.dst = syngen.SpoofNet4.Addr().Next(), netns.ServerIP4
	} else {
		s.addr, s.dst = syngen.SpoofNet6.Addr().Next(), netns.ServerIP6
	}
	for range i/2 + 1 {
		s.addr = s.addr.Next()
	}
	g.st.sources = append(g.st.sources, s.addr)
	return s
}

// done returns the stream, its SYNs in the order of their instants.
func (g *eqGen) done() *eqStream {
	sort.SliceStable(g.st.steps, func(i, j int) bool { return g.st.steps[i].at < g.st.steps[j].at })
	return g.st
}

// newEqStream generates the stream of seed around the rotation rot: IPv4
// and IPv6 sources by turns, each a random run of episodes from 6.5 s
// before the rotation to at most eqEnd after it (after its eqAnchors), and
// then bystanders that send wrong knocks only.
func newEqStream(seed uint64, rot time.Time, sources, bystanders int) *eqStream {
	g := newEqGen(seed, rot)
	for i := range sources {
		s := g.source(i)
		s.cursor = -6500*time.Millisecond + g.dur(0, 1200*time.Millisecond)
		for _, a := range eqAnchors[i] {
			s.anchored(a.at, a.period, a.close)
		}
		for !s.over && s.cursor < 5500*time.Millisecond {
			var gap time.Duration
			switch r := g.rng.IntN(10); {
			case r < 4:
				gap = g.dur(40*time.Millisecond, 400*time.Millisecond)
			case r < 7:
				gap = g.dur(500*time.Millisecond, 1800*time.Millisecond)
			default:
				gap = g.dur(eqTimeout+300*time.Millisecond, 5*time.Second)
			}
			kind, w := 0, g.rng.IntN(epTotal)
			for ; w >= epWeights[kind]; kind++ {
				w -= epWeights[kind]
			}
			s.episode(kind, gap)
		}
	}
	for i := range bystanders {
		s := g.source(sources + i)
		g.st.bystanders = append(g.st.bystanders, s.addr)
		s.cursor = -6500 * time.Millisecond
		for s.knock(g.dur(40*time.Millisecond, 1500*time.Millisecond), g.wrong(), "wrong (a bystander)") {
		}
	}
	return g.done()
}

// TestFilterStreams checks the random streams in process (no root): over
// many seeds and rotations, the tracker with admission (the daemon's with
// the kernel filter) and without it agree on every SYN of the planned
// stream (the streams keep clear of the edge of TestFilterEquivalenceEdge),
// every kind of episode occurs, and the fixed runs open and close.
func TestFilterStreams(t *testing.T) {
	var kinds [numEpisodes]int
	syns, opens, closes := 0, 0, 0
	const seeds = 200
	for seed := range uint64(seeds) {
		rot := time.Unix(1_800_000_000+int64(seed)*int64(eqPeriod/time.Second), 0)
		st := newEqStream(seed, rot, eqSources, eqBystanders)
		var trs [2]*knock.Tracker
		for i, admit := range []bool{false, true} {
			trs[i], _ = knock.NewTracker(knock.TrackerConfig{Params: eqParams(), Timeout: eqTimeout, Admit: admit})
		}
		for _, s := range st.steps {
			k := knock.Knock{Src: s.syn.Src, SrcPort: s.syn.SrcPort, DstPort: s.syn.DstPort, Seq: s.syn.Seq}
			a, b := trs[0].Knock(&k, rot.Add(s.at)).Action, trs[1].Knock(&k, rot.Add(s.at)).Action
			if a != b {
				t.Errorf("seed %d: %v at %v (%s): %v alone, %v with admission", seed, s.syn, s.at, s.note, a, b)
			}
			switch a {
			case knock.Open:
				opens++
			case knock.Close:
				closes++
			}
		}
		sim := simulate(st)
		for _, c := range []string{"P0 open after the rotation", "P1 open before the rotation", "P1 open after the rotation", "close"} {
			if sim[c] == 0 {
				t.Errorf("seed %d: the stream has no %s: %v", seed, c, sim)
			}
		}
		for i, n := range st.episodes {
			kinds[i] += n
		}
		syns += len(st.steps)
	}
	for i, n := range kinds {
		if n == 0 {
			t.Errorf("no episode of kind %d in %d streams", i, seeds)
		}
	}
	t.Logf("%d streams: %.1f SYNs, %.1f opens, %.1f closes each on average; episodes by kind %v",
		seeds, float64(syns)/seeds, float64(opens)/seeds, float64(closes)/seeds, kinds)
}
