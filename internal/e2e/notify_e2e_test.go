package e2e

// The daemon under systemd's Type=notify (notify.go): the built binary runs
// in a server namespace with $NOTIFY_SOCKET naming a socket the test reads,
// as systemd's. READY=1 must mean the guard is in place: when it arrives,
// the table with its guard chain exists and the queue is bound; a start
// that fails sends nothing. Root only, like every e2e test.

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// notifyEnv names the notify socket, as systemd sets it.
const notifyEnv = "NOTIFY_SOCKET"

const (
	notifyQueue = 7                // the queue the notify tests bind
	notifyWait  = 30 * time.Second // bounds a wait for a datagram; never a measure
)

// notified is a daemon started with $NOTIFY_SOCKET, its stderr a file: a
// line it logged before a datagram is in the file when the datagram
// arrives.
type notified struct {
	*daemon
	logFile string
}

// log returns what the daemon logged so far.
func (n *notified) log() string {
	b, _ := os.ReadFile(n.logFile)
	return string(b)
}

// spawnNotified starts the daemon in the server namespace of e with
// exactly args and $NOTIFY_SOCKET=sock, without waiting. The daemon belongs
// to t (a subtest's, or e's test's): killed at its end if still running.
func (e *env) spawnNotified(t *testing.T, sock *testutil.NotifySocket, args ...string) *notified {
	t.Helper()
	environ := []string{notifyEnv + "=" + sock.Name}
	for _, v := range os.Environ() {
		if !strings.HasPrefix(v, notifyEnv+"=") {
			environ = append(environ, v)
		}
	}
	logFile := filepath.Join(t.TempDir(), "stderr")
	f, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := netns.Command(e.pair.Server, e.bin, args...)
	cmd.Env = environ
	cmd.Stderr = f
	d := &daemon{t: t, cmd: cmd, stderr: &testutil.SyncBuffer{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	n := &notified{daemon: d, logFile: logFile}
	go func() { d.err = cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		if !d.exited() {
			cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("daemon %s stderr:\n%s", strings.Join(args, " "), n.log())
		}
	})
	return n
}

// expectNotify waits for the next datagram from d and checks that d sent
// it (NotifyAccess=main) and that it assigns key=value.
func expectNotify(t *testing.T, sock *testutil.NotifySocket, d *notified, key, value string) testutil.NotifyMsg {
	t.Helper()
	m, err := sock.Next(notifyWait)
	if err != nil {
		t.Fatalf("waiting for %s=%s: %v", key, value, err)
	}
	if m.PID != d.cmd.Process.Pid {
		t.Errorf("%q sent by pid %d, want the daemon's %d (NotifyAccess=main drops it)", m.Text, m.PID, d.cmd.Process.Pid)
	}
	if !m.Has(key, value) {
		t.Fatalf("received %q, want %s=%s", m.Text, key, value)
	}
	checkStatus(t, m)
	return m
}

// checkStatus fails the test when a STATUS= line holds a secret or a
// number other than the guarded port (a knock port would be one).
func checkStatus(t *testing.T, m testutil.NotifyMsg) {
	t.Helper()
	status := m.Fields["STATUS"]
	for _, s := range []string{openSecret, closeSecret} {
		if strings.Contains(status, s) {
			t.Errorf("STATUS=%s holds a secret", status)
		}
	}
	for _, w := range strings.FieldsFunc(status, func(r rune) bool { return r < '0' || r > '9' }) {
		if w != strconv.Itoa(guardPort) {
			t.Errorf("STATUS=%s holds the number %s, which is not the guarded port", status, w)
		}
	}
}

// checkGuardInPlace checks, at the moment READY=1 arrived, that the table
// with its guard chain and the guarded port exists, that the queue is
// bound, and that the daemon logged its start line.
func checkGuardInPlace(e *env, d *notified, wantLog string) {
	e.t.Helper()
	table, err := e.nft("list", "table", "inet", "nfqknock")
	if err != nil {
		e.t.Fatalf("READY=1 came before the table: nft list table inet nfqknock: %v\n%s", err, table)
	}
	for _, s := range []string{"chain guard {", "hook prerouting", "chain guarded {", strconv.Itoa(guardPort), "drop"} {
		if !strings.Contains(table, s) {
			e.t.Errorf("READY=1 came before the guard: the table has no %q:\n%s", s, table)
		}
	}
	out, err := netns.Command(e.pair.Server, "cat", "/proc/net/netfilter/nfnetlink_queue").Output()
	if err != nil {
		e.t.Fatal(err)
	}
	bound := false
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == strconv.Itoa(notifyQueue) {
			bound = true
		}
	}
	if !bound {
		e.t.Errorf("READY=1 came before queue %d was bound:\n%s", notifyQueue, out)
	}
	if log := d.log(); !strings.Contains(log, "msg=started") || !strings.Contains(log, wantLog) {
		e.t.Errorf("READY=1 came before the start line with %q:\n%s", wantLog, log)
	}
}

// TestNotifyLifecycle: READY=1 arrives once the guard is in place, from the
// daemon's pid; SIGHUP sends RELOADING=1 then READY=1; SIGQUIT sends
// STOPPING=1 and the next daemon's READY=1 comes after it took the table
// over; SIGTERM sends STOPPING=1 and deletes the table.
func TestNotifyLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sock := testutil.NewNotifySocket(t, filepath.Join(t.TempDir(), "notify"))
	args := daemonArgs("-q", strconv.Itoa(notifyQueue))

	d := e.spawnNotified(t, sock, args...)
	expectNotify(t, sock, d, "READY", "1")
	checkGuardInPlace(e, d, "took_over=false")
	if e.reachable(strangerIP4, netns.ServerIP4, guardPort) {
		t.Errorf("after READY=1 the guarded port answered a stranger")
	}

	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	m := expectNotify(t, sock, d, "RELOADING", "1")
	if usec, err := strconv.ParseUint(m.Fields["MONOTONIC_USEC"], 10, 64); err != nil || usec == 0 {
		t.Errorf("RELOADING=1 without MONOTONIC_USEC: %q", m.Text)
	}
	expectNotify(t, sock, d, "READY", "1")

	// Restart: the next daemon's READY=1 follows its takeover.
	if code := d.stop(syscall.SIGQUIT); code != 0 {
		t.Fatalf("exit status after SIGQUIT = %d, want 0", code)
	}
	msgs, err := sock.Pending()
	if err != nil || len(msgs) != 1 || !msgs[0].Has("STOPPING", "1") {
		t.Fatalf("after SIGQUIT received %v (%v), want one STOPPING=1", msgs, err)
	}
	checkStatus(t, msgs[0])
	d = e.spawnNotified(t, sock, args...)
	expectNotify(t, sock, d, "READY", "1")
	checkGuardInPlace(e, d, "took_over=true")

	d.term()
	msgs, err = sock.Pending()
	if err != nil || len(msgs) != 1 || !msgs[0].Has("STOPPING", "1") {
		t.Fatalf("after SIGTERM received %v (%v), want one STOPPING=1", msgs, err)
	}
	lcGone(e, "nfqknock")
}

// TestNotifyFailedStart: a start that fails sends nothing; systemd then
// sees the exit, not a READY=1.
func TestNotifyFailedStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := t.TempDir()
	readable := testutil.WriteFile(t, dir, "secrets-0644", "open=a\nclose=b\n", 0o644)
	halfFile := testutil.WriteFile(t, dir, "secrets-half", "open=a\n", 0o600)
	base := []string{"--range", "1-65535", "--guard", strconv.Itoa(guardPort), "-q", strconv.Itoa(notifyQueue)}
	with := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }
	tests := []struct {
		name  string
		setup func(t *testing.T) // before the start; undone by the test
		args  []string
		code  int    // the exit status
		why   string // in the error line
	}{
		{"secret file readable by others", nil, with("--secret-file", readable), 2, "permissions 0644 are too open"},
		{"secret file without close", nil, with("--secret-file", halfFile), 2, "no close= line"},
		{"same open and close secret", nil, with("-o", "x", "-c", "x"), 2, "same as --open-secret"},
		{"no port left to guard", nil, with("-o", openSecret, "-c", closeSecret, "-P", strconv.Itoa(guardPort)), 2, "no port to guard"},
		{"table not ours", func(t *testing.T) {
			if out, err := e.nft("add", "table", "inet", "nfqknock"); err != nil {
				t.Fatalf("nft add table: %v: %s", err, out)
			}
			t.Cleanup(func() { e.nft("delete", "table", "inet", "nfqknock") })
		}, with("-o", openSecret, "-c", closeSecret), 1, "is not nfqknockd's"},
		{"queue bound by another daemon", func(t *testing.T) {
			other := testutil.NewNotifySocket(t, filepath.Join(t.TempDir(), "other"))
			first := e.spawnNotified(t, other, with("-o", openSecret, "-c", closeSecret, "--table", "other")...)
			expectNotify(t, other, first, "READY", "1")
			t.Cleanup(first.term)
		}, with("-o", openSecret, "-c", closeSecret), 1, "-q " + strconv.Itoa(notifyQueue) + ":"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup(t)
			}
			sock := testutil.NewNotifySocket(t, filepath.Join(t.TempDir(), "notify"))
			d := e.spawnNotified(t, sock, tt.args...)
			if code, log := d.wait(notifyWait), d.log(); code != tt.code || !strings.Contains(log, tt.why) {
				t.Errorf("exit status %d, want %d, with %q in:\n%s", code, tt.code, tt.why, log)
			}
			// Every datagram the daemon sent is queued once it exited.
			if msgs, err := sock.Pending(); err != nil || len(msgs) > 0 {
				t.Errorf("a failed start sent %v (%v), want nothing", msgs, err)
			}
		})
	}
	if out, _ := e.nft("list", "tables"); strings.TrimSpace(out) != "" {
		t.Errorf("tables left by the failed starts:\n%s", out)
	}
}
