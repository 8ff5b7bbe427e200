package e2e

// End to end with real OpenSSH: Debian's sshd listens on port 2222 in the
// server namespace, guarded by the built nfqknockd; the real ssh client in
// the client namespace gets in only through `ProxyCommand nfqknock proxy`.
// Needs root (netns.RequireRoot) and openssh-server, openssh-client and
// nftables (installed by .ci/run); sshd is testutil.StartSSHD.

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

const (
	sshPort        = 2222
	e2eOpenSecret  = "ssh e2e open"
	e2eCloseSecret = "ssh e2e close"
)

// TestSSHThroughProxy: real ssh gets into real sshd guarded by nfqknockd
// only through `ProxyCommand nfqknock proxy`, over IPv4 and IPv6, and the
// client's address leaves the allow set when the session ends.
func TestSSHThroughProxy(t *testing.T) {
	e := startSSHEnv(t, "--range", "1-65535")
	secretFile := testutil.WriteFile(t, t.TempDir(), "secrets", "# nfqknock secrets\nopen="+e2eOpenSecret+"\nclose="+e2eCloseSecret+"\n", 0o600)
	e.sessions(t, nil, "-F", "/dev/null", "-o", "ProxyCommand="+e.client+" proxy --secret-file "+secretFile+" %h %p")
}

// TestSSHThroughProxyConfig: the same with nothing but `ProxyCommand
// nfqknock proxy %h %p` in the ssh config: the client finds the rest in its
// config, ~/.config/nfqknock/config, which the client locates from $HOME
// alone (XDG_CONFIG_HOME unset). The daemon's digest, range and period are
// not the defaults; [*] gives the digest and period, each host's section
// its range ([*]'s is wrong), the IPv4 host's a secret file with ~/, and
// the IPv6 host reads the default secret file.
func TestSSHThroughProxyConfig(t *testing.T) {
	e := startSSHEnv(t, "--digest", "sha256", "--range", "10000-60000", "--period", "30m")
	home := t.TempDir()
	secrets := "open=" + e2eOpenSecret + "\nclose=" + e2eCloseSecret + "\n"
	cfgDir := filepath.Join(home, ".config", "nfqknock")
	if err := os.MkdirAll(cfgDir, 0o700); err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, cfgDir, "config", `# nfqknock client config
[*]
digest = sha256
period = 30m
range = 1-9999          # not the daemon's: each host's section gives its own
[10.200.0.1]
range = 10000-60000
secret-file = ~/work-secrets
[FD00:200::1]
range = 10000-60000
`, 0o644)
	testutil.WriteFile(t, cfgDir, "secrets", secrets, 0o600)
	testutil.WriteFile(t, home, "work-secrets", secrets, 0o600)
	sshConfig := testutil.WriteFile(t, home, "ssh_config", "Host *\n  ProxyCommand "+e.client+" proxy %h %p\n", 0o600)
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "HOME" && k != "XDG_CONFIG_HOME" && k != "AppData" {
			env = append(env, kv)
		}
	}
	e.sessions(t, append(env, "HOME="+home), "-F", sshConfig)
}

// TestSSHOneTimeUser: a daemon with an access file of two users and
// --one-time; ssh gets in through `nfqknock proxy --one-time` with one
// user's own secret file (a fresh sequence for the open and the close),
// over IPv4 and IPv6; the daemon logs the user, and no replay.
func TestSSHOneTimeUser(t *testing.T) {
	access := testutil.WriteFile(t, t.TempDir(), "access", `[alice]
open = alice-ssh-open-secret
close = alice-ssh-close-secret
[bob]
open = bob-ssh-open-secret
close = bob-ssh-close-secret
ports = `+strconv.Itoa(sshPort)+`
`, 0o600)
	e := startSSHEnv(t, "--range", "1-65535", "--access-file", access, "--one-time", "--state-dir", t.TempDir())
	bobSecrets := testutil.WriteFile(t, t.TempDir(), "secrets", "open=bob-ssh-open-secret\nclose=bob-ssh-close-secret\n", 0o600)
	e.sessions(t, nil, "-F", "/dev/null", "-o", "ProxyCommand="+e.client+" proxy --one-time --secret-file "+bobSecrets+" %h %p")
	logs := e.daemon.stderr.String()
	for _, want := range []string{"msg=open source=10.200.0.2 user=bob ", "msg=close source=10.200.0.2 user=bob", "msg=open source=fd00:200::2 user=bob ", "one_time=true"} {
		if !strings.Contains(logs, want) {
			t.Errorf("daemon log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "msg=replay") {
		t.Errorf("a fresh one-time knock was taken as a replay:\n%s", logs)
	}
}

// sshEnv is a pair of namespaces with sshd and nfqknockd in the server one.
type sshEnv struct {
	p       *netns.Pair
	tools   map[string]string
	client  string // the built nfqknock
	userKey string
	daemon  *daemon
}

// startSSHEnv builds both commands, makes a namespace pair, and starts sshd
// and nfqknockd with daemonArgs (the sequence flags) guarding sshPort in
// the server namespace.
func startSSHEnv(t *testing.T, daemonArgs ...string) *sshEnv {
	t.Helper()
	netns.RequireRoot(t)
	e := &sshEnv{tools: testutil.NeedSSH(t)}
	daemonBin := testutil.Build(t, daemonPkg, "")
	e.client = testutil.Build(t, clientPkg, "")
	e.p = netns.NewPair(t)
	e.userKey = testutil.StartSSHD(t, e.tools, e.p.Server, t.TempDir(), sshPort).UserKey
	args := append(daemonArgs, "--guard", strconv.Itoa(sshPort))
	if !slices.Contains(daemonArgs, "--access-file") {
		args = append(args, "-o", e2eOpenSecret, "-c", e2eCloseSecret)
	}
	e.daemon = startProcess(t, netns.Command(e.p.Server, daemonBin, args...), "nfqknockd")
	waitFor(t, e.daemon, 10*time.Second, "table of nfqknockd", func() bool {
		_, err := e.nft("list", "set", "inet", "nfqknock", "allow4")
		return err == nil
	})
	return e
}

// nft runs nft in the server namespace.
func (e *sshEnv) nft(args ...string) (string, error) {
	out, err := netns.Command(e.p.Server, e.tools["nft"], args...).CombinedOutput()
	return string(out), err
}

// sessions checks, over IPv4 and IPv6, that ssh without a ProxyCommand
// times out, that ssh with proxyArgs (which set the ProxyCommand) gets in
// and finds the client in the allow set, and that the client leaves the set
// after the session. env, when not nil, is the environment of ssh and so of
// the ProxyCommand.
func (e *sshEnv) sessions(t *testing.T, env []string, proxyArgs ...string) {
	t.Helper()
	daemon, client, nft := e.daemon, e.client, e.nft
	ssh := func(fam string, proxy bool, remote ...string) (int, string, string) {
		server := map[string]string{"ipv4": "10.200.0.1", "ipv6": "fd00:200::1"}[fam]
		args := []string{"-F", "/dev/null"}
		if proxy {
			args = proxyArgs
		}
		args = append(slices.Clone(args), "-i", e.userKey, "-o", "IdentitiesOnly=yes",
			"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
			"-o", "BatchMode=yes", "-o", "ConnectTimeout=3")
		args = append(args, "-p", strconv.Itoa(sshPort), "root@"+server)
		args = append(args, remote...)
		cmd := netns.Command(e.p.Client, e.tools["ssh"], args...)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("ssh: %v", err)
			}
			code = ee.ExitCode()
		}
		return code, stdout.String(), stderr.String()
	}

	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			set := map[string]string{"ipv4": "allow4", "ipv6": "allow6"}[fam.name]
			// Not knocked: the guard drops the SYN and ssh times out.
			code, _, stderr := ssh(fam.name, false, "true")
			if code == 0 || !strings.Contains(stderr, "timed out") {
				t.Fatalf("ssh without ProxyCommand = %d, stderr %q; want a connect timeout", code, stderr)
			}

			// Through the proxy: the remote command, run by sshd in the
			// server namespace, sees the client in the allow set.
			code, stdout, stderr := ssh(fam.name, true, e.tools["nft"], "list", "set", "inet", "nfqknock", set)
			if code != 0 {
				t.Fatalf("ssh through nfqknock proxy = %d, stderr %q; want 0", code, stderr)
			}
			if stderr != "" {
				t.Errorf("ssh through nfqknock proxy: stderr %q; want nothing", stderr)
			}
			if !strings.Contains(stdout, fam.client.String()) {
				t.Errorf("allow set during the session lacks %s:\n%s", fam.client, stdout)
			}

			// ssh does not wait for its ProxyCommand: the client knocks
			// close after the session and then exits.
			waitFor(t, daemon, 10*time.Second, fam.client.String()+" gone from "+set, func() bool {
				out, err := nft("list", "set", "inet", "nfqknock", set)
				return err == nil && !strings.Contains(out, fam.client.String())
			})
			waitFor(t, nil, 10*time.Second, "end of the nfqknock proxy", func() bool { return !running(client) })

			// Closed again: a plain ssh times out.
			code, _, stderr = ssh(fam.name, false, "true")
			if code == 0 || !strings.Contains(stderr, "timed out") {
				t.Fatalf("ssh without ProxyCommand after the session = %d, stderr %q; want a connect timeout", code, stderr)
			}
		})
	}
}

// running reports whether a process runs the executable bin.
func running(bin string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, p := range procs {
		if exe, err := os.Readlink(p); err == nil && exe == bin {
			return true
		}
	}
	return false
}
