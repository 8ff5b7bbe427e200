package e2e

// Namespace runs of the kernel filter over IPv4 and IPv6: nc-style knocks,
// a wrong knock mid-sequence, retransmissions, the first-port set over a
// rotation, and what `nft list` shows. None asserts a time or a rate.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/knock"
)

// filterFam is a family of the namespace runs, with the client's address
// and two more of the client namespace.
type filterFam struct {
	name                   string
	server, client         netip.Addr
	second, third          netip.Addr
	allow, knocking, flood string
}

// filterFams are the families of the namespace runs.
var filterFams = []filterFam{
	{"ipv4", netns.ServerIP4, netns.ClientIP4, strangerIP4, netip.MustParseAddr("10.200.0.4"), "allow4", "knocking4", "flood4"},
	{"ipv6", netns.ServerIP6, netns.ClientIP6, stranger6, netip.MustParseAddr("fd00:200::4"), "allow6", "knocking6", "flood6"},
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
	needNetcat(t)
	for _, fam := range filterFams {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			d := e.start()
			open, close := e.sequences()
			none := netip.Addr{}
			e.netcatOpens(d, fam.server, open)
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
