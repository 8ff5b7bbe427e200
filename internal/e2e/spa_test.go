package e2e

// Single-packet authorization end to end: the built nfqknock's open,
// close and proxy --spa against the built daemon's --spa.

import (
	"bytes"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/knock"
)

// spaUsers are the users of the SPA tests: alice may open guardPort only,
// carol both guarded ports.
var spaUsers = []knock.User{
	{Name: "alice", OpenSecret: "alice spa open secret", CloseSecret: "alice spa close secret", Ports: []uint16{guardPort}},
	{Name: "carol", OpenSecret: "carol spa open secret", CloseSecret: "carol spa close secret"},
}

// spaEnv starts a daemon guarding guardPort and secondGuard with SPA on
// spaPort and the access file of spaUsers, and builds the client.
func spaEnv(t *testing.T) (*env, *daemon, string) {
	t.Helper()
	testutil.NeedNft(t)
	e := newEnv(t)
	for _, a := range []netip.Addr{netns.ServerIP4, netns.ServerIP6} {
		e.listen(netip.AddrPortFrom(a, secondGuard))
	}
	path := filepath.Join(t.TempDir(), "access")
	writeAccess(t, path, spaUsers)
	d := e.startArgs("--range", "1-65535", "--guard", fmt.Sprintf("%d,%d", guardPort, secondGuard),
		"--access-file", path, "--spa", strconv.Itoa(spaPort), "--state-dir", e.stateDir)
	return e, d, testutil.Build(t, clientPkg, "")
}

// spaClient runs the built client in the client namespace with the open
// secret of u, the family flag and args, stdin as given, and fails the
// test unless it exits 0 without a word on stderr. It returns stdout.
func (e *env) spaClient(t *testing.T, client string, u knock.User, famFlag, stdin string, args ...string) string {
	t.Helper()
	argv := append([]string{famFlag, "-o", u.OpenSecret}, args...)
	cmd := netns.Command(e.pair.Client, client, argv...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() != 0 {
		t.Fatalf("nfqknock %q: %v, stderr %q", argv, err, stderr.String())
	}
	return stdout.String()
}

// TestSPAOpenClose: nfqknock open --spa opens a user's ports for the
// client, close --spa closes them; --spa-ports and --spa-duration are
// honoured (the asked port only, closed by itself after 3 s); ports beyond
// the user's and a clock 5 minutes ahead are refused and logged; proxy
// --spa carries a connection to a guarded port and closes after it. IPv4
// and IPv6.
func TestSPAOpenClose(t *testing.T) {
	alice, carol := spaUsers[0], spaUsers[1]
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			e, d, client := spaEnv(t)
			none, host := netip.Addr{}, fam.server.String()
			src := fam.client.String()
			reach := func(when string, want [2]bool) {
				t.Helper()
				for i, port := range []int{guardPort, secondGuard} {
					deadline := time.Now().Add(3 * time.Second)
					var ok bool
					if want[i] {
						ok = e.connectsBy(none, fam.server, port, deadline)
					} else {
						ok, _ = e.droppedBy(none, fam.server, port, deadline)
					}
					if !ok {
						t.Fatalf("%s: port %d reachable, want %v", when, port, want[i])
					}
				}
			}
			waitLogged := func(parts ...string) {
				t.Helper()
				waitFor(t, d, 5*time.Second, fmt.Sprintf("log line with %q", parts), func() bool {
					for _, line := range strings.Split(d.stderr.String(), "\n") {
						if containsAll(line, parts) {
							return true
						}
					}
					return false
				})
			}

			reach("before any SPA", [2]bool{false, false})

			e.spaClient(t, client, carol, fam.flag, "", "open", "--spa", host)
			waitLogged("msg=open", "source="+src, "user=carol", "via=spa")
			reach("carol opened", [2]bool{true, true})
			e.spaClient(t, client, carol, fam.flag, "", "close", "--spa", host)
			waitLogged("msg=close", "source="+src, "user=carol", "via=spa")
			reach("carol closed", [2]bool{false, false})

			// One port, for 3 s.
			e.spaClient(t, client, carol, fam.flag, "", "open", "--spa", "--spa-ports", strconv.Itoa(secondGuard), "--spa-duration", "3s", host)
			waitLogged("msg=open", "source="+src, "user=carol", "ports="+strconv.Itoa(secondGuard), "via=spa")
			opened := time.Now()
			reach("carol opened one port for 3s", [2]bool{false, true})
			if gone, _ := e.droppedBy(none, fam.server, secondGuard, opened.Add(10*time.Second)); !gone {
				t.Fatalf("port %d still open 10 s after an open for 3 s", secondGuard)
			}
			t.Logf("the open for 3s closed by itself after about %v", time.Since(opened).Round(100*time.Millisecond))

			// Beyond alice's ports: refused, logged, nothing opens.
			e.spaClient(t, client, alice, fam.flag, "", "open", "--spa", "--spa-ports", fmt.Sprintf("%d,%d", guardPort, secondGuard), host)
			waitLogged(`msg="spa refused"`, "source="+src, "user=alice", "reason=ports")
			// A clock 5 minutes ahead: outside the daemon's 2m window.
			e.spaClient(t, client, carol, fam.flag, "", "open", "--spa", "--test-clock-skew", "5m", host)
			waitLogged(`msg="spa refused"`, "source="+src, "reason=future")
			reach("after refused packets", [2]bool{false, false})

			// proxy --spa: alice's session to her port.
			const msg = "SSH-2.0-e2e over spa\n"
			if out := e.spaClient(t, client, alice, fam.flag, msg, "proxy", "--spa", host, strconv.Itoa(guardPort)); out != msg {
				t.Fatalf("proxy --spa carried %q, want %q", out, msg)
			}
			waitLogged("msg=open", "source="+src, "user=alice", "via=spa")
			waitLogged("msg=close", "source="+src, "user=alice", "via=spa")
			reach("after proxy --spa", [2]bool{false, false})
			if n := strings.Count(d.stderr.String(), "reason=replay"); n != 0 {
				t.Errorf("the daemon logged %d replays: the client's copies must not count", n)
			}
			if testing.Verbose() {
				t.Logf("daemon log:\n%s", d.stderr)
			}
			d.term()
		})
	}
}

// containsAll reports whether s contains each of parts.
func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
