package pkgtest

// How the tests start the installed daemon as its unit would, without
// systemd: the unit's ExecStart, EnvironmentFile, LoadCredential,
// RuntimeDirectory and user, given by hand.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
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

// launch is how the test starts the installed daemon as the unit would.
type launch struct {
	argv    []string // ExecStart expanded with the environment file
	env     []string // the environment the unit gives
	credDir string   // $CREDENTIALS_DIRECTORY
	secrets string   // a root-only copy of the secrets, for the client
	open    string   // the secrets, which must never be logged
	close   string
	uid     int    // the unprivileged user (DynamicUser's range)
	runDir  string // what RuntimeDirectory= makes: the daemon's --lock-dir
	// runNS, with launchOptions.installed, is the command that runs the
	// daemon in a mount namespace of its own where runDir is
	// /run/nfqknockd, the default --lock-dir, as systemd's is.
	runNS []string
	// notify is the notify socket of a unit of Type=notify (notify_test.go).
	notify *testutil.NotifySocket
}

// launchOptions changes what unitLaunchWith gives the daemon.
type launchOptions struct {
	// installed gives the daemon the installed environment file and the
	// secrets file of LoadCredential= as they are, an admin's (the quick
	// start's), instead of the test's environment file (testGuardPort,
	// --verbose, --lock-dir) and random secrets.
	installed bool
}

// unitLaunch reads the installed unit and environment file, writes the
// test's environment file (the installed one with the guard moved to
// testGuardPort) and a secrets credential, and returns how to start the
// daemon.
func unitLaunch(t *testing.T) *launch {
	t.Helper()
	return unitLaunchWith(t, launchOptions{})
}

// unitLaunchWith is unitLaunch with options.
func unitLaunchWith(t *testing.T, opt launchOptions) *launch {
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
	// What RuntimeDirectory= makes: a directory of the service's user,
	// of RuntimeDirectoryMode=, for the table's lock. The test makes it
	// elsewhere than /run/nfqknockd (other tests' daemons run as root and
	// use that one) and points --lock-dir at it, or, with the installed
	// environment file, mounts it on /run/nfqknockd for the daemon alone.
	if got := u.last("Service", "RuntimeDirectory"); got != "nfqknockd" {
		t.Fatalf("RuntimeDirectory=%q, want nfqknockd (the daemon's default --lock-dir is /run/nfqknockd)", got)
	}
	mode, err := strconv.ParseUint(u.last("Service", "RuntimeDirectoryMode"), 8, 32)
	if err != nil {
		t.Fatalf("RuntimeDirectoryMode=%q: %v", u.last("Service", "RuntimeDirectoryMode"), err)
	}
	runDir := filepath.Join(dir, "run-nfqknockd")
	envText := shipped
	if !opt.installed {
		envText = bytes.Replace(shipped, []byte(line), []byte(fmt.Sprintf(`NFQKNOCKD_ARGS="--guard %d --verbose --lock-dir %s"`, testGuardPort, runDir)), 1)
	}
	fileEnv, err := parseEnvFile(string(envText))
	if err != nil {
		t.Fatalf("the environment file: %v", err)
	}
	argv, err := expandExecStart(u.last("Service", "ExecStart"), fileEnv)
	if err != nil {
		t.Fatalf("ExecStart: %v", err)
	}
	if argv[0] != installedDaemon {
		t.Fatalf("ExecStart runs %s, want %s", argv[0], installedDaemon)
	}

	l := &launch{argv: argv, uid: freeUID(t), runDir: runDir}
	if opt.installed {
		l.runNS = []string{"unshare", "--mount", "--propagation", "private", "sh", "-ec",
			`mount -t tmpfs -o mode=0755 tmpfs /run; mkdir /run/nfqknockd; mount --bind "$0" /run/nfqknockd; exec "$@"`, runDir}
	}
	if err := os.Mkdir(runDir, os.FileMode(mode)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(runDir, l.uid, l.uid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(runDir, os.FileMode(mode)); err != nil {
		t.Fatal(err)
	}
	// What LoadCredential= makes: a copy of the file, in a directory and
	// a file that only the service's user may read (0500, 0400).
	loadCred := u.last("Service", "LoadCredential")
	credSource, ok := strings.CutPrefix(loadCred, credentialName+":")
	if !ok {
		t.Fatalf("LoadCredential=%q, want %s:...", loadCred, credentialName)
	}
	var secrets string
	if opt.installed {
		b, err := os.ReadFile(credSource)
		if err != nil {
			t.Fatalf("LoadCredential=%s: %v", loadCred, err)
		}
		secrets, l.secrets = string(b), credSource
		l.open, l.close = secretLines(t, credSource, secrets)
	} else {
		l.open, l.close = randomSecret(t), randomSecret(t)
		secrets = fmt.Sprintf("# test secrets\nopen=%s\nclose=%s\n", l.open, l.close)
		l.secrets = filepath.Join(dir, "secrets")
		if err := os.WriteFile(l.secrets, []byte(secrets), 0o600); err != nil {
			t.Fatal(err)
		}
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

// secretLines returns the secrets of the open= and close= lines of a
// secrets file's text, the last of each as the daemon takes them.
func secretLines(t *testing.T, name, text string) (open, close string) {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(l, "=")
		switch {
		case ok && strings.TrimSpace(k) == "open":
			open = strings.TrimSpace(v)
		case ok && strings.TrimSpace(k) == "close":
			close = strings.TrimSpace(v)
		}
	}
	if open == "" || close == "" {
		t.Fatalf("%s has no open= or no close= line:\n%s", name, text)
	}
	return open, close
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
// ip netns exec NS [WRAP...] [l.runNS...] setpriv ... ExecStart. It waits for the start
// line, and its READY=1 under a unit of Type=notify, and fails the test if
// the daemon does not start. The test's cleanup kills a daemon still
// running.
func startDaemon(t *testing.T, l *launch, ns, setpriv string, wrap ...string) *daemonProc {
	t.Helper()
	argv := append(append(append([]string{}, wrap...), l.runNS...), l.setprivArgs(setpriv, true)...)
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
