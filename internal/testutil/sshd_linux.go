package testutil

// A real OpenSSH server in a network namespace, for the tests that let
// real ssh in through `ProxyCommand nfqknock proxy` (internal/e2e, and the
// quick start of internal/pkgtest).

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
)

// NeedSSH returns the paths of sshd, ssh, ssh-keygen and nft by their base
// names, skipping the test when one is missing outside CI (CI installs
// them: failing there).
func NeedSSH(t testing.TB) map[string]string {
	t.Helper()
	paths := map[string]string{}
	for _, name := range []string{"/usr/sbin/sshd", "ssh", "ssh-keygen", "nft"} {
		p, err := exec.LookPath(name)
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("the ssh test needs %s (openssh-server, openssh-client, nftables): %v", name, err)
			}
			t.Skipf("skipping the ssh test: %s not installed (apt-get install openssh-server openssh-client nftables)", name)
		}
		paths[filepath.Base(name)] = p
	}
	return paths
}

// Keygen makes an ed25519 key pair without a passphrase at path and
// path.pub with the ssh-keygen at tool.
func Keygen(t testing.TB, tool, path string) {
	t.Helper()
	if out, err := exec.Command(tool, "-q", "-t", "ed25519", "-N", "", "-C", "nfqknock-test", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen %s: %v: %s", path, err, out)
	}
}

// SSHD is a running sshd started by StartSSHD.
type SSHD struct {
	Stderr  *SyncBuffer // its log (-e)
	UserKey string      // the private key that root's authorized_keys accepts
}

// StartSSHD starts sshd on port (IPv4 and IPv6) in namespace ns, with a
// host key and an authorized key for root made in dir, and waits until it
// accepts connections on both loopbacks. The test's cleanup stops it.
func StartSSHD(t testing.TB, tools map[string]string, ns, dir string, port int) *SSHD {
	t.Helper()
	hostKey := filepath.Join(dir, "host_ed25519")
	userKey := filepath.Join(dir, "id_ed25519")
	Keygen(t, tools["ssh-keygen"], hostKey)
	Keygen(t, tools["ssh-keygen"], userKey)
	pub, err := os.ReadFile(userKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	authorized := WriteFile(t, dir, "authorized_keys", string(pub), 0o600)
	config := WriteFile(t, dir, "sshd_config", fmt.Sprintf(`Port %d
ListenAddress 0.0.0.0
ListenAddress ::
HostKey %s
AuthorizedKeysFile %s
PidFile none
UsePAM %s
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
`, port, hostKey, authorized, usePAM()), 0o600)
	// The privilege separation directory of Debian's sshd.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	s := &SSHD{Stderr: &SyncBuffer{}, UserKey: userKey}
	cmd := netns.Command(ns, tools["sshd"], "-D", "-e", "-f", config)
	cmd.Stderr = s.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("sshd stderr:\n%s", s.Stderr)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ok := true
		for _, host := range []string{"127.0.0.1", "::1"} {
			err := netns.Do(ns, func() error {
				c, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), time.Second)
				if err == nil {
					c.Close()
				}
				return err
			})
			ok = ok && err == nil
		}
		if ok {
			return s
		}
		select {
		case <-done:
			t.Fatalf("sshd exited before it listened on port %d: %v\n%s", port, cmd.ProcessState, s.Stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd does not listen on port %d after 10s:\n%s", port, s.Stderr)
		}
	}
}

// usePAM returns the UsePAM setting for sshd: "no", unless root's password
// is locked with "!" in /etc/shadow, which sshd without PAM takes for a
// locked account and refuses even with a key; PAM (Debian's
// /etc/pam.d/sshd) accepts it. "*" (no password), Debian's usual, is not
// locked.
func usePAM() string {
	b, err := os.ReadFile("/etc/shadow")
	if err != nil {
		return "no"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if pw, ok := strings.CutPrefix(line, "root:"); ok && strings.HasPrefix(pw, "!") {
			return "yes"
		}
	}
	return "no"
}
