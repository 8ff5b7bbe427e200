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

// TestStatusUsersHookEvents, with an access file and --one-time, IPv4 and
// IPv6: status lists alice's source with her user, her port and the time
// left; the --on-event program sees the open, a replay from another
// address and the close, each with the right variables; a user who is not
// root is refused by the control socket.
func TestStatusUsersHookEvents(t *testing.T) {
	for _, fam := range filterFams {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			events := filepath.Join(dir, "events")
			hook := testutil.WriteFile(t, dir, "hook", "#!/bin/sh\n"+
				`echo "$NFQKNOCK_EVENT source=$NFQKNOCK_SOURCE user=$NFQKNOCK_USER ports=$NFQKNOCK_PORTS detail=$NFQKNOCK_DETAIL" >> `+events+"\n", 0o700)
			e, d, _ := accessEnv(t, "--one-time", "--on-event", hook)
			e.addClientAddrs(t, fam.second)
			alice := testUsers[0]
			n1, _ := twoNonces()
			open := oneTime(alice.OpenSecret, n1)
			e.knock(fam.client, fam.server, open)
			if !d.waitLog("msg=open source="+fam.client.String()+" user=alice", 2*time.Second) {
				t.Fatalf("alice's one-time open did not open")
			}
			out, err := netns.Command(e.pair.Server, e.bin, "status").CombinedOutput()
			if want := "  " + fam.client.String() + " port 2222 (knock) user alice expires in "; err != nil || !strings.Contains(string(out), want) {
				t.Errorf("status: %v, want a line beginning %q:\n%s", err, want, out)
			}
			out, err = netns.Command(e.pair.Server, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", e.bin, "status").CombinedOutput()
			if err == nil || !strings.Contains(string(out), "permission denied") {
				t.Errorf("status as uid 65534: %v, want refused:\n%s", err, out)
			}
			e.knock(fam.second, fam.server, open) // the same sequence, from another address
			if !d.waitLog("msg=replay source="+fam.second.String(), 2*time.Second) {
				t.Fatalf("no replay logged")
			}
			e.knock(fam.client, fam.server, oneTime(alice.CloseSecret, n1))
			if !d.waitLog("msg=close source="+fam.client.String(), 2*time.Second) {
				t.Fatalf("alice's one-time close did not close")
			}
			want := []string{
				"open source=" + fam.client.String() + " user=alice ports=2222 detail=",
				"replay source=" + fam.second.String() + " user=alice ports= detail=open",
				"close source=" + fam.client.String() + " user=alice ports=2222 detail=",
			}
			var got []string
			waitFor(t, d, 10*time.Second, "the hook's three runs", func() bool {
				b, _ := os.ReadFile(events)
				got = strings.Split(strings.TrimSpace(string(b)), "\n")
				return len(got) >= len(want)
			})
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("hook runs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			d.term()
		})
	}
}

// TestSlowHook: a program that sleeps 60 s delays no open and stops no
// queue: while its first run sleeps, a source opens, closes and opens
// again, and the stop is not held up by it.
func TestSlowHook(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			hook := testutil.WriteFile(t, t.TempDir(), "slow", "#!/bin/sh\nsleep 60\n", 0o700)
			d := e.start("--on-event", hook)
			open, close := e.sequences()
			for i, step := range []struct {
				ports []uint16
				log   string
				n     int // times the log then holds it
				reach bool
			}{{open, "msg=open", 1, true}, {close, "msg=close", 1, false}, {open, "msg=open", 2, true}} {
				e.knock(fam.client, fam.server, step.ports)
				if d.waitCount(step.log, step.n) != step.n {
					t.Fatalf("step %d: no %s within 2 s while the hook sleeps", i, step.log)
				}
				waitFor(t, d, 2*time.Second, "the guard to follow", func() bool { return e.reachable(fam.client, fam.server, guardPort) == step.reach })
			}
			d.term() // within the 10 s of stop: the sleeping run is killed
		})
	}
}
