package pkgtest

import (
	"bytes"
	"context"
	"fmt"
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

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"golang.org/x/sys/unix"
)

// Addresses of the client namespace that never knock (TestDebUpgrade's
// prober). The IPv6 one is deprecated (preferred_lft 0), so that the
// kernel never picks it as the source of the knocking client's packets;
// a socket bound to it still sends from it.
var (
	strangerIP4 = netip.MustParseAddr("10.200.0.3")
	strangerIP6 = netip.MustParseAddr("fd00:200::3")
)

// fakeSystemd is a systemctl that logs its arguments, for the package's
// scripts, run by withSystemd.
type fakeSystemd struct {
	bin string // the directory of the fake systemctl, first in PATH
	log string // one line per systemctl call: its arguments
}

// newFakeSystemd writes a systemctl that appends its arguments to a log
// and exits with $NFQK_SYSTEMCTL_STATUS (0 when unset).
func newFakeSystemd(t *testing.T) *fakeSystemd {
	t.Helper()
	dir := privateDir(t)
	f := &fakeSystemd{bin: filepath.Join(dir, "bin"), log: filepath.Join(dir, "systemctl.log")}
	if err := os.Mkdir(f.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$*\" >> %s\nexit ${NFQK_SYSTEMCTL_STATUS:-0}\n", f.log)
	if err := os.WriteFile(filepath.Join(f.bin, "systemctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return f
}

// run runs name with args where the package's scripts see systemd as PID
// 1 (booted) or not: in a private mount namespace, /run is an empty tmpfs,
// with /run/systemd/system when booted (what the scripts test), and the
// fake systemctl comes first in PATH. Nothing outside the command sees
// either. It returns the command's output and the systemctl calls it made.
func (f *fakeSystemd) run(t *testing.T, booted bool, env []string, name string, args ...string) (out []byte, calls []string, err error) {
	t.Helper()
	needCommand(t, "unshare", "util-linux")
	if err := os.WriteFile(f.log, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	setup := "mount -t tmpfs -o mode=0755 nfqk-pkgtest /run"
	if booted {
		setup += " && mkdir -p /run/systemd/system"
	}
	argv := append([]string{"--mount", "--propagation", "private", "--", "sh", "-c", setup + ` && exec "$@"`, "sh", name}, args...)
	env = append(append([]string{}, env...), "PATH="+f.bin+":"+os.Getenv("PATH"))
	out, err = run(t, 5*time.Minute, "/", env, "unshare", argv...)
	b, rerr := os.ReadFile(f.log)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if s := strings.TrimSuffix(string(b), "\n"); s != "" {
		calls = strings.Split(s, "\n")
	}
	return out, calls, err
}

// TestSystemdScriptCalls runs the package's scripts with the arguments
// that dpkg, rpm and apk give them, where systemd is PID 1 (a fake
// systemctl logs the calls) and where it is not: an upgrade must restart
// the daemon (try-restart, which stops it with the unit's
// RestartKillSignal and keeps the guard) and never stop it; a removal
// stops and disables it; without systemd nothing is called; every script
// exits 0, even when systemctl fails.
func TestSystemdScriptCalls(t *testing.T) {
	netns.RequireRoot(t)
	f := newFakeSystemd(t)
	dir := filepath.Join(root(t), "packaging", "scripts")
	var (
		restart = []string{"daemon-reload", "try-restart nfqknockd.service"}
		stop    = []string{"disable --now nfqknockd.service"}
		reload  = []string{"daemon-reload"}
	)
	cases := []struct {
		what, script string
		args         []string
		want         []string
	}{
		{"deb postinst, install", "postinstall.sh", []string{"configure", ""}, restart},
		{"deb postinst, upgrade", "postinstall.sh", []string{"configure", "0.0.0~pkgtest-1"}, restart},
		{"deb postinst, abort-upgrade", "postinstall.sh", []string{"abort-upgrade", "0.0.1~pkgtest-1"}, restart},
		{"rpm %post, install", "postinstall.sh", []string{"1"}, restart},
		{"rpm %post, upgrade", "postinstall.sh", []string{"2"}, restart},
		{"apk .post-install", "postinstall.sh", []string{"0.0.0_pkgtest-r1"}, restart},
		{"apk .post-upgrade", "postinstall.sh", []string{"0.0.1_pkgtest-r1", "0.0.0_pkgtest-r1"}, restart},

		{"deb prerm, remove", "preremove.sh", []string{"remove"}, stop},
		{"deb prerm, upgrade (the old package's)", "preremove.sh", []string{"upgrade", "0.0.1~pkgtest-1"}, nil},
		{"deb prerm, failed-upgrade (the new package's)", "preremove.sh", []string{"failed-upgrade", "0.0.0~pkgtest-1"}, nil},
		{"deb prerm, deconfigure", "preremove.sh", []string{"deconfigure", "in-favour", "other", "1.0"}, nil},
		{"rpm %preun, erase", "preremove.sh", []string{"0"}, stop},
		{"rpm %preun, upgrade", "preremove.sh", []string{"1"}, nil},
		{"rpm %preun, upgrade, two versions left", "preremove.sh", []string{"2"}, nil},
		{"apk .pre-deinstall", "preremove.sh", []string{"0.0.0_pkgtest-r1"}, stop},

		{"deb postrm, remove", "postremove.sh", []string{"remove"}, reload},
		{"deb postrm, purge", "postremove.sh", []string{"purge"}, reload},
		{"deb postrm, upgrade", "postremove.sh", []string{"upgrade", "0.0.1~pkgtest-1"}, reload},
		{"rpm %postun, erase", "postremove.sh", []string{"0"}, reload},
		{"rpm %postun, upgrade", "postremove.sh", []string{"1"}, reload},
		{"apk .post-deinstall", "postremove.sh", []string{"0.0.0_pkgtest-r1"}, reload},
	}
	for _, c := range cases {
		t.Run(c.what, func(t *testing.T) {
			script := filepath.Join(dir, c.script)
			args := append([]string{script}, c.args...)
			out, calls, err := f.run(t, true, nil, "sh", args...)
			if err != nil || len(out) > 0 {
				t.Errorf("%s %q with systemd: %v, output %q; want exit 0 and no output", c.script, c.args, err, out)
			}
			if strings.Join(calls, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("%s %q with systemd called systemctl %q, want %q", c.script, c.args, calls, c.want)
			}
			out, calls, err = f.run(t, true, []string{"NFQK_SYSTEMCTL_STATUS=1"}, "sh", args...)
			if err != nil || len(out) > 0 {
				t.Errorf("%s %q with systemctl failing: %v, output %q; want exit 0 and no output", c.script, c.args, err, out)
			}
			if strings.Join(calls, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("%s %q with systemctl failing called %q, want %q", c.script, c.args, calls, c.want)
			}
			out, calls, err = f.run(t, false, nil, "sh", args...)
			if err != nil || len(out) > 0 || len(calls) > 0 {
				t.Errorf("%s %q without systemd: %v, output %q, systemctl calls %q; want exit 0, nothing", c.script, c.args, err, out, calls)
			}
		})
	}
}

// unitSignal returns the signal of a Kill setting of the installed unit
// (KillSignal=, RestartKillSignal=), failing the test when it is missing.
func unitSignal(t *testing.T, u unitFile, key string) syscall.Signal {
	t.Helper()
	v := u.last("Service", key)
	if v == "" {
		t.Fatalf("%s has no %s=", installedUnit, key)
	}
	name := strings.ToUpper(v)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig := unix.SignalNum(name)
	if sig == 0 {
		t.Fatalf("%s=%s: not a signal", key, v)
	}
	return sig
}

// installedUnitFile parses the installed unit.
func installedUnitFile(t *testing.T) unitFile {
	t.Helper()
	text, err := os.ReadFile(installedUnit)
	if err != nil {
		t.Fatal(err)
	}
	u, err := parseUnit(string(text))
	if err != nil {
		t.Fatalf("%s: %v", installedUnit, err)
	}
	return u
}

// dialFrom connects from src (an address of namespace ns) to dst.
func dialFrom(ns string, src netip.Addr, dst netip.AddrPort, limit time.Duration) error {
	return netns.Do(ns, func() error {
		d := net.Dialer{Timeout: limit, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		c, err := d.Dial("tcp", dst.String())
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// knockFrom sends one bare SYN from src (any address when not valid) to
// each port of host, each a connect attempt abandoned after 100 ms.
func knockFrom(t *testing.T, ns string, src, host netip.Addr, ports []uint16) {
	t.Helper()
	err := netns.Do(ns, func() error {
		for _, p := range ports {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
			if c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(host, p).String()); err == nil {
				c.Close()
			}
			cancel()
			time.Sleep(10 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// probeLimit is how long one attempt of the prober waits: long
// enough for the kernel to send its SYN again after 1 s, so a guard that
// is gone for a moment lets an attempt in even after its first SYN was
// dropped.
const probeLimit = 1500 * time.Millisecond

// TestDebUpgrade upgrades the installed .deb under a running daemon, as far
// as a machine without systemd as PID 1 allows: the package's scripts run
// under dpkg where they see systemd (a fake systemctl logs the calls), and
// the test then does what `systemctl try-restart` does with the installed
// unit. Through the whole upgrade a prober from addresses that never
// knocked tries the guarded port every 50 ms and must never get in, and a
// client that knocked before the upgrade stays open. Then the reload
// (ExecReload=) applies new secrets, and the stop (KillSignal=) deletes the
// table; the package is purged.
func TestDebUpgrade(t *testing.T) {
	setpriv := needDpkgMachine(t)
	oldDeb := buildPackage(t, "deb")
	newDeb := buildPackageVersion(t, "deb", upgradeVersion)
	systemd := newFakeSystemd(t)

	t.Cleanup(func() { purge(t) })
	out, calls, err := systemd.run(t, true, nil, "dpkg", "-i", oldDeb)
	if err != nil {
		t.Fatalf("dpkg -i %s: %v\n%s", filepath.Base(oldDeb), err, out)
	}
	t.Logf("install of %s: systemctl %q", filepath.Base(oldDeb), calls)
	checkVersion(t, testVersion)

	// The old daemon, started as the unit starts it; a guarded service.
	l := unitLaunch(t)
	pair := netns.NewPair(t)
	for _, a := range [][]string{
		{"-n", pair.Client, "addr", "add", strangerIP4.String() + "/24", "dev", "veth0"},
		{"-n", pair.Client, "addr", "add", strangerIP6.String() + "/64", "dev", "veth0", "nodad", "preferred_lft", "0"},
	} {
		if out, err := exec.Command("ip", a...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(a, " "), err, out)
		}
	}
	nft := func(args ...string) (string, error) {
		out, err := netns.Command(pair.Server, "nft", args...).CombinedOutput()
		return string(out), err
	}
	var ln net.Listener
	if err := netns.Do(pair.Server, func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", testGuardPort))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	open, _ := installedSequences(t, l)

	old := startDaemon(t, l, pair.Server, setpriv)
	guarded4 := netip.AddrPortFrom(netns.ServerIP4, testGuardPort)
	guarded6 := netip.AddrPortFrom(netns.ServerIP6, testGuardPort)
	clients := map[netip.Addr]netip.AddrPort{netns.ClientIP4: guarded4, netns.ClientIP6: guarded6}
	for src, dst := range clients {
		if err := dialFrom(pair.Client, src, dst, 800*time.Millisecond); !isTimeout(err) {
			t.Fatalf("before the knock: connect %s -> %s: %v, want dropped (a timeout)", src, dst, err)
		}
		knockFrom(t, pair.Client, src, dst.Addr(), open)
		if err := dialFrom(pair.Client, src, dst, 5*time.Second); err != nil {
			t.Fatalf("after the open knock: connect %s -> %s: %v\n%s", src, dst, err, old.stderr)
		}
	}
	p := testutil.StartProber(pair.Client, map[netip.Addr]netip.AddrPort{strangerIP4: guarded4, strangerIP6: guarded6}, probeLimit)
	defer p.Halt()
	p.WaitMore(t, 20, "before the upgrade")

	// The upgrade: dpkg -i of the new package. Its scripts (the old
	// package's prerm and postrm, the new one's postinst) must not stop the
	// daemon; the new postinst asks systemd for a try-restart.
	out, calls, err = systemd.run(t, true, nil, "dpkg", "-i", newDeb)
	if err != nil {
		t.Fatalf("dpkg -i %s: %v\n%s", filepath.Base(newDeb), err, out)
	}
	t.Logf("upgrade to %s: systemctl %q", filepath.Base(newDeb), calls)
	for _, c := range calls {
		if c != "daemon-reload" && c != "try-restart nfqknockd.service" {
			t.Errorf("the upgrade called systemctl %s: only daemon-reload and try-restart nfqknockd.service may be called", c)
		}
	}
	if len(calls) == 0 || calls[len(calls)-1] != "try-restart nfqknockd.service" {
		t.Errorf("the upgrade's last systemctl call is not try-restart nfqknockd.service: %q", calls)
	}
	if old.exited() {
		t.Fatalf("the old daemon exited during dpkg -i: %v\n%s", old.waitErr, old.stderr)
	}
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", old.pid)); exe != installedDaemon+" (deleted)" {
		t.Errorf("the old daemon runs %q, want the replaced %s (deleted)", exe, installedDaemon)
	}
	checkVersion(t, upgradeVersion)

	// What systemctl try-restart does with the installed unit: the
	// RestartKillSignal to the running daemon, then ExecStart again.
	u := installedUnitFile(t)
	restartSig := unitSignal(t, u, "RestartKillSignal")
	stopSig := unitSignal(t, u, "KillSignal")
	p.WaitMore(t, 10, "after dpkg -i")
	restartAt, startedAtRestart := time.Now(), p.Started.Load()
	old.signal(t, restartSig)
	if !waitFor(30*time.Second, old.exited) {
		t.Fatalf("the old daemon did not exit on RestartKillSignal=%v:\n%s", restartSig, old.stderr)
	}
	exitedAt, startedAtExit := time.Now(), p.Started.Load()
	if old.waitErr != nil {
		t.Errorf("the old daemon exited with %v on RestartKillSignal=%v, want 0:\n%s", old.waitErr, restartSig, old.stderr)
	}
	if !strings.Contains(old.stderr.String(), `msg="restarting: the table stays`) {
		t.Errorf("the old daemon did not log its restart:\n%s", old.stderr)
	}
	for set, c := range map[string]netip.Addr{"allow4": netns.ClientIP4, "allow6": netns.ClientIP6} {
		if out, err := nft("list", "set", "inet", "nfqknock", set); err != nil || !strings.Contains(out, c.String()) {
			t.Errorf("after the old daemon exited: %s is not in set %s: %v\n%s", c, set, err, out)
		}
	}
	// No daemon runs: the table guards alone; the opened client connects.
	// (systemd starts the new daemon at once; the test leaves the gap
	// open for at least 10 attempts of the prober.)
	if err := dialFrom(pair.Client, netns.ClientIP4, guarded4, 5*time.Second); err != nil {
		t.Errorf("with no daemon: the opened client: %v", err)
	}
	if !waitFor(30*time.Second, func() bool { return p.Started.Load() >= startedAtExit+10 }) {
		t.Fatalf("the prober began no attempt with no daemon running")
	}

	neu := startDaemon(t, l, pair.Server, setpriv)
	startedAt, startedAtStart := time.Now(), p.Started.Load()
	for _, want := range []string{"took_over=true", "opened_kept=2"} {
		if !strings.Contains(neu.stderr.String(), want) {
			t.Errorf("the new daemon's start line lacks %s:\n%s", want, neu.stderr)
		}
	}
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", neu.pid)); exe != installedDaemon {
		t.Errorf("the new daemon runs %q, want %s", exe, installedDaemon)
	}
	for src, dst := range clients {
		if err := dialFrom(pair.Client, src, dst, 5*time.Second); err != nil {
			t.Errorf("after the upgrade: the opened client %s -> %s: %v", src, dst, err)
		}
	}
	p.WaitMore(t, 20, "after the new daemon started")
	p.Halt()
	t.Logf("prober %s, %s -> port %d, every 50 ms from each, %v per attempt: %d attempts from before dpkg -i to after the new daemon's start; "+
		"%d begun in the %v from RestartKillSignal to the new daemon's start line, %d of them in the %v with no daemon running; %d got in, %d failed otherwise",
		strangerIP4, strangerIP6, testGuardPort, probeLimit, p.Attempts.Load(),
		startedAtStart-startedAtRestart, startedAt.Sub(restartAt).Round(time.Millisecond),
		startedAtStart-startedAtExit, startedAt.Sub(exitedAt).Round(time.Millisecond),
		p.Successes.Load(), p.Errs.Load())
	if n := p.Successes.Load(); n != 0 {
		t.Errorf("a source that never knocked connected %d times of %d through the upgrade, first %v", n, p.Attempts.Load(), p.FirstIn.Load())
	}
	if n := p.Errs.Load(); n != 0 {
		t.Errorf("%d attempts of the prober failed otherwise than by a drop, first: %v", n, p.FirstErr.Load())
	}

	t.Run("reload", func(t *testing.T) {
		testReload(t, l, u, neu, pair, setpriv, open)
	})

	// Stop: the unit's KillSignal deletes the table.
	neu.signal(t, stopSig)
	if !waitFor(30*time.Second, neu.exited) {
		t.Fatalf("the new daemon did not stop on KillSignal=%v:\n%s", stopSig, neu.stderr)
	}
	if neu.waitErr != nil {
		t.Errorf("the new daemon exited with %v on KillSignal=%v, want 0:\n%s", neu.waitErr, stopSig, neu.stderr)
	}
	if out, _ := nft("list", "tables"); strings.TrimSpace(out) != "" {
		t.Errorf("table left after KillSignal=%v: %s", stopSig, out)
	}
	for _, d := range []*daemonProc{old, neu} {
		for _, s := range []string{l.open, l.close} {
			if strings.Contains(d.stderr.String(), s) {
				t.Errorf("a secret appears in the daemon's log:\n%s", d.stderr)
			}
		}
	}

	// Removal: the scripts stop and disable the unit.
	out, calls, err = systemd.run(t, true, nil, "dpkg", "--purge", pkgName)
	if err != nil {
		t.Fatalf("dpkg --purge: %v\n%s", err, out)
	}
	t.Logf("purge: systemctl %q", calls)
	if len(calls) == 0 || calls[0] != "disable --now nfqknockd.service" {
		t.Errorf("the purge's first systemctl call is not disable --now nfqknockd.service: %q", calls)
	}
	for _, c := range calls {
		if strings.Contains(c, "restart") {
			t.Errorf("the purge called systemctl %s", c)
		}
	}
}

// testReload changes the secrets credential, runs the installed unit's
// ExecReload= as the unit's user, and checks that the daemon reloaded: the
// old open sequence no longer opens, the new one does, the opened clients
// stay open.
func testReload(t *testing.T, l *launch, u unitFile, d *daemonProc, pair *netns.Pair, setpriv string, oldOpen []uint16) {
	line := u.last("Service", "ExecReload")
	if line == "" {
		t.Fatalf("%s has no ExecReload=", installedUnit)
	}
	argv, err := expandExecStart(line, map[string]string{"MAINPID": strconv.Itoa(d.pid)})
	if err != nil {
		t.Fatalf("ExecReload=%s: %v", line, err)
	}
	sendsHUP := false
	switch strings.Join(argv[1:len(argv)-1], " ") {
	case "-HUP", "-SIGHUP", "-1", "-s HUP", "-s SIGHUP", "--signal HUP", "--signal SIGHUP":
		sendsHUP = true
	}
	if filepath.Base(argv[0]) != "kill" || !sendsHUP || argv[len(argv)-1] != strconv.Itoa(d.pid) {
		t.Fatalf("ExecReload=%s runs %q: want kill sending SIGHUP to $MAINPID", line, argv)
	}

	// New secrets in the credential, as a systemd that refreshes it on
	// reload would write them.
	l2 := *l
	l2.open, l2.close = randomSecret(t), randomSecret(t)
	cred := filepath.Join(l.credDir, credentialName)
	if err := os.WriteFile(cred, []byte(fmt.Sprintf("open=%s\nclose=%s\n", l2.open, l2.close)), 0o400); err != nil {
		t.Fatal(err)
	}
	newOpen, _ := installedSequences(t, &l2)
	if fmt.Sprint(newOpen) == fmt.Sprint(oldOpen) {
		t.Fatal("the new secrets give the old open sequence")
	}

	// ExecReload= runs as the service's user, like ExecStart=.
	id := strconv.Itoa(l.uid)
	cmd := exec.Command(setpriv, append([]string{"--reuid=" + id, "--regid=" + id, "--clear-groups", "--no-new-privs",
		"--inh-caps=-all", "--bounding-set=-all,+net_admin"}, argv...)...)
	cmd.Env = l.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ExecReload %q as uid %s: %v\n%s", argv, id, err, out)
	}
	if !waitFor(10*time.Second, func() bool { return strings.Contains(d.stderr.String(), "msg=reloaded") }) {
		t.Fatalf("no reloaded logged after ExecReload:\n%s", d.stderr)
	}
	if d.exited() {
		t.Fatalf("the daemon exited on ExecReload: %v\n%s", d.waitErr, d.stderr)
	}
	expectReload(t, l, d)

	guarded := netip.AddrPortFrom(netns.ServerIP4, testGuardPort)
	knockFrom(t, pair.Client, strangerIP4, netns.ServerIP4, oldOpen)
	if err := dialFrom(pair.Client, strangerIP4, guarded, 800*time.Millisecond); !isTimeout(err) {
		t.Errorf("after the reload the old open sequence still opens: connect %s -> %s: %v", strangerIP4, guarded, err)
	}
	knockFrom(t, pair.Client, strangerIP4, netns.ServerIP4, newOpen)
	if err := dialFrom(pair.Client, strangerIP4, guarded, 5*time.Second); err != nil {
		t.Errorf("after the reload the new open sequence does not open: connect %s -> %s: %v\n%s", strangerIP4, guarded, err, d.stderr)
	}
	if err := dialFrom(pair.Client, netns.ClientIP6, netip.AddrPortFrom(netns.ServerIP6, testGuardPort), 5*time.Second); err != nil {
		t.Errorf("a client opened before the reload lost its access: %v", err)
	}
	for _, s := range []string{l2.open, l2.close} {
		if strings.Contains(d.stderr.String(), s) {
			t.Errorf("a new secret appears in the daemon's log:\n%s", d.stderr)
		}
	}
}

// installedSequences returns the open and close sequences of the launch's
// secrets, from the installed daemon's -s with the unit's flags and the
// credential.
func installedSequences(t *testing.T, l *launch) (open, close []uint16) {
	t.Helper()
	return parseSequences(t, installedShow(t, l))
}

// installedShow returns what the installed daemon's -s prints with the
// unit's flags and credential, run as the unit's user (the credential is
// that user's, as systemd makes it, and the daemon refuses a secret file
// of another account).
func installedShow(t *testing.T, l *launch) string {
	t.Helper()
	setpriv := needCommand(t, "setpriv", "util-linux")
	argv := append(l.setprivArgs(setpriv, false), "-s")
	show := exec.Command(argv[0], argv[1:]...)
	show.Env = l.env
	var stderr bytes.Buffer
	show.Stderr = &stderr
	out, err := show.Output()
	if err != nil {
		t.Fatalf("nfqknockd -s: %v\n%s", err, stderr.Bytes())
	}
	return string(out)
}

// checkVersion checks that the installed binaries are of version.
func checkVersion(t *testing.T, version string) {
	t.Helper()
	out, err := exec.Command(installedDaemon, "--version").CombinedOutput()
	if want := "nfqknockd " + version + "\n"; err != nil || string(out) != want {
		t.Fatalf("%s --version: %q, %v; want %q", installedDaemon, out, err, want)
	}
	if v, ok := installedVersion(); !ok || !strings.HasPrefix(v, strings.Replace(version, "-", "~", 1)) {
		t.Fatalf("installed package version %q, want %s", v, version)
	}
}
