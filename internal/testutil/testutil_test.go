package testutil

import (
	"debug/buildinfo"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				fmt.Fprintf(&b, "%d", i)
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if n := len(b.String()); n != 800 {
		t.Fatalf("%d bytes, want 800", n)
	}
}

// settings returns the build settings of bin.
func settings(t *testing.T, bin string) map[string]string {
	t.Helper()
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, s := range bi.Settings {
		m[s.Key] = s.Value
	}
	return m
}

func TestBuild(t *testing.T) {
	tests := []struct {
		name    string
		ldflags string
		want    string // the binary's output
	}{
		{"plain", "", "hello\n"},
		{"ldflags", "-X main.msg=built", "built\n"},
		{"plain again", "", "hello\n"},
	}
	paths := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := Build(t, "testdata/hello", tt.ldflags)
			if filepath.Base(bin) != "hello" {
				t.Errorf("binary %s, want it named hello", bin)
			}
			if p, ok := paths[tt.ldflags]; ok && p != bin {
				t.Errorf("built twice: %s, then %s", p, bin)
			}
			paths[tt.ldflags] = bin
			out, err := exec.Command(bin).Output()
			if err != nil || string(out) != tt.want {
				t.Fatalf("%s = %q, %v; want %q", bin, out, err, tt.want)
			}
			s := settings(t, bin)
			if s["CGO_ENABLED"] != "0" || s["-ldflags"] != tt.ldflags || s["vcs"] != "" {
				t.Errorf("build settings %v: want CGO_ENABLED=0, -ldflags %q, no vcs", s, tt.ldflags)
			}
		})
	}
	if paths[""] == paths["-X main.msg=built"] {
		t.Errorf("both builds at %s", paths[""])
	}
}

func TestBuildFails(t *testing.T) {
	for range 2 { // the second time from the cache
		_, err := build("testdata/broken", "")
		if err == nil || !strings.Contains(err.Error(), "go build testdata/broken") {
			t.Fatalf("build = %v, want the compiler's error", err)
		}
	}
}

// TestCleanup runs last: it removes every build.
func TestCleanup(t *testing.T) {
	bin := Build(t, "testdata/hello", "")
	cmd := exec.Command(bin, "wait")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	err = Cleanup()
	stdin.Close()
	cmd.Wait()
	if err == nil || !strings.Contains(err.Error(), "process left running") || !strings.Contains(err.Error(), bin) {
		t.Errorf("Cleanup with %s running = %v, want it named", bin, err)
	}
	if _, err := os.Stat(filepath.Dir(filepath.Dir(bin))); !os.IsNotExist(err) {
		t.Errorf("build directory still there: %v", err)
	}
	if err := Cleanup(); err != nil {
		t.Errorf("second Cleanup: %v", err)
	}
	if again := Build(t, "testdata/hello", ""); again == bin {
		t.Errorf("built again at the removed %s", again)
	}
}

// TestLeftBehind: the checks' reports and the namespaces of this process
// are left behind; nothing else is.
func TestLeftBehind(t *testing.T) {
	if err := leftBehind(); err != nil {
		t.Fatalf("leftBehind() = %v", err)
	}
	if err := leftBehind(func() error { return nil }); err != nil {
		t.Fatalf("leftBehind(ok) = %v", err)
	}
	err := leftBehind(func() error { return errors.New("a table") }, func() error { return nil }, func() error { return errors.New("a file") })
	if err == nil || err.Error() != "a table\na file" {
		t.Fatalf("leftBehind(two problems) = %v", err)
	}
	if os.Geteuid() != 0 {
		return
	}
	ns := fmt.Sprintf("nfqk-%d-testutil", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	err = leftBehind()
	if out, e := exec.Command("ip", "netns", "delete", ns).CombinedOutput(); e != nil {
		t.Errorf("ip netns delete: %v: %s", e, out)
	}
	if err == nil || err.Error() != "namespace left behind: "+ns {
		t.Fatalf("leftBehind() with %s = %v", ns, err)
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []os.FileMode{0o600, 0o644, 0o400, 0o666, 0o604} {
		name := fmt.Sprintf("f%o", mode)
		p := WriteFile(t, dir, name, "open=x\n", mode)
		fi, err := os.Stat(p)
		if err != nil || p != filepath.Join(dir, name) || fi.Mode().Perm() != mode {
			t.Errorf("WriteFile %o: %s, %v, %v", mode, p, fi.Mode(), err)
		}
		if b, err := os.ReadFile(p); err != nil || string(b) != "open=x\n" {
			t.Errorf("WriteFile %o: read %q, %v", mode, b, err)
		}
	}
}
