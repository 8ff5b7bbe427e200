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
	tests := []struct {
		name    string
		content string      // written to a file of mode (when not 0) in dir
		mode    os.FileMode // 0: read path
		path    string
		open    string
		close   string
		err     string
	}{
		{name: "both", content: "# c\nopen=o\nclose=c\n", mode: 0o600, open: "o", close: "c"},
		{name: "read only", content: "open=o\n", mode: 0o400, open: "o"},
		{name: "too open", content: "open=o\n", mode: 0o644, err: "permissions 0644 are too open (want 0600 or stricter)"},
		{name: "empty secret", content: "open=\n", mode: 0o600, err: "line 1: empty open secret"},
		{name: "missing", path: filepath.Join(dir, "missing"), err: "no such file or directory"},
		{name: "empty name", path: "", err: "no such file or directory"},
		{name: "directory", path: dir, err: "not a regular file"},
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
