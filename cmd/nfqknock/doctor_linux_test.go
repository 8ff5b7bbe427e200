package main

// Tests of -v and the ICMP errors (with doctor's likely cause), in
// namespaces: the client runs in process in the client namespace. They
// need root (netns.RequireRoot) and nft. TestDoctor, against the built
// nfqknockd, is in internal/e2e.

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// nftClient loads rules into the client namespace.
func nftClient(t *testing.T, ns, rules string) {
	t.Helper()
	cmd := netns.Command(ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v: %s\n%s", err, out, rules)
	}
}

// knockLine is a knock line of -v: "nfqknock: knock 2/8 port 8277 at
// +61.2ms: refused".
var knockLine = regexp.MustCompile(`^nfqknock: knock (\d+)/(\d+) port (\d+) at \+(\S+): (refused|connected|timed out)$`)

// TestVerbose: with -v, open prints on stderr the address and family, the
// gap and timeout, each knock's port in order with a send time that does
// not go back, and the total; nothing on stdout.
func TestVerbose(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			p := netns.NewPair(t)
			before := time.Now()
			code, stdout, stderr := runIn(t, p.Client, strings.NewReader(""),
				append([]string{"open", "-v", "--gap", "20ms", "--knock-timeout", "30ms", fam.server.String()}, testSecrets...)...)
			after := time.Now()
			if code != 0 || stdout != "" {
				t.Fatalf("open -v = %d, %q, %q; want 0, nothing on stdout", code, stdout, stderr)
			}
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			family := map[string]string{"ipv4": "IPv4", "ipv6": "IPv6"}[fam.name]
			opens, _ := sequencesAround(before, after)
			n := len(opens[0])
			if len(lines) != n+3 {
				t.Fatalf("open -v: %d lines, want %d:\n%s", len(lines), n+3, stderr)
			}
			for i, want := range map[int]string{
				0:     fmt.Sprintf("nfqknock: host %s: address %s, %s", fam.server, fam.server, family),
				1:     fmt.Sprintf("nfqknock: open: %d knocks at %s, gap 20ms, knock timeout 30ms", n, fam.server),
				n + 2: fmt.Sprintf("nfqknock: open: %d knocks in ", n),
			} {
				if !strings.HasPrefix(lines[i], want) {
					t.Errorf("line %d: %q; want %q...", i+1, lines[i], want)
				}
			}
			var got []uint16
			var last time.Duration
			for i, line := range lines[2 : n+2] {
				m := knockLine.FindStringSubmatch(line)
				if m == nil || m[1] != strconv.Itoa(i+1) || m[2] != strconv.Itoa(n) {
					t.Fatalf("knock line %d: %q", i+1, line)
				}
				port, _ := strconv.Atoi(m[3])
				got = append(got, uint16(port))
				at, err := time.ParseDuration(m[4])
				if err != nil || at < last {
					t.Errorf("knock line %d: send time %q: %v (the one before: %v)", i+1, m[4], err, last)
				}
				last = at
			}
			if !oneOf(got, opens) {
				t.Errorf("ports of -v %v; want %v", got, opens[0])
			}
		})
	}
}

// TestKnockICMP: a host that a router reports unreachable (ICMP host or
// address unreachable) fails open with one line naming the host, exit 1,
// whether the error comes at once (an nft reject in the router) or after
// the knock timeout (the router's neighbour resolution fails after 600ms,
// as with a host down behind it, where Linux waits 3s by default), over
// IPv4 and IPv6; each knock stays one SYN. doctor then names the
// unreachable host as the likely cause.
func TestKnockICMP(t *testing.T) {
	p := netns.NewPair(t)
	netns.NewBehind(t, p) // veth1, the router's link to a LAN, with forwarding
	run := func(ns string, args ...string) {
		t.Helper()
		if out, err := netns.Command(ns, args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%q: %v: %s", args, err, out)
		}
	}
	run(p.Client, "ip", "route", "add", "10.201.0.0/24", "via", netns.ServerIP4.String())
	run(p.Client, "ip", "-6", "route", "add", "fd00:201::/64", "via", netns.ServerIP6.String())
	for _, v := range []string{"ipv4", "ipv6"} {
		run(p.Server, "sysctl", "-q", "-w", "net."+v+".neigh."+netns.BehindLink+".mcast_solicit=1",
			"net."+v+".neigh."+netns.BehindLink+".retrans_time_ms=600")
	}
	testutil.NeedNft(t)
	nftClient(t, p.Server, "table inet router {\n chain routed {\n  type filter hook forward priority 0; policy accept;\n"+
		"  ip daddr 10.201.0.98 reject with icmp type host-unreachable\n"+
		"  ip6 daddr fd00:201::98 reject with icmpv6 type addr-unreachable\n }\n}\n")
	for _, tt := range []struct{ name, host string }{
		{"ipv4 late", "10.201.0.99"},
		{"ipv6 late", "fd00:201::99"},
		{"ipv4 at once", "10.201.0.98"},
		{"ipv6 at once", "fd00:201::98"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := testutil.StartCapture(t, p.Server)
			code, stdout, stderr := runIn(t, p.Client, strings.NewReader(""), append([]string{"open", tt.host}, testSecrets...)...)
			want := "nfqknock: knock " + tt.host + ": connect: no route to host\n"
			if code != 1 || stdout != "" || stderr != want {
				t.Errorf("open %s = %d, %q, %q; want 1 and %q", tt.host, code, stdout, stderr, want)
			}
			time.Sleep(settle)
			src := netns.ClientIP4
			if strings.Contains(tt.host, ":") {
				src = netns.ClientIP6
			}
			if got := testutil.Knocks(t, c.From(src)); len(got) == 0 {
				t.Errorf("no knock reached the router")
			}
		})
	}
	// doctor names the unreachable host as the likely cause.
	for _, host := range []string{"10.201.0.98", "fd00:201::98"} {
		args := append([]string{"doctor", host, "22"}, testSecrets...)
		code, stdout, _ := runIn(t, p.Client, strings.NewReader(""), args...)
		if want := "the host is unreachable: " + host; code != 1 || !strings.HasPrefix(testutil.FirstCause(stdout), want) {
			t.Errorf("%q = %d; want 1 and the likely cause %q...:\n%s", args, code, want, stdout)
		}
	}
}
