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
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/knock"
)

// filterFams are the families of the namespace runs, each with the
// client's address and two more of the client namespace.
var filterFams = []struct {
	name                   string
	server, client         netip.Addr
	second, third          netip.Addr
	allow, knocking, flood string
}{
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
			// The first ports are the hour's secret: without CAP_NET_ADMIN
			// nobody reads them (README).
			nobody := netns.Command(e.pair.Server, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
				"nft", "list", "set", "inet", "nfqknock", "first")
			if out, err := nobody.CombinedOutput(); err == nil || !strings.Contains(string(out), "Operation not permitted") {
				t.Errorf("an unprivileged user listed the set first: %v: %s", err, out)
			}
		})
	}
}

// TestFilterFloodLimit shows the per-source limit of the kernel filter and
// the limit README names: a source that knocked a first port and then sends
// 300 bare SYNs as fast as it can (far over 250/s) lands in flood4/flood6;
// the daemon sees at most the burst of its SYNs, and a knock of the open
// sequence from that address, within the 10 s it stays there, opens
// nothing. Another source opens meanwhile.
func TestFilterFloodLimit(t *testing.T) {
	for _, fam := range filterFams {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.addClientAddrs(t, fam.second)
			d := e.start("-v")
			open, _ := e.sequences()
			s, err := testutil.NewSYNSender(e.pair.Client)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			const burst = 300
			for i := range burst {
				port := uint16(20000 + i) // none of them completes a sequence
				if i == 0 {
					port = open[0] // a first port: the source is knocking from here on
				}
				syn := testutil.SYN{Src: fam.client, Dst: fam.server, SrcPort: uint16(30000 + i), DstPort: port, Seq: uint32(1000 + i)}
				if err := s.Send(syn); err != nil {
					t.Fatalf("send: %v", err)
				}
			}
			flood, err := e.nft("list", "set", "inet", "nfqknock", fam.flood)
			if err != nil || !slices.Contains(elementsOf(flood), fam.client.String()) {
				t.Fatalf("after %d SYNs at full speed, %s is not in %s: %v\n%s", burst, fam.client, fam.flood, err, flood)
			}
			seen := d.knocksSeen(fam.client, burst)
			t.Logf("%d SYNs sent at full speed; the daemon saw %d; %s holds the source", burst, seen, fam.flood)
			if seen > 80 { // the burst of 64, and what came before the rate was measured
				t.Errorf("the daemon saw %d of %d SYNs of a source over the rate", seen, burst)
			}
			e.knock(fam.client, fam.server, open)
			if e.reachable(fam.client, fam.server, guardPort) || d.opened(fam.client) {
				t.Errorf("a source in %s opened: its knocks should go unseen for 10 s", fam.flood)
			}
			e.knock(fam.second, fam.server, open)
			if !e.reachable(fam.second, fam.server, guardPort) {
				t.Errorf("another source did not open while %s was in %s", fam.client, fam.flood)
			}
		})
	}
}
