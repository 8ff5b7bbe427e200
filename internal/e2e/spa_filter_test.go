package e2e

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/knock"
	"github.com/nfqknockd/nfqknockd/spa"
)

// TestSPAClock: a packet whose time is 5 minutes off either way is
// refused, with the reason and the skew logged; one within the window
// (90 s either way of the default 120 s) opens. IPv4 and IPv6.
func TestSPAClock(t *testing.T) {
	t.Parallel()
	for _, fam := range filterFams {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			d := e.startSPA()
			for _, tc := range []struct {
				skew time.Duration
				log  string // "" for an open
			}{
				{-5 * time.Minute, `reason=too_old skew=-(299|300|301)s`}, // the packet holds whole seconds
				{5 * time.Minute, `reason=future skew=\+(299|300|301)s`},
				{-90 * time.Second, ""},
				{90 * time.Second, ""},
			} {
				pkt := spaSeal(t, openSecret, &spa.Message{Time: time.Now().Add(tc.skew), Action: spa.Open})
				sendUDP(t, e.pair.Client, fam.client, fam.server, spaPort, pkt)
				if tc.log != "" {
					want := regexp.MustCompile(fmt.Sprintf(`msg="spa refused" source=%s %s`, regexp.QuoteMeta(fam.client.String()), tc.log))
					if !eventually(3*time.Second, func() bool { return want.MatchString(d.stderr.String()) }) {
						t.Fatalf("clock %v: the log lacks %s:\n%s", tc.skew, want, d.stderr)
					}
					if e.reachable(fam.client, fam.server, guardPort) {
						t.Fatalf("clock %v: the packet opened", tc.skew)
					}
					continue
				}
				if !eventually(5*time.Second, func() bool { return e.reachable(fam.client, fam.server, guardPort) }) {
					t.Fatalf("clock %v, within the window: not opened:\n%s", tc.skew, d.stderr)
				}
				sendUDP(t, e.pair.Client, fam.client, fam.server, spaPort, spaSeal(t, openSecret, &spa.Message{Time: time.Now(), Action: spa.Close}))
				if !eventually(5*time.Second, func() bool { return !e.reachable(fam.client, fam.server, guardPort) }) {
					t.Fatalf("not closed after clock %v", tc.skew)
				}
			}
			p := e.spaPackets(t)
			if p["refused_too_old"] != 1 || p["refused_future"] != 1 || p["open"] != 2 || p["close"] != 2 {
				t.Errorf("counters %v, want 1 too old, 1 future, 2 opens, 2 closes", p)
			}
		})
	}
}

// TestSPAKernelFilter: only UDP to an SPA port of this host is queued. A
// flood of UDP to other ports, and UDP to the SPA port of an address
// routed through the host, never leave the kernel: the queue rule's
// counter and the queue's own count hold just the SPA packets sent. A
// single source flooding the SPA port is stopped by its rate bound before
// the queue. A socket listening on the SPA port receives none of it, with
// the daemon running or not. IPv4 and IPv6.
func TestSPAKernelFilter(t *testing.T) {
	t.Parallel()
	for _, fam := range filterFams {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			netns.NewBehind(t, e.pair)
			routed := netns.BehindIP4
			if fam.server.Is6() {
				routed = netns.BehindIP6
			}
			for _, c := range [][]string{{"-4", "route", "add", "10.201.0.0/24", "via", netns.ServerIP4.String()}, {"-6", "route", "add", "fd00:201::/64", "via", netns.ServerIP6.String()}} {
				if out, err := netns.Command(e.pair.Client, "ip", c...).CombinedOutput(); err != nil {
					t.Fatalf("ip %v: %v: %s", c, err, out)
				}
			}
			delivered := udpListener(t, e.pair.Server, netip.AddrPortFrom(fam.server, spaPort))
			d := e.startSPA()
			// The flood: 20,000 datagrams to other UDP ports of the host,
			// 2,000 to the SPA port of the address behind it.
			const flood, through, sent = 20000, 2000, 5
			udpFlood(t, e.pair.Client, fam.client, fam.server, flood, nil, func(i int) int { return 1 + i%62200 })
			udpFlood(t, e.pair.Client, fam.client, routed, through, nil, func(int) int { return spaPort })
			if c := spaRuleCounters(t, e); c != (testutil.SPACounters{}) {
				t.Errorf("SPA chain counters %+v after UDP to other ports and routed: want none", c)
			}
			// Random payloads: not a key id of now, dropped in the kernel.
			udpFlood(t, e.pair.Client, fam.client, fam.server, sent, nil, func(int) int { return spaPort })
			// Payloads of a key id of now (as a sniffer could copy one):
			// queued, and refused by the daemon.
			valid := keyIDPayload(openSecret)
			udpFlood(t, e.pair.Client, fam.client, fam.server, sent, valid, func(int) int { return spaPort })
			if !d.waitLog("reason=decrypt", 3*time.Second) {
				t.Fatalf("the packets of a valid key id were not refused for failing authentication:\n%s", d.stderr)
			}
			queued := spaRuleCounters(t, e)
			if want := (testutil.SPACounters{Key: sent, Queue: sent}); queued != want {
				t.Errorf("SPA chain counters %+v, want %+v", queued, want)
			}
			if got := eventuallyEqual(func() uint64 { return e.spaPackets(t)["refused_decrypt"] }, sent); got != sent {
				t.Errorf("the daemon refused %d packets for authentication, want %d", got, sent)
			}
			if p := e.spaPackets(t); p["refused_key_id"] != 0 {
				t.Errorf("the daemon saw packets of an unknown key id: %v", p)
			}
			if n := queueIDs(t, e.pair.Server); n != sent {
				t.Errorf("the queue's id sequence is %d, want %d: more than the SPA packets of a valid key id left the kernel", n, sent)
			}

			// One source floods the SPA port with a valid key id: its rate
			// bound drops the excess before the queue (10 a second beyond
			// a burst of 20).
			start := time.Now()
			const single = 5000
			udpFlood(t, e.pair.Client, fam.client, fam.server, single, valid, func(int) int { return spaPort })
			elapsed := time.Since(start)
			after := spaRuleCounters(t, e)
			bound := uint64(20 + 10*(int(elapsed/time.Second)+1))
			if q := after.Queue - queued.Queue; q > bound || after.Rate+q != single {
				t.Errorf("single-source flood of %d in %v: %d queued (bound %d), %d dropped over the rate", single, elapsed, q, bound, after.Rate)
			}
			t.Logf("single-source flood of %d datagrams in %v: %d queued, %d dropped by the rate bound", single, elapsed.Round(time.Millisecond), after.Queue-queued.Queue, after.Rate)

			// With no daemon reading the queue (SIGQUIT leaves the table),
			// a packet of a key id of now passes the queue (bypass) and
			// the guard drops it: no SPA datagram ever reached the socket
			// listening on the SPA port.
			if code := d.stop(syscall.SIGQUIT); code != 0 {
				t.Fatalf("SIGQUIT: exit %d", code)
			}
			udpFlood(t, e.pair.Client, fam.client, fam.server, sent, valid, func(int) int { return spaPort })
			time.Sleep(300 * time.Millisecond) // a datagram delivered would be read by now
			if n := delivered.Load(); n != 0 {
				t.Errorf("%d SPA datagrams reached the socket on the SPA port, want none", n)
			}
			e.nft("delete", "table", "inet", "nfqknock")
		})
	}
}

// keyIDPayload returns an SPA payload that carries the key id of secret
// for now (the default period) and random bytes after it: what a sniffer
// that copied a packet's first bytes could send. It fails authentication.
func keyIDPayload(secret string) []byte {
	b := make([]byte, spa.PacketLen)
	rand.Read(b)
	b[0] = spa.Version
	id := spa.NewKey(secret).KeyID(spa.PeriodOf(time.Now(), knock.DefaultPeriod))
	copy(b[1:], id[:])
	return b
}

// udpListener listens on UDP ap in namespace ns until the test ends and
// counts the datagrams it receives.
func udpListener(t *testing.T, ns string, ap netip.AddrPort) *atomic.Int64 {
	t.Helper()
	var c *net.UDPConn
	if err := netns.Do(ns, func() (err error) {
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
		return err
	}); err != nil {
		t.Fatalf("listen on udp %s: %v", ap, err)
	}
	t.Cleanup(func() { c.Close() })
	var n atomic.Int64
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := c.ReadFromUDP(buf); err != nil {
				return
			}
			n.Add(1)
		}
	}()
	return &n
}

// udpFlood sends n datagrams of payload (nil: spa.PacketLen random bytes)
// from src to dst, to port(i), from one socket.
func udpFlood(t *testing.T, ns string, src, dst netip.Addr, n int, payload []byte, port func(int) int) {
	t.Helper()
	if payload == nil {
		payload = make([]byte, spa.PacketLen)
		rand.Read(payload)
	}
	err := netns.Do(ns, func() error {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: src.AsSlice()})
		if err != nil {
			return err
		}
		defer c.Close()
		for i := range n {
			if _, err := c.WriteToUDPAddrPort(payload, netip.AddrPortFrom(dst, uint16(port(i)))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("UDP flood %s -> %s: %v", src, dst, err)
	}
}

// spaRuleCounters reads the counters of chain spa.
func spaRuleCounters(t *testing.T, e *env) testutil.SPACounters {
	t.Helper()
	out, err := e.nft("list", "chain", "inet", "nfqknock", "spa")
	if err != nil {
		t.Fatalf("nft list chain spa: %v\n%s", err, out)
	}
	c, err := testutil.ParseSPACounters(out)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// queueIDs returns the id sequence of queue 100 in namespace ns: how many
// packets the kernel ever queued there.
func queueIDs(t *testing.T, ns string) uint64 {
	t.Helper()
	out, err := netns.Command(ns, "cat", "/proc/net/netfilter/nfnetlink_queue").Output()
	if err != nil {
		t.Fatalf("read nfnetlink_queue: %v", err)
	}
	qs, err := testutil.ParseQueues(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if q.Num == 100 {
			return q.IDSeq
		}
	}
	t.Fatalf("queue 100 not in:\n%s", out)
	return 0
}

// eventuallyEqual polls get for up to 5 s until it returns want, and
// returns its last value.
func eventuallyEqual(get func() uint64, want uint64) uint64 {
	var got uint64
	eventually(5*time.Second, func() bool { got = get(); return got == want })
	return got
}
