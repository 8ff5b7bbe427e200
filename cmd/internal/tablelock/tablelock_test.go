package tablelock

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTake(t *testing.T) {
	path := Path(t.TempDir(), "nfqknock", 4026531840)
	l, err := Take(path)
	if err != nil {
		t.Fatalf("first Take: %v", err)
	}
	if _, err := Take(path); !errors.Is(err, ErrHeld) {
		t.Fatalf("second Take while held = %v, want ErrHeld", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("lock file mode %04o, want 0600", perm)
	}
	l.Unlock()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("lock file still there after Unlock: %v", err)
	}
	l, err = Take(path)
	if err != nil {
		t.Fatalf("Take after Unlock: %v", err)
	}
	l.Unlock()
}

// TestTakeStale: a file left by a holder that exited without removing it
// (SIGKILL), with a loose mode, is taken, and its mode made 0600.
func TestTakeStale(t *testing.T) {
	path := Path(t.TempDir(), "nfqknock", 1)
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Take(path)
	if err != nil {
		t.Fatalf("Take of a stale file: %v", err)
	}
	defer l.Unlock()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("stale lock file not made 0600: %v %v", fi.Mode(), err)
	}
}

// TestTakeSymlink: a symbolic link at the lock's path is not followed.
func TestTakeSymlink(t *testing.T) {
	dir := t.TempDir()
	path := Path(dir, "nfqknock", 1)
	if err := os.Symlink(filepath.Join(dir, "elsewhere"), path); err != nil {
		t.Fatal(err)
	}
	if l, err := Take(path); err == nil {
		l.Unlock()
		t.Fatal("Take followed a symbolic link")
	}
}

func TestPath(t *testing.T) {
	long := strings.Repeat("a", 248)
	for _, tc := range []struct {
		table string
		want  string
	}{
		{"nfqknock", "/run/nfqknockd/netns-4026531840.table-nfqknock.lock"},
		{long, "/run/nfqknockd/netns-4026531840.table-sha256-"},
	} {
		got := Path("/run/nfqknockd", tc.table, 4026531840)
		if !strings.HasPrefix(got, tc.want) || len(filepath.Base(got)) > 255 {
			t.Errorf("Path(%.20s...) = %s, want %s...", tc.table, got, tc.want)
		}
	}
	if Path("/d", "t", 1) == Path("/d", "t", 2) {
		t.Error("two network namespaces share a lock")
	}
}

func TestNetns(t *testing.T) {
	n, err := Netns()
	if err != nil || n == 0 {
		t.Fatalf("Netns() = %d, %v", n, err)
	}
}

func TestHeld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	if Held(path) {
		t.Errorf("a missing lock is held")
	}
	l, err := Take(path)
	if err != nil {
		t.Fatal(err)
	}
	if !Held(path) {
		t.Errorf("a taken lock is not held")
	}
	l.Unlock()
	if Held(path) {
		t.Errorf("a released lock is held")
	}
}
