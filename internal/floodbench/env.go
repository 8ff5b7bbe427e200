package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/syngen"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// cleanups runs registered undo steps in reverse order, once, on every way
// out (normal end, error, signal).
type cleanups struct {
	mu  sync.Mutex
	fns []func()
}

// add registers fn and returns a function that runs it early (and only once).
func (c *cleanups) add(fn func()) func() {
	var once sync.Once
	f := func() { once.Do(fn) }
	c.mu.Lock()
	c.fns = append(c.fns, f)
	c.mu.Unlock()
	return f
}

// run runs every registered step, newest first.
func (c *cleanups) run() {
	c.mu.Lock()
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

var undo cleanups

// pair is a server and a client namespace joined by veth, named like those
// of internal/netns (so that netns.SweepStale removes them if this process
// dies), with the spoof ranges routed back into the client namespace.
type pair struct {
	server, client string
	close          func()
}

var pairs int

// newPair makes the namespaces; close (also run by undo) deletes them and
// kills whatever still runs in them.
func newPair() (*pair, error) {
	pairs++
	base := fmt.Sprintf("nfqk-%d-%d", os.Getpid(), 1000+pairs)
	p := &pair{server: base + "-s", client: base + "-c"}
	p.close = undo.add(func() {
		for _, ns := range []string{p.client, p.server} {
			if err := netns.Delete(ns); err != nil {
				fmt.Fprintf(os.Stderr, "floodbench: %v\n", err)
			}
		}
	})
	for _, s := range netns.PairCommands(p.server, p.client) {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			p.close()
			return nil, fmt.Errorf("ip %s: %w: %s", strings.Join(s, " "), err, bytes.TrimSpace(out))
		}
	}
	if err := syngen.AddSpoofRoutes(p.server, netns.ClientIP4, netns.ClientIP6); err != nil {
		p.close()
		return nil, err
	}
	// The replies to spoofed sources die in the client namespace before
	// routing (see the package comment).
	if _, err := netns.Nft(p.client, syngen.ReplySink("floodbench_sink"), "-f", "-"); err != nil {
		p.close()
		return nil, fmt.Errorf("reply sink in %s: %w", p.client, err)
	}
	return p, nil
}

// nft runs nft in the server namespace, with stdin when it is not empty.
func (p *pair) nft(stdin string, args ...string) (string, error) {
	return netns.Nft(p.server, stdin, args...)
}

// daemonLog, when set (--daemon-log), receives the stderr of every daemon.
var daemonLog io.Writer

// daemon is one nfqknockd process in a server namespace.
type daemon struct {
	cmd    *exec.Cmd
	pid    int
	stderr *testutil.SyncBuffer
	done   chan struct{}
	err    error
	kill   func()
}

// startDaemon runs bin with args in namespace ns (`ip netns exec` execs it,
// so the pid is the daemon's) and waits until it logs "started".
func startDaemon(bin, ns string, args []string) (*daemon, error) {
	cmd := netns.Command(ns, bin, args...)
	// Own session, as a service manager starts it: the scheduler gives the
	// daemon its own share of the CPUs (autogroup), not a part of the
	// sender's. Also its own process group: a ^C reaches floodbench, which
	// stops the daemon in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	d := &daemon{cmd: cmd, stderr: &testutil.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = d.stderr
	if daemonLog != nil {
		fmt.Fprintf(daemonLog, "# %s: %s (in %s)\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "), ns)
		cmd.Stderr = io.MultiWriter(d.stderr, daemonLog)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	d.pid = cmd.Process.Pid
	go func() { d.err = cmd.Wait(); close(d.done) }()
	d.kill = undo.add(func() {
		select {
		case <-d.done:
		default:
			_ = cmd.Process.Kill()
			<-d.done
		}
	})
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(d.stderr.String(), "started"); {
		select {
		case <-d.done:
			return nil, fmt.Errorf("daemon exited before it started (%v); stderr:\n%s", d.err, d.stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.kill()
			return nil, fmt.Errorf("daemon did not log \"started\" within 10s; stderr:\n%s", d.stderr)
		}
	}
	return d, nil
}

// stop sends SIGTERM and waits for a clean exit (status 0); after 5s it
// kills the daemon and says so.
func (d *daemon) stop() error {
	select {
	case <-d.done:
		return fmt.Errorf("daemon had already exited: %v; stderr:\n%s", d.err, testutil.Tail(d.stderr.String(), 20))
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		d.kill()
		return errors.New("daemon still running 5s after SIGTERM: killed")
	}
	if d.err != nil {
		return fmt.Errorf("daemon exit after SIGTERM: %w; stderr:\n%s", d.err, testutil.Tail(d.stderr.String(), 20))
	}
	return nil
}

// warnings returns the daemon's log lines at level WARN or ERROR.
func warnings(log string) []string {
	var w []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			w = append(w, l)
			if len(w) == 10 {
				break
			}
		}
	}
	return w
}
