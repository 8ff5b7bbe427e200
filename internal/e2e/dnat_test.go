package e2e

// A port of the server published by DNAT to a host behind it, as Docker
// publishes a container's port or a router forwards one (see host_test.go).

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
)

// behindServer is an echo server on port 22 of the namespace behind the
// server (IPv4 and IPv6), which records who connected.
type behindServer struct {
	mu    sync.Mutex
	peers map[netip.Addr]int
}

// count counts the accepted connection c under its source.
func (b *behindServer) count(c net.Conn) {
	src := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
	b.mu.Lock()
	b.peers[src]++
	b.mu.Unlock()
}

// accepted returns how many connections from src the server accepted.
func (b *behindServer) accepted(src netip.Addr) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peers[src]
}

// acceptedBy waits until the server accepted more than n connections from
// src, until deadline.
func (b *behindServer) acceptedBy(src netip.Addr, n int, deadline time.Time) bool {
	for b.accepted(src) <= n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// publish makes a namespace behind the server with a behindServer on port
// 22, and publishes it as Docker does: a nat table in the server namespace
// whose prerouting chain DNATs publishedPort of the server to port 22
// behind (ip and ip6).
func (e *env) publish() *behindServer {
	e.t.Helper()
	b := netns.NewBehind(e.t, e.pair)
	srv := &behindServer{peers: map[netip.Addr]int{}}
	for _, a := range []netip.Addr{netns.BehindIP4, netns.BehindIP6} {
		echoServer(e.t, b.NS, netip.AddrPortFrom(a, 22), srv.count)
	}
	ruleset := `table ip nat {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		tcp dport ` + strconv.Itoa(publishedPort) + ` dnat to ` + netns.BehindIP4.String() + `:22
	}
}
table ip6 nat {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		tcp dport ` + strconv.Itoa(publishedPort) + ` dnat to [` + netns.BehindIP6.String() + `]:22
	}
}
`
	cmd := netns.Command(e.pair.Server, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		e.t.Fatalf("nft -f (nat tables): %v: %s", err, out)
	}
	return srv
}

// publishPort adds DNAT rules that publish the server's port to port 22
// behind it, in both nat tables.
func (e *env) publishPort(port uint16) {
	e.t.Helper()
	for _, r := range [][]string{
		{"add", "rule", "ip", "nat", "prerouting", "tcp", "dport", strconv.Itoa(int(port)), "dnat", "to", netns.BehindIP4.String() + ":22"},
		{"add", "rule", "ip6", "nat", "prerouting", "tcp", "dport", strconv.Itoa(int(port)), "dnat", "to", "[" + netns.BehindIP6.String() + "]:22"},
	} {
		if out, err := e.nft(r...); err != nil {
			e.t.Fatalf("nft %s: %v: %s", strings.Join(r, " "), err, out)
		}
	}
}

// TestDNATPublishedPort: a port of the server published by DNAT to a
// namespace behind it, and guarded by the port the client uses
// (--guard 2223), is dropped before the knock, reaches the listener behind
// after the open sequence (an established connection survives the close),
// and is dropped again after the close sequence. A knock sequence whose
// ports are themselves published still opens: the knock chain sees its
// SYNs before DNAT rewrites them.
func TestDNATPublishedPort(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.addStranger6()
			srv := e.publish()
			d := e.start("--guard", strconv.Itoa(publishedPort))
			open, close := e.sequences()

			if e.reachable(fam.client, fam.server, publishedPort) {
				t.Fatalf("published port %d answered before any knock", publishedPort)
			}
			if n := srv.accepted(fam.client); n != 0 {
				t.Fatalf("the listener behind accepted %d connections from %s before any knock", n, fam.client)
			}

			e.knock(fam.client, fam.server, open)
			if !d.waitLog("msg=open", 2*time.Second) {
				t.Fatalf("no open logged after the open sequence; stderr:\n%s", d.stderr)
			}
			kept, err := e.dial(fam.client, fam.server, publishedPort, dropTimeout)
			if err != nil {
				t.Fatalf("published port %d after the open sequence: %v", publishedPort, err)
			}
			defer kept.Close()
			echo(t, kept, "through DNAT")
			if !srv.acceptedBy(fam.client, 0, time.Now().Add(2*time.Second)) {
				t.Fatalf("the connection to port %d did not come to the listener behind from %s", publishedPort, fam.client)
			}
			if !e.reachable(fam.client, fam.server, guardPort) {
				t.Errorf("the local guarded port %d is not open after the open sequence", guardPort)
			}

			e.knock(fam.client, fam.server, close)
			if !d.waitLog("msg=close", 2*time.Second) {
				t.Fatalf("no close logged after the close sequence; stderr:\n%s", d.stderr)
			}
			if e.reachable(fam.client, fam.server, publishedPort) {
				t.Fatalf("published port %d answered after the close sequence", publishedPort)
			}
			echo(t, kept, "after close")

			// Publish ports of the open sequence too: the first, and one
			// in the middle (not ports the test uses otherwise).
			var pub []uint16
			for _, p := range []uint16{open[0], open[len(open)/2]} {
				if !slices.Contains([]uint16{guardPort, publishedPort, freePort, 22}, p) && !slices.Contains(pub, p) {
					pub = append(pub, p)
				}
			}
			if len(pub) == 0 {
				t.Fatalf("no port of the open sequence %v to publish", open)
			}
			for _, p := range pub {
				e.publishPort(p)
			}
			t.Logf("open sequence %v, ports %v published", open, pub)
			s := stranger(fam.server)
			if e.reachable(s, fam.server, publishedPort) {
				t.Fatalf("published port answered %s, which never knocked", s)
			}
			e.knock(s, fam.server, open)
			if !e.reachable(s, fam.server, publishedPort) {
				t.Errorf("a knock sequence with published ports %v did not open the published port for %s; stderr:\n%s", pub, s, d.stderr)
			}
			if !e.reachable(s, fam.server, guardPort) {
				t.Errorf("a knock sequence with published ports %v did not open the local guarded port for %s", pub, s)
			}
			// The knocks to the published ports went through DNAT to the
			// listener behind (they were published indeed), and the
			// connect after the open too.
			if !srv.acceptedBy(s, len(pub), time.Now().Add(2*time.Second)) {
				n := srv.accepted(s)
				t.Errorf("the listener behind accepted %d connections from %s, want at least %d (the published knocks and the connect)", n, s, len(pub)+1)
			}
		})
	}
}
