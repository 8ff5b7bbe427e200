package e2e

// The admin's commands against a real daemon: status, revoke, check and
// --on-event.

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// TestStatusRevokeHook: a knock opens; nfqknockd status (in the daemon's
// namespace, as root) lists the source; revoke closes it at once: the
// guarded port drops the client again; the daemon logs who asked; the
// --on-event program saw the open and the revoke, without capabilities.
// After the stop, status says no daemon answers, and that no table is
// left.
func TestStatusRevokeHook(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			dir := t.TempDir()
			events := filepath.Join(dir, "events")
			hook := testutil.WriteFile(t, dir, "hook", "#!/bin/sh\n"+
				`echo "$NFQKNOCK_EVENT $NFQKNOCK_SOURCE $NFQKNOCK_PORTS $(grep '^CapEff:' /proc/self/status | tr -d ' \t')" >> `+events+"\n", 0o700)
			d := e.start("--on-event", hook)
			open, _ := e.sequences()
			e.knock(fam.client, fam.server, open)
			if !d.waitLog("msg=open", 2*time.Second) || !e.reachable(fam.client, fam.server, guardPort) {
				t.Fatalf("the knock did not open")
			}
			ctl := func(args ...string) (string, error) {
				out, err := netns.Command(e.pair.Server, e.bin, args...).CombinedOutput()
				return string(out), err
			}
			out, err := ctl("status")
			if err != nil || !strings.Contains(out, "opened: 1\n  "+fam.client.String()+" port 2222 (knock) expires in ") || !strings.Contains(out, "opens 1, closes 0") {
				t.Fatalf("status: %v:\n%s", err, out)
			}
			out, err = ctl("status", "--json")
			var reply struct {
				Status struct {
					Opened []struct{ Source string }
				}
			}
			if err != nil || json.Unmarshal([]byte(out), &reply) != nil || len(reply.Status.Opened) != 1 || reply.Status.Opened[0].Source != fam.client.String() {
				t.Fatalf("status --json: %v:\n%s", err, out)
			}
			if out, err := ctl("revoke", fam.client.String()); err != nil || !strings.Contains(out, "revoked: 1") {
				t.Fatalf("revoke: %v:\n%s", err, out)
			}
			if e.reachable(fam.client, fam.server, guardPort) {
				t.Errorf("the revoked client still connects")
			}
			if !d.waitLog("msg=revoked source="+fam.client.String()+" ports=2222 user=\"\" by_uid=0", time.Second) {
				t.Errorf("the revoke is not logged with the asker")
			}
			want := []string{"open " + fam.client.String() + " 2222 CapEff:0000000000000000", "revoke " + fam.client.String() + " 2222 CapEff:0000000000000000"}
			var got []string
			waitFor(t, d, 10*time.Second, "the hook's two runs", func() bool {
				b, _ := os.ReadFile(events)
				got = strings.Split(strings.TrimSpace(string(b)), "\n")
				return len(got) >= 2
			})
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("hook runs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			d.term()
			out, err = ctl("status")
			if err == nil || !strings.Contains(out, "no daemon answers at ") || !strings.Contains(out, "no table inet nfqknock: nothing is guarded by it") {
				t.Errorf("status after the stop: %v:\n%s", err, out)
			}
		})
	}
}

// TestCheckTouchesNothing: nfqknockd check, under strace, opens no netlink
// socket and no file for writing, and creates nothing; it prints the
// start's settings and exits 0.
func TestCheckTouchesNothing(t *testing.T) {
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("no strace")
	}
	bin := testutil.Build(t, daemonPkg, "")
	dir := t.TempDir()
	secrets := testutil.WriteFile(t, dir, "secrets", "open = "+openSecret+"-long\nclose = "+closeSecret+"-long\n", 0o600)
	trace := filepath.Join(dir, "trace")
	cmd := exec.Command(strace, "-f", "-qq", "-o", trace, "-e", "trace=socket,openat,open,creat,mkdir,mkdirat,unlink,unlinkat,rename,renameat,renameat2",
		bin, "check", "--guard", "22", "--secret-file", secrets, "--one-time", "--metrics-file", dir+"/m.prom")
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), `msg="checked: a start would use"`) {
		t.Fatalf("check: %v:\n%s", err, out)
	}
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" {
			continue
		}
		calls++
		if strings.Contains(l, "AF_NETLINK") || strings.Contains(l, "O_WRONLY") || strings.Contains(l, "O_RDWR") || strings.Contains(l, "O_CREAT") ||
			strings.Contains(l, "mkdir") || strings.Contains(l, "unlink") || strings.Contains(l, "rename") || strings.Contains(l, "creat(") {
			t.Errorf("check touched something: %s", l)
		}
	}
	if !strings.Contains(string(b), secrets) {
		t.Errorf("the trace (%d calls) does not show the secret file read: is strace tracing?\n%s", calls, b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 { // secrets and trace
		t.Errorf("the directory holds %d files after check, want 2", len(entries))
	}
}
