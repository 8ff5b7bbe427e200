// Package netns is a test harness that builds throw-away network namespaces
// joined by veth, so that tests can send real packets through a real kernel
// without touching the host's own network or firewall.
//
// Every namespace it makes is named "nfqk-<pid>-<n>-<role>", lives only for
// the test that made it, and is removed by the test's cleanup, even when the
// test fails. Addresses are private and exist only inside the namespaces:
// 10.200.0.0/24 and fd00:200::/64 on the veth link.
package netns

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Addresses of the two ends of the veth link of a Pair.
var (
	ServerIP4 = netip.MustParseAddr("10.200.0.1")
	ClientIP4 = netip.MustParseAddr("10.200.0.2")
	ServerIP6 = netip.MustParseAddr("fd00:200::1")
	ClientIP6 = netip.MustParseAddr("fd00:200::2")
)

const prefix = "nfqk-"

var counter atomic.Int64

// RequireRoot skips the test when it does not run as root. When the
// environment variable CI is "true" the test fails instead, so that CI can
// never pass by skipping the namespace tests.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("ip"); err != nil {
			t.Fatalf("network-namespace test needs the ip command (iproute2): %v", err)
		}
		t.Log("netns test: running as root in network namespaces")
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("network-namespace test needs root, and CI=true forbids skipping it")
	}
	t.Skip("skipping network-namespace test: needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN)")
}

// Pair is a server and a client namespace joined by one veth link.
type Pair struct {
	Server string // name of the server namespace (as in `ip netns exec NAME`)
	Client string // name of the client namespace
}

// NewPair makes a server and a client namespace joined by veth, with loopback
// up in both, ServerIP4/ServerIP6 on the server end and ClientIP4/ClientIP6
// on the client end. The test's cleanup kills every process left in them and
// deletes them.
func NewPair(t testing.TB) *Pair {
	t.Helper()
	RequireRoot(t)
	n := counter.Add(1)
	base := fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), n)
	p := &Pair{Server: base + "-s", Client: base + "-c"}
	t.Cleanup(func() { p.remove(t) })
	for _, s := range PairCommands(p.Server, p.Client) {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return p
}

// PairCommands returns the `ip` commands (arguments of ip) that make the
// namespaces server and client joined by veth0, with loopback up in both,
// ServerIP4/ServerIP6 on the server end and ClientIP4/ClientIP6 on the
// client end: NewPair runs them, and so do the bench and soak tools.
func PairCommands(server, client string) [][]string {
	return [][]string{
		{"netns", "add", server},
		{"netns", "add", client},
		{"-n", server, "link", "set", "lo", "up"},
		{"-n", client, "link", "set", "lo", "up"},
		{"-n", server, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0", "netns", client},
		{"-n", server, "addr", "add", ServerIP4.String() + "/24", "dev", "veth0"},
		{"-n", client, "addr", "add", ClientIP4.String() + "/24", "dev", "veth0"},
		{"-n", server, "addr", "add", ServerIP6.String() + "/64", "dev", "veth0", "nodad"},
		{"-n", client, "addr", "add", ClientIP6.String() + "/64", "dev", "veth0", "nodad"},
		{"-n", server, "link", "set", "veth0", "up"},
		{"-n", client, "link", "set", "veth0", "up"},
	}
}

// remove kills the processes left in both namespaces and deletes them.
func (p *Pair) remove(t testing.TB) {
	for _, ns := range []string{p.Client, p.Server} {
		if err := Delete(ns); err != nil {
			t.Errorf("remove namespace %s: %v", ns, err)
		}
	}
}

// Delete kills every process in the namespace ns and deletes it. A namespace
// that does not exist is not an error.
func Delete(ns string) error {
	if _, err := os.Stat(filepath.Join("/run/netns", ns)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	for i := 0; i < 50; i++ {
		out, _ := exec.Command("ip", "netns", "pids", ns).Output()
		pids := strings.Fields(string(out))
		killed := false
		for _, s := range pids {
			// Our own process shows up when a thread that entered ns
			// through Do was the main one: Go parks it rather than ending it.
			if pid, err := strconv.Atoi(s); err == nil && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				killed = true
			}
		}
		if !killed {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out, err := exec.Command("ip", "netns", "delete", ns).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns delete %s: %v: %s", ns, err, out)
	}
	return nil
}

// staleAge is how old a namespace of a dead process must be before
// SweepStale deletes it. A process in another PID namespace (a test run
// under unshare --pid, a container) sees other processes' pids as dead, or
// names its namespaces with pids the host does not know: the age keeps it
// from deleting the namespaces of tests running now.
const staleAge = time.Hour

// SweepStale deletes namespaces made by earlier test processes of this
// harness that have died (for example killed by a test timeout) at least
// staleAge ago. Call it from TestMain; it never touches a namespace of a
// process still running, nor a young one.
func SweepStale() {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		f := strings.SplitN(strings.TrimPrefix(name, prefix), "-", 2)
		pid, err := strconv.Atoi(f[0])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == nil {
			continue // its test process is still alive
		}
		if info, err := e.Info(); err != nil || time.Since(info.ModTime()) < staleAge {
			continue // maybe a process this one cannot see
		}
		_ = Delete(name)
	}
}

// Command returns a command that runs name with args inside namespace ns
// (through `ip netns exec`).
func Command(ns, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// Nft runs nft with args inside namespace ns, with stdin when it is not
// empty, and returns its output; an error holds nft's own message.
func Nft(ns, stdin string, args ...string) (string, error) {
	cmd := Command(ns, "nft", args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("nft %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// Open returns an open file descriptor of namespace ns, for APIs that take a
// namespace fd (nftables.Conn NetNS, go-nfqueue Config.NetNS). The caller
// closes it.
func Open(ns string) (int, error) {
	fd, err := unix.Open(filepath.Join("/run/netns", ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open namespace %s: %w", ns, err)
	}
	return fd, nil
}

// Do runs fn on an OS thread that has entered namespace ns, and returns its
// error. Sockets that fn creates belong to ns. The thread is never handed
// back to the Go scheduler: it exits with the goroutine, so no other
// goroutine can ever run inside ns by accident.
func Do(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread dies with this goroutine.
		fd, err := Open(ns)
		if err != nil {
			errc <- err
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
