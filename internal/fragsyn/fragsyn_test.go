package fragsyn

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

const (
	openPort   = 2222 // a listener on the server
	closedPort = 2223 // nothing there
	// wait is how long a probe waits for its answer. Answers come in well
	// under a millisecond in the namespaces, and a probe returns at the
	// first: only probes that get nothing wait this long.
	wait = 2 * time.Second
)

// srcPort gives each probe a source port of its own.
var srcPort atomic.Uint32

// send sends probe pr (fragmented at first bytes of TCP, or whole when first
// is 0) from a fresh source port, and returns its answer.
func send(t *testing.T, pr Probe, first int) Reply {
	t.Helper()
	pr.SrcPort = uint16(40000 + srcPort.Add(1))
	pr.FirstTCPBytes = first
	var r Reply
	var err error
	if first == 0 {
		r, err = pr.Whole(wait)
	} else {
		r, err = pr.Fragmented(wait)
	}
	if err != nil {
		t.Fatal(err)
	}
	how := "whole"
	if first != 0 {
		how = fmt.Sprintf("in two fragments, %d TCP bytes in the first", first)
	}
	t.Logf("%v -> %v port %d, SYN %s: %v", pr.Src, pr.Dst, pr.DstPort, how, r)
	return r
}

// expect checks that pr, sent as send does, gets an answer of kind want.
func expect(t *testing.T, pr Probe, first int, want Kind) Reply {
	t.Helper()
	r := send(t, pr, first)
	if r.Kind != want {
		t.Errorf("%v port %d, first TCP bytes %d (0: whole): got %v, want %v", pr.Dst, pr.DstPort, first, r, Reply{Kind: want})
	}
	return r
}

// setup makes a namespace pair with a listener on openPort of the server
// (both families), and returns the pair and one probe per family from the
// client to it.
func setup(t *testing.T) (p *netns.Pair, v4, v6 Probe) {
	p = netns.NewPair(t)
	for _, addr := range []netip.Addr{netns.ServerIP4, netns.ServerIP6} {
		var ln net.Listener
		ap := netip.AddrPortFrom(addr, openPort).String()
		if err := netns.Do(p.Server, func() (err error) { ln, err = net.Listen("tcp", ap); return }); err != nil {
			t.Fatalf("listen %s in server: %v", ap, err)
		}
		// Nothing accepts: the kernel answers SYNs of a listener itself,
		// and the client's RST ends each handshake.
		t.Cleanup(func() { ln.Close() })
	}
	v4 = Probe{NS: p.Client, Src: netns.ClientIP4, Dst: netns.ServerIP4, DstPort: openPort}
	v6 = Probe{NS: p.Client, Src: netns.ClientIP6, Dst: netns.ServerIP6, DstPort: openPort}
	return p, v4, v6
}

// nft loads ruleset into namespace ns.
func nft(t *testing.T, ns, ruleset string) {
	t.Helper()
	cmd := netns.Command(ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f - in %s: %v: %s", ns, err, out)
	}
}

// drops returns how many packets the guard of ns (see guard) has dropped.
func drops(t *testing.T, ns string) int {
	t.Helper()
	out, err := netns.Command(ns, "nft", "list", "chain", "inet", "fragsyn_test", "guard").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list chain in %s: %v: %s", ns, err, out)
	}
	f := strings.Fields(string(out))
	for i := range f[:len(f)-1] {
		if f[i] == "packets" {
			n, err := strconv.Atoi(f[i+1])
			if err != nil {
				t.Fatalf("guard counter: %v in %s", err, out)
			}
			return n
		}
	}
	t.Fatalf("no counter in the guard: %s", out)
	return 0
}

// guard is a table that drops bare SYNs to openPort at hook.
func guard(hook string) string {
	prio := "filter"
	if hook == "prerouting" {
		prio = "mangle"
	}
	return `table inet fragsyn_test {
	chain guard {
		type filter hook ` + hook + ` priority ` + prio + `; policy accept;
		tcp flags & (fin|syn|rst|ack) == syn tcp dport 2222 counter drop
	}
}
`
}

// TestFragmentedSyn probes a server without a firewall, then with an input
// guard.
func TestFragmentedSyn(t *testing.T) {
	p, v4, v6 := setup(t)

	t.Run("ipv4", func(t *testing.T) {
		// The kernel reassembles IPv4 fragments before local delivery,
		// however the TCP header is split.
		for _, first := range []int{0, 8, 16, 24} {
			expect(t, v4, first, SynAck)
		}
		v4.SrcPort = uint16(40000 + srcPort.Add(1))
		if ok, err := v4.SynAckWhole(wait); err != nil || !ok {
			t.Errorf("SynAckWhole = %v, %v; want true", ok, err)
		}
		v4.SrcPort, v4.FirstTCPBytes = uint16(40000+srcPort.Add(1)), 8
		if ok, err := v4.SynAck(wait); err != nil || !ok {
			t.Errorf("SynAck (8 bytes first) = %v, %v; want true", ok, err)
		}
	})

	t.Run("closed-port", func(t *testing.T) {
		// No listener: an RST, not a SYN-ACK, so the check can fail.
		c4, c6 := v4, v6
		c4.DstPort, c6.DstPort = closedPort, closedPort
		expect(t, c4, 0, Rst)
		expect(t, c4, 8, Rst)
		expect(t, c6, 0, Rst)
		expect(t, c6, 24, Rst)
		c4.SrcPort, c4.FirstTCPBytes = uint16(40000+srcPort.Add(1)), 8
		if ok, err := c4.SynAck(wait); err != nil || ok {
			t.Errorf("SynAck to a closed port = %v, %v; want false", ok, err)
		}
	})

	t.Run("ipv6", func(t *testing.T) {
		expect(t, v6, 0, SynAck)
		// A first fragment without the whole 20-byte TCP header (8 or 16
		// bytes of it) never reaches reassembly: RFC 7112 (RFC 8200
		// section 4.5) wants the whole header chain, up to and including
		// the upper-layer header, in the first fragment, and Linux's
		// ipv6_frag_rcv drops such a fragment and answers ICMPv6
		// parameter problem, code 3 (first fragment has incomplete IPv6
		// header chain). So on IPv6 no guard can be passed this way.
		for _, first := range []int{8, 16} {
			r := expect(t, v6, first, ICMP)
			if r.Kind == ICMP && (r.ICMPType != 4 || r.ICMPCode != 3) {
				t.Errorf("first fragment of %d TCP bytes: got %v, want ICMPv6 parameter problem (type 4) code 3", first, r)
			}
		}
		// The whole header (and the MSS option) in the first fragment,
		// the other 8 bytes of options in the second: reassembled and
		// answered.
		expect(t, v6, 24, SynAck)
	})

	t.Run("input-guard", func(t *testing.T) {
		// The input hook sees reassembled packets: every split of the SYN
		// is dropped, the probe notices the firewall.
		nft(t, p.Server, guard("input"))
		for _, first := range []int{0, 8, 16, 24} {
			expect(t, v4, first, Nothing)
		}
		for _, first := range []int{0, 24} {
			expect(t, v6, first, Nothing)
		}
		v4.SrcPort, v4.FirstTCPBytes = uint16(40000+srcPort.Add(1)), 8
		if ok, err := v4.SynAck(wait); err != nil || ok {
			t.Errorf("SynAck past the input guard = %v, %v; want false", ok, err)
		}
		// Nothing came back because the guard dropped each SYN, once
		// reassembled.
		if n := drops(t, p.Server); n != 7 {
			t.Errorf("the input guard dropped %d packets, want 7 (one per probe)", n)
		}
	})
}

// TestPreroutingGuardWithoutConntrack shows what docs/design.md records
// ("Chain `guard` and chain `guarded`", rule 3): at
// prerouting, without conntrack (so without its defragmentation), nft sees
// the fragments one by one. A first fragment of 8 TCP bytes has no flags, so
// "tcp flags" cannot match it, and a later fragment has no TCP header at all:
// both pass, the kernel reassembles them before input, and the SYN gets its
// SYN-ACK. A first fragment of 16 bytes or more carries the flags and is
// dropped. On IPv6 the kernel drops the 8-byte split itself (see
// TestFragmentedSyn).
func TestPreroutingGuardWithoutConntrack(t *testing.T) {
	p, v4, v6 := setup(t)
	nft(t, p.Server, guard("prerouting"))
	expect(t, v4, 0, Nothing)
	expect(t, v4, 8, SynAck) // past the guard
	expect(t, v4, 16, Nothing)
	expect(t, v6, 0, Nothing)
	expect(t, v6, 8, ICMP)
	expect(t, v6, 24, Nothing)
	// Dropped: the 4 whole SYNs and first fragments with the flags.
	if n := drops(t, p.Server); n != 4 {
		t.Errorf("the prerouting guard dropped %d packets, want 4", n)
	}
}

// TestValidate checks that a probe refuses addresses outside the test
// networks and bad splits before touching any namespace.
func TestValidate(t *testing.T) {
	good := Probe{NS: "none", Src: netip.MustParseAddr("10.1.0.2"), Dst: netip.MustParseAddr("10.1.0.1"), DstPort: 22, FirstTCPBytes: 8}
	bad := map[string]func(*Probe){
		"public destination":   func(p *Probe) { p.Dst = netip.MustParseAddr("192.0.2.1") },
		"private not 10/8":     func(p *Probe) { p.Src = netip.MustParseAddr("192.168.1.2") },
		"public IPv6":          func(p *Probe) { p.Src, p.Dst = netip.MustParseAddr("fd00::2"), netip.MustParseAddr("2001:db8::1") },
		"mapped IPv6":          func(p *Probe) { p.Dst = netip.MustParseAddr("::ffff:10.1.0.1") },
		"mixed families":       func(p *Probe) { p.Dst = netip.MustParseAddr("fd00::1") },
		"no source":            func(p *Probe) { p.Src = netip.Addr{} },
		"no namespace":         func(p *Probe) { p.NS = "" },
		"port 0":               func(p *Probe) { p.DstPort = 0 },
		"first 0":              func(p *Probe) { p.FirstTCPBytes = 0 },
		"first not multiple 8": func(p *Probe) { p.FirstTCPBytes = 12 },
		"first whole segment":  func(p *Probe) { p.FirstTCPBytes = SegmentLen },
	}
	for name, f := range bad {
		pr := good
		f(&pr)
		if _, err := pr.Fragmented(time.Second); err == nil {
			t.Errorf("%s: no error", name)
		} else if !strings.Contains(err.Error(), "fragsyn probe:") {
			t.Errorf("%s: %v: not refused by validation", name, err)
		}
	}
	if err := good.validate(time.Second, true); err != nil {
		t.Errorf("good probe: %v", err)
	}
}
