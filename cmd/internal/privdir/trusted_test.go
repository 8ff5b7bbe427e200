package privdir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTrusted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files to another user")
	}
	dir := t.TempDir() // under /tmp: sticky and writable by all, then 0700 dirs of root
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := mk("good", 0o755)
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o777)
	inOpen := filepath.Join(open, "hook")
	os.WriteFile(inOpen, []byte("#!/bin/sh\n"), 0o755)
	theirs := filepath.Join(dir, "theirs")
	os.Mkdir(theirs, 0o755)
	os.Chown(theirs, 65534, 65534)
	inTheirs := filepath.Join(theirs, "hook")
	os.WriteFile(inTheirs, []byte("#!/bin/sh\n"), 0o755)
	link := filepath.Join(dir, "link")
	os.Symlink(inOpen, link)
	goodLink := filepath.Join(dir, "goodlink")
	os.Symlink(good, goodLink)
	for _, tt := range []struct{ path, want string }{
		{good, ""},
		{goodLink, ""},
		{"hook", "give an absolute path"},
		{inOpen, "open: mode 0777 lets other users change it"},
		{link, "open: mode 0777 lets other users change it"},
		{inTheirs, "theirs is owned by uid 65534"},
		{filepath.Join(dir, "none"), "no such file or directory"},
	} {
		real, err := Trusted(tt.path)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.path, err)
		case tt.want == "" && real != good:
			t.Errorf("%s resolves to %s, want %s", tt.path, real, good)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: %v, want an error with %q", tt.path, err, tt.want)
		}
	}
}
