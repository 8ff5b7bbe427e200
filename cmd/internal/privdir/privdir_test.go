package privdir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnsure(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	group := filepath.Join(base, "group")
	if err := os.Mkdir(group, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(group, 0o770); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dir, err string
	}{
		{"made when missing", filepath.Join(base, "new"), ""},
		{"there already", base, ""},
		{"parent missing", filepath.Join(base, "no", "such"), "cannot create it: no such file or directory"},
		{"a file", file, "not a directory"},
		{"world-writable", open, "mode 0777 lets other users write in it"},
		{"group-writable", group, "mode 0770 lets other users write in it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Ensure(tc.dir)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("Ensure(%s) = %v, want nil", tc.dir, err)
				}
				fi, err := os.Stat(tc.dir)
				if err != nil || !fi.IsDir() {
					t.Fatalf("%s is no directory after Ensure: %v", tc.dir, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Ensure(%s) = %v, want %q", tc.dir, err, tc.err)
			}
		})
	}
}

// TestEnsureOwner: a directory of a user other than root and the
// process's is refused, even with a safe mode (that user could write in
// it).
func TestEnsureOwner(t *testing.T) {
	dir := t.TempDir()
	owner, other := os.Geteuid(), os.Geteuid()+1
	if owner == 0 {
		// As root, give the directory to nobody, and check as root.
		owner, other = 65534, 0
		if err := os.Chown(dir, owner, -1); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := check(fi, owner); err != nil {
		t.Fatalf("the owner's directory refused: %v", err)
	}
	if err := check(fi, other); err == nil || !strings.Contains(err.Error(), "neither root nor") {
		t.Fatalf("another user's directory: %v, want refused", err)
	}
}
