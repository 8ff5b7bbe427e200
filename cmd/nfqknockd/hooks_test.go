package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/knock"
	"github.com/nfqknockd/nfqknockd/nft"
)

// hookScript writes a program that appends its event, its environment's
// NFQKNOCK_* and its capability sets to out, one line per run.
func hookScript(t *testing.T, dir, out string) string {
	t.Helper()
	return testutil.WriteFile(t, dir, "hook", `#!/bin/sh
caps=$(grep -E '^Cap(Inh|Prm|Eff|Amb):' /proc/self/status | tr -s '\t\n' '= ')
echo "$NFQKNOCK_EVENT source=$NFQKNOCK_SOURCE user=$NFQKNOCK_USER ports=$NFQKNOCK_PORTS detail=$NFQKNOCK_DETAIL table=$NFQKNOCK_TABLE err=$NFQKNOCK_ERROR $caps" >> `+out+`
`, 0o700)
}

// TestHooks: --on-event runs on an open, a close, a replay, a revoke and a
// repair, with the event in its environment and no capability at all,
// even though the test runs as root with every capability.
func TestHooks(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "events")
	ts, _ := newAccessService(t, unitUsers, "--one-time", "--on-event", hookScript(t, dir, out))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ts.hooks.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	alice := unitUsers[0]
	p := ts.cfg.Params
	seq := func(secret string, nonce uint32) []uint16 {
		return knock.OneTimeSequence(p.Digest, secret, p.PeriodStart(ts.now), nonce, p.Range)
	}
	open := seq(alice.OpenSecret, 7)
	ts.knock(src4, open)
	ts.knock(src6, open) // a replay, from another address
	ts.knock(src4, seq(alice.CloseSecret, 9))
	ts.knock(src4, seq(alice.OpenSecret, 8))
	if _, err := ts.revoke("10.0.0.2", "", 0); err != nil {
		t.Fatal(err)
	}
	ts.repaired(nft.Repair{Table: "nfqknock", Changed: "table deleted"})
	ts.repaired(nft.Repair{Table: "nfqknock", Changed: "table deleted", Err: errors.New("EPERM")})

	want := []string{
		"open source=10.0.0.2 user=alice ports=22 detail= table=inet nfqknock err=",
		"replay source=fd00::2 user=alice ports= detail=open table=inet nfqknock err=",
		"close source=10.0.0.2 user=alice ports=22 detail= table=inet nfqknock err=",
		"open source=10.0.0.2 user=alice ports=22 detail=",
		"revoke source=10.0.0.2 user=alice ports=22 detail=by uid 0",
		"repair source= user= ports= detail=table deleted table=inet nfqknock err=",
		"repair source= user= ports= detail=table deleted table=inet nfqknock err=EPERM",
	}
	var lines []string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(out)
		if lines = strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) >= len(want) {
			break
		}
	}
	if len(lines) != len(want) {
		t.Fatalf("%d runs, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, want[i]) {
			t.Errorf("run %d: %q, want it to begin %q", i, l, want[i])
		}
		for _, set := range []string{"CapInh", "CapPrm", "CapEff", "CapAmb"} {
			if !strings.Contains(l, set+":=0000000000000000") {
				t.Errorf("run %d has capabilities: %q", i, l)
			}
		}
		if strings.Contains(l, alice.OpenSecret) {
			t.Errorf("run %d shows a secret: %q", i, l)
		}
	}
}

// TestHooksNeverWait: a program that falls behind makes the events drop,
// counted and logged once a second, and never blocks the one who emits;
// a program that outlives its timeout is killed, with its group, and
// counted as failed.
func TestHooksNeverWait(t *testing.T) {
	dir := t.TempDir()
	slow := testutil.WriteFile(t, dir, "slow", "#!/bin/sh\necho started\nsleep 30 &\nsleep 30\n", 0o700)
	var logs testutil.SyncBuffer
	h := newHooks(slow, "nfqknock", slog.New(slog.NewTextHandler(&logs, nil)))
	h.timeout = 300 * time.Millisecond
	start := time.Now()
	for range hookQueue + 10 {
		h.emit(hookEvent{Kind: "open"})
	}
	if d := h.dropped.Load(); d != 10 {
		t.Errorf("%d dropped, want 10", d)
	}
	if n := strings.Count(logs.String(), "events dropped"); n != 1 {
		t.Errorf("the drops logged %d times, want once:\n%s", n, logs.String())
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("emit waited") // not a timing assertion on speed: emit must not wait for 30 s runs
	}
	err := h.runOne(context.Background(), hookEvent{Kind: "open"})
	if err == nil || !strings.Contains(err.Error(), "killed after 300ms") || !strings.Contains(err.Error(), `output: "started"`) {
		t.Errorf("a run past its timeout: %v", err)
	}
	var nilHooks *hooks
	nilHooks.emit(hookEvent{Kind: "open"}) // no --on-event: nothing, no panic
}

// TestHookFlag: --on-event must name a program only root or the daemon's
// user can change; anything else is one line and exit 2.
func TestHookFlag(t *testing.T) {
	dir := t.TempDir()
	good := testutil.WriteFile(t, dir, "good", "#!/bin/sh\n", 0o755)
	writable := testutil.WriteFile(t, dir, "writable", "#!/bin/sh\n", 0o775)
	plain := testutil.WriteFile(t, dir, "plain", "#!/bin/sh\n", 0o644)
	other := testutil.WriteFile(t, dir, "other", "#!/bin/sh\n", 0o755)
	if err := os.Chown(other, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run("check", "-p", "22", "--on-event", good); code != 0 {
		t.Errorf("a good program: exit %d, %q", code, stderr)
	}
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	inOpen := testutil.WriteFile(t, open, "hook", "#!/bin/sh\n", 0o755)
	if err := os.Chmod(open, 0o777); err != nil { // anyone could rename theirs in
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(inOpen, link); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ arg, want string }{
		{"hook.sh", "give an absolute path"},
		{dir + "/none", "no such file or directory"},
		{plain, "not an executable file"},
		{dir, "not an executable file"},
		{writable, writable + ": mode 0775 lets other users change it: chmod go-w"},
		{other, other + " is owned by uid 65534, neither root nor this process's user (uid 0): that user could replace the program"},
		{inOpen, open + ": mode 0777 lets other users change it: chmod go-w"},
		{link, open + ": mode 0777 lets other users change it: chmod go-w"},
	} {
		code, stdout, stderr := run("check", "-p", "22", "--on-event", tt.arg)
		if code != 2 || stdout != "" || !strings.HasPrefix(stderr, "nfqknockd: ") || !strings.HasSuffix(stderr, tt.want+"\n") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("--on-event %s: exit %d, stdout %q, stderr %q; want exit 2 and one line ending %q", tt.arg, code, stdout, stderr, tt.want)
		}
	}
}

// TestHookRunEnds: what a program leaves running dies with its run, and
// the run succeeded; a program that became changeable by others since the
// start is not run.
func TestHookRunEnds(t *testing.T) {
	dir := t.TempDir()
	alive := filepath.Join(dir, "alive")
	bg := testutil.WriteFile(t, dir, "bg", "#!/bin/sh\n(sleep 2; touch "+alive+") &\nexit 0\n", 0o700)
	var logs testutil.SyncBuffer
	h := newHooks(bg, "nfqknock", slog.New(slog.NewTextHandler(&logs, nil)))
	if err := h.runOne(context.Background(), hookEvent{Kind: "open"}); err != nil {
		t.Errorf("a program that left a child and exited 0: %v", err)
	}
	time.Sleep(3 * time.Second)
	if _, err := os.Stat(alive); err == nil {
		t.Errorf("the child it left ran on after the run")
	}
	if err := os.Chmod(bg, 0o722); err != nil {
		t.Fatal(err)
	}
	if err := h.runOne(context.Background(), hookEvent{Kind: "open"}); err == nil || !strings.Contains(err.Error(), "not run") {
		t.Errorf("a program others may change: %v, want not run", err)
	}
}
