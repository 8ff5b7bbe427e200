package netns

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestBehind checks that a namespace behind the server is reached from the
// server directly and from the client through the server (which forwards),
// over both families; that forwarding is on in the server namespace only;
// and that every namespace is gone afterwards.
func TestBehind(t *testing.T) {
	hostFwd := sysctls(t, "")
	var names []string
	t.Run("behind", func(t *testing.T) {
		p := NewPair(t)
		b := NewBehind(t, p)
		names = []string{p.Server, p.Client, b.NS}
		if !strings.HasPrefix(b.NS, prefix) || !strings.HasSuffix(b.NS, "-b") {
			t.Errorf("namespace name %q: want %s<pid>-<n>-b", b.NS, prefix)
		}
		// No address of the link is in duplicate address detection
		// (tentative), link-local ones included: the server solicits its
		// neighbour at once for the packets it forwards.
		for _, end := range [][2]string{{p.Server, BehindLink}, {b.NS, "veth0"}} {
			out, err := exec.Command("ip", "-n", end[0], "-6", "addr", "show", "dev", end[1], "tentative").CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "" {
				t.Errorf("tentative addresses on %s in %s: %v %s", end[1], end[0], err, out)
			}
		}
		if got := sysctls(t, p.Server); got != "1 1" {
			t.Errorf("forwarding in the server namespace (ipv4, ipv6) = %s, want 1 1", got)
		}
		// The client has no route to the namespace behind: give it one
		// via the server, which then forwards.
		for _, r := range [][]string{
			{"-n", p.Client, "route", "add", "10.201.0.0/24", "via", ServerIP4.String()},
			{"-n", p.Client, "-6", "route", "add", "fd00:201::/64", "via", ServerIP6.String()},
		} {
			if out, err := exec.Command("ip", r...).CombinedOutput(); err != nil {
				t.Fatalf("ip %s: %v: %s", strings.Join(r, " "), err, out)
			}
		}
		for _, dst := range []netip.Addr{BehindIP4, BehindIP6} {
			ap := netip.AddrPortFrom(dst, 7000).String()
			var ln net.Listener
			if err := Do(b.NS, func() (err error) { ln, err = net.Listen("tcp", ap); return }); err != nil {
				t.Fatalf("listen %s behind: %v", ap, err)
			}
			peers := make(chan netip.Addr, 4)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					peers <- c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
					c.Close()
				}
			}()
			for _, from := range []struct {
				ns         string
				src4, src6 netip.Addr
			}{
				// The client first: its connection is forwarded.
				{p.Client, ClientIP4, ClientIP6},
				{p.Server, GatewayIP4, GatewayIP6},
			} {
				want := from.src4
				if dst.Is6() {
					want = from.src6
				}
				err := Do(from.ns, func() error {
					c, err := net.DialTimeout("tcp", ap, 2*time.Second)
					if err == nil {
						c.Close()
					}
					return err
				})
				if err != nil {
					t.Errorf("dial %s from %s: %v", ap, from.ns, err)
					continue
				}
				select {
				case got := <-peers:
					if got != want {
						t.Errorf("behind %s accepted a connection from %s, want %s", ap, got, want)
					}
				case <-time.After(2 * time.Second):
					t.Errorf("behind %s accepted nothing from %s", ap, from.ns)
				}
			}
			ln.Close()
		}
	})
	for _, n := range names {
		if _, err := os.Stat("/run/netns/" + n); !os.IsNotExist(err) {
			t.Errorf("namespace %s left behind (stat: %v)", n, err)
		}
	}
	if got := sysctls(t, ""); got != hostFwd {
		t.Errorf("the host's forwarding changed: %s, was %s", got, hostFwd)
	}
}

// sysctls returns "IPV4 IPV6" forwarding of namespace ns ("": the test's).
func sysctls(t *testing.T, ns string) string {
	t.Helper()
	var v []string
	for _, k := range []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"} {
		cmd := exec.Command("sysctl", "-n", k)
		if ns != "" {
			cmd = Command(ns, "sysctl", "-n", k)
		}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("sysctl -n %s in %q: %v", k, ns, err)
		}
		v = append(v, strings.TrimSpace(string(out)))
	}
	return strings.Join(v, " ")
}
