package pkgtest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
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

// launch is how the test starts the installed daemon as the unit would.
type launch struct {
	argv    []string // ExecStart expanded with the environment file
	env     []string // the environment the unit gives
	credDir string   // $CREDENTIALS_DIRECTORY
	secrets string   // a root-only copy of the secrets, for the client
	open    string   // the secrets, which must never be logged
	close   string
	uid     int // the unprivileged user (DynamicUser's range)
	// notify is the notify socket of a unit of Type=notify (notify_test.go).
	notify *testutil.NotifySocket
}

// unitLaunch reads the installed unit and environment file, writes the
// test's environment file (the installed one with the guard moved to
// testGuardPort) and a secrets credential, and returns how to start the
// daemon.
func unitLaunch(t *testing.T) *launch {
	t.Helper()
	text, err := os.ReadFile(installedUnit)
	if err != nil {
		t.Fatal(err)
	}
	u, err := parseUnit(string(text))
	if err != nil {
		t.Fatalf("%s: %v", installedUnit, err)
	}
	if got := u.last("Service", "EnvironmentFile"); got != installedDefault {
		t.Fatalf("EnvironmentFile=%q, want %s", got, installedDefault)
	}
	shipped, err := os.ReadFile(installedDefault)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseEnvFile(string(shipped)); err != nil {
		t.Fatalf("%s: %v", installedDefault, err)
	}
	// The test's environment file keeps the shipped one's format and
	// comments; only the guarded port changes.
	const line = `NFQKNOCKD_ARGS="--guard 22"`
	if !bytes.Contains(shipped, []byte("\n"+line+"\n")) {
		t.Fatalf("%s has no line %s", installedDefault, line)
	}
	dir := privateDir(t)
	testEnvFile := filepath.Join(dir, "nfqknockd.default")
	mine := bytes.Replace(shipped, []byte(line), []byte(fmt.Sprintf(`NFQKNOCKD_ARGS="--guard %d --verbose"`, testGuardPort)), 1)
	if err := os.WriteFile(testEnvFile, mine, 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(testEnvFile)
	fileEnv, err := parseEnvFile(string(b))
	if err != nil {
		t.Fatalf("the test's environment file: %v", err)
	}
	argv, err := expandExecStart(u.last("Service", "ExecStart"), fileEnv)
	if err != nil {
		t.Fatalf("ExecStart: %v", err)
	}
	if argv[0] != installedDaemon {
		t.Fatalf("ExecStart runs %s, want %s", argv[0], installedDaemon)
	}

	l := &launch{argv: argv, uid: freeUID(t), open: randomSecret(t), close: randomSecret(t)}
	secrets := fmt.Sprintf("# test secrets\nopen=%s\nclose=%s\n", l.open, l.close)
	l.secrets = filepath.Join(dir, "secrets")
	if err := os.WriteFile(l.secrets, []byte(secrets), 0o600); err != nil {
		t.Fatal(err)
	}
	// What LoadCredential= makes: a directory and a file that only the
	// service's user may read (0500, 0400).
	if got := u.last("Service", "LoadCredential"); !strings.HasPrefix(got, credentialName+":") {
		t.Fatalf("LoadCredential=%q, want %s:...", got, credentialName)
	}
	l.credDir = filepath.Join(dir, "credentials")
	if err := os.Mkdir(l.credDir, 0o700); err != nil {
		t.Fatal(err)
	}
	cred := filepath.Join(l.credDir, credentialName)
	if err := os.WriteFile(cred, []byte(secrets), 0o400); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{cred, l.credDir} {
		if err := os.Chown(p, l.uid, l.uid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(l.credDir, 0o500); err != nil {
		t.Fatal(err)
	}

	// The environment systemd gives the service: its own variables, the
	// unit's Environment=, the environment file, the credentials.
	l.env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin",
		"LANG=C.UTF-8",
		"HOME=/", "USER=nfqknockd", "LOGNAME=nfqknockd", "SHELL=/usr/sbin/nologin",
		"CREDENTIALS_DIRECTORY=" + l.credDir,
	}
	for _, v := range u["Service"]["Environment"] {
		words, err := splitWords(v)
		if err != nil {
			t.Fatalf("Environment=%s: %v", v, err)
		}
		l.env = append(l.env, words...)
	}
	for k, v := range fileEnv {
		l.env = append(l.env, k+"="+v)
	}
	unitNotify(t, u, dir, l)
	return l
}

// privateDir makes a directory that others may traverse but not list
// (the unprivileged user must reach the credentials inside), removed at
// the end of the test.
func privateDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nfqk-pkgtest-run-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	return dir
}

// freeUID returns a uid of DynamicUser's range (61184-65519) that no user
// of this machine has.
func freeUID(t *testing.T) int {
	t.Helper()
	for uid := 61184 + os.Getpid()%1000; uid <= 65519; uid++ {
		if _, err := user.LookupId(strconv.Itoa(uid)); err != nil {
			return uid
		}
	}
	t.Fatal("no free uid in 61184-65519")
	return 0
}

func randomSecret(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// setprivArgs returns the setpriv command line that gives the user of l
// only CAP_NET_ADMIN, as AmbientCapabilities=, CapabilityBoundingSet= and
// NoNewPrivileges= do; withCap false gives it no capability at all.
func (l *launch) setprivArgs(setpriv string, withCap bool) []string {
	id := strconv.Itoa(l.uid)
	args := []string{setpriv, "--reuid=" + id, "--regid=" + id, "--clear-groups", "--no-new-privs"}
	if withCap {
		args = append(args, "--inh-caps=+net_admin", "--ambient-caps=+net_admin")
	} else {
		args = append(args, "--inh-caps=-all")
	}
	return append(append(args, "--bounding-set=-all,+net_admin"), l.argv...)
}

// waitFor polls cond until it holds or limit passes.
func waitFor(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
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
		checkTrace(t, trace)
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

// daemonProc is the installed daemon started by startDaemon.
type daemonProc struct {
	cmd     *exec.Cmd
	pid     int                  // the daemon's own pid (not ip's, setpriv's or strace's)
	stderr  *testutil.SyncBuffer // its log
	done    chan struct{}        // closed when it exited
	waitErr error                // its exit, once done is closed
}

// exited reports whether the daemon exited.
func (d *daemonProc) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the daemon.
func (d *daemonProc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(d.pid, sig); err != nil {
		t.Fatalf("kill -%v %d: %v", sig, d.pid, err)
	}
}

// startDaemon starts the installed daemon as the unit would (l), inside
// namespace ns, wrapped by the command wrap (strace) when given:
// ip netns exec NS [WRAP...] setpriv ... ExecStart. It waits for the start
// line, and its READY=1 under a unit of Type=notify, and fails the test if
// the daemon does not start. The test's cleanup kills a daemon still
// running.
func startDaemon(t *testing.T, l *launch, ns, setpriv string, wrap ...string) *daemonProc {
	t.Helper()
	argv := append(append([]string{}, wrap...), l.setprivArgs(setpriv, true)...)
	cmd := netns.Command(ns, argv[0], argv[1:]...)
	cmd.Env = l.env
	d := &daemonProc{cmd: cmd, stderr: &testutil.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = d.stderr
	// The daemon holds the pipe too: when strace is killed, Wait must not
	// wait for it.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.waitErr = cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		if !d.exited() {
			if d.pid > 0 {
				syscall.Kill(d.pid, syscall.SIGKILL)
			}
			cmd.Process.Kill()
			<-d.done
		}
	})
	if !waitFor(30*time.Second, func() bool {
		if d.pid == 0 {
			d.pid = daemonPID(ns)
		}
		return d.exited() || (d.pid > 0 && strings.Contains(d.stderr.String(), "msg=started"))
	}) || d.exited() {
		t.Fatalf("the daemon did not start:\n%s", d.stderr.String())
	}
	awaitReady(t, l, d, ns)
	return d
}

// daemonPID returns the pid of the installed daemon inside ns, 0 if none.
func daemonPID(ns string) int { return procOf(ns, installedDaemon) }

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
// (ProtectSystem=strict).
func checkTrace(t *testing.T, trace string) {
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
	if len(r.writes) > 0 {
		t.Errorf("the daemon opened files for writing: %q", r.writes)
	}
}
