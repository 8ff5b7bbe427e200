package nft

// Real packets through the guard: TCP connects and SYNs, whole and in
// fragments, over IPv4 and IPv6.

import (
	"errors"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/fragsyn"
	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// TestGuardTraffic sends real TCP connects from the client namespace: the
// guarded port drops them (they time out) until the client is allowed, over
// IPv4 and IPv6, and the unguarded port always answers. No program reads the
// queue: the knock rule's bypass lets the SYNs on.
func TestGuardTraffic(t *testing.T) {
	e := newEnv(t)
	const guarded, open = 2222, 8080
	// QueueAll: every SYN goes through the queue rule (kernel_filter_test.go
	// tests the filter).
	spec := Spec{Start: 1, End: 65535, Guard: []uint16{guarded}, QueueNum: 100, QueueAll: true}
	if _, err := e.c.Apply(spec); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	e.listen(t, guarded, open)
	expect := func(step string, server netip.Addr, port int, pass bool) {
		t.Helper()
		e.expect(t, step, server, port, pass)
	}
	s4, s6 := netns.ServerIP4, netns.ServerIP6
	expect("before", s4, open, true)
	expect("before", s6, open, true)
	expect("before", s4, guarded, false)
	expect("before", s6, guarded, false)

	if err := e.c.Allow(client4, ports(guarded), "", time.Hour); err != nil {
		t.Fatal(err)
	}
	expect("allow4", s4, guarded, true)
	expect("allow4", s6, guarded, false)
	if err := e.c.Allow(client6, ports(guarded), "alice", time.Hour); err != nil {
		t.Fatal(err)
	}
	expect("allow6", s6, guarded, true)

	if err := e.c.Revoke(client4, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Revoke(client6, ports(guarded)); err != nil {
		t.Fatal(err)
	}
	expect("revoked", s4, guarded, false)
	expect("revoked", s6, guarded, false)
	expect("revoked", s4, open, true)

	// Every SYN went through the knock rule, and the dropped ones were
	// counted by the guard rules.
	out := e.mustList(t, DefaultTable)
	for _, name := range []string{CommentKnock, CommentDrop} {
		m := regexp.MustCompile(`counter packets (\d+) bytes \d+ .*` + regexp.QuoteMeta(name)).FindStringSubmatch(out)
		if m == nil || m[1] == "0" {
			t.Errorf("rule %q matched no packet:\n%s", name, out)
		}
	}
}

// listen accepts and closes TCP connections on ports of the server
// namespace (IPv4 and IPv6) until the test ends.
func (e *env) listen(t *testing.T, ports ...int) {
	t.Helper()
	for _, port := range ports {
		var ln net.Listener
		err := netns.Do(e.pair.Server, func() (err error) {
			ln, err = net.Listen("tcp", ":"+strconv.Itoa(port)) // IPv4 and IPv6
			return err
		})
		if err != nil {
			t.Fatalf("listen on %d in the server namespace: %v", port, err)
		}
		t.Cleanup(func() { ln.Close() })
		testutil.AcceptAndClose(ln)
	}
}

// expect connects from the client namespace to server:port and checks that
// it succeeds (pass) or times out (the SYN was dropped).
func (e *env) expect(t *testing.T, step string, server netip.Addr, port int, pass bool) {
	t.Helper()
	connect := func(timeout time.Duration) error {
		return netns.Do(e.pair.Client, func() error {
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(server, uint16(port)).String(), timeout)
			if err == nil {
				c.Close()
			}
			return err
		})
	}
	if pass {
		if err := connect(3 * time.Second); err != nil {
			t.Errorf("%s: connect to %s port %d: %v, want success", step, server, port, err)
		}
		return
	}
	err := connect(time.Second)
	var ne net.Error
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("%s: connect to %s port %d: %v, want a timeout (dropped)", step, server, port, err)
	}
}

// TestGuardPorts sends real packets: an element for (source, port) lets
// that source reach that guarded port and no other, whole SYNs as well as
// SYNs split into IP fragments (the first fragment carries the ports, and
// the guard looks them up as it finds them there), over IPv4 and IPv6.
func TestGuardPorts(t *testing.T) {
	e := newEnv(t)
	const sshPort, otherPort, open = 22, 2222, 8080
	spec := goldenSpec
	spec.Guard = []uint16{sshPort, otherPort}
	if _, err := e.c.Apply(spec); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	e.listen(t, sshPort, otherPort, open)
	for _, fam := range []struct {
		name           string
		client, server netip.Addr
		opened, closed uint16
		// the splits of the SYN that reach a listener: the kernel drops
		// an IPv6 first fragment without the whole TCP header (RFC 7112)
		splits []int
	}{
		{"ipv4", client4, netns.ServerIP4, sshPort, otherPort, []int{0, 8, 16}},
		{"ipv6", client6, netns.ServerIP6, otherPort, sshPort, []int{0, 24}},
	} {
		t.Run(fam.name, func(t *testing.T) {
			if err := e.c.Allow(fam.client, ports(fam.opened), "alice", time.Hour); err != nil {
				t.Fatal(err)
			}
			e.expect(t, "opened port", fam.server, int(fam.opened), true)
			e.expect(t, "other guarded port", fam.server, int(fam.closed), false)
			e.expect(t, "unguarded port", fam.server, open, true)
			for _, first := range fam.splits {
				if r := probe(t, e, fam.client, fam.server, fam.opened, first); r.Kind != fragsyn.SynAck {
					t.Errorf("opened port %d, first TCP bytes %d (0: whole): %v, want a SYN-ACK", fam.opened, first, r)
				}
				if r := probe(t, e, fam.client, fam.server, fam.closed, first); r.Kind == fragsyn.SynAck {
					t.Errorf("other guarded port %d, first TCP bytes %d (0: whole): a SYN-ACK", fam.closed, first)
				}
			}
			if err := e.c.Revoke(fam.client, nil); err != nil {
				t.Fatal(err)
			}
			e.expect(t, "revoked", fam.server, int(fam.opened), false)
			for _, first := range fam.splits {
				if r := probe(t, e, fam.client, fam.server, fam.opened, first); r.Kind == fragsyn.SynAck {
					t.Errorf("revoked port %d, first TCP bytes %d (0: whole): a SYN-ACK", fam.opened, first)
				}
			}
		})
	}
}

// probeSrcPort gives each probe a source port of its own.
var probeSrcPort atomic.Uint32

// probe sends a SYN from src in the client namespace to dst:port, whole
// (first 0) or as two fragments with first bytes of TCP in the first, and
// returns the answer.
func probe(t *testing.T, e *env, src, dst netip.Addr, port uint16, first int) fragsyn.Reply {
	t.Helper()
	pr := fragsyn.Probe{NS: e.pair.Client, Src: src, Dst: dst, DstPort: port, FirstTCPBytes: first,
		SrcPort: uint16(40000 + probeSrcPort.Add(1)%20000)}
	send := pr.Fragmented
	if first == 0 {
		send = pr.Whole
	}
	r, err := send(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s -> [%s]:%d, %d TCP bytes in the first fragment (0: whole): %v", src, dst, port, first, r)
	return r
}
