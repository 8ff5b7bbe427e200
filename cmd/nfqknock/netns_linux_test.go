package main

// Tests on the wire: the client knocks from the client namespace of an
// internal/netns pair, and a packet socket in the server namespace records
// every SYN that arrives, in order. They need root (netns.RequireRoot).

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/knock"
)

// settle is how long a test waits after the client is done before it stops
// recording SYNs: longer than the kernel's first SYN retransmission (1s), so
// that a knock retransmitted by the kernel would be seen.
const settle = 1500 * time.Millisecond

var families = []struct {
	name           string
	server, client netip.Addr
	flag           string
}{
	{"ipv4", netns.ServerIP4, netns.ClientIP4, "-4"},
	{"ipv6", netns.ServerIP6, netns.ClientIP6, "-6"},
}

// nftDrop makes the server namespace drop SYNs to ports, so that knocks to
// them time out (the other ports answer with a reset).
func nftDrop(t *testing.T, ns string, ports []uint16) {
	t.Helper()
	var list []string
	for _, p := range ports {
		list = append(list, strconv.Itoa(int(p)))
	}
	rules := "table inet knocktest {\n chain in {\n  type filter hook input priority 0; policy accept;\n" +
		"  tcp dport { " + strings.Join(slices.Compact(slices.Sorted(slices.Values(list))), ", ") + " } drop\n }\n}\n"
	cmd := netns.Command(ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v: %s\n%s", err, out, rules)
	}
}

// runIn calls run inside namespace ns. The sockets of the client are made
// on the calling goroutine, so they belong to ns.
func runIn(t *testing.T, ns string, stdin io.Reader, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	var code int
	if err := netns.Do(ns, func() error {
		code = run(args, stdin, &stdout, &stderr)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// testParams are the sequence parameters of the netns tests.
var testParams = knock.Params{Digest: knock.MD5, Range: knock.FullRange, OpenSecret: "wire open", CloseSecret: "wire close", Period: knock.DefaultPeriod}

var testSecrets = []string{"--open-secret=wire open", "--close-secret=wire close"}

// sequencesAround returns the open and close sequences of the periods of
// before and after; a test that ran across a rotation accepts either.
func sequencesAround(before, after time.Time) (opens, closes [][]uint16) {
	for _, at := range []time.Time{before, after} {
		o, c := testParams.Sequences(at)
		opens, closes = append(opens, o), append(closes, c)
	}
	return opens, closes
}

// oneOf reports whether got equals one of want.
func oneOf(got []uint16, want [][]uint16) bool {
	return slices.ContainsFunc(want, func(w []uint16) bool { return slices.Equal(got, w) })
}

// TestKnockWire: `nfqknock open` and `close` put exactly the sequence on the
// wire, one SYN per port in order, none retransmitted, whether the port
// drops the SYN (the knock times out) or resets it, over IPv4 and IPv6.
func TestKnockWire(t *testing.T) {
	for _, fam := range families {
		for _, cmd := range []string{"open", "close"} {
			t.Run(fam.name+"/"+cmd, func(t *testing.T) {
				t.Parallel()
				p := netns.NewPair(t)
				now := time.Now()
				opens, closes := sequencesAround(now, now.Add(time.Minute))
				want := opens
				if cmd == "close" {
					want = closes
				}
				for _, seq := range want {
					nftDrop(t, p.Server, seq[:len(seq)/2])
				}
				c := testutil.StartCapture(t, p.Server)
				before := time.Now()
				code, stdout, stderr := runIn(t, p.Client, strings.NewReader(""), append([]string{cmd, fam.server.String()}, testSecrets...)...)
				after := time.Now()
				if code != 0 || stdout != "" || stderr != "" {
					t.Fatalf("%s = %d, %q, %q; want 0 and no output", cmd, code, stdout, stderr)
				}
				time.Sleep(settle)
				got := testutil.Knocks(t, c.From(fam.client))
				opens, closes = sequencesAround(before, after)
				want = opens
				if cmd == "close" {
					want = closes
				}
				if !oneOf(got, want) {
					t.Fatalf("SYNs on the wire: %v; want %v", got, want[0])
				}
			})
		}
	}
}

// TestKnockNetworkFailure: a knock that cannot leave is a network failure:
// one line, exit 1.
func TestKnockNetworkFailure(t *testing.T) {
	p := netns.NewPair(t)
	for _, host := range []string{"10.99.0.1", "fd99::1"} {
		code, stdout, stderr := runIn(t, p.Client, strings.NewReader(""), append([]string{"open", host}, testSecrets...)...)
		// The line names the host, never the port: the ports are the
		// period's sequence.
		want := "nfqknock: knock " + host + ": connect: network is unreachable\n"
		if code != 1 || stdout != "" || stderr != want {
			t.Errorf("open %s = %d, %q, %q; want 1 and %q", host, code, stdout, stderr, want)
		}
	}
}

// listen starts a TCP server on ap in namespace ns that runs serve for each
// connection; it stops at the end of the test.
func listen(t *testing.T, ns string, ap netip.AddrPort, serve func(c *net.TCPConn)) {
	t.Helper()
	var ln net.Listener
	if err := netns.Do(ns, func() (err error) {
		ln, err = net.Listen("tcp", ap.String())
		return err
	}); err != nil {
		t.Fatalf("listen %s: %v", ap, err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c.(*net.TCPConn))
			}()
		}
	}()
}

// echoAfterEOF reads until the client half-closes, then answers with what
// it read and closes.
func echoAfterEOF(c *net.TCPConn) {
	b, err := io.ReadAll(c)
	if err == nil {
		c.Write(append([]byte("echo: "), b...))
	}
}

// TestProxy: `nfqknock proxy` knocks open, carries the bytes both ways with
// a proper half-close, ends when the server closes even while stdin stays
// open, knocks close after, and reports a connect failure as a network
// failure after knocking close too.
func TestProxy(t *testing.T) {
	const port = 7000
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			p := netns.NewPair(t)
			listen(t, p.Server, netip.AddrPortFrom(fam.server, port), echoAfterEOF)
			listen(t, p.Server, netip.AddrPortFrom(fam.server, port+1), func(c *net.TCPConn) { c.Write([]byte("bye\n")) })

			tests := []struct {
				name       string
				port       int
				stdin      io.Reader
				code       int
				stdout     string
				stderr     string
				minConnect int // SYNs to port at least
			}{
				{"half-close", port, strings.NewReader("hello\n"), 0, "echo: hello\n", "", 1},
				{"server closes first", port + 1, neverEnds(t), 0, "bye\n", "", 1},
				{"refused", port + 2, strings.NewReader(""), 1, "",
					"nfqknock: connect " + netip.AddrPortFrom(fam.server, port+2).String() + ": connect: connection refused\n", 2},
			}
			for _, tt := range tests {
				c := testutil.StartCapture(t, p.Server)
				before := time.Now()
				code, stdout, stderr := runIn(t, p.Client, tt.stdin,
					append([]string{"proxy", "--connect-timeout", "500ms", fam.server.String(), strconv.Itoa(tt.port)}, testSecrets...)...)
				after := time.Now()
				if code != tt.code || stdout != tt.stdout || stderr != tt.stderr {
					t.Errorf("%s: proxy = %d, %q, %q; want %d, %q, %q", tt.name, code, stdout, stderr, tt.code, tt.stdout, tt.stderr)
				}
				time.Sleep(settle)
				got := testutil.Knocks(t, c.From(fam.client))
				opens, closes := sequencesAround(before, after)
				n := len(opens[0])
				if len(got) < 2*n+tt.minConnect || !oneOf(got[:n], opens) || !oneOf(got[len(got)-n:], closes) {
					t.Errorf("%s: SYNs on the wire %v; want the open sequence %v, at least %d to port %d, then the close sequence %v",
						tt.name, got, opens[0], tt.minConnect, tt.port, closes[0])
					continue
				}
				for _, d := range got[n : len(got)-n] {
					if int(d) != tt.port {
						t.Errorf("%s: SYN to %d between the sequences; want only %d", tt.name, d, tt.port)
					}
				}
			}
		})
	}
}

// TestProxyKnocksAgain: a knock may pass unseen (a flooded daemon's full
// queue lets SYNs through while the guard still drops the connect), so after
// every connect attempt that timed out the proxy knocks the open sequence
// again before the next one. Here the port drops every SYN: the wire shows
// open, connect, open, connect, ..., close.
func TestProxyKnocksAgain(t *testing.T) {
	const port = 7010
	p := netns.NewPair(t)
	nftDrop(t, p.Server, []uint16{port})
	c := testutil.StartCapture(t, p.Server)
	before := time.Now()
	code, stdout, stderr := runIn(t, p.Client, strings.NewReader(""),
		append([]string{"proxy", "--connect-timeout", "2s", netns.ServerIP4.String(), strconv.Itoa(port)}, testSecrets...)...)
	after := time.Now()
	if want := "nfqknock: connect 10.200.0.1:7010: i/o timeout\n"; code != 1 || stdout != "" || stderr != want {
		t.Errorf("proxy = %d, %q, %q; want 1, no output, %q", code, stdout, stderr, want)
	}
	time.Sleep(settle)
	got := testutil.Knocks(t, c.From(netns.ClientIP4))
	opens, closes := sequencesAround(before, after)
	n := len(opens[0])
	// Rounds of an open sequence and one connect, then the close sequence.
	rounds := 0
	rest := got
	for len(rest) >= n+1 && oneOf(rest[:n], opens) && rest[n] == port {
		rounds++
		rest = rest[n+1:]
	}
	// Attempts of 300 ms and 600 ms time out within the 2 s, each after an
	// open sequence, with a second to spare for slow knocks on a loaded
	// machine; a third, shorter than the kernel's 1 s retransmission, fills
	// what is left.
	if rounds < 2 || !oneOf(rest, closes) {
		t.Fatalf("SYNs on the wire %v; want at least 2 rounds of the open sequence %v and one SYN to %d, then the close sequence %v",
			got, opens[0], port, closes[0])
	}
	t.Logf("%d rounds of knock open + connect before the close sequence", rounds)
}

// neverEnds returns a stdin that blocks until the test ends.
func neverEnds(t *testing.T) io.Reader {
	r, w := io.Pipe()
	t.Cleanup(func() { w.Close() })
	return r
}
