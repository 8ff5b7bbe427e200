package e2e

// The episodes of the random knock streams (see filter_stream_test.go):
// what one source does once, the anchored runs at a rotation, the streams
// made of them, and TestFilterStreams, their check in process (no root).

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/syngen"
	"github.com/nfqknockd/nfqknockd/knock"
)

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
