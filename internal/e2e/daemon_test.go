package e2e

// The daemon and other long-running processes of the tests.

import (
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// daemon is one nfqknockd process in the server namespace.
type daemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *testutil.SyncBuffer
	done   chan struct{}
	err    error
}

// daemonArgs are the test secrets, the whole port range and guardPort,
// then extra flags.
func daemonArgs(extra ...string) []string {
	return append([]string{"--range", "1-65535", "--guard", strconv.Itoa(guardPort), "-o", openSecret, "-c", closeSecret}, extra...)
}

// start runs the daemon with daemonArgs(extra...) and waits until it
// logged that it started.
func (e *env) start(extra ...string) *daemon {
	e.t.Helper()
	return e.startArgs(daemonArgs(extra...)...)
}

// startArgs runs the daemon with exactly args (no flag added) and waits
// until it logged that it started.
func (e *env) startArgs(args ...string) *daemon {
	e.t.Helper()
	d := e.spawnArgs(nil, args...)
	if !d.waitLog("msg=started", 10*time.Second) {
		e.t.Fatalf("daemon %s did not start; stderr:\n%s", strings.Join(args, " "), d.stderr)
	}
	return d
}

// spawn starts the daemon with daemonArgs(extra...) without waiting;
// environ nil keeps the test's.
func (e *env) spawn(environ []string, extra ...string) *daemon {
	e.t.Helper()
	return e.spawnArgs(environ, daemonArgs(extra...)...)
}

// spawnArgs starts the daemon in the server namespace with exactly args
// (no flag added), without waiting; environ nil keeps the test's. The
// daemon is killed at the end of the test if still running, and its stderr
// logged if the test failed.
func (e *env) spawnArgs(environ []string, args ...string) *daemon {
	e.t.Helper()
	cmd := netns.Command(e.pair.Server, e.bin, args...)
	if environ != nil {
		// ip itself needs a PATH-free start too: name it by its full path.
		ip, err := exec.LookPath("ip")
		if err != nil {
			e.t.Fatal(err)
		}
		cmd.Path = ip
		cmd.Env = environ
	}
	return e.spawnCmd(cmd, args)
}

// spawnCmd starts cmd, a daemon with args, without waiting (see
// spawnArgs).
func (e *env) spawnCmd(cmd *exec.Cmd, args []string) *daemon {
	e.t.Helper()
	return startProcess(e.t, cmd, "daemon "+strings.Join(args, " "))
}

// startProcess starts cmd, a long-running process of the test (a daemon,
// sshd) named what in the log, without waiting. It is killed at the end of
// the test if still running, and its stderr logged if the test failed.
func startProcess(t *testing.T, cmd *exec.Cmd, what string) *daemon {
	t.Helper()
	d := &daemon{t: t, cmd: cmd, stderr: &testutil.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", what, err)
	}
	go func() { d.err = cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", what, d.stderr)
		}
	})
	return d
}

// exited reports whether the process has exited.
func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// waitFor polls cond every 50ms until it holds, d exits or max has passed
// (d nil: no process to watch).
func waitFor(t *testing.T, d *daemon, max time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(max); ; {
		if cond() {
			return
		}
		if d != nil && d.exited() {
			t.Fatalf("%s exited while waiting for %s: %v\n%s", d.cmd.Path, what, d.cmd.ProcessState, d.stderr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %v", what, max)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitLog waits until the daemon's stderr contains s, or it exited.
func (d *daemon) waitLog(s string, max time.Duration) bool {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		if strings.Contains(d.stderr.String(), s) {
			return true
		}
		select {
		case <-d.done:
			return strings.Contains(d.stderr.String(), s)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}

// wait waits for the daemon to exit and returns its exit status.
func (d *daemon) wait(max time.Duration) int {
	d.t.Helper()
	select {
	case <-d.done:
	case <-time.After(max):
		d.t.Fatalf("daemon still running after %v; stderr:\n%s", max, d.stderr)
	}
	if d.err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(d.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -int(ws.Signal())
		}
		return ee.ExitCode()
	}
	d.t.Fatalf("daemon: %v", d.err)
	return -1
}

// signal sends sig to the daemon and, unless it is SIGUSR*, waits for it.
func (d *daemon) stop(sig syscall.Signal) int {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatalf("signal %v: %v", sig, err)
	}
	return d.wait(10 * time.Second)
}

// term stops the daemon with SIGTERM and fails the test unless it exited 0.
func (d *daemon) term() {
	d.t.Helper()
	if code := d.stop(syscall.SIGTERM); code != 0 {
		d.t.Errorf("exit status after SIGTERM = %d, want 0", code)
	}
}
