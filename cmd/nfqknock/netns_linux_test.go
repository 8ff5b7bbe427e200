package main

// Tests on the wire: the client knocks from the client namespace of an
// internal/netns pair, and a packet socket in the server namespace records
// every SYN that arrives, in order. They need root (netns.RequireRoot).

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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

// syn is one TCP SYN recorded in the server namespace.
type syn struct {
	src          netip.Addr
	sport, dport uint16
	seq          uint32
}

// capture records the SYNs (SYN set, ACK clear) that arrive on veth0 of a
// namespace, before any firewall sees them.
type capture struct {
	fd   int
	mu   sync.Mutex
	syns []syn
	done chan struct{}
	stop chan struct{}
}

// startCapture opens a packet socket on veth0 of namespace ns and records
// SYNs until the test ends or stopAndGet is called.
func startCapture(t *testing.T, ns string) *capture {
	t.Helper()
	c := &capture{fd: -1, done: make(chan struct{}), stop: make(chan struct{})}
	proto := int(htons(unix.ETH_P_ALL))
	err := netns.Do(ns, func() error {
		ifi, err := net.InterfaceByName("veth0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		c.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifi.Index}); err != nil {
			return fmt.Errorf("bind packet socket: %w", err)
		}
		tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if err != nil {
		if c.fd >= 0 {
			unix.Close(c.fd)
		}
		t.Fatalf("capture in %s: %v", ns, err)
	}
	go c.loop()
	t.Cleanup(func() { c.stopAndGet() })
	return c
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (c *capture) loop() {
	defer close(c.done)
	defer unix.Close(c.fd)
	buf := make([]byte, 256) // headers are enough
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		n, from, err := unix.Recvfrom(c.fd, buf, unix.MSG_TRUNC)
		if err != nil {
			continue // timeout (to look at stop) or EINTR
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if s, ok := parseSYN(buf[:min(n, len(buf))]); ok {
			c.mu.Lock()
			c.syns = append(c.syns, s)
			c.mu.Unlock()
		}
	}
}

// stopAndGet stops the capture and returns the SYNs recorded.
func (c *capture) stopAndGet() []syn {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.syns)
}

// parseSYN parses an IPv4 or IPv6 packet (no IPv6 extension headers) and
// reports whether it is a TCP SYN without ACK.
func parseSYN(b []byte) (syn, bool) {
	var s syn
	var tcp []byte
	switch {
	case len(b) >= 20 && b[0]>>4 == 4 && b[9] == unix.IPPROTO_TCP:
		s.src = netip.AddrFrom4([4]byte(b[12:16]))
		tcp = b[int(b[0]&0xf)*4:]
	case len(b) >= 40 && b[0]>>4 == 6 && b[6] == unix.IPPROTO_TCP:
		s.src = netip.AddrFrom16([16]byte(b[8:24]))
		tcp = b[40:]
	default:
		return s, false
	}
	if len(tcp) < 14 || tcp[13]&0x12 != 0x02 {
		return s, false
	}
	s.sport = binary.BigEndian.Uint16(tcp[0:2])
	s.dport = binary.BigEndian.Uint16(tcp[2:4])
	s.seq = binary.BigEndian.Uint32(tcp[4:8])
	return s, true
}

// dports returns the destination ports of the knocks from src, in order:
// one per connect attempt. A second SYN of one attempt (same ports and
// sequence number: the kernel may give connects to different ports the same
// source port) is a retransmission by the kernel, which the daemon ignores
// and the client avoids by abandoning each attempt long before the kernel's
// 1s timer. It is left out; the test fails when there are two or more. One
// is tolerated: only one attempt is in flight at a time, so a stall of a
// whole second of the test process on a loaded machine can let the kernel
// retransmit one, while a client that waits past 1s has every dropped knock
// retransmitted.
func dports(t *testing.T, syns []syn, src netip.Addr) []uint16 {
	t.Helper()
	var ports, again []uint16
	seen := map[syn]bool{}
	for _, s := range syns {
		if s.src != src {
			continue
		}
		if seen[s] {
			again = append(again, s.dport)
			continue
		}
		seen[s] = true
		ports = append(ports, s.dport)
	}
	switch {
	case len(again) > 1:
		t.Errorf("the kernel retransmitted the knocks to %v: the client did not abandon them in time", again)
	case len(again) == 1:
		t.Logf("the kernel retransmitted the knock to %d once: a stall of the test process on a loaded machine?", again[0])
	}
	return ports
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
				c := startCapture(t, p.Server)
				before := time.Now()
				code, stdout, stderr := runIn(t, p.Client, strings.NewReader(""), append([]string{cmd, fam.server.String()}, testSecrets...)...)
				after := time.Now()
				if code != 0 || stdout != "" || stderr != "" {
					t.Fatalf("%s = %d, %q, %q; want 0 and no output", cmd, code, stdout, stderr)
				}
				time.Sleep(settle)
				got := dports(t, c.stopAndGet(), fam.client)
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
				c := startCapture(t, p.Server)
				before := time.Now()
				code, stdout, stderr := runIn(t, p.Client, tt.stdin,
					append([]string{"proxy", "--connect-timeout", "500ms", fam.server.String(), strconv.Itoa(tt.port)}, testSecrets...)...)
				after := time.Now()
				if code != tt.code || stdout != tt.stdout || stderr != tt.stderr {
					t.Errorf("%s: proxy = %d, %q, %q; want %d, %q, %q", tt.name, code, stdout, stderr, tt.code, tt.stdout, tt.stderr)
				}
				time.Sleep(settle)
				got := dports(t, c.stopAndGet(), fam.client)
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
	c := startCapture(t, p.Server)
	before := time.Now()
	code, stdout, stderr := runIn(t, p.Client, strings.NewReader(""),
		append([]string{"proxy", "--connect-timeout", "2s", netns.ServerIP4.String(), strconv.Itoa(port)}, testSecrets...)...)
	after := time.Now()
	if want := "nfqknock: connect 10.200.0.1:7010: i/o timeout\n"; code != 1 || stdout != "" || stderr != want {
		t.Errorf("proxy = %d, %q, %q; want 1, no output, %q", code, stdout, stderr, want)
	}
	time.Sleep(settle)
	got := dports(t, c.stopAndGet(), netns.ClientIP4)
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

// TestProxyHangup: ssh ends its ProxyCommand with SIGHUP. The built client
// then still knocks close, and exits 0 without a word.
func TestProxyHangup(t *testing.T) {
	netns.RequireRoot(t)
	bin := testutil.Build(t, ".", "")
	const port = 7000
	p := netns.NewPair(t)
	accepted := make(chan struct{}, 1)
	listen(t, p.Server, netip.AddrPortFrom(netns.ServerIP4, port), func(c *net.TCPConn) {
		accepted <- struct{}{}
		io.Copy(io.Discard, c) // until the client goes
	})
	c := startCapture(t, p.Server)
	cmd := netns.Command(p.Client, bin, append([]string{"proxy", netns.ServerIP4.String(), strconv.Itoa(port)}, testSecrets...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	before := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-accepted:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the proxy did not connect; stderr %q", stderr.String())
	}
	// `ip netns exec` execs the client, so the pid is the client's.
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	after := time.Now()
	if err != nil || stdout.Len() != 0 || stderr.Len() != 0 {
		t.Fatalf("proxy after SIGHUP: %v, stdout %q, stderr %q; want exit 0 and no output", err, stdout.String(), stderr.String())
	}
	got := dports(t, c.stopAndGet(), netns.ClientIP4)
	_, closes := sequencesAround(before, after)
	n := len(closes[0])
	if len(got) < n || !oneOf(got[len(got)-n:], closes) {
		t.Fatalf("SYNs on the wire %v; want the close sequence %v last", got, closes[0])
	}
}
