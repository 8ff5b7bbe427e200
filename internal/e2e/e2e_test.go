package e2e

// End-to-end tests: the built nfqknockd binary guards a port in a server
// network namespace, and a client namespace knocks with real TCP over IPv4
// and IPv6. They need root; CI runs them (internal/netns.RequireRoot).

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

const (
	// daemonPkg is the daemon's package, which testutil.Build builds.
	daemonPkg   = "../../cmd/nfqknockd"
	guardPort   = 2222 // guarded by the daemon in every e2e test
	freePort    = 8080 // never guarded: it must always answer
	openSecret  = "e2e open secret"
	closeSecret = "e2e close secret"
	dropTimeout = time.Second // a connect that gets no answer in this time was dropped
	// knockTimeout bounds each knock's connect attempt. nfqknock uses 50 ms;
	// the tests allow more, because on a loaded machine the dialer's
	// deadline can pass before connect(2) even sends the SYN, and a knock
	// is then missing (seen once in a full CI run). Only a dropped SYN
	// waits this long: a closed port answers with an RST at once.
	knockTimeout = 250 * time.Millisecond
)

// strangerIP4 is a second client address that never knocks.
var strangerIP4 = netip.MustParseAddr("10.200.0.3")

// stranger6 is the IPv6 twin of strangerIP4: a client address that never
// knocks (addStranger6 adds it).
var stranger6 = netip.MustParseAddr("fd00:200::3")

// tableLeft reports a table of ours in the host's namespace, which no test
// may leave. TestMain runs it after the tests, and testutil.Main looks for
// namespaces and daemon processes left.
func tableLeft() error {
	if out, err := exec.Command("nft", "list", "tables").Output(); err == nil && bytes.Contains(out, []byte("nfqknock")) {
		return errors.New("table left in the host namespace: " + string(out))
	}
	return nil
}

// env is a server namespace with echo listeners on guardPort and freePort
// (IPv4 and IPv6) and a client namespace, joined by veth.
type env struct {
	t    *testing.T
	pair *netns.Pair
	bin  string
	// stateDir is the test's --state-dir: the daemons of tests that run
	// at once must not share one.
	stateDir string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	bin := testutil.Build(t, daemonPkg, "")
	e := &env{t: t, pair: netns.NewPair(t), bin: bin, stateDir: t.TempDir()}
	if out, err := exec.Command("ip", "-n", e.pair.Client, "addr", "add", strangerIP4.String()+"/24", "dev", "veth0").CombinedOutput(); err != nil {
		t.Fatalf("add stranger address: %v: %s", err, out)
	}
	for _, a := range []netip.Addr{netns.ServerIP4, netns.ServerIP6} {
		for _, port := range []int{guardPort, freePort} {
			e.listen(netip.AddrPortFrom(a, uint16(port)))
		}
	}
	return e
}

// listen starts an echo server inside the server namespace.
func (e *env) listen(ap netip.AddrPort) {
	e.t.Helper()
	echoServer(e.t, e.pair.Server, ap, nil)
}

// echoServer listens on ap in namespace ns until the test ends and echoes
// every connection back; seen, when not nil, sees each connection as it is
// accepted.
func echoServer(t *testing.T, ns string, ap netip.AddrPort, seen func(net.Conn)) {
	t.Helper()
	var ln net.Listener
	err := netns.Do(ns, func() (err error) {
		ln, err = net.Listen("tcp", ap.String())
		return err
	})
	if err != nil {
		t.Fatalf("listen %s in %s: %v", ap, ns, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if seen != nil {
				seen(c)
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
}

// dial connects from the client namespace, from the address src when valid.
func (e *env) dial(src, dst netip.Addr, port int, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := netns.Do(e.pair.Client, func() (err error) {
		d := net.Dialer{Timeout: timeout}
		if src.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
		}
		c, err = d.Dial("tcp", netip.AddrPortFrom(dst, uint16(port)).String())
		return err
	})
	return c, err
}

// reachable reports whether a connect from src to dst:port succeeds; a
// timeout means dropped, any other error fails the test.
func (e *env) reachable(src, dst netip.Addr, port int) bool {
	e.t.Helper()
	c, err := e.dial(src, dst, port, dropTimeout)
	if err == nil {
		c.Close()
		return true
	}
	if isTimeout(err) {
		return false
	}
	e.t.Fatalf("connect %s -> [%s]:%d: unexpected error %v", src, dst, port, err)
	return false
}

// knock sends the sequence from src to dst: one connect attempt per port,
// abandoned after knockTimeout, as the client does.
func (e *env) knock(src, dst netip.Addr, ports []uint16) {
	e.t.Helper()
	for _, p := range ports {
		c, err := e.dial(src, dst, int(p), knockTimeout)
		if err == nil {
			c.Close()
		}
	}
}

// sequences runs `nfqknockd -s` with the test secrets and extra flags.
func (e *env) sequences(extra ...string) (open, close []uint16) {
	e.t.Helper()
	return e.sequencesOf(append([]string{"-o", openSecret, "-c", closeSecret}, extra...)...)
}

// sequencesOf runs `nfqknockd -s` with exactly args (the secrets among
// them) and returns the open and close sequences it prints.
func (e *env) sequencesOf(args ...string) (open, close []uint16) {
	e.t.Helper()
	args = append([]string{"-s"}, args...)
	out, err := exec.Command(e.bin, args...).Output()
	if err != nil {
		e.t.Fatalf("nfqknockd %s: %v", strings.Join(args, " "), err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, list, _ := strings.Cut(line, ":")
		var ports []uint16
		for _, f := range strings.Fields(list) {
			n, err := strconv.Atoi(f)
			if err != nil {
				e.t.Fatalf("nfqknockd -s printed %q", line)
			}
			ports = append(ports, uint16(n))
		}
		switch name {
		case "OPEN":
			open = ports
		case "CLOSE":
			close = ports
		}
	}
	if len(open) == 0 || len(close) == 0 {
		e.t.Fatalf("nfqknockd -s printed %q", out)
	}
	return open, close
}

// nft runs nft with args in the server namespace and returns its output.
func (e *env) nft(args ...string) (string, error) {
	out, err := netns.Command(e.pair.Server, "nft", args...).CombinedOutput()
	return string(out), err
}

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
	d := &daemon{t: e.t, cmd: cmd, stderr: &testutil.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start daemon: %v", err)
	}
	go func() { d.err = cmd.Wait(); close(d.done) }()
	e.t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			cmd.Process.Kill()
			<-d.done
		}
		if e.t.Failed() {
			e.t.Logf("daemon %s stderr:\n%s", strings.Join(args, " "), d.stderr)
		}
	})
	return d
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

var families = []struct {
	name           string
	server, client netip.Addr
	set            string
}{
	{"ipv4", netns.ServerIP4, netns.ClientIP4, "allow4"},
	{"ipv6", netns.ServerIP6, netns.ClientIP6, "allow6"},
}

// TestGuardOpenClose covers items 1-4 of the issue: dropped before the knock,
// open after it, what nft list shows, closed again by the close sequence
// while an established connection survives.
func TestGuardOpenClose(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			d := e.start()
			open, close := e.sequences()
			none := netip.Addr{}

			if e.reachable(none, fam.server, guardPort) {
				t.Fatalf("guarded port %d answered before any knock", guardPort)
			}
			if !e.reachable(none, fam.server, freePort) {
				t.Fatalf("unguarded port %d did not answer", freePort)
			}

			e.knock(none, fam.server, open)
			if !d.waitLog("msg=open", 2*time.Second) {
				t.Fatalf("no open logged after the open sequence")
			}
			if !e.reachable(none, fam.server, guardPort) {
				t.Fatalf("guarded port %d still dropped after the open sequence", guardPort)
			}

			list, err := e.nft("list", "table", "inet", "nfqknock")
			if err != nil {
				t.Fatalf("nft list table: %v: %s", err, list)
			}
			t.Logf("nft list table inet nfqknock:\n%s", list)
			for _, want := range []string{
				"flags owner",
				`comment "nfqknockd: port knocking; managed by the daemon, do not edit; owned and persistent`,
				"hook prerouting priority mangle;",
				"tcp dport 1-65535 fib daddr type local jump knocks",
				"set first",
				"set knocking4",
				"update @knocking4 { ip saddr } counter",
				"tcp dport @guard fib daddr type local jump guarded",
				"queue",
				"bypass",
				"set guard",
				strconv.Itoa(guardPort),
				"set " + fam.set,
				fam.client.String() + " . " + strconv.Itoa(guardPort) + " timeout 1h expires ",
			} {
				if !strings.Contains(list, want) {
					t.Errorf("nft list table lacks %q", want)
				}
			}

			// A connection made while open survives the close.
			kept, err := e.dial(none, fam.server, guardPort, dropTimeout)
			if err != nil {
				t.Fatalf("connect while open: %v", err)
			}
			defer kept.Close()
			echo(t, kept, "before close")

			e.knock(none, fam.server, close)
			if !d.waitLog("msg=close", 2*time.Second) {
				t.Fatalf("no close logged after the close sequence")
			}
			if e.reachable(none, fam.server, guardPort) {
				t.Fatalf("guarded port %d answered after the close sequence", guardPort)
			}
			echo(t, kept, "after close")
			if list, _ := e.nft("list", "set", "inet", "nfqknock", fam.set); strings.Contains(list, fam.client.String()) {
				t.Errorf("client still in %s after close:\n%s", fam.set, list)
			}
			d.term()
		})
	}
}

// echo writes msg on c and expects it back.
func echo(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write on established connection: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo on established connection: got %q, %v", buf, err)
	}
}

// TestNetcatKnock knocks the way the C project's shell wrapper does:
// `nc -z -w 1 HOST PORT` for each port of the sequence.
func TestNetcatKnock(t *testing.T) {
	needNetcat(t)
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			d := e.start()
			open, _ := e.sequences()
			e.netcatOpens(d, fam.server, open)
		})
	}
}

// needNetcat fails the test when nc is not installed.
func needNetcat(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("nc"); err != nil {
		t.Fatalf("nc not installed (apt-get install netcat-openbsd): %v", err)
	}
}

// netcatOpens checks that the guarded port of server drops the client
// before any knock, and answers it once the client knocked open nc-style:
// `nc -z -w 1 HOST PORT` for each port.
func (e *env) netcatOpens(d *daemon, server netip.Addr, open []uint16) {
	e.t.Helper()
	none := netip.Addr{}
	if e.reachable(none, server, guardPort) {
		e.t.Fatalf("guarded port answered before any knock")
	}
	for _, p := range open {
		netns.Command(e.pair.Client, "nc", "-z", "-w", "1", server.String(), strconv.Itoa(int(p))).Run()
	}
	if !e.reachable(none, server, guardPort) {
		e.t.Fatalf("guarded port still dropped after an nc knock; stderr:\n%s", d.stderr)
	}
}

// TestOpenTimeout: with --open-timeout 3s the source closes by itself.
func TestOpenTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start("--open-timeout", "3s")
	open, _ := e.sequences()
	none := netip.Addr{}
	e.knock(none, netns.ServerIP4, open)
	if !e.reachable(none, netns.ServerIP4, guardPort) {
		t.Fatalf("not open after the open sequence")
	}
	list, _ := e.nft("list", "set", "inet", "nfqknock", "allow4")
	if !strings.Contains(list, netns.ClientIP4.String()+" . "+strconv.Itoa(guardPort)+" timeout 3s") {
		t.Errorf("allow4 lacks the client with timeout 3s:\n%s", list)
	}
	deadline := time.Now().Add(20 * time.Second)
	for e.reachable(none, netns.ServerIP4, guardPort) {
		if time.Now().After(deadline) {
			t.Fatalf("still open 20s after an open with --open-timeout 3s")
		}
		time.Sleep(500 * time.Millisecond)
	}
	if list, _ := e.nft("list", "set", "inet", "nfqknock", "allow4"); strings.Contains(list, netns.ClientIP4.String()) {
		t.Errorf("client still in allow4 after its timeout:\n%s", list)
	}
}

// TestGrace: with --period 10s --grace 3s, the previous period's sequence
// opens just after a rotation, and no longer once the grace has passed.
func TestGrace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start("--period", "10s", "--grace", "3s")
	const period = 10
	// The next rotation, at least half a second ahead.
	now := time.Now()
	rot := (now.Unix()/period + 1) * period
	if time.Unix(rot, 0).Sub(now) < 500*time.Millisecond {
		rot += period
	}
	prevOpen, _ := e.sequences("--period", "10s", "--grace", "3s", "--at", strconv.FormatInt(rot-5, 10))
	sleepUntil(time.Unix(rot, 0).Add(300 * time.Millisecond))
	e.knock(netip.Addr{}, netns.ServerIP4, prevOpen)
	if !e.reachable(netip.Addr{}, netns.ServerIP4, guardPort) {
		t.Fatalf("previous period's sequence did not open within the grace")
	}
	// Past the grace (3 s) and not yet within the next one (rotation at +10 s).
	sleepUntil(time.Unix(rot+5, 0))
	e.knock(strangerIP4, netns.ServerIP4, prevOpen)
	if e.reachable(strangerIP4, netns.ServerIP4, guardPort) {
		t.Fatalf("previous period's sequence opened after the grace")
	}
}

func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// TestSignalsAndCrash: SIGTERM deletes the table and exits 0; SIGKILL leaves
// the table, which still guards; a restart keeps the opened client open.
func TestSignalsAndCrash(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	none := netip.Addr{}

	d := e.start()
	d.term()
	if out, err := e.nft("list", "table", "inet", "nfqknock"); err == nil {
		t.Fatalf("table still there after SIGTERM:\n%s", out)
	}

	d = e.start()
	open, _ := e.sequences()
	e.knock(none, netns.ServerIP4, open)
	if !e.reachable(none, netns.ServerIP4, guardPort) {
		t.Fatalf("not open after the open sequence")
	}
	if code := d.stop(syscall.SIGKILL); code != -int(syscall.SIGKILL) {
		t.Fatalf("daemon exit after SIGKILL = %d", code)
	}
	if out, err := e.nft("list", "table", "inet", "nfqknock"); err != nil {
		t.Fatalf("table gone after SIGKILL: %v %s", err, out)
	}
	if e.reachable(strangerIP4, netns.ServerIP4, guardPort) {
		t.Fatalf("guarded port answered a client that never knocked, with the daemon dead")
	}
	if !e.reachable(strangerIP4, netns.ServerIP4, freePort) {
		t.Fatalf("unguarded port did not answer with the daemon dead")
	}
	if !e.reachable(none, netns.ServerIP4, guardPort) {
		t.Fatalf("opened client lost its access when the daemon died")
	}

	d = e.start()
	if !e.reachable(none, netns.ServerIP4, guardPort) {
		t.Fatalf("opened client lost its access over a restart")
	}
	if e.reachable(strangerIP4, netns.ServerIP4, guardPort) {
		t.Fatalf("guarded port answered a stranger after the restart")
	}
	d.term()
}

// TestSecondInstance: a second daemon on the same queue (with another
// table) fails clearly and touches nothing; the first keeps working.
func TestSecondInstance(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := e.start()
	second := e.spawn(nil, "--table", "other")
	code := second.wait(10 * time.Second)
	if code == 0 {
		t.Fatalf("second daemon on the same queue exited 0")
	}
	msg := strings.TrimSpace(second.stderr.String())
	if !strings.Contains(msg, "already bound") || strings.Count(msg, "\n") != 0 {
		t.Errorf("second daemon's stderr is not one clear line: %q", msg)
	}
	if out, err := e.nft("list", "tables"); err != nil || strings.Contains(out, "other") {
		t.Errorf("the second daemon left a table: %v: %s", err, out)
	}
	open, _ := e.sequences()
	e.knock(netip.Addr{}, netns.ServerIP4, open)
	if !e.reachable(netip.Addr{}, netns.ServerIP4, guardPort) {
		t.Fatalf("first daemon stopped working after the second one failed")
	}
	if code := first.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("first daemon's exit status = %d", code)
	}
}

// TestEmptyPath: with PATH empty the daemon works the same: it runs no
// other program. strace, when present, confirms it executes nothing.
func TestEmptyPath(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.spawn([]string{"PATH="})
	if !d.waitLog("started", 10*time.Second) {
		t.Fatalf("daemon did not start with PATH empty:\n%s", d.stderr)
	}
	var traced *exec.Cmd
	trace := filepath.Join(t.TempDir(), "execve.trace")
	if strace, err := exec.LookPath("strace"); err == nil {
		traced = exec.Command(strace, "-f", "-qq", "-e", "trace=execve,execveat", "-o", trace, "-p", strconv.Itoa(d.cmd.Process.Pid))
		if err := traced.Start(); err != nil {
			t.Fatalf("strace: %v", err)
		}
		time.Sleep(300 * time.Millisecond) // let strace attach to every thread
	}
	open, close := e.sequences()
	e.knock(netip.Addr{}, netns.ServerIP4, open)
	if !e.reachable(netip.Addr{}, netns.ServerIP4, guardPort) {
		t.Fatalf("not open after the open sequence with PATH empty")
	}
	e.knock(netip.Addr{}, netns.ServerIP4, close)
	if e.reachable(netip.Addr{}, netns.ServerIP4, guardPort) {
		t.Fatalf("still open after the close sequence with PATH empty")
	}
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status = %d", code)
	}
	if traced != nil {
		traced.Wait()
		b, _ := os.ReadFile(trace)
		if bytes.Contains(b, []byte("execve")) {
			t.Errorf("the daemon executed a program:\n%s", b)
		}
	}
}

// TestSignalDumps: SIGUSR1 logs the opened sources, SIGUSR2 the knocking
// ones, and the daemon goes on.
func TestSignalDumps(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.start()
	open, _ := e.sequences()
	e.knock(netip.Addr{}, netns.ServerIP4, open)
	e.knock(strangerIP4, netns.ServerIP4, open[:2]) // knocking, not opened
	if !d.waitLog("msg=open ", 2*time.Second) {
		t.Fatalf("no open logged")
	}
	d.cmd.Process.Signal(syscall.SIGUSR1)
	if !d.waitLog("msg=opened source="+netns.ClientIP4.String(), 5*time.Second) {
		t.Errorf("SIGUSR1 did not log the opened source")
	}
	d.cmd.Process.Signal(syscall.SIGUSR2)
	if !d.waitLog("msg=knocking source="+strangerIP4.String(), 5*time.Second) {
		t.Errorf("SIGUSR2 did not log the knocking source")
	}
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status = %d", code)
	}
}

// TestDropsCapabilities: started as root, the daemon keeps CAP_NET_ADMIN
// alone in its effective, permitted and bounding sets, on every thread,
// whether built as the Makefile builds it (CGO_ENABLED=0) or with cgo on,
// as a plain `go build` or `go install` does where a C compiler is
// installed.
func TestDropsCapabilities(t *testing.T) {
	for _, cgo := range []string{"0", "1"} {
		t.Run("CGO_ENABLED="+cgo, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if cgo == "1" {
				e.bin = buildCgo(t)
			}
			dropsCapabilities(t, e)
		})
	}
}

// buildCgo builds the daemon with cgo on, or skips the test where no C
// compiler is installed.
func buildCgo(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no C compiler: cannot build with cgo")
	}
	bin := filepath.Join(t.TempDir(), "nfqknockd-cgo")
	build := exec.Command("go", "build", "-buildvcs=false", "-o", bin, daemonPkg)
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build with cgo: %v: %s", err, out)
	}
	if out, err := exec.Command("go", "version", "-m", bin).CombinedOutput(); err != nil || !strings.Contains(string(out), "CGO_ENABLED=1") {
		t.Fatalf("the binary was not built with cgo: %v: %s", err, out)
	}
	return bin
}

// dropsCapabilities runs one case of TestDropsCapabilities.
func dropsCapabilities(t *testing.T, e *env) {
	d := e.start()
	if strings.Contains(d.stderr.String(), "could not drop") {
		t.Fatalf("daemon could not drop capabilities:\n%s", d.stderr)
	}
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", d.cmd.Process.Pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("no threads found: %v", err)
	}
	want := fmt.Sprintf("%016x", uint64(1)<<unix.CAP_NET_ADMIN)
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			switch k {
			case "CapEff", "CapPrm", "CapBnd":
				if strings.TrimSpace(v) != want {
					t.Errorf("%s: %s = %s, want %s (CAP_NET_ADMIN only)", task, k, strings.TrimSpace(v), want)
				}
			case "CapInh", "CapAmb":
				if strings.TrimSpace(v) != "0000000000000000" {
					t.Errorf("%s: %s = %s, want none", task, k, strings.TrimSpace(v))
				}
			case "NoNewPrivs":
				if strings.TrimSpace(v) != "1" {
					t.Errorf("%s: NoNewPrivs = %s", task, strings.TrimSpace(v))
				}
			}
		}
	}
	// And it still works with what it kept.
	open, _ := e.sequences()
	e.knock(netip.Addr{}, netns.ServerIP4, open)
	if !e.reachable(netip.Addr{}, netns.ServerIP4, guardPort) {
		t.Fatalf("not open after the open sequence, with CAP_NET_ADMIN only")
	}
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status = %d (table deletion with CAP_NET_ADMIN only)", code)
	}
}
