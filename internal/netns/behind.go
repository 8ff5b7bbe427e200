package netns

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Addresses of the link between a Pair's server and a Behind namespace:
// the server end is the gateway of the namespace behind it.
var (
	GatewayIP4 = netip.MustParseAddr("10.201.0.1")
	BehindIP4  = netip.MustParseAddr("10.201.0.2")
	GatewayIP6 = netip.MustParseAddr("fd00:201::1")
	BehindIP6  = netip.MustParseAddr("fd00:201::2")
)

// BehindLink is the name of the server's end of the link to a Behind
// namespace (the server's end of the Pair's link is veth0).
const BehindLink = "veth1"

// Behind is a namespace behind a Pair's server, as a container or a LAN host
// behind a router: reachable from the client only through the server (by
// DNAT, say), which forwards between its two links.
type Behind struct {
	NS     string // name of the namespace behind the server
	Server string // the server namespace it hangs off (Pair.Server)
}

// NewBehind makes a namespace joined to pair's server by a second veth link:
// GatewayIP4/GatewayIP6 on the server end (BehindLink), BehindIP4/BehindIP6
// on the other (no duplicate address detection on that link), loopback up,
// default routes of the new namespace via the server, and forwarding
// turned on in the server namespace (inside it only: the host's sysctls are
// untouched). The namespace is named as
// NewPair names its own ("nfqk-<pid>-<n>-b"), so the leak checks find it;
// the test's cleanup kills its processes and deletes it.
func NewBehind(t testing.TB, pair *Pair) *Behind {
	t.Helper()
	RequireRoot(t)
	n := counter.Add(1)
	b := &Behind{NS: fmt.Sprintf("%s%d-%d-b", prefix, os.Getpid(), n), Server: pair.Server}
	t.Cleanup(func() {
		if err := Delete(b.NS); err != nil {
			t.Errorf("remove namespace %s: %v", b.NS, err)
		}
	})
	steps := [][]string{
		{"ip", "netns", "add", b.NS},
		{"ip", "-n", b.NS, "link", "set", "lo", "up"},
		{"ip", "-n", pair.Server, "link", "add", BehindLink, "type", "veth", "peer", "name", "veth0", "netns", b.NS},
		{"ip", "-n", pair.Server, "addr", "add", GatewayIP4.String() + "/24", "dev", BehindLink},
		{"ip", "-n", b.NS, "addr", "add", BehindIP4.String() + "/24", "dev", "veth0"},
		{"ip", "-n", pair.Server, "addr", "add", GatewayIP6.String() + "/64", "dev", BehindLink, "nodad"},
		{"ip", "-n", b.NS, "addr", "add", BehindIP6.String() + "/64", "dev", "veth0", "nodad"},
		// No duplicate address detection on the new link, for the
		// link-local addresses too: until a link-local address is out of
		// DAD, the kernel sends no neighbour solicitation for a packet it
		// forwards (it solicits from a link-local source then), so the
		// first connections through the server would wait a second or two.
		{"ip", "netns", "exec", pair.Server, "sysctl", "-q", "-w", "net.ipv6.conf." + BehindLink + ".accept_dad=0"},
		{"ip", "netns", "exec", b.NS, "sysctl", "-q", "-w", "net.ipv6.conf.veth0.accept_dad=0"},
		{"ip", "-n", pair.Server, "link", "set", BehindLink, "up"},
		{"ip", "-n", b.NS, "link", "set", "veth0", "up"},
		{"ip", "-n", b.NS, "route", "add", "default", "via", GatewayIP4.String()},
		{"ip", "-n", b.NS, "-6", "route", "add", "default", "via", GatewayIP6.String()},
		{"ip", "netns", "exec", pair.Server, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"},
		{"ip", "netns", "exec", pair.Server, "sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"},
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return b
}
