package main

// --on-event: a program the daemon runs on each open, close, revoke,
// replay and repair, for notifications and audit trails. It never blocks
// the queue readers: events wait in a short queue for one runner, and are
// dropped and counted when the program falls behind. The program runs
// without capabilities, with a timeout, the event in its environment.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/nfqknockd/nfqknockd/cmd/internal/privdir"
	"golang.org/x/sys/unix"
)

// Limits of --on-event: the events that may wait for the runner, how
// long one run may take, and how much of its output is logged.
const (
	hookQueue   = 64
	hookTimeout = 10 * time.Second
	hookOutput  = 2048
)

// hookEvent is one event for --on-event. It holds no secret and no port of
// a sequence: Ports are guarded ports.
type hookEvent struct {
	Kind   string // open, close, revoke, replay, repair
	Source netip.Addr
	User   string
	Ports  []uint16
	Detail string // replay: the sequence (open, close; "spa open", "spa close"); open, close: "spa" for an SPA packet; close: why, when not knocked; repair: what changed; revoke: the asker's uid
	Err    string // repair: why the table could not be put back
}

// hooks runs --on-event. A nil *hooks does nothing.
type hooks struct {
	cmd, table       string
	ch               chan hookEvent
	log              *slog.Logger
	dropped, failed  atomic.Uint64
	lastDrop         atomic.Int64 // Unix seconds of the last drop logged
	disabled         atomic.Bool  // the runner could not drop its capabilities: nothing runs
	now              func() time.Time
	timeout          time.Duration // of one run: hookTimeout
	dropCapabilities func() error  // of the runner's thread
}

// newHooks returns the hooks of program cmd ("" for none: nil).
func newHooks(cmd, table string, log *slog.Logger) *hooks {
	if cmd == "" {
		return nil
	}
	return &hooks{cmd: cmd, table: table, ch: make(chan hookEvent, hookQueue), log: log, now: time.Now, timeout: hookTimeout, dropCapabilities: dropThreadCapabilities}
}

// emit queues e for the runner, or drops and counts it when the queue is
// full; it never waits. A drop is logged at most once a second.
func (h *hooks) emit(e hookEvent) {
	if h == nil || h.disabled.Load() {
		return
	}
	select {
	case h.ch <- e:
	default:
		h.dropped.Add(1)
		if now := h.now().Unix(); h.lastDrop.Swap(now) != now {
			h.log.Warn("--on-event falls behind: events dropped", "dropped", h.dropped.Load())
		}
	}
}

// run runs the program for each event until ctx is done. It holds its OS
// thread and drops that thread's capabilities first (the daemon's other
// threads keep CAP_NET_ADMIN): a program forked from it starts with none.
// The thread ends with run.
func (h *hooks) run(ctx context.Context) {
	runtime.LockOSThread() // never unlocked: the thread, without capabilities, dies with run
	if err := h.dropCapabilities(); err != nil {
		h.disabled.Store(true)
		h.log.Error("--on-event is not run, for no event: cannot drop the capabilities of its thread", "err", err)
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-h.ch:
			if err := h.runOne(ctx, e); err != nil {
				h.failed.Add(1)
				h.log.Warn("--on-event failed", "event", e.Kind, "err", err)
			}
		}
	}
}

// runOne runs the program once for e, in a process group of its own: the
// timeout kills the group, and so does the program's end (what it left
// running dies with it). The program is checked again first.
func (h *hooks) runOne(ctx context.Context, e hookEvent) error {
	real, err := checkProgram(h.cmd)
	if err != nil {
		return fmt.Errorf("not run: %s: %w", h.cmd, err)
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, real)
	cmd.Env = h.env(e)
	cmd.Dir = "/"
	out := &capped{max: hookOutput}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	ps := cmd.ProcessState
	switch {
	case ps != nil && ps.Success() && errors.Is(err, exec.ErrWaitDelay):
		err = nil // done; what it left holding its output was killed
	case ctx.Err() == context.DeadlineExceeded && (ps == nil || !ps.Exited()):
		err = fmt.Errorf("killed after %v", h.timeout)
	}
	if err != nil && out.Len() > 0 {
		err = fmt.Errorf("%w; output: %q", err, bytes.TrimSpace(out.Bytes()))
	}
	return err
}

// env is the program's environment: a fixed PATH and the event.
func (h *hooks) env(e hookEvent) []string {
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"NFQKNOCK_EVENT=" + e.Kind,
		"NFQKNOCK_TABLE=inet " + h.table,
		"NFQKNOCK_TIME=" + h.now().UTC().Format(time.RFC3339),
	}
	add := func(k, v string) {
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	if e.Source.IsValid() {
		add("NFQKNOCK_SOURCE", e.Source.String())
	}
	add("NFQKNOCK_USER", e.User)
	add("NFQKNOCK_PORTS", portList(e.Ports))
	add("NFQKNOCK_DETAIL", e.Detail)
	add("NFQKNOCK_ERROR", e.Err)
	return env
}

// errString is err's text, "" for nil.
func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// capped keeps the first max bytes written to it.
type capped struct {
	bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.Len(); room > 0 {
		c.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// dropThreadCapabilities empties the calling thread's capability sets
// (effective, permitted, inheritable, ambient) and sets its no_new_privs:
// capabilities and no_new_privs belong to threads, and these calls change
// this thread alone. A program it executes then starts with no capability,
// even as root: no_new_privs caps what execve grants root at what the
// thread had, nothing.
func dropThreadCapabilities() error {
	if _, _, e := unix.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0); e != 0 {
		return fmt.Errorf("set no_new_privs: %w", e)
	}
	if _, _, e := unix.RawSyscall6(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0); e != 0 && e != unix.EINVAL {
		return fmt.Errorf("clear the ambient capabilities: %w", e)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if _, _, e := unix.RawSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return fmt.Errorf("capset: %w", e)
	}
	return nil
}

// hookValue is --on-event: an absolute path to a program that only root or
// the daemon's user can change (checkProgram).
type hookValue struct{ s *string }

func (v *hookValue) Set(s string) error {
	if s != "" {
		if _, err := checkProgram(s); err != nil {
			return err
		}
	}
	*v.s = s
	return nil
}

func (v *hookValue) String() string { return *v.s }
func (v *hookValue) Type() string   { return "program" }

// checkProgram checks that path names an executable file that only root
// or the daemon's user can change, the file and every directory on the way
// to it (privdir.Trusted): the daemon runs it as its own user. It returns
// the path with the symbolic links resolved. The daemon checks again
// before each run.
func checkProgram(path string) (string, error) {
	if path == "" || path[0] != '/' {
		return "", errors.New("give an absolute path")
	}
	fi, err := os.Stat(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return "", errors.New("not an executable file")
	}
	return privdir.Trusted(path)
}
