package main

// Tests of the kernel filter in front of the queue (the first-port set,
// the knocking sets): real kernel, real packets, in namespaces.
//
// TestFilterEquivalence is the differential test: random knock streams
// sent as raw SYNs through the kernel filter and the daemon must open and
// close exactly what knock.Tracker alone opens and closes on the same SYNs
// at the same instants. The other tests are the namespace runs the issue
// asks for, over IPv4 and IPv6. None asserts a time or a rate.

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
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
	// after its last SYN: --timeout plus the daemon's margin.
	eqKnocking = eqTimeout + knockTimeoutMargin
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

// eqResult is what happened to one stream: the SYNs as sent, with the
// tracker's action on each, and the opens and closes by source.
type eqResult struct {
	sent    []testutil.TimedSYN
	actions []knock.Action
	events  map[netip.Addr][]string // "open" or "close", in order
}

// expect feeds the SYNs as sent, at the instants they were sent, to a
// knock.Tracker alone with the daemon's parameters.
func expect(t *testing.T, sent []testutil.TimedSYN, admit bool) eqResult {
	t.Helper()
	tr, err := knock.NewTracker(knock.TrackerConfig{Params: eqParams(), Timeout: eqTimeout, Admit: admit})
	if err != nil {
		t.Fatal(err)
	}
	r := eqResult{sent: sent, events: map[netip.Addr][]string{}}
	for _, s := range sent {
		k := knock.Knock{Src: s.Src, SrcPort: s.SrcPort, DstPort: s.DstPort, Seq: s.Seq}
		a := tr.Knock(&k, s.At)
		r.actions = append(r.actions, a)
		if a != knock.None {
			r.events[s.Src] = append(r.events[s.Src], a.String())
		}
	}
	return r
}

var eventRE = regexp.MustCompile(`msg=(open|close) source=(\S+)`)

// daemonEvents returns the opens and closes the daemon logged, by source.
func daemonEvents(t *testing.T, log string) map[netip.Addr][]string {
	t.Helper()
	ev := map[netip.Addr][]string{}
	for _, m := range eventRE.FindAllStringSubmatch(log, -1) {
		a, err := netip.ParseAddr(m[2])
		if err != nil {
			t.Fatalf("daemon logged %q", m[0])
		}
		ev[a] = append(ev[a], m[1])
	}
	return ev
}

// setElements returns the elements of set name of the table, the first
// word of each (the address or port), as nft lists them.
func (e *env) setElements(t *testing.T, name string) []string {
	t.Helper()
	out, err := e.nft("list", "set", "inet", "nfqknock", name)
	if err != nil {
		t.Fatalf("nft list set %s: %v: %s", name, err, out)
	}
	return elementsOf(out)
}

// elementsOf returns the first word of each element of the first
// `elements = { ... }` of an nft listing.
func elementsOf(list string) []string {
	_, rest, ok := strings.Cut(list, "elements = {")
	if !ok {
		return nil
	}
	body, _, _ := strings.Cut(rest, "}")
	var out []string
	for _, el := range strings.Split(body, ",") {
		if f := strings.Fields(el); len(f) > 0 {
			out = append(out, f[0])
		}
	}
	return out
}

// prime waits until the client's link to the server answers over IPv4 and
// IPv6: raw SYNs do not wait for the neighbour, and the first packets on a
// new link can be lost.
func (e *env) prime(t *testing.T) {
	t.Helper()
	for _, dst := range []netip.Addr{netns.ServerIP4, netns.ServerIP6} {
		deadline := time.Now().Add(10 * time.Second)
		for !e.reachable(netip.Addr{}, dst, freePort) {
			if time.Now().After(deadline) {
				t.Fatalf("the server's free port does not answer over %v", dst)
			}
		}
	}
}

// eqRun is one daemon of the differential test, in namespaces of its
// own, with a sender of raw SYNs in its client namespace.
type eqRun struct {
	name string
	e    *env
	d    *daemon
	snd  *testutil.SYNSender
	sent []testutil.TimedSYN
	err  error
}

// newEqRun starts a daemon with the flags of the differential test and
// extra ones, and waits until its namespaces carry packets.
func newEqRun(t *testing.T, name string, extra ...string) *eqRun {
	t.Helper()
	r := &eqRun{name: name, e: newEnv(t)}
	if err := syngen.AddSpoofRoutes(r.e.pair.Server, netns.ClientIP4, netns.ClientIP6); err != nil {
		t.Fatalf("spoof routes: %v", err)
	}
	r.d = r.e.start(append(slices.Clone(eqFlags), extra...)...)
	r.e.prime(t)
	var err error
	if r.snd, err = testutil.NewSYNSender(r.e.pair.Client); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.snd.Close() })
	return r
}

// runEquivalence starts a daemon with the kernel filter and one with
// --queue-all, makes the stream around the next rotation that leaves time
// enough, sends it to both at once (the same SYNs at the same instants),
// and compares each daemon's opens and closes with the tracker's alone
// (subtests filter and queue-all).
func runEquivalence(t *testing.T, stream func(rot time.Time) *eqStream) {
	t.Helper()
	runs := []*eqRun{newEqRun(t, "filter"), newEqRun(t, "queue-all", "--queue-all")}
	st := stream(nextRotation(7500 * time.Millisecond))
	plan := make([]testutil.TimedSYN, len(st.steps))
	for i, s := range st.steps {
		plan[i] = testutil.TimedSYN{SYN: s.syn, At: st.rot.Add(s.at)}
	}
	if late := time.Since(plan[0].At); late > 0 {
		t.Fatalf("the stream should have started %v ago", late)
	}
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Go(func() { r.sent, r.err = r.snd.SendStream(context.Background(), plan) })
	}
	wg.Wait()
	time.Sleep(time.Second) // the last knocks reach the daemons
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			if r.err != nil {
				t.Fatalf("send the stream: %v", r.err)
			}
			for i := range r.sent {
				if r.sent[i].SYN != plan[i].SYN {
					t.Fatalf("SYN %d sent out of order", i)
				}
			}
			r.check(t, st)
		})
	}
}

// check compares the daemon's opens and closes, and its allow sets, with
// the tracker's alone on the SYNs as sent.
func (r *eqRun) check(t *testing.T, st *eqStream) {
	e, d, sent := r.e, r.d, r.sent
	got := daemonEvents(t, d.stderr.String())
	allowed := map[netip.Addr]bool{}
	for _, set := range []string{"allow4", "allow6"} {
		for _, el := range e.setElements(t, set) {
			allowed[netip.MustParseAddr(el)] = true
		}
	}
	queued := e.queueSeen(t)
	list, _ := e.nft("list", "table", "inet", "nfqknock")

	want := expect(t, sent, false)
	admitted := expect(t, sent, true)
	late := lateSends(st, sent)
	opens, closes := 0, 0
	for _, ev := range want.events {
		for _, x := range ev {
			if x == "open" {
				opens++
			} else {
				closes++
			}
		}
	}
	t.Logf("stream: seed %d, %d sources, %d SYNs from %v to %v around the rotation at %v; the daemon was handed %d of them; "+
		"the tracker alone: %d opens, %d closes, %d sources open at the end",
		st.seed, len(st.sources), len(sent), st.steps[0].at, st.steps[len(st.steps)-1].at, st.rot.Format("15:04:05"),
		queued, opens, closes, len(openAtEnd(want.events)))

	failed := false
	for _, src := range st.sources {
		if w, g := strings.Join(want.events[src], ","), strings.Join(got[src], ","); w != g {
			t.Errorf("source %v: the daemon logged [%s], the tracker alone gives [%s]", src, g, w)
			failed = true
		}
	}
	for src := range got {
		if !slices.Contains(st.sources, src) {
			t.Errorf("the daemon logged %v for %v, which sent nothing", got[src], src)
			failed = true
		}
	}
	if w, g := openAtEnd(want.events), slices.SortedFunc(maps.Keys(allowed), netip.Addr.Compare); !slices.Equal(w, g) {
		t.Errorf("allow sets at the end: %v; the tracker alone opens %v", g, w)
		failed = true
	}
	if r.name == "filter" {
		for _, b := range st.bystanders {
			if n := d.knocksSeen(b, 0); n != 0 {
				t.Errorf("bystander %v, which never knocked a first port, reached the daemon %d times through the kernel filter", b, n)
				failed = true
			}
		}
	}
	if len(late) > 0 {
		t.Errorf("the sender was late: %d SYNs were sent near an instant the stream avoids (the result may not mean anything): %s",
			len(late), strings.Join(late, "; "))
		failed = true
	}
	if failed {
		t.Logf("the stream as sent (times from the rotation; the tracker's action, alone / with admission):\n%s",
			describe(st, want, admitted, got, d))
		t.Logf("nft list table inet nfqknock:\n%s", list)
	}
}

// openAtEnd returns the sources whose last event is an open, sorted.
func openAtEnd(ev map[netip.Addr][]string) []netip.Addr {
	var out []netip.Addr
	for a, x := range ev {
		if x[len(x)-1] == "open" {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// lateSends returns the SYNs that were sent late, inside half the margins
// the stream keeps (eqGaps.clash).
func lateSends(st *eqStream, sent []testutil.TimedSYN) []string {
	var out []string
	gaps := map[netip.Addr]*eqGaps{}
	for i, s := range sent {
		at := s.At.Sub(st.rot)
		g := gaps[s.Src]
		if g == nil {
			g = &eqGaps{}
			gaps[s.Src] = g
		}
		if _, why := g.clash(at, 2); why != "" {
			out = append(out, fmt.Sprintf("SYN %d of %v at %v: %s", i, s.Src, at, why))
		}
		g.add(at, s.SYN)
	}
	return out
}

// describe lists the stream by source, with what the daemon d did.
func describe(st *eqStream, want, admitted eqResult, got map[netip.Addr][]string, d *daemon) string {
	var b strings.Builder
	for i, src := range st.sources {
		n := 0
		for _, s := range want.sent {
			if s.Src == src {
				n++
			}
		}
		fmt.Fprintf(&b, "source %d %v: expected [%s], the daemon logged [%s] and saw %d of its %d SYNs\n", i, src,
			strings.Join(want.events[src], ","), strings.Join(got[src], ","), d.knocksSeen(src, 0), n)
		for j, s := range want.sent {
			if s.Src != src {
				continue
			}
			fmt.Fprintf(&b, "  %+9.3fs (planned %+9.3fs) dport %5d sport %5d seq %10d mss %4d  %-5s/%-5s  %s\n",
				s.At.Sub(st.rot).Seconds(), st.steps[j].at.Seconds(), s.DstPort, s.SrcPort, s.Seq, s.MSS,
				want.actions[j], admitted.actions[j], st.steps[j].note)
		}
	}
	return b.String()
}

// The sources of the random streams: knocking ones (IPv4 and IPv6 by
// turns) and bystanders.
const (
	eqSources    = 12
	eqBystanders = 2
)

// filterSeed returns the seed of the random streams: filterSeedEnv, or 12.
func filterSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(12)
	if s := os.Getenv(filterSeedEnv); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", filterSeedEnv, s, err)
		}
		seed = n
	}
	t.Logf("seed %d (%s=N for another stream)", seed, filterSeedEnv)
	return seed
}

// nextRotation returns the first rotation of a 10 s period at least
// ahead from now.
func nextRotation(ahead time.Duration) time.Time {
	at := time.Now().Add(ahead)
	const p = int64(eqPeriod / time.Second)
	return time.Unix((at.Unix()+p-1)/p*p, 0)
}

// TestFilterEquivalence is the differential test of the kernel filter: a
// random knock stream from 12 sources (IPv4 and IPv6, spoofed, a few fixed
// runs around the rotation and random episodes), with open and close
// sequences, wrong knocks and gaps over --timeout in the middle of
// sequences, retransmissions, partial sequences and a rotation with its
// grace, and 2 bystanders that knock no sequence, sent as raw SYNs (with and
// without options) to a daemon with the kernel filter and, at the same
// instants, to one with --queue-all, must give, in each, the same opens and
// closes, source by source and in order, and the same allow sets at the end,
// as knock.Tracker alone on the same SYNs at the instants they were sent.
// Through the filter, no SYN of a bystander reaches the daemon.
func TestFilterEquivalence(t *testing.T) {
	netns.RequireRoot(t)
	t.Parallel()
	seed := filterSeed(t)
	runEquivalence(t, func(rot time.Time) *eqStream {
		st := newEqStream(seed, rot, eqSources, eqBystanders)
		// The fixed runs hold: the tracker alone opens with the previous
		// period's sequence within the grace, with the new one before
		// and after the rotation, and closes.
		sim := simulate(st)
		for _, c := range []string{"P0 open after the rotation", "P1 open before the rotation", "P1 open after the rotation", "close"} {
			if sim[c] == 0 {
				t.Fatalf("the stream has no %s: %v", c, sim)
			}
		}
		t.Logf("stream of seed %d: %d SYNs from %d sources (%d bystanders); random episodes by kind %v; planned: %v",
			seed, len(st.steps), len(st.sources), len(st.bystanders), st.episodes, sim)
		return st
	})
}

// simulate runs the planned stream through the tracker alone and counts
// its opens and closes by kind.
func simulate(st *eqStream) map[string]int {
	tr, _ := knock.NewTracker(knock.TrackerConfig{Params: eqParams(), Timeout: eqTimeout})
	out := map[string]int{}
	for _, s := range st.steps {
		k := knock.Knock{Src: s.syn.Src, SrcPort: s.syn.SrcPort, DstPort: s.syn.DstPort, Seq: s.syn.Seq}
		switch tr.Knock(&k, st.rot.Add(s.at)) {
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

// filterFams are the families of the namespace runs, each with the
// client's address and two more of the client namespace.
var filterFams = []struct {
	name                   string
	server, client         netip.Addr
	second, third          netip.Addr
	allow, knocking, flood string
}{
	{"ipv4", netns.ServerIP4, netns.ClientIP4, strangerIP4, netip.MustParseAddr("10.200.0.4"), "allow4", "knocking4", "flood4"},
	{"ipv6", netns.ServerIP6, netns.ClientIP6, netip.MustParseAddr("fd00:200::3"), netip.MustParseAddr("fd00:200::4"), "allow6", "knocking6", "flood6"},
}

// addClientAddrs adds addresses to the client's veth (IPv6 without
// duplicate address detection, usable at once); strangerIP4 is there.
func (e *env) addClientAddrs(t *testing.T, addrs ...netip.Addr) {
	t.Helper()
	for _, a := range addrs {
		if a == strangerIP4 {
			continue
		}
		args := []string{"-n", e.pair.Client, "addr", "add", a.String() + "/24", "dev", "veth0"}
		if a.Is6() {
			args = []string{"-n", e.pair.Client, "addr", "add", a.String() + "/64", "dev", "veth0", "nodad"}
		}
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
}

// defaultParams are the daemon's parameters in the namespace runs without
// --period: the test secrets, md5, 1-65535, 1h, 1m.
func defaultParams() knock.Params {
	p := eqParams()
	p.Period, p.Grace = knock.DefaultPeriod, knock.DefaultGrace
	return p
}

// wrongPort returns a port outside every sequence of p from one period
// before now to one after, and neither the guarded nor the free port.
func wrongPort(p knock.Params, rng *rand.Rand) uint16 {
	in := map[uint16]bool{guardPort: true, freePort: true}
	for k := -1; k <= 1; k++ {
		o, c := p.Sequences(time.Now().Add(time.Duration(k) * p.Period))
		for _, x := range slices.Concat(o, c) {
			in[x] = true
		}
	}
	for {
		if x := uint16(1024 + rng.IntN(65535-1024)); !in[x] {
			return x
		}
	}
}

// knocksSeen counts the knocks from src that the daemon (-v) logged,
// once it logged want of them or a second has passed (its log reaches the
// test a little after the knock).
func (d *daemon) knocksSeen(src netip.Addr, want int) int {
	deadline := time.Now().Add(time.Second)
	for {
		n := strings.Count(d.stderr.String(), "msg=knock source="+src.String()+"\n")
		if n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// opened reports whether the daemon logged an open of src.
func (d *daemon) opened(src netip.Addr) bool {
	return strings.Contains(d.stderr.String(), "msg=open source="+src.String()+" ")
}

// dialKnock knocks the ports from src one after another, each a Go
// connect with a 1 s timeout, as a client with a slow network would.
func (e *env) dialKnock(src, dst netip.Addr, ports []uint16) {
	for _, p := range ports {
		if c, err := e.dial(src, dst, int(p), time.Second); err == nil {
			c.Close()
		}
	}
}

// TestFilterNetcatKnock: with the kernel filter, a client that knocks
// nc-style (`nc -z -w 1 HOST PORT` per port) opens; one that knocks with Go
// connects of a 1 s timeout, one after another, closes and opens again.
func TestFilterNetcatKnock(t *testing.T) {
	if _, err := exec.LookPath("nc"); err != nil {
		t.Fatalf("nc not installed (apt-get install netcat-openbsd): %v", err)
	}
	for _, fam := range filterFams {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			d := e.start()
			open, close := e.sequences()
			none := netip.Addr{}
			if e.reachable(none, fam.server, guardPort) {
				t.Fatalf("guarded port answered before any knock")
			}
			for _, p := range open {
				netns.Command(e.pair.Client, "nc", "-z", "-w", "1", fam.server.String(), strconv.Itoa(int(p))).Run()
			}
			if !e.reachable(none, fam.server, guardPort) {
				t.Fatalf("guarded port still dropped after an nc knock through the kernel filter; stderr:\n%s", d.stderr)
			}
			e.dialKnock(none, fam.server, close)
			if e.reachable(none, fam.server, guardPort) {
				t.Fatalf("guarded port answered after a close knocked with 1 s connects")
			}
			e.dialKnock(none, fam.server, open)
			if !e.reachable(none, fam.server, guardPort) {
				t.Fatalf("guarded port dropped after an open knocked with 1 s connects")
			}
			if list := e.setElements(t, fam.allow); !slices.Contains(list, fam.client.String()) {
				t.Errorf("%s lacks the client: %v", fam.allow, list)
			}
		})
	}
}

// TestFilterWrongKnock: a wrong knock (a port outside every sequence) from
// a source in the middle of its sequence reaches the daemon through the
// kernel filter and breaks the window: half the sequence, the wrong port,
// the rest does not open; the whole sequence then does.
func TestFilterWrongKnock(t *testing.T) {
	for _, fam := range filterFams {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			d := e.start("-v")
			open, _ := e.sequences()
			wrong := wrongPort(defaultParams(), rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1)))
			none := netip.Addr{}
			half := len(open) / 2
			e.knock(none, fam.server, open[:half])
			e.knock(none, fam.server, []uint16{wrong})
			e.knock(none, fam.server, open[half:])
			t.Logf("knocked %v, then %d, then %v", open[:half], wrong, open[half:])
			if n := d.knocksSeen(fam.client, len(open)+1); n != len(open)+1 {
				t.Errorf("the daemon saw %d knocks of the client, want %d (the wrong one included)", n, len(open)+1)
			}
			if d.opened(fam.client) {
				t.Fatalf("the daemon logged an open after a broken sequence")
			}
			if e.reachable(none, fam.server, guardPort) {
				t.Fatalf("opened although a wrong knock (port %d) broke the sequence", wrong)
			}
			e.knock(none, fam.server, open)
			if !e.reachable(none, fam.server, guardPort) {
				t.Fatalf("the whole sequence after the broken one did not open")
			}
		})
	}
}

// TestFilterRetransmission: through the kernel filter, a retransmitted
// knock (raw SYNs: the same source port and sequence number) still does
// not count. A sequence with one knock sent twice opens; a sequence whose
// missing knock is replaced by a retransmission of the one before does not;
// nor one whose last knock reuses the source port and sequence number of
// the knock before (a retransmission, as the daemon defines it), which a
// fresh last knock then completes.
func TestFilterRetransmission(t *testing.T) {
	for _, fam := range filterFams {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.addClientAddrs(t, fam.second, fam.third)
			d := e.start("-v")
			e.prime(t)
			open, _ := e.sequences()
			snd, err := testutil.NewSYNSender(e.pair.Client)
			if err != nil {
				t.Fatal(err)
			}
			defer snd.Close()
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
			fresh := func(src netip.Addr, port uint16) testutil.SYN {
				syn := testutil.SYN{Src: src, Dst: fam.server, SrcPort: uint16(10000 + rng.IntN(20000)), DstPort: port, Seq: rng.Uint32()}
				if rng.IntN(2) == 0 {
					syn.MSS = 1400
				}
				return syn
			}
			send := func(what string, syns []testutil.SYN) {
				t.Helper()
				var b strings.Builder
				stream := make([]testutil.TimedSYN, len(syns))
				at := time.Now()
				for i, s := range syns {
					at = at.Add(30 * time.Millisecond)
					stream[i] = testutil.TimedSYN{SYN: s, At: at}
					fmt.Fprintf(&b, "\n  %v", s)
				}
				if _, err := snd.SendStream(context.Background(), stream); err != nil {
					t.Fatal(err)
				}
				time.Sleep(100 * time.Millisecond)
				t.Logf("%s:%s", what, b.String())
			}
			k := 1 + rng.IntN(len(open)-2) // a knock in the middle: 1..n-2

			// A knock sent twice: the second is a retransmission, and
			// the sequence opens.
			var syns []testutil.SYN
			for i, p := range open {
				syns = append(syns, fresh(fam.client, p))
				if i == k {
					syns = append(syns, syns[len(syns)-1])
				}
			}
			send(fmt.Sprintf("the open sequence from %v, knock %d sent twice", fam.client, k+1), syns)
			if n := d.knocksSeen(fam.client, len(open)+1); n != len(open)+1 {
				t.Errorf("the daemon saw %d SYNs of %v, want %d (the retransmission included)", n, fam.client, len(open)+1)
			}
			if !e.reachable(fam.client, fam.server, guardPort) {
				t.Fatalf("a sequence with one knock retransmitted did not open")
			}

			// Knock k+1 missing, a retransmission of knock k in its place.
			syns = nil
			for i, p := range open {
				if i == k+1 {
					syns = append(syns, syns[len(syns)-1])
					continue
				}
				syns = append(syns, fresh(fam.second, p))
			}
			send(fmt.Sprintf("the open sequence from %v, knock %d replaced by a retransmission of knock %d", fam.second, k+2, k+1), syns)
			if e.reachable(fam.second, fam.server, guardPort) || d.opened(fam.second) {
				t.Fatalf("a sequence with a retransmission in place of a knock opened")
			}
			send(fmt.Sprintf("the whole open sequence from %v", fam.second), mapSlice(open, func(p uint16) testutil.SYN { return fresh(fam.second, p) }))
			if !e.reachable(fam.second, fam.server, guardPort) {
				t.Fatalf("the whole sequence after the one with a retransmission did not open")
			}

			// The last knock with the source port and sequence number of
			// the one before: not a knock. A fresh last knock completes.
			syns = mapSlice(open, func(p uint16) testutil.SYN { return fresh(fam.third, p) })
			n := len(syns)
			syns[n-1].SrcPort, syns[n-1].Seq = syns[n-2].SrcPort, syns[n-2].Seq
			send(fmt.Sprintf("the open sequence from %v, the last knock with the sport and seq of the one before", fam.third), syns)
			// No connect to the guarded port here: its SYN would be a
			// knock, and break the window.
			if d.opened(fam.third) || slices.Contains(e.setElements(t, fam.allow), fam.third.String()) {
				t.Fatalf("a last knock with the source port and sequence number of the one before counted")
			}
			send(fmt.Sprintf("the last knock again from %v, fresh", fam.third), []testutil.SYN{fresh(fam.third, open[n-1])})
			if !e.reachable(fam.third, fam.server, guardPort) {
				t.Fatalf("a fresh last knock did not complete the sequence")
			}
		})
	}
}

func mapSlice[T, U any](s []T, f func(T) U) []U {
	out := make([]U, len(s))
	for i, x := range s {
		out[i] = f(x)
	}
	return out
}

// firstSet returns the ports in the set first, sorted.
func (e *env) firstSet(t *testing.T) []uint16 {
	t.Helper()
	var out []uint16
	for _, el := range e.setElements(t, "first") {
		n, err := strconv.Atoi(el)
		if err != nil {
			t.Fatalf("set first holds %q", el)
		}
		out = append(out, uint16(n))
	}
	slices.Sort(out)
	return out
}

// firstPortsOf returns the first ports of sequences, sorted, once each.
func firstPortsOf(seqs ...[]uint16) []uint16 {
	var out []uint16
	for _, s := range seqs {
		out = append(out, s[0])
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestFilterRotation: with --period 20s --grace 3s -t 1 the set first
// follows the rotation. A period's first ports are in the set from the time
// a sequence that ends as its acceptance begins may begin (the grace, 3 s,
// plus 7 gaps of -t, 7 s, plus the daemon's second of lead: 11 s before the
// period) until its acceptance ends (the grace after it, plus a second of
// margin). So, around the rotation rot: 14 s before it the set holds the
// current period's first ports only (from `nfqknockd -s --at T`), from 11 s
// before it the next period's too, and 5 s after it only those. Right after
// the rotation the new period's open sequence opens, and the previous one
// too (within the grace); after the grace the previous one does not.
func TestFilterRotation(t *testing.T) {
	const period = 20 * time.Second
	for _, fam := range filterFams {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.addClientAddrs(t, fam.second, fam.third)
			at0 := time.Now().Add(16 * time.Second)
			rot := time.Unix((at0.Unix()+19)/20*20, 0)
			d := e.start("--period", "20s", "--grace", "3s", "-t", "1")
			at := func(off time.Duration) string { return strconv.FormatInt(rot.Add(off).Unix(), 10) }
			curOpen, curClose := e.sequences("--period", "20s", "--at", at(-period/2))
			nextOpen, nextClose := e.sequences("--period", "20s", "--at", at(period/2))
			cur, next := firstPortsOf(curOpen, curClose), firstPortsOf(nextOpen, nextClose)
			both := firstPortsOf(curOpen, curClose, nextOpen, nextClose)
			t.Logf("rotation at %s; first ports before it %v, after it %v", rot.Format("15:04:05"), cur, next)
			check := func(when string, want []uint16) {
				t.Helper()
				if got := e.firstSet(t); !slices.Equal(got, want) {
					list, _ := e.nft("list", "set", "inet", "nfqknock", "first")
					t.Errorf("%s: set first holds %v, want %v:\n%s", when, got, want, list)
				} else {
					t.Logf("%s: set first holds %v", when, got)
				}
			}
			// 14 s before the rotation: the previous period's ports left
			// 16 s before it, the next period's join 11 s before it.
			sleepUntil(rot.Add(-14 * time.Second))
			check("14 s before the rotation", cur)
			e.watchFirst(t, rot, rot.Add(-9*time.Second), cur)
			check("9 s before the rotation", both)
			sleepUntil(rot.Add(200 * time.Millisecond))
			e.knock(fam.client, fam.server, nextOpen)
			if !e.reachable(fam.client, fam.server, guardPort) {
				t.Errorf("the new period's open sequence, knocked right after the rotation, did not open")
			}
			e.knock(fam.second, fam.server, curOpen)
			if !e.reachable(fam.second, fam.server, guardPort) {
				t.Errorf("the previous period's open sequence, knocked within the grace, did not open")
			}
			check("within the grace", both)
			// The previous period's first ports go with the grace (3 s,
			// and the daemon's second of margin); the one after next joins
			// 9 s after the rotation.
			e.watchFirst(t, rot, rot.Add(5*time.Second), both)
			check("5 s after the rotation", next)
			e.knock(fam.third, fam.server, curOpen)
			if e.reachable(fam.third, fam.server, guardPort) {
				t.Errorf("the previous period's open sequence opened after the grace")
			}
			if t.Failed() {
				t.Logf("daemon stderr:\n%s", d.stderr)
			}
		})
	}
}

// watchFirst reads the set first until the instant until and logs when it
// changed from was, from the rotation rot (a log, not a check).
func (e *env) watchFirst(t *testing.T, rot, until time.Time, was []uint16) {
	t.Helper()
	for time.Now().Before(until) {
		if got := e.firstSet(t); !slices.Equal(got, was) {
			t.Logf("set first became %v at %+.1fs from the rotation", got, time.Since(rot).Seconds())
			was = got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// setBlock returns the block of set name in an nft listing of the table.
func setBlock(list, name string) string {
	_, rest, ok := strings.Cut(list, "\tset "+name+" {")
	if !ok {
		return ""
	}
	block, _, _ := strings.Cut(rest, "\n\t}")
	return block
}

// TestFilterListing: `nft list table inet nfqknock` shows the set first
// with the first ports of the current open and close sequences (and their
// timeouts), and the sources that knocked one in knocking4/knocking6, each
// with the set's timeout (--timeout plus 2 s) counting down; a client that
// only connected to another port is not there.
func TestFilterListing(t *testing.T) {
	for _, fam := range filterFams {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.addClientAddrs(t, fam.second)
			e.start()
			open, close := e.sequences()
			if !e.reachable(fam.second, fam.server, freePort) {
				t.Fatalf("the free port does not answer")
			}
			e.knock(fam.client, fam.server, open[:3]) // knocking, not opened
			list, err := e.nft("list", "table", "inet", "nfqknock")
			if err != nil {
				t.Fatalf("nft list table: %v: %s", err, list)
			}
			t.Logf("nft list table inet nfqknock:\n%s", list)
			first := setBlock(list, "first")
			for _, want := range []string{"type inet_service", "flags timeout", "elements = {"} {
				if !strings.Contains(first, want) {
					t.Errorf("set first lacks %q:\n%s", want, first)
				}
			}
			for _, p := range firstPortsOf(open, close) {
				if !regexp.MustCompile(`[{ ]` + strconv.Itoa(int(p)) + ` timeout \S+ expires `).MatchString(first) {
					t.Errorf("set first lacks the first port %d with its timeout:\n%s", p, first)
				}
			}
			knocking := setBlock(list, fam.knocking)
			for _, want := range []string{"flags dynamic,timeout", "timeout 12s", "size 65536"} {
				if !strings.Contains(knocking, want) {
					t.Errorf("set %s lacks %q:\n%s", fam.knocking, want, knocking)
				}
			}
			if !regexp.MustCompile(`[{ ]` + regexp.QuoteMeta(fam.client.String()) + ` expires \S+`).MatchString(knocking) {
				t.Errorf("set %s lacks the knocking client %v with its expiry:\n%s", fam.knocking, fam.client, knocking)
			}
			if els := elementsOf(knocking); slices.Contains(els, fam.second.String()) {
				t.Errorf("set %s holds %v, which never knocked: %v", fam.knocking, fam.second, els)
			}
			if els := elementsOf(setBlock(list, fam.allow)); len(els) != 0 {
				t.Errorf("set %s holds %v after a partial knock", fam.allow, els)
			}
			for _, want := range []string{"th dport @first update @" + fam.knocking, "saddr @" + fam.knocking + " update @" + fam.knocking} {
				if !strings.Contains(list, want) {
					t.Errorf("the table lacks %q", want)
				}
			}
		})
	}
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
			a, b := trs[0].Knock(&k, rot.Add(s.at)), trs[1].Knock(&k, rot.Add(s.at))
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
