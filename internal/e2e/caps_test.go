package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nfqknockd/nfqknockd/internal/netns"
)

// TestDropsCapabilities: started as root, the daemon keeps CAP_NET_ADMIN
// alone in its effective, permitted and bounding sets, on every thread,
// whether built as the Makefile builds it (CGO_ENABLED=0) or with cgo on,
// as a plain `go build` or `go install` does where a C compiler is
// installed.
func TestDropsCapabilities(t *testing.T) {
	for _, cgo := range []string{"0", "1"} {
		t.Run("CGO_ENABLED="+cgo, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if cgo == "1" {
				e.bin = buildCgo(t)
			}
			dropsCapabilities(t, e)
		})
	}
}

// buildCgo builds the daemon with cgo on, or skips the test where no C
// compiler is installed.
func buildCgo(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no C compiler: cannot build with cgo")
	}
	bin := filepath.Join(t.TempDir(), "nfqknockd-cgo")
	build := exec.Command("go", "build", "-buildvcs=false", "-o", bin, daemonPkg)
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build with cgo: %v: %s", err, out)
	}
	if out, err := exec.Command("go", "version", "-m", bin).CombinedOutput(); err != nil || !strings.Contains(string(out), "CGO_ENABLED=1") {
		t.Fatalf("the binary was not built with cgo: %v: %s", err, out)
	}
	return bin
}

// dropsCapabilities runs one case of TestDropsCapabilities.
func dropsCapabilities(t *testing.T, e *env) {
	d := e.start()
	if strings.Contains(d.stderr.String(), "could not drop") {
		t.Fatalf("daemon could not drop capabilities:\n%s", d.stderr)
	}
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", d.cmd.Process.Pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("no threads found: %v", err)
	}
	want := fmt.Sprintf("%016x", uint64(1)<<unix.CAP_NET_ADMIN)
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			switch k {
			case "CapEff", "CapPrm", "CapBnd":
				if strings.TrimSpace(v) != want {
					t.Errorf("%s: %s = %s, want %s (CAP_NET_ADMIN only)", task, k, strings.TrimSpace(v), want)
				}
			case "CapInh", "CapAmb":
				if strings.TrimSpace(v) != "0000000000000000" {
					t.Errorf("%s: %s = %s, want none", task, k, strings.TrimSpace(v))
				}
			case "NoNewPrivs":
				if strings.TrimSpace(v) != "1" {
					t.Errorf("%s: NoNewPrivs = %s", task, strings.TrimSpace(v))
				}
			}
		}
	}
	// And it still works with what it kept.
	open, _ := e.sequences()
	e.knock(netip.Addr{}, netns.ServerIP4, open)
	if !e.reachable(netip.Addr{}, netns.ServerIP4, guardPort) {
		t.Fatalf("not open after the open sequence, with CAP_NET_ADMIN only")
	}
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status = %d (table deletion with CAP_NET_ADMIN only)", code)
	}
}
