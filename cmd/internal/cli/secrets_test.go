//go:build unix

// Unix modes and error texts; on Windows, acl_test.go tests the decision
// over access control lists.

package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	type secretCase struct {
		name    string
		content string      // written to a file of mode (when not 0) in dir
		mode    os.FileMode // 0: read path
		path    string
		open    string
		close   string
		err     string
	}
	tests := []secretCase{
		{name: "both", content: "# c\nopen=o\nclose=c\n", mode: 0o600, open: "o", close: "c"},
		{name: "read only", content: "open=o\n", mode: 0o400, open: "o"},
		{name: "too open", content: "open=o\n", mode: 0o644, err: "permissions 0644 are too open (want 0600 or stricter)"},
		{name: "empty secret", content: "open=\n", mode: 0o600, err: "line 1: empty open secret"},
		{name: "missing", path: filepath.Join(dir, "missing"), err: "no such file or directory"},
		{name: "empty name", path: "", err: "no such file or directory"},
		{name: "directory", path: dir, err: "not a regular file"},
	}
	if os.Geteuid() == 0 {
		// Root may give a file away: one of another account is refused,
		// one of root is not (uid 0 is always accepted).
		theirs := testutil.WriteFile(t, dir, "theirs", "open=o\n", 0o600)
		if err := os.Chown(theirs, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		tests = append(tests, secretCase{name: "another owner", path: theirs, err: "owned by uid 65534: want root or this process's user (uid 0)"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.mode != 0 {
				tt.path = testutil.WriteFile(t, dir, tt.name, tt.content, tt.mode)
			}
			open, close, err := ReadSecretFile(tt.path)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || open != tt.open || close != tt.close {
				t.Fatalf("= %q, %q, %v; want %q, %q", open, close, err, tt.open, tt.close)
			}
		})
	}
}
