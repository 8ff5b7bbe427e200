package e2e

// End-to-end test of the log lines on the journal: the built daemon in a
// network namespace, its standard error on a pipe.

import (
	"io"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// TestJournalE2E runs the daemon with its standard error on a pipe whose
// device and inode JOURNAL_STREAM names, as systemd does: every line then
// starts with its priority, <4> for a start warning, and has no time; with
// JOURNAL_STREAM naming another stream, the lines keep the time and have
// no priority.
func TestJournalE2E(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// A port given with both --guard and --open-port: a warning at start.
	args := daemonArgs("--guard", "8080", "--open-port", "8080")
	prio := regexp.MustCompile(`^<[3-7]>level=(DEBUG|INFO|WARN|ERROR) msg=`)
	timeAttr := regexp.MustCompile(`(^|\s)time=`) // not one_time=
	for _, journal := range []bool{true, false} {
		d := e.spawnOnPipe(journal, args...)
		if !d.waitLog("msg=started", 10*time.Second) {
			t.Fatalf("daemon did not start; stderr:\n%s", d.stderr)
		}
		d.term()
		out := strings.TrimSuffix(d.stderr.String(), "\n")
		t.Logf("journal %v:\n%s", journal, out)
		lines := strings.Split(out, "\n")
		if journal {
			if !strings.Contains(out, `<4>level=WARN msg="port given with both --guard and --open-port is not guarded" port=8080`) ||
				!strings.Contains(out, "<6>level=INFO msg=started ") || !strings.Contains(out, "<6>level=INFO msg=stopped") {
				t.Errorf("the journal lines lack the warning, the start or the stop with their priorities")
			}
		}
		for _, l := range lines {
			switch {
			case journal && (!prio.MatchString(l) || timeAttr.MatchString(l)):
				t.Errorf("journal line %q: want a priority and no time", l)
			case !journal && !strings.HasPrefix(l, "time="):
				t.Errorf("line %q: want the current format, starting with the time", l)
			}
		}
	}
}

// spawnOnPipe starts the daemon with args and its standard error on a
// pipe; JOURNAL_STREAM names that pipe when journal is set, and another
// stream when not.
func (e *env) spawnOnPipe(journal bool, args ...string) *daemon {
	e.t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		e.t.Fatal(err)
	}
	stream := "1:1"
	if journal {
		stream = testutil.StreamID(e.t, w)
	}
	cmd := netns.Command(e.pair.Server, e.bin, args...)
	cmd.Env = append(os.Environ(), "JOURNAL_STREAM="+stream)
	cmd.Stderr = w
	d := &daemon{t: e.t, cmd: cmd, stderr: &testutil.SyncBuffer{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start daemon: %v", err)
	}
	w.Close()
	copied := make(chan struct{})
	go func() { io.Copy(d.stderr, r); r.Close(); close(copied) }()
	go func() { d.err = cmd.Wait(); <-copied; close(d.done) }()
	e.t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			cmd.Process.Signal(syscall.SIGKILL)
			<-d.done
		}
	})
	return d
}
