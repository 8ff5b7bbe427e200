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
	"time"

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
