package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/knock"
	"github.com/nfqknockd/nfqknockd/spa"
)

// natUsers are the users of the NAT test: dave may name the address to
// open (spa-address = yes), erin may not.
var natUsers = []knock.User{
	{Name: "dave", OpenSecret: "dave-open-secret-4", CloseSecret: "dave-close-secret-4", SPAAddress: true},
	{Name: "erin", OpenSecret: "erin-open-secret-55", CloseSecret: "erin-close-secret-55"},
}

// natFam is one family of the NAT test: the server, the NAT's public
// address (the client namespace's), another address of the NAT's to name
// in a packet, and the host behind the NAT.
type natFam struct {
	name                    string
	server, nat, named, lan netip.Addr
}

var natFams = []natFam{
	{"ipv4", netns.ServerIP4, netns.ClientIP4, netip.MustParseAddr("10.200.0.9"), netns.BehindIP4},
	{"ipv6", netns.ServerIP6, netns.ClientIP6, netip.MustParseAddr("fd00:200::9"), netns.BehindIP6},
}

// TestSPANAT: a host behind a NAT (the client namespace masquerades for a
// namespace behind it) opens by SPA: the NAT's address is opened, so the
// host behind reaches the guarded port. With spa-address = yes, the address
// named in the packet is opened instead of the NAT's; without that
// permission the packet is refused (reason=address) and opens nothing;
// the client asks for it with --spa-address.
// IPv4 and IPv6.
func TestSPANAT(t *testing.T) {
	t.Parallel()
	for _, fam := range natFams {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			lan := natBehind(t, e, fam)
			path := filepath.Join(t.TempDir(), "access")
			writeAccess(t, path, natUsers)
			d := e.startArgs("--range", "1-65535", "--guard", fmt.Sprint(guardPort), "--access-file", path,
				"--spa", fmt.Sprint(spaPort), "--state-dir", e.stateDir)
			dave, erin := natUsers[0], natUsers[1]
			send := func(u knock.User, m spa.Message) {
				m.Time = time.Now()
				sendUDP(t, lan, netip.Addr{}, fam.server, spaPort, spaSeal(t, u.OpenSecret, &m))
			}
			fromLAN := func() bool { return natReachable(t, lan, fam.server) }

			if fromLAN() {
				t.Fatal("the guarded port answers the host behind the NAT before any SPA")
			}
			send(erin, spa.Message{Action: spa.Open})
			if !eventually(5*time.Second, fromLAN) {
				t.Fatalf("the host behind the NAT is not let in after its SPA open:\n%s", d.stderr)
			}
			if want := fmt.Sprintf("msg=open source=%s user=erin", fam.nat); !d.waitLog(want, time.Second) {
				t.Errorf("the open is not of the NAT's address %s:\n%s", fam.nat, d.stderr)
			}
			send(erin, spa.Message{Action: spa.Close})
			if !eventually(5*time.Second, func() bool { return !fromLAN() }) {
				t.Fatal("the SPA close did not close the NAT's address")
			}

			// erin may not name an address.
			send(erin, spa.Message{Action: spa.Open, Address: fam.named})
			want := fmt.Sprintf(`msg="spa refused" source=%s user=erin reason=address address=%s`, fam.nat, fam.named)
			if !d.waitLog(want, 3*time.Second) {
				t.Fatalf("the log lacks %s:\n%s", want, d.stderr)
			}
			if e.reachable(fam.named, fam.server, guardPort) || fromLAN() {
				t.Fatal("a packet naming an address without spa-address opened something")
			}

			// dave may: the named address is opened, the NAT's is not. He
			// asks with the client, from behind the NAT.
			client := testutil.Build(t, clientPkg, "")
			if out, err := netns.Command(lan, client, "-o", dave.OpenSecret, "open", "--spa", "--spa-address", fam.named.String(),
				fam.server.String()).CombinedOutput(); err != nil || len(out) != 0 {
				t.Fatalf("nfqknock open --spa --spa-address %s: %v: %s", fam.named, err, out)
			}
			if !eventually(5*time.Second, func() bool { return e.reachable(fam.named, fam.server, guardPort) }) {
				t.Fatalf("the address named by dave's packet was not opened:\n%s", d.stderr)
			}
			if fromLAN() || e.reachable(fam.nat, fam.server, guardPort) {
				t.Fatal("dave's packet naming another address opened the NAT's address too")
			}
			if want := fmt.Sprintf("msg=open source=%s user=dave", fam.named); !d.waitLog(want, time.Second) {
				t.Errorf("the log lacks %s:\n%s", want, d.stderr)
			}
		})
	}
}

// natBehind makes the client namespace a NAT: a namespace behind it (its
// LAN, fam.lan) whose traffic it masquerades to its own address toward the
// server, and adds fam.named to its link. It returns the namespace behind.
func natBehind(t *testing.T, e *env, fam natFam) string {
	t.Helper()
	b := netns.NewBehind(t, &netns.Pair{Server: e.pair.Client})
	plen := "/24"
	if fam.named.Is6() {
		plen = "/64"
	}
	if out, err := exec.Command("ip", "-n", e.pair.Client, "addr", "add", fam.named.String()+plen, "dev", "veth0", "nodad").CombinedOutput(); err != nil {
		t.Fatalf("add %s: %v: %s", fam.named, err, out)
	}
	rules := `table inet nat {
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "veth0" ip saddr ` + netns.BehindIP4.String() + ` snat ip to ` + netns.ClientIP4.String() + `
		oifname "veth0" ip6 saddr ` + netns.BehindIP6.String() + ` snat ip6 to ` + netns.ClientIP6.String() + `
	}
}
`
	if out, err := netns.Nft(e.pair.Client, rules, "-f", "-"); err != nil {
		t.Fatalf("NAT ruleset: %v: %s", err, out)
	}
	return b.NS
}

// natReachable reports whether a connect from namespace ns to the guarded
// port of server succeeds within dropTimeout; a timeout means dropped.
func natReachable(t *testing.T, ns string, server netip.Addr) bool {
	t.Helper()
	var c net.Conn
	err := netns.Do(ns, func() (err error) {
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(server, guardPort).String(), dropTimeout)
		return err
	})
	if err == nil {
		c.Close()
		return true
	}
	if !isTimeout(err) && !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("connect from %s: %v", ns, err)
	}
	return false
}
