package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nfqknockd/nfqknockd/cmd/internal/tablelock"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/nft/nfttest"
)

// serveCtl serves ts's control socket at its path under a new directory,
// and returns that directory (the status and revoke --lock-dir).
func serveCtl(t *testing.T, ts *testService, dirMode os.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} { // t.TempDir makes both 0700
		if err := os.Chmod(d, dirMode); err != nil {
			t.Fatal(err)
		}
	}
	ts.cfg.LockDir = dir
	ln, err := ts.listenControl()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ts.serveControl(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return dir
}

// TestCtlStatusRevoke: nfqknockd status shows what the table holds and
// the counters, revoke closes a source or a user's sources at once, logs
// who asked and counts it; refusals are one line, exit 1 or 2.
func TestCtlStatusRevoke(t *testing.T) {
	ts, _ := newAccessService(t, unitUsers)
	dir := serveCtl(t, ts, 0o700)
	for _, u := range unitUsers[:2] {
		open, _ := ts.sequences(u.OpenSecret, u.CloseSecret)
		src := src4
		if u.Name == "bob" {
			src = src6
		}
		ts.knock(src, open)
	}
	ctl := func(args ...string) (int, string, string) {
		return run(append(args, "--lock-dir", dir)...)
	}
	code, out, errOut := ctl("status")
	for _, want := range []string{"table inet nfqknock: flags ", "guard 22,443;", "secrets: --access-file ", "opens 2, closes 0, replays 0, revokes 0",
		"opened: 2\n", "  10.0.0.2 port 22 (knock) user alice expires in 1h0m0s\n", "  fd00::2 port 443 (knock) user bob expires in 1h0m0s\n"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status: exit %d, stderr %q; stdout lacks %q:\n%s", code, errOut, want, out)
		}
	}
	for _, s := range unitUsers {
		if strings.Contains(out, s.OpenSecret) {
			t.Errorf("status shows a secret:\n%s", out)
		}
	}
	if code, out, _ := ctl("status", "--json"); code != 0 || !strings.Contains(out, `"source": "fd00::2"`) || !strings.Contains(out, `"revokes": 0`) {
		t.Errorf("status --json: exit %d:\n%s", code, out)
	}
	if code, out, errOut := ctl("revoke", "10.0.0.2"); code != 0 || !strings.Contains(out, "revoked: 1\n  10.0.0.2 port 22") {
		t.Errorf("revoke 10.0.0.2: exit %d, %q %q", code, out, errOut)
	}
	if code, out, errOut := ctl("revoke", "--user", "bob"); code != 0 || !strings.Contains(out, "revoked: 1\n  fd00::2 port 443 (knock) user bob") {
		t.Errorf("revoke --user bob: exit %d, %q %q", code, out, errOut)
	}
	if got := ts.opened(); len(got) != 0 {
		t.Errorf("opened after the revokes: %v", got)
	}
	logs := ts.logs.String()
	if !strings.Contains(logs, "msg=revoked source=10.0.0.2 ports=22 user=alice by_uid=0") || !strings.Contains(logs, "msg=revoked source=fd00::2 ports=443 user=bob by_uid=0") {
		t.Errorf("the revokes are not logged with the asker:\n%s", logs)
	}
	if n := ts.metrics.revokes.Load(); n != 2 {
		t.Errorf("revokes counted %d, want 2", n)
	}
	for _, tt := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"revoke", "10.0.0.2"}, 1, "nfqknockd: revoke: 10.0.0.2 is not opened\n"},
		{[]string{"revoke", "--user", "carol"}, 1, "nfqknockd: revoke: user \"carol\" has nothing opened\n"},
		{[]string{"revoke", "not-an-address"}, 1, "nfqknockd: revoke: source \"not-an-address\" is not an IP address\n"},
		{[]string{"revoke"}, 2, "nfqknockd: revoke: give one source address, or --user NAME\n"},
		{[]string{"revoke", "--user", "bob", "10.0.0.2"}, 2, "nfqknockd: revoke: give one source address, or --user NAME\n"},
		{[]string{"status", "extra"}, 2, "nfqknockd: status: takes no argument\n"},
	} {
		if code, out, errOut := ctl(tt.args...); code != tt.code || out != "" || errOut != tt.err {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit %d, %q", tt.args, code, out, errOut, tt.code, tt.err)
		}
	}
}

// TestCtlRefusesOthers: a user who is neither root nor the daemon's user
// gets nothing, even where the socket's directory and mode let them
// connect (SO_PEERCRED), and the refusal is logged.
func TestCtlRefusesOthers(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("no setpriv")
	}
	ts := newTestService(t, nfttest.NewFake())
	dir := serveCtl(t, ts, 0o755)
	path, err := ctlPath(dir, ts.cfg.Table)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	bin := testutil.Build(t, ".", "")
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", bin, "status", "--lock-dir", dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "permission denied: only root and the daemon's user may ask") {
		t.Errorf("status as uid 65534: %v: %s", err, out)
	}
	if !strings.Contains(ts.logs.String(), "control socket: refused a user") {
		t.Errorf("the refusal is not logged:\n%s", ts.logs.String())
	}
	// Root gets its answer on the same socket.
	if reply, err := ctlCall(path, ctlRequest{Op: "status"}); err != nil || reply.Status == nil {
		t.Errorf("status as root: %v, %+v", err, reply)
	}
}

// TestCtlRevokePartial: a source the table refuses to close does not stop
// the others; the reply lists what was closed, the error what was not,
// exit 1.
func TestCtlRevokePartial(t *testing.T) {
	ts, _ := newAccessService(t, unitUsers)
	carol := unitUsers[2]
	open, _ := ts.sequences(carol.OpenSecret, carol.CloseSecret)
	ts.knock(src4, open)
	ts.knock(src6, open)
	dir := serveCtl(t, ts, 0o700)
	ts.rules.FailNext(errors.New("EPERM"))
	code, out, errOut := run("revoke", "--user", "carol", "--lock-dir", dir)
	if code != 1 || !strings.Contains(out, "revoked: 2\n") || !strings.Contains(errOut, "nfqknockd: revoke: 10.0.0.2: ") || len(ts.opened()) != 1 {
		t.Errorf("exit %d, stdout %q, stderr %q, still opened %v; want one source closed (both ports), the other named in the error", code, out, errOut, ts.opened())
	}
}

// TestCtlHelpAndNoSocket: status --help prints the usage; with the table's
// lock held and no socket, status says so rather than "no daemon".
func TestCtlHelpAndNoSocket(t *testing.T) {
	if code, out, _ := run("status", "--help"); code != 0 || !strings.Contains(out, "nfqknockd status [--json]") {
		t.Errorf("status --help: exit %d, %q", code, out)
	}
	dir := t.TempDir()
	path, err := ctlPath(dir, "nfqknock")
	if err != nil {
		t.Fatal(err)
	}
	l, err := tablelock.Take(strings.TrimSuffix(path, ".sock") + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	code, out, errOut := run("status", "--lock-dir", dir)
	if code != 1 || !strings.Contains(out, "a daemon holds the lock of table inet nfqknock but has no control socket") || !strings.Contains(errOut, "no daemon answers at "+path) {
		t.Errorf("status with the lock held: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
