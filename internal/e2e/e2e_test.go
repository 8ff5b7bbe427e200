package e2e

// End-to-end tests: the built nfqknockd binary guards a port in a server
// network namespace, and a client namespace knocks with real TCP over IPv4
// and IPv6. They need root; CI runs them (internal/netns.RequireRoot).

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
)

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
