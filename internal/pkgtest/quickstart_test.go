package pkgtest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// The secrets file of the quick start, and its directory (the package's).
const (
	installedSecrets = "/etc/nfqknockd/secrets"
	installedEtc     = "/etc/nfqknockd"
)

// TestQuickStart follows README.md's quick start word for word on this
// machine: it runs step 1's dpkg line in a directory that holds the .deb
// as make packages names it, and step 2's secrets block, with sh -e; it
// checks step 3's line in the installed /etc/default/nfqknockd; it sets up
// the client as the README's client part says (its Linux lines, the two
// lines of the secrets file, the ssh block's ProxyCommand); and, without
// systemd as PID 1, does step 5 as the unit would (unitLaunchWith,
// installed: the environment file and the secrets file as the steps left
// them) in a server namespace with a real sshd on port 22. There, over
// IPv4 and IPv6: an ssh session opened before the start still carries data
// after it, a connect without a knock times out, and real ssh from a
// client namespace gets in through README's ProxyCommand. It purges the
// package and removes the secrets at the end.
func TestQuickStart(t *testing.T) {
	qs := readQuickStart(t)
	setpriv := needDpkgMachine(t)
	tools := testutil.NeedSSH(t)
	if _, err := os.Lstat(installedEtc); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s exists (%v) without the package: the test writes %s, and leaves another's alone", installedEtc, err, installedSecrets)
	}
	deb := buildPackage(t, "deb")

	// Step 1, in a directory that holds the .deb alone, under the name
	// nfpm gives it (make packages: dist/nfqknockd_VERSION_ARCH.deb).
	debDir := t.TempDir()
	b, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, debDir, filepath.Base(deb), string(b), 0o644)
	// dpkg --purge leaves the secrets, which no package owns, and so
	// /etc/nfqknockd: they go first (cleanups run last in, first out).
	t.Cleanup(func() { purge(t) })
	t.Cleanup(func() {
		if err := os.Remove(installedSecrets); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("remove %s: %v", installedSecrets, err)
		}
	})
	quickStep(t, "step 1", debDir, nil, qs.install)
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, p := range procs {
		if exe, _ := os.Readlink(p); exe == installedDaemon {
			t.Errorf("the package started the daemon (%s); the README says it starts nothing by itself", p)
		}
	}

	// Step 2: the secrets, mode 0600, owned by root, two long random ones.
	quickStep(t, "step 2", "/", nil, qs.secrets)
	fi, err := os.Stat(installedSecrets)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode() != 0o600 || st.Uid != 0 || st.Gid != 0 {
		t.Errorf("%s after step 2: mode %v, owner %d:%d; the README says 0600, root", installedSecrets, fi.Mode(), st.Uid, st.Gid)
	}
	secretsText, err := os.ReadFile(installedSecrets)
	if err != nil {
		t.Fatal(err)
	}
	open, closeSecret := secretLines(t, installedSecrets, string(secretsText))
	long := regexp.MustCompile(`^[A-Za-z0-9+/]{32}$`)
	if !long.MatchString(open) || !long.MatchString(closeSecret) || open == closeSecret {
		t.Errorf("%s after step 2 does not hold two long random secrets:\n%s", installedSecrets, secretsText)
	}

	// Step 3: the flags are there already.
	def, err := os.ReadFile(installedDefault)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains("\n"+string(def), "\n"+qs.flagsLine+"\n") {
		t.Fatalf("%s has no line %s:\n%s", installedDefault, qs.flagsLine, def)
	}

	// Before the start, as Before you log out asks: check exits 0, and the
	// client's show prints the lines of the daemon's -s.
	quickStep(t, "nfqknockd check", "/", nil, qs.check)
	daemonShow := quickStep(t, "nfqknockd -s", "/", nil, qs.show)

	// Step 4: the client, with a home of its own: the secrets file made
	// as the client part says, the two lines of /etc/nfqknockd/secrets in
	// it ($EDITOR), and ssh's config with the README's block.
	home := t.TempDir()
	clientEnv := []string{"HOME=" + home, "XDG_CONFIG_HOME=", "PATH=/usr/bin:/bin"}
	quickStep(t, "the client's secrets file", "/", clientEnv, qs.clientDirs)
	var lines []string
	for _, l := range strings.Split(string(secretsText), "\n") {
		if strings.HasPrefix(l, "open=") || strings.HasPrefix(l, "close=") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("%s: %d open= and close= lines, want the two the README copies:\n%s", installedSecrets, len(lines), secretsText)
	}
	clientSecrets := filepath.Join(home, ".config", "nfqknock", "secrets")
	if err := os.WriteFile(clientSecrets, []byte(strings.Join(lines, "\n")+"\n"), 0); err != nil {
		t.Fatal(err)
	}
	if got := quickStep(t, "nfqknock show", "/", clientEnv, qs.clientShow); got != daemonShow {
		t.Errorf("nfqknock show printed %q, nfqknockd -s %q", got, daemonShow)
	}

	// Step 5 in namespaces: sshd on 22, a session opened before the start.
	pair := netns.NewPair(t)
	sshd := testutil.StartSSHD(t, tools, pair.Server, privateDir(t), 22)
	families := []struct {
		name           string
		server, client netip.Addr
	}{{"ipv4", netns.ServerIP4, netns.ClientIP4}, {"ipv6", netns.ServerIP6, netns.ClientIP6}}
	sessions := map[string]*sshSession{}
	for _, fam := range families {
		s := openSession(t, tools["ssh"], pair.Client, sshd.UserKey, fam.server)
		if err := s.echo("before the start"); err != nil {
			t.Fatalf("%s: the session before the start: %v", fam.name, err)
		}
		sessions[fam.name] = s
	}
	l := unitLaunchWith(t, launchOptions{installed: true})
	d := startDaemon(t, l, pair.Server, setpriv)
	for _, want := range []string{" guard=22 ", "systemd credential"} {
		if !strings.Contains(d.stderr.String(), want) {
			t.Errorf("the start line lacks %q:\n%s", want, d.stderr)
		}
	}
	t.Logf("%s, as the unit runs it:\n%s", qs.start, testutil.Tail(d.stderr.String(), 3))
	if locks, _ := filepath.Glob(filepath.Join(l.runDir, "*.lock")); len(locks) != 1 {
		t.Errorf("no lock of the daemon in its /run/nfqknockd (%s): %q", l.runDir, locks)
	}

	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			if err := sessions[fam.name].echo("after the start"); err != nil {
				t.Errorf("the session opened before the start: %v (the README: the session you are in stays)", err)
			}
			guarded := netip.AddrPortFrom(fam.server, 22).String()
			if err := dial(pair.Client, guarded, 800*time.Millisecond); !isTimeout(err) {
				t.Errorf("connect %s without a knock: %v, want dropped (a timeout)", guarded, err)
			}
			config := strings.Replace(qs.sshConfig, "server1.example.org", fam.server.String(), 1)
			cfgFile := testutil.WriteFile(t, t.TempDir(), "config", config, 0o600)
			out, err := sshRun(tools["ssh"], pair.Client, clientEnv, "-F", cfgFile, "-i", sshd.UserKey, "server1", "echo", "in")
			if err != nil || out != "in\n" {
				t.Errorf("ssh server1 with the README's ProxyCommand: %v, stdout %q\nthe daemon:\n%s", err, out, testutil.Tail(d.stderr.String(), 10))
			}
			if opened := "msg=open source=" + fam.client.String() + " "; !strings.Contains(d.stderr.String(), opened) {
				t.Errorf("the daemon logged no %q: ssh got in without the knock?\n%s", opened, d.stderr)
			}
		})
	}
	for _, s := range []string{l.open, l.close} {
		if strings.Contains(d.stderr.String(), s) {
			t.Errorf("a secret appears in the daemon's log:\n%s", d.stderr)
		}
	}
	d.signal(t, syscall.SIGTERM)
	if !waitFor(30*time.Second, d.exited) || d.waitErr != nil {
		t.Errorf("the daemon on SIGTERM: %v\n%s", d.waitErr, d.stderr)
	}
}

// quickStep runs a step of the README with sh -e in dir, with extra
// environment, and returns its standard output; it fails the test when the
// step fails.
func quickStep(t *testing.T, what, dir string, env []string, script string) string {
	t.Helper()
	cmd := exec.Command("sh", "-e", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s, as README.md says it:\n%s\nfailed: %v\n%s%s", what, script, err, out, stderr.String())
	}
	t.Logf("%s: %q: exit 0", what, script)
	return string(out)
}

// sshOptions make ssh take the test's key and sshd's unknown host key, ask
// nothing and give up within seconds.
var sshOptions = []string{"-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
	"-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"}

// sshRun runs ssh with args from namespace ns and returns its output.
func sshRun(ssh, ns string, env []string, args ...string) (string, error) {
	cmd := netns.Command(ns, ssh, append(append([]string{}, sshOptions...), args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%w: %s", err, stderr.String())
	}
	return string(out), nil
}

// sshSession is an ssh session running cat on the server: a TCP connection
// to port 22 that carries data both ways.
type sshSession struct {
	in  io.WriteCloser
	out *bufio.Reader
}

// openSession opens a session to root@server from namespace ns, without a
// ProxyCommand. The test's cleanup ends it.
func openSession(t *testing.T, ssh, ns, key string, server netip.Addr) *sshSession {
	t.Helper()
	cmd := netns.Command(ns, ssh, append(append([]string{"-F", "/dev/null", "-i", key}, sshOptions...), "root@"+server.String(), "cat")...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &testutil.SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("ssh %s: %s", server, stderr)
		}
	})
	return &sshSession{in: in, out: bufio.NewReader(out)}
}

// echo sends a line through the session and waits for it to come back.
func (s *sshSession) echo(line string) error {
	if _, err := io.WriteString(s.in, line+"\n"); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	got := make(chan string, 1)
	go func() {
		l, err := s.out.ReadString('\n')
		if err != nil {
			l = "error: " + err.Error()
		}
		got <- l
	}()
	select {
	case l := <-got:
		if l != line+"\n" {
			return fmt.Errorf("sent %q, got back %q", line, l)
		}
		return nil
	case <-time.After(15 * time.Second):
		return fmt.Errorf("sent %q, nothing came back in 15s", line)
	}
}
