package pkgtest

import (
	"bufio"
	"bytes"
	"compress/gzip"
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

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// Where the package puts things.
const (
	installedDaemon  = "/usr/sbin/nfqknockd"
	installedClient  = "/usr/bin/nfqknock"
	installedUnit    = "/usr/lib/systemd/system/nfqknockd.service"
	installedDefault = "/etc/default/nfqknockd"
	credentialName   = "nfqknockd.secrets"
)

// testGuardPort is the guarded port of the test's environment file (the
// shipped one guards 22).
const testGuardPort = 2222

// needDpkgMachine skips (fails under CI=true) a test that installs the
// package unless it runs as root with dpkg and setpriv, on a machine
// without an nfqknockd package of its own; it returns setpriv's path.
func needDpkgMachine(t *testing.T) string {
	t.Helper()
	netns.RequireRoot(t)
	needCommand(t, "dpkg", "dpkg")
	setpriv := needCommand(t, "setpriv", "util-linux")
	if v, ok := installedVersion(); ok {
		msg := fmt.Sprintf("an nfqknockd package (%s) is installed on this machine; the test installs and purges its own, so it leaves that one alone", v)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("skipping: " + msg)
	}
	return setpriv
}

// TestDebInstall installs the .deb with dpkg, checks what landed, verifies
// and rates the installed unit, then starts the installed daemon the way
// the unit starts it and checks the open/close flow with real TCP between
// two network namespaces. It purges the package at the end.
func TestDebInstall(t *testing.T) {
	setpriv := needDpkgMachine(t)
	deb := buildPackage(t, "deb")

	t.Cleanup(func() { purge(t) })
	if out, err := run(t, 5*time.Minute, "", nil, "dpkg", "-i", deb); err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, out)
	}

	t.Run("files", func(t *testing.T) {
		noMan := dpkgExcludesMan()
		for _, s := range packageFiles("deb") {
			fi, err := os.Lstat(s.path)
			if err != nil && noMan && strings.HasPrefix(s.path, "/usr/share/") {
				t.Logf("%s not installed: dpkg's path-exclude drops it on this machine", s.path)
				continue
			}
			if err != nil {
				t.Errorf("%v", err)
				continue
			}
			if got := fi.Mode().String(); got != s.mode {
				t.Errorf("%s: mode %s, want %s", s.path, got, s.mode)
			}
			if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 {
				t.Errorf("%s: owner %d:%d, want root", s.path, st.Uid, st.Gid)
			}
		}
		for _, page := range []string{"/usr/share/man/man8/nfqknockd.8.gz", "/usr/share/man/man1/nfqknock.1.gz"} {
			if err := checkManPage(page); err != nil && !noMan {
				t.Error(err)
			}
		}
		out, _ := exec.Command("dpkg-query", "-W", "-f", "${Conffiles}", pkgName).Output()
		for _, c := range conffiles {
			if !strings.Contains(string(out), " "+c+" ") {
				t.Errorf("%s is not a conffile of the installed package: %q", c, out)
			}
		}
	})

	t.Run("version", func(t *testing.T) {
		for _, b := range []struct{ path, name string }{{installedDaemon, "nfqknockd"}, {installedClient, "nfqknock"}} {
			out, err := exec.Command(b.path, "--version").CombinedOutput()
			want := b.name + " " + testVersion + "\n"
			if err != nil || string(out) != want {
				t.Errorf("%s --version: %q, %v; want %q", b.path, out, err, want)
			}
		}
	})

	t.Run("systemd-analyze", func(t *testing.T) {
		needCommand(t, "systemd-analyze", "systemd")
		// With the man page installed, verify also checks Documentation=
		// (it runs man).
		args := []string{"verify", installedUnit}
		if _, err := exec.LookPath("man"); err != nil || dpkgExcludesMan() {
			t.Log("no man command, or dpkg drops man pages here: verify --man=no")
			args = []string{"verify", "--man=no", installedUnit}
		}
		out, err := run(t, time.Minute, "/", nil, "systemd-analyze", args...)
		if err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("systemd-analyze verify %s: %v\n%s", installedUnit, err, out)
		}
		score := exposure(t, "/", installedUnit)
		t.Logf("installed unit: overall exposure %.1f", score)
	})

	t.Run("daemon", func(t *testing.T) {
		testInstalledDaemon(t, setpriv)
	})
}

// purge removes the package and checks that nothing of it is left.
func purge(t *testing.T) {
	if out, err := run(t, 5*time.Minute, "", nil, "dpkg", "--purge", pkgName); err != nil {
		t.Errorf("dpkg --purge %s: %v\n%s", pkgName, err, out)
	}
	if v, ok := installedVersion(); ok {
		t.Errorf("package %s %s still installed after purge", pkgName, v)
	}
	for _, s := range packageFiles("deb") {
		if _, err := os.Lstat(s.path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind by dpkg --purge: %v", s.path, err)
		}
	}
}

// dpkgExcludesMan reports whether dpkg is told not to install man pages
// (path-exclude in /etc/dpkg/dpkg.cfg.d, as minimal container images do).
func dpkgExcludesMan() bool {
	files, _ := filepath.Glob("/etc/dpkg/dpkg.cfg.d/*")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "path-exclude"); ok {
				v = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), "="))
				if m, _ := filepath.Match(v, "/usr/share/man/man8/nfqknockd.8.gz"); m {
					return true
				}
			}
		}
	}
	return false
}

// checkManPage checks that page is gzipped roff with a .TH header.
func checkManPage(page string) error {
	f, err := os.Open(page)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", page, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		return fmt.Errorf("%s: %w", page, err)
	}
	if !bytes.Contains(b, []byte("\n.TH ")) && !bytes.HasPrefix(b, []byte(".TH ")) {
		return fmt.Errorf("%s: no .TH header", page)
	}
	return nil
}

// testInstalledDaemon runs the installed daemon as the unit would, inside
// the server namespace of a pair, under strace when it is there, and
// checks the open/close flow over IPv4 and IPv6, the signals, a clean stop,
// the system calls and socket families against the unit's filters, and the
// start without the capability.
func testInstalledDaemon(t *testing.T, setpriv string) {
	l := unitLaunch(t)
	pair := netns.NewPair(t)
	nft := func(args ...string) (string, error) {
		out, err := netns.Command(pair.Server, "nft", args...).CombinedOutput()
		return string(out), err
	}

	// The sequences, from the installed daemon's -s with the unit's flags
	// and the credential, and from the installed client with the file.
	seqOut := installedShow(t, l)
	open, closeSeq := parseSequences(t, seqOut)
	if out, err := exec.Command(installedClient, "--secret-file", l.secrets, "show").Output(); err != nil || string(out) != string(seqOut) {
		t.Errorf("nfqknock show: %q, %v; nfqknockd -s printed %q", out, err, seqOut)
	}

	// A guarded service in the server namespace (IPv4 and IPv6).
	var ln net.Listener
	if err := netns.Do(pair.Server, func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", testGuardPort))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	testutil.AcceptAndClose(ln)

	// Start the daemon: ip netns exec NS [strace -f -o LOG] setpriv ... ExecStart.
	var wrap []string
	trace := ""
	if strace, err := exec.LookPath("strace"); err == nil {
		trace = filepath.Join(privateDir(t), "strace.log")
		wrap = []string{strace, "-f", "-qq", "-o", trace}
	} else if os.Getenv("CI") == "true" {
		t.Fatal("strace not found (Debian package strace), and CI=true forbids skipping the system call check")
	} else {
		t.Log("strace not found: the system calls are not checked against the unit's SystemCallFilter=")
	}
	d := startDaemon(t, l, pair.Server, setpriv, wrap...)
	pid, stderr, exited := d.pid, d.stderr, d.exited
	if !strings.Contains(stderr.String(), "systemd credential") {
		t.Errorf("the start line does not say the secrets came from the credential:\n%s", stderr.String())
	}
	if caps := procCaps(t, pid); caps["CapEff"] != 1<<12 || caps["CapPrm"] != 1<<12 || caps["CapAmb"] != 0 || caps["CapInh"] != 0 {
		t.Errorf("the running daemon's capabilities: %x, want CAP_NET_ADMIN only", caps)
	}

	for _, fam := range []struct {
		name           string
		server, client netip.Addr
	}{
		{"ipv4", netns.ServerIP4, netns.ClientIP4},
		{"ipv6", netns.ServerIP6, netns.ClientIP6},
	} {
		t.Run(fam.name, func(t *testing.T) {
			guarded := netip.AddrPortFrom(fam.server, testGuardPort).String()
			if err := dial(pair.Client, guarded, 800*time.Millisecond); !isTimeout(err) {
				t.Fatalf("before the knock: connect %s: %v, want dropped (a timeout)", guarded, err)
			}
			knock(t, pair.Client, fam.server, open)
			if err := dial(pair.Client, guarded, 5*time.Second); err != nil {
				t.Fatalf("after the open knock: connect %s: %v\n%s", guarded, err, stderr.String())
			}
			if out, err := nft("list", "set", "inet", "nfqknock", "allow"+fam.name[3:]); err != nil || !strings.Contains(out, fam.client.String()) {
				t.Errorf("%s is not in the allow set: %v\n%s", fam.client, err, out)
			}
			knock(t, pair.Client, fam.server, closeSeq)
			if err := dial(pair.Client, guarded, 800*time.Millisecond); !isTimeout(err) {
				t.Fatalf("after the close knock: connect %s: %v, want dropped (a timeout)", guarded, err)
			}
		})
	}

	// The dumps, then a clean stop: exit 0 and the table gone.
	for _, sig := range []syscall.Signal{syscall.SIGUSR1, syscall.SIGUSR2} {
		if err := syscall.Kill(pid, sig); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if exited() {
		t.Fatalf("the daemon exited on SIGUSR1/SIGUSR2:\n%s", stderr.String())
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !waitFor(30*time.Second, exited) {
		t.Fatalf("the daemon did not stop on SIGTERM:\n%s", stderr.String())
	}
	if d.waitErr != nil {
		t.Errorf("the daemon exited with %v after SIGTERM, want 0:\n%s", d.waitErr, stderr.String())
	}
	if out, _ := nft("list", "tables"); strings.TrimSpace(out) != "" {
		t.Errorf("table left after SIGTERM: %s", out)
	}
	for _, s := range []string{l.open, l.close} {
		if strings.Contains(stderr.String(), s) {
			t.Errorf("a secret appears in the daemon's log:\n%s", stderr.String())
		}
	}
	if trace != "" {
		checkTrace(t, trace, l.runDir)
	}

	t.Run("no capability", func(t *testing.T) {
		argv := l.setprivArgs(setpriv, false)
		cmd := netns.Command(pair.Server, argv[0], argv[1:]...)
		cmd.Env = l.env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("without CAP_NET_ADMIN: %v, want exit status 1", err)
		}
		lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], "CAP_NET_ADMIN") || stdout.Len() != 0 {
			t.Errorf("without CAP_NET_ADMIN: stdout %q, stderr %q; want one line naming CAP_NET_ADMIN", stdout.String(), stderr.String())
		}
		if out, _ := nft("list", "tables"); strings.TrimSpace(out) != "" {
			t.Errorf("table left: %s", out)
		}
	})
}

// procCaps reads the capability sets of a process.
func procCaps(t *testing.T, pid int) map[string]uint64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	caps := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.HasPrefix(k, "Cap") {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			caps[k] = n
		}
	}
	return caps
}

// parseSequences reads the OPEN: and CLOSE: lines of nfqknockd -s.
func parseSequences(t *testing.T, out string) (open, close []uint16) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		key, ports, _ := strings.Cut(l, ": ")
		var seq []uint16
		for _, p := range strings.Fields(ports) {
			n, err := strconv.ParseUint(p, 10, 16)
			if err != nil {
				t.Fatalf("nfqknockd -s: port %q: %v", p, err)
			}
			seq = append(seq, uint16(n))
		}
		switch key {
		case "OPEN":
			open = seq
		case "CLOSE":
			close = seq
		}
	}
	if len(open) != 8 || len(close) != 8 {
		t.Fatalf("nfqknockd -s printed %q, want 8 open and 8 close ports (md5)", out)
	}
	return open, close
}

// knock sends one bare SYN to each port from namespace ns: a connect
// attempt abandoned before the kernel retransmits.
func knock(t *testing.T, ns string, host netip.Addr, ports []uint16) {
	t.Helper()
	knockFrom(t, ns, netip.Addr{}, host, ports)
}

// dial connects to addr from namespace ns.
func dial(ns, addr string, limit time.Duration) error {
	return netns.Do(ns, func() error {
		c, err := net.DialTimeout("tcp", addr, limit)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// checkTrace checks what the daemon did under strace against the unit:
// every system call it made is in the SystemCallFilter= allow list (a
// call outside it would fail with EPERM under systemd), every socket is of
// a family of RestrictAddressFamilies=, and it wrote no file
// (ProtectSystem=strict) but in its own runDir (RuntimeDirectory=: the
// table's lock).
func checkTrace(t *testing.T, trace, runDir string) {
	t.Helper()
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	r, err := parseStrace(string(b), installedDaemon)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(installedUnit)
	u, err := parseUnit(string(text))
	if err != nil {
		t.Fatal(err)
	}
	allowed, err := allowedSyscalls(u["Service"]["SystemCallFilter"])
	if err != nil {
		t.Fatal(err)
	}
	var denied []string
	for _, s := range sortedKeys(r.syscalls) {
		if !allowed[s] {
			denied = append(denied, s)
		}
	}
	if len(denied) > 0 {
		t.Errorf("the daemon made system calls the unit's SystemCallFilter= denies: %q", denied)
	}
	t.Logf("the daemon made %d distinct system calls, all allowed by the unit", len(r.syscalls)-len(denied))
	families := map[string]bool{}
	for _, f := range strings.Fields(u.last("Service", "RestrictAddressFamilies")) {
		families[f] = true
	}
	for f := range r.families {
		if !families[f] {
			t.Errorf("the daemon opened an %s socket; RestrictAddressFamilies=%s", f, u.last("Service", "RestrictAddressFamilies"))
		}
	}
	if len(r.families) == 0 || !r.families["AF_NETLINK"] {
		t.Errorf("no netlink socket in the trace: families %q", sortedKeys(r.families))
	}
	var writes []string
	for _, w := range r.writes {
		if filepath.Dir(w) != runDir {
			writes = append(writes, w)
		}
	}
	if len(writes) > 0 {
		t.Errorf("the daemon opened files for writing outside its RuntimeDirectory= %s: %q", runDir, writes)
	}
}
