package e2e

// The edge cases of the differential test (see filter_equiv_test.go), and
// the tracker alone over a planned stream.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/knock"
)

// simulate runs the planned stream through the tracker alone and counts
// its opens and closes by kind.
func simulate(st *eqStream) map[string]int {
	tr, _ := knock.NewTracker(knock.TrackerConfig{Params: eqParams(), Timeout: eqTimeout})
	out := map[string]int{}
	for _, s := range st.steps {
		k := knock.Knock{Src: s.syn.Src, SrcPort: s.syn.SrcPort, DstPort: s.syn.DstPort, Seq: s.syn.Seq}
		switch tr.Knock(&k, st.rot.Add(s.at)).Action {
		case knock.Open:
			when := "before"
			if s.at >= 0 {
				when = "after"
			}
			out[strings.Fields(s.note)[0]+" open "+when+" the rotation"]++
		case knock.Close:
			out["close"]++
		}
	}
	return out
}

// newEdgeStream is the stream of TestFilterEquivalenceEdge, one case a
// source:
//
//  0. the next period's open sequence begun 3.6 s before the rotation,
//     before its acceptance (the grace, 3 s) but after the kernel's
//     first-port set has its first port (4 s), and completed within the
//     acceptance, by a source the daemon does not track yet;
//  1. the same, begun 4.7 s before the rotation, before the kernel has
//     the first port;
//  2. as 0, by a source the daemon tracks already (a control);
//  3. the sequence begun within the acceptance (a control);
//  4. an old knock repeated: the current period's first knock, then, once
//     the kernel has forgotten the source (more than --timeout + 2 s), a
//     wrong knock that the kernel keeps, then the first knock again with
//     its source port and sequence number, then the rest of the sequence.
//     The tracker alone counts the repeat (its previous knock is the wrong
//     one); the daemon, which never saw the wrong knock, takes it for a
//     retransmission.
func newEdgeStream(rot time.Time) *eqStream {
	g := newEqGen(1, rot)
	every := func(d time.Duration) func() time.Duration { return func() time.Duration { return d } }
	for i, c := range []struct {
		start, gap time.Duration
		tracked    bool
	}{{-3600 * time.Millisecond, 100 * time.Millisecond, false}, {-4700 * time.Millisecond, 250 * time.Millisecond, false},
		{-3600 * time.Millisecond, 100 * time.Millisecond, true}, {-2500 * time.Millisecond, 100 * time.Millisecond, false}} {
		s := g.source(i)
		s.cursor = -10 * time.Second
		if c.tracked {
			o, _ := g.seqs(-1)
			s.knock(4*time.Second, o[0], "P0 open 1/8: tracked from here on")
		}
		s.run(c.start, 0, false, every(c.gap))
	}
	s := g.source(4)
	s.cursor = -10 * time.Second
	o, _ := g.seqs(-1)
	s.knock(3600*time.Millisecond, o[0], "P0 open 1/8")
	first := s.last
	s.knock(eqKnocking+600*time.Millisecond, g.wrong(), "wrong, after the kernel forgot the source")
	s.emit(300*time.Millisecond, first, "P0 open 1/8 again: its source port and sequence number")
	for i, p := range o[1:] {
		s.knock(100*time.Millisecond, p, fmt.Sprintf("P0 open %d/%d", i+2, len(o)))
	}
	return g.done()
}

// TestFilterEquivalenceEdge runs the edge cases of newEdgeStream through
// the differential test. 0 and 1: a sequence of the next period that a
// client begins shortly before the daemon accepts that period's sequences
// (the grace before the rotation: a client clock ahead by more than the
// grace) and completes once they are accepted opens with knock.Tracker
// alone, as the knock semantics say (the last N knocks equal a sequence
// valid when they complete); through the kernel filter it must open too.
// 4: a knock repeated after another knock opens with the tracker alone (it
// is no retransmission of the source's previous knock); through the kernel
// filter it must open too.
func TestFilterEquivalenceEdge(t *testing.T) {
	netns.RequireRoot(t)
	t.Parallel()
	runEquivalence(t, newEdgeStream)
}
