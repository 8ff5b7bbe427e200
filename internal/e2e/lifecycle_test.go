package e2e

// Life-cycle tests (docs/design.md, "Life cycle"): a table of another name, a
// table of the configured name that is not ours, a restart (SIGQUIT) that
// leaves no gap in the guard, a reload of the secrets (SIGHUP), and the
// sources never guarded (loopback, --allow). Like e2e_test.go they run the
// built binary in a server namespace and knock with real TCP from a client
// namespace; they need root.

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"golang.org/x/sys/unix"
)

// lcCount waits until the daemon's stderr holds s at least n times.
func lcCount(d *daemon, s string, n int, max time.Duration) bool {
	deadline := time.Now().Add(max)
	for {
		if strings.Count(d.stderr.String(), s) >= n {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-d.done:
			return strings.Count(d.stderr.String(), s) >= n
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// lcTables returns `nft list tables` of the server namespace.
func lcTables(e *env) string {
	e.t.Helper()
	out, err := e.nft("list", "tables")
	if err != nil {
		e.t.Fatalf("nft list tables: %v: %s", err, out)
	}
	return out
}

// lcNoDefaultTable fails the test when the server namespace has a table
// inet nfqknock.
func lcNoDefaultTable(e *env, when string) {
	e.t.Helper()
	if out := lcTables(e); strings.Contains(out, "table inet nfqknock\n") || strings.HasSuffix(strings.TrimSpace(out), "table inet nfqknock") {
		e.t.Errorf("%s: a table inet nfqknock exists:\n%s", when, out)
	}
}

// lcList returns `nft list table inet name`, failing the test when it
// does not exist.
func lcList(e *env, name string) string {
	e.t.Helper()
	out, err := e.nft("list", "table", "inet", name)
	if err != nil {
		e.t.Fatalf("nft list table inet %s: %v: %s", name, err, out)
	}
	return out
}

// lcStopGone stops d with SIGTERM, fails the test unless it exited 0, and
// checks that it deleted its table inet name.
func lcStopGone(e *env, d *daemon, name string) {
	e.t.Helper()
	d.term()
	lcGone(e, name)
}

// lcGone fails the test when table inet name still exists.
func lcGone(e *env, name string) {
	e.t.Helper()
	if out, err := e.nft("list", "table", "inet", name); err == nil {
		e.t.Errorf("table inet %s still there:\n%s", name, out)
	}
}

var (
	lcCounterRE = regexp.MustCompile(`counter packets \d+ bytes \d+`)
	lcExpiresRE = regexp.MustCompile(` expires [0-9dhms.]+`)
)

// lcStable returns an nft listing without what traffic and time change:
// the counters' values and the elements' remaining lives.
func lcStable(list string) string {
	return lcExpiresRE.ReplaceAllString(lcCounterRE.ReplaceAllString(list, "counter"), "")
}

// lcOpen knocks the open sequence from src and waits until the guarded
// port answers src.
func lcOpen(e *env, d *daemon, src, dst netip.Addr, port int, seq []uint16) {
	e.t.Helper()
	e.knock(src, dst, seq)
	if !d.waitLog("msg=open source="+src.String()+" ", 3*time.Second) {
		e.t.Fatalf("no open of %s logged after the open sequence", src)
	}
	if !e.reachable(src, dst, port) {
		e.t.Fatalf("port %d dropped %s after its open sequence", port, src)
	}
}

// lcOneLine checks that the failed daemon d exited 1 with exactly the line
// want on stderr, and nothing else.
func lcOneLine(t *testing.T, d *daemon, want string) {
	t.Helper()
	if code := d.wait(10 * time.Second); code != 1 {
		t.Errorf("exit status = %d, want 1", code)
	}
	got := d.stderr.String()
	if !strings.HasSuffix(got, "\n") {
		t.Errorf("stderr does not end in a newline: %q", got)
	}
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if last := lines[len(lines)-1]; last != want {
		t.Errorf("error line = %q, want %q", last, want)
	}
	if len(lines) > 1 {
		t.Errorf("stderr has %d lines before the error line, want none (one line in all):\n%s", len(lines)-1, strings.Join(lines[:len(lines)-1], "\n"))
	}
}

// TestCustomTable: with --table custom everything happens in table inet
// custom (open, close, SIGUSR1, restart), and no table inet nfqknock is
// made. Two daemons with two tables, queues, secrets and guarded ports each
// open their own port only. A second daemon for a table in use fails with
// one line and the first keeps guarding, its table unchanged.
func TestCustomTable(t *testing.T) {
	t.Run("one", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		d := e.start("--table", "custom")
		if !strings.Contains(d.stderr.String(), `table="inet custom"`) {
			t.Errorf("start line does not name table inet custom:\n%s", d.stderr)
		}
		lcNoDefaultTable(e, "after the start")
		open, close := e.sequences()

		for _, fam := range families {
			if e.reachable(fam.client, fam.server, guardPort) {
				t.Fatalf("%s: guarded port answered before any knock", fam.name)
			}
			lcOpen(e, d, fam.client, fam.server, guardPort, open)
			if list := lcList(e, "custom"); !strings.Contains(list, fam.client.String()+" . "+strconv.Itoa(guardPort)+" timeout 1h") {
				t.Errorf("%s: table inet custom lacks the opened client:\n%s", fam.name, list)
			}
		}
		// Close the IPv6 client; the IPv4 one stays open.
		e.knock(netns.ClientIP6, netns.ServerIP6, close)
		if !d.waitLog("msg=close source="+netns.ClientIP6.String(), 3*time.Second) {
			t.Fatalf("no close logged after the close sequence")
		}
		if e.reachable(netns.ClientIP6, netns.ServerIP6, guardPort) {
			t.Errorf("guarded port answered the IPv6 client after its close sequence")
		}
		// The kernel filter still lists it among the knocking sources for
		// a while; the allow set no longer holds it.
		if set, err := e.nft("list", "set", "inet", "custom", "allow6"); err != nil || strings.Contains(set, netns.ClientIP6.String()) {
			t.Errorf("set allow6 of table inet custom still holds the closed IPv6 client: %v\n%s", err, set)
		}

		d.cmd.Process.Signal(syscall.SIGUSR1)
		if !d.waitLog(`msg="opened sources" count=1`, 5*time.Second) {
			t.Errorf("SIGUSR1 did not log count=1")
		}
		if !strings.Contains(d.stderr.String(), "msg=opened source="+netns.ClientIP4.String()+" ") {
			t.Errorf("SIGUSR1 did not list the opened client %s", netns.ClientIP4)
		}

		// Restart: SIGQUIT leaves table inet custom guarding; the next
		// daemon takes it over with the opened client.
		if code := d.stop(syscall.SIGQUIT); code != 0 {
			t.Errorf("exit status after SIGQUIT = %d, want 0", code)
		}
		if !strings.Contains(d.stderr.String(), "msg=\"restarting: ") {
			t.Errorf("no restarting logged after SIGQUIT")
		}
		if list := lcList(e, "custom"); !strings.Contains(list, netns.ClientIP4.String()+" . "+strconv.Itoa(guardPort)+" timeout 1h") {
			t.Errorf("table inet custom lost the opened client over SIGQUIT:\n%s", list)
		}
		lcNoDefaultTable(e, "after SIGQUIT")
		d = e.start("--table", "custom")
		for _, want := range []string{`table="inet custom"`, "took_over=true", "opened_kept=1"} {
			if !strings.Contains(d.stderr.String(), want) {
				t.Errorf("start line after the restart lacks %s:\n%s", want, d.stderr)
			}
		}
		if !e.reachable(netns.ClientIP4, netns.ServerIP4, guardPort) {
			t.Errorf("opened client lost its access over the restart")
		}
		if e.reachable(strangerIP4, netns.ServerIP4, guardPort) {
			t.Errorf("guarded port answered a stranger after the restart")
		}
		if e.reachable(netns.ClientIP6, netns.ServerIP6, guardPort) {
			t.Errorf("the closed IPv6 client answered after the restart")
		}
		lcNoDefaultTable(e, "after the restart")
		lcStopGone(e, d, "custom")
		lcNoDefaultTable(e, "after SIGTERM")
	})

	t.Run("two", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.addStranger6()
		const portB = 2224
		for _, a := range []netip.Addr{netns.ServerIP4, netns.ServerIP6} {
			e.listen(netip.AddrPortFrom(a, portB))
		}
		const (
			openA, closeA = "table a open secret", "table a close secret"
			openB, closeB = "table b open secret", "table b close secret"
		)
		argsA := []string{"--range", "1-65535", "--guard", strconv.Itoa(guardPort), "-o", openA, "-c", closeA, "--table", "a", "-q", "100"}
		argsB := []string{"--range", "1-65535", "--guard", strconv.Itoa(portB), "-o", openB, "-c", closeB, "--table", "b", "-q", "101"}
		da := e.startArgs(argsA...)
		db := e.startArgs(argsB...)
		seqA, _ := e.sequencesOf("-o", openA, "-c", closeA)
		seqB, _ := e.sequencesOf("-o", openB, "-c", closeB)
		lcNoDefaultTable(e, "with daemons a and b")

		// Per family: the client knocks a's secret, the stranger b's.
		for _, fam := range []struct {
			name                     string
			server, client, stranger netip.Addr
		}{
			{"ipv4", netns.ServerIP4, netns.ClientIP4, strangerIP4},
			{"ipv6", netns.ServerIP6, netns.ClientIP6, stranger6},
		} {
			for _, port := range []int{guardPort, portB} {
				for _, src := range []netip.Addr{fam.client, fam.stranger} {
					if e.reachable(src, fam.server, port) {
						t.Fatalf("%s: port %d answered %s before any knock", fam.name, port, src)
					}
				}
			}
			lcOpen(e, da, fam.client, fam.server, guardPort, seqA)
			if e.reachable(fam.client, fam.server, portB) {
				t.Errorf("%s: a's secret opened b's port %d", fam.name, portB)
			}
			lcOpen(e, db, fam.stranger, fam.server, portB, seqB)
			if e.reachable(fam.stranger, fam.server, guardPort) {
				t.Errorf("%s: b's secret opened a's port %d", fam.name, guardPort)
			}
			if strings.Contains(db.stderr.String(), "msg=open source="+fam.client.String()+" ") {
				t.Errorf("%s: daemon b opened %s, which knocked a's secret", fam.name, fam.client)
			}
			if strings.Contains(da.stderr.String(), "msg=open source="+fam.stranger.String()+" ") {
				t.Errorf("%s: daemon a opened %s, which knocked b's secret", fam.name, fam.stranger)
			}
		}
		listA, listB := lcList(e, "a"), lcList(e, "b")
		if !strings.Contains(listA, "elements = { "+strconv.Itoa(guardPort)+" }") || !strings.Contains(listB, "elements = { "+strconv.Itoa(portB)+" }") {
			t.Errorf("guard sets are not a {%d} and b {%d}:\n%s\n%s", guardPort, portB, listA, listB)
		}

		// A second daemon for table a, on another queue: one line, exit 1,
		// nothing touched.
		before := lcStable(lcList(e, "a"))
		beforeB := lcStable(lcList(e, "b"))
		second := e.spawnArgs(nil, "--range", "1-65535", "--guard", strconv.Itoa(guardPort), "-o", openA, "-c", closeA, "--table", "a", "-q", "102")
		lcOneLine(t, second, "nfqknockd: --table a: another nfqknockd is running with this table")
		if after := lcStable(lcList(e, "a")); after != before {
			t.Errorf("table inet a changed by the second daemon:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if after := lcStable(lcList(e, "b")); after != beforeB {
			t.Errorf("table inet b changed by the second daemon for a:\nbefore:\n%s\nafter:\n%s", beforeB, after)
		}
		// The first keeps guarding: the stranger (opened for b only) is
		// refused on a's port, and a knock of a's secret still opens.
		if e.reachable(strangerIP4, netns.ServerIP4, guardPort) {
			t.Errorf("daemon a's port answered a stranger after the second daemon failed")
		}
		lcOpen(e, da, strangerIP4, netns.ServerIP4, guardPort, seqA)

		for name, d := range map[string]*daemon{"a": da, "b": db} {
			lcStopGone(e, d, name)
		}
		lcNoDefaultTable(e, "after both stopped")
	})
}

// lcHostFilter is a host's own table, loaded with nft -f: it has no
// counter, so listing it twice gives the same bytes.
const lcHostFilter = `table inet filter {
	set admins {
		type ipv4_addr
		elements = { 192.0.2.7 }
	}
	chain input {
		type filter hook input priority filter; policy accept;
		ip saddr @admins tcp dport 9999 accept comment "host rule"
		tcp dport 9998 drop
	}
}
`

// TestHostTableNotOurs: nfqknockd --table filter, where the host has its
// own table inet filter, exits 1 with one line and leaves it byte for byte;
// a daemon of the default table, stopped by SIGTERM, deletes only its own.
func TestHostTableNotOurs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	load := netns.Command(e.pair.Server, "nft", "-f", "-")
	load.Stdin = strings.NewReader(lcHostFilter)
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v: %s", err, out)
	}
	before := lcList(e, "filter")
	t.Logf("host table:\n%s", before)

	d := e.spawn(nil, "--table", "filter")
	lcOneLine(t, d, "nfqknockd: --table filter: table inet filter exists and is not nfqknockd's: it is left untouched; give another --table")
	if after := lcList(e, "filter"); after != before {
		t.Errorf("table inet filter changed by nfqknockd --table filter:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if tables := lcTables(e); strings.TrimSpace(tables) != "table inet filter" {
		t.Errorf("tables after the refused start:\n%s", tables)
	}

	// A daemon of the default table beside it; SIGTERM deletes only ours.
	d = e.start()
	if e.reachable(strangerIP4, netns.ServerIP4, guardPort) {
		t.Errorf("guarded port answered a stranger")
	}
	lcStopGone(e, d, "nfqknock")
	if after := lcList(e, "filter"); after != before {
		t.Errorf("table inet filter changed by a daemon of the default table:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestRestartKeepsGuard: a stranger tries to connect every 50 ms through a
// restart (SIGQUIT) or a crash (SIGKILL), a gap without a daemon, and a new
// daemon that takes the table over, and never gets through; the opened
// client stays open. SIGTERM then deletes the table. On a kernel with
// persist the table itself stays; on one with owner alone (persist switched
// off by the test hook) the owned table goes with the daemon and the
// backup table guards in the gap.
func TestRestartKeepsGuard(t *testing.T) {
	for _, mode := range []string{"persist", "owner"} {
		for _, sig := range []syscall.Signal{syscall.SIGQUIT, syscall.SIGKILL} {
			for _, fam := range []struct {
				name                     string
				server, client, stranger netip.Addr
			}{
				{"ipv4", netns.ServerIP4, netns.ClientIP4, strangerIP4},
				{"ipv6", netns.ServerIP6, netns.ClientIP6, stranger6},
			} {
				t.Run(mode+"/"+unix.SignalName(sig)+"/"+fam.name, func(t *testing.T) {
					t.Parallel()
					restartKeepsGuard(t, mode, sig, fam.server, fam.client, fam.stranger)
				})
			}
		}
	}
}

// restartKeepsGuard runs one case of TestRestartKeepsGuard.
func restartKeepsGuard(t *testing.T, mode string, sig syscall.Signal, server, client, stranger netip.Addr) {
	e := newEnv(t)
	e.addStranger6()
	start := func() *daemon {
		if hook := genEnv(mode); hook != "" {
			d := e.spawn(append(os.Environ(), hook))
			if !d.waitLog("msg=started", 10*time.Second) {
				t.Fatalf("daemon did not start; stderr:\n%s", d.stderr)
			}
			return d
		}
		return e.start()
	}
	d := start()
	open, _ := e.sequences()
	lcOpen(e, d, client, server, guardPort, open)

	p := testutil.StartProber(e.pair.Client, map[netip.Addr]netip.AddrPort{stranger: netip.AddrPortFrom(server, guardPort)}, 200*time.Millisecond)
	defer p.Halt()
	p.WaitMore(t, 10, "before the restart")

	code := d.stop(sig)
	if sig == syscall.SIGQUIT && code != 0 {
		t.Fatalf("exit status after SIGQUIT = %d, want 0", code)
	}
	atExit := p.Attempts.Load()
	if sig == syscall.SIGQUIT && !strings.Contains(d.stderr.String(), "msg=\"restarting: ") {
		t.Errorf("no restarting logged after SIGQUIT:\n%s", d.stderr)
	}
	kept := "nfqknock"
	if mode == "owner" {
		lcGone(e, "nfqknock") // it went with its owner
		kept = "nfqknock_backup"
	}
	list := lcList(e, kept)
	if !strings.Contains(list, client.String()+" . "+strconv.Itoa(guardPort)+" timeout 1h") {
		t.Errorf("table %s after %v lacks the opened client:\n%s", kept, sig, list)
	}
	// The gap: no daemon runs.
	p.WaitMore(t, 10, "with no daemon")
	if !e.reachable(client, server, guardPort) {
		t.Errorf("opened client refused with no daemon running")
	}

	d = start()
	inGap := p.Attempts.Load() - atExit
	for _, want := range []string{"took_over=true", "opened_kept=1"} {
		if !strings.Contains(d.stderr.String(), want) {
			t.Errorf("start line of the new daemon lacks %s:\n%s", want, d.stderr)
		}
	}
	if !e.reachable(client, server, guardPort) {
		t.Errorf("opened client lost its access over the restart")
	}
	p.WaitMore(t, 10, "after the new daemon started")
	p.Halt()
	t.Logf("prober %s -> [%s]:%d: %d attempts (%d between the first daemon's exit and the second's start), %d succeeded, %d other errors",
		stranger, server, guardPort, p.Attempts.Load(), inGap, p.Successes.Load(), p.Errs.Load())
	if n := p.Successes.Load(); n != 0 {
		t.Errorf("the stranger connected %d times of %d through the restart", n, p.Attempts.Load())
	}
	if n := p.Errs.Load(); n != 0 {
		t.Errorf("%d probe attempts failed otherwise than by a drop, first: %v", n, p.FirstErr.Load())
	}

	lcStopGone(e, d, "nfqknock")
	lcGone(e, "nfqknock_backup")
}

// TestReloadSecretsE2E: SIGHUP re-reads --secret-file: the old sequence no
// longer opens, the new one does, a source opened before stays open; a
// broken file is refused and the secrets in force stay. (TestReloadSecrets
// is the unit test of reloadSecrets, in secrets_test.go.)
func TestReloadSecretsE2E(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addStranger6()
	const (
		oldOpen, oldClose = "reload old open secret", "reload old close secret"
		newOpen, newClose = "reload new open secret", "reload new close secret"
		brokenOpen        = "reload broken open secret"
	)
	dir := t.TempDir()
	file := testutil.WriteFile(t, dir, "secrets", fmt.Sprintf("# test\nopen=%s\nclose=%s\n", oldOpen, oldClose), 0o600)
	d := e.startArgs("--range", "1-65535", "--guard", strconv.Itoa(guardPort), "--secret-file", file)
	if !strings.Contains(d.stderr.String(), "--secret-file") {
		t.Errorf("start line does not say the secrets come from --secret-file:\n%s", d.stderr)
	}
	oldOpenSeq, oldCloseSeq := e.sequencesOf("-o", oldOpen, "-c", oldClose)
	newOpenSeq, newCloseSeq := e.sequencesOf("-o", newOpen, "-c", newClose)

	// The old secrets work: open and close the IPv4 client.
	lcOpen(e, d, netns.ClientIP4, netns.ServerIP4, guardPort, oldOpenSeq)
	e.knock(netns.ClientIP4, netns.ServerIP4, oldCloseSeq)
	if !d.waitLog("msg=close source="+netns.ClientIP4.String(), 3*time.Second) {
		t.Fatalf("no close logged after the old close sequence")
	}
	if e.reachable(netns.ClientIP4, netns.ServerIP4, guardPort) {
		t.Fatalf("guarded port answered after the old close sequence")
	}
	// The IPv6 client is opened before the reload and must stay open.
	lcOpen(e, d, netns.ClientIP6, netns.ServerIP6, guardPort, oldOpenSeq)

	testutil.WriteFile(t, dir, "secrets", fmt.Sprintf("open=%s\nclose=%s\n", newOpen, newClose), 0o600)
	d.cmd.Process.Signal(syscall.SIGHUP)
	if !d.waitLog("msg=reloaded", 5*time.Second) {
		t.Fatalf("no reloaded logged after SIGHUP")
	}
	// The old sequence from the stranger, then the new one from the client:
	// the queue is read in order, so once the client's open is logged the
	// stranger's knocks were seen.
	e.knock(strangerIP4, netns.ServerIP4, oldOpenSeq)
	e.knock(netns.ClientIP4, netns.ServerIP4, newOpenSeq)
	if !lcCount(d, "msg=open source="+netns.ClientIP4.String()+" ", 2, 3*time.Second) {
		t.Fatalf("the new open sequence did not open after the reload")
	}
	if !e.reachable(netns.ClientIP4, netns.ServerIP4, guardPort) {
		t.Errorf("guarded port dropped the client after the new open sequence")
	}
	if strings.Contains(d.stderr.String(), "msg=open source="+strangerIP4.String()) || e.reachable(strangerIP4, netns.ServerIP4, guardPort) {
		t.Errorf("the old open sequence still opened after the reload")
	}
	if !e.reachable(netns.ClientIP6, netns.ServerIP6, guardPort) {
		t.Errorf("a source opened before the reload lost its access")
	}

	// Broken files: one secret only, then both but mode 0644.
	for i, broken := range []struct {
		what, content string
		mode          os.FileMode
	}{
		{"only an open= line", "open=" + brokenOpen + "\n", 0o600},
		{"mode 0644", fmt.Sprintf("open=%s\nclose=%s\n", brokenOpen, oldClose), 0o644},
	} {
		testutil.WriteFile(t, dir, "secrets", broken.content, broken.mode)
		d.cmd.Process.Signal(syscall.SIGHUP)
		if !lcCount(d, `msg="reload refused: the secrets in force stay"`, i+1, 5*time.Second) {
			t.Fatalf("%s: no reload refused logged after SIGHUP:\n%s", broken.what, d.stderr)
		}
		if n := strings.Count(d.stderr.String(), "msg=reloaded"); n != 1 {
			t.Errorf("%s: reloaded logged %d times, want once", broken.what, n)
		}
	}
	// The secrets in force are still the new ones: the new open sequence
	// opens the IPv6 stranger, the new close sequence closes the client.
	lcOpen(e, d, stranger6, netns.ServerIP6, guardPort, newOpenSeq)
	e.knock(netns.ClientIP4, netns.ServerIP4, newCloseSeq)
	if !lcCount(d, "msg=close source="+netns.ClientIP4.String(), 2, 3*time.Second) {
		t.Fatalf("the new close sequence did not close after the refused reloads")
	}
	if e.reachable(netns.ClientIP4, netns.ServerIP4, guardPort) {
		t.Errorf("guarded port answered after the new close sequence")
	}
	if !e.reachable(netns.ClientIP6, netns.ServerIP6, guardPort) {
		t.Errorf("a source opened before the reloads lost its access")
	}
	log := d.stderr.String()
	for _, s := range []string{oldOpen, oldClose, newOpen, newClose, brokenOpen} {
		if strings.Contains(log, s) {
			t.Errorf("the log shows a secret (%q)", s)
		}
	}
	lcStopGone(e, d, "nfqknock")
}

// TestLoopbackAndAllow: connects over loopback, from inside the server
// namespace to its own address, are never guarded; --allow sources reach
// the guarded port without a knock, the others do not, and nft list shows
// the ranges in static4 and static6.
func TestLoopbackAndAllow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addStranger6()

	d := e.start()
	for _, fam := range families {
		if e.reachable(fam.client, fam.server, guardPort) {
			t.Errorf("%s: guarded port answered the client before any knock", fam.name)
		}
		var c net.Conn
		err := netns.Do(e.pair.Server, func() (err error) {
			c, err = (&net.Dialer{Timeout: dropTimeout}).Dial("tcp", netip.AddrPortFrom(fam.server, guardPort).String())
			return err
		})
		if err != nil {
			t.Errorf("%s: connect to the server's own [%s]:%d from inside it: %v", fam.name, fam.server, guardPort, err)
			continue
		}
		echo(t, c, "over loopback")
		c.Close()
	}
	d.term()

	d = e.start("--allow", strangerIP4.String()+"/32,"+stranger6.String()+"/128")
	for _, fam := range []struct {
		name                     string
		server, client, stranger netip.Addr
		set                      string
	}{
		{"ipv4", netns.ServerIP4, netns.ClientIP4, strangerIP4, "static4"},
		{"ipv6", netns.ServerIP6, netns.ClientIP6, stranger6, "static6"},
	} {
		if !e.reachable(fam.stranger, fam.server, guardPort) {
			t.Errorf("%s: --allow source %s refused", fam.name, fam.stranger)
		}
		if e.reachable(fam.client, fam.server, guardPort) {
			t.Errorf("%s: %s, not in --allow, reached the guarded port without a knock", fam.name, fam.client)
		}
		set, err := e.nft("list", "set", "inet", "nfqknock", fam.set)
		if err != nil {
			t.Fatalf("nft list set %s: %v: %s", fam.set, err, set)
		}
		if !strings.Contains(set, "flags interval") || !strings.Contains(set, "elements = { "+fam.stranger.String()+" }") {
			t.Errorf("set %s does not hold %s alone:\n%s", fam.set, fam.stranger, set)
		}
	}
	t.Logf("nft list table inet nfqknock:\n%s", lcList(e, "nfqknock"))
	lcStopGone(e, d, "nfqknock")
}
