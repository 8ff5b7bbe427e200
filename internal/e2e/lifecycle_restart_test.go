package e2e

// Life-cycle tests, continued (see lifecycle_test.go): a table of the
// configured name that is not ours, a restart that leaves no gap in the
// guard, a reload of the secrets, and the sources never guarded.

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"golang.org/x/sys/unix"
)

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
			for _, fam := range strangerFams {
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
