package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		return testutil.WriteFile(t, dir, name, content, mode)
	}
	tests := []struct {
		name        string
		path        string
		open, close string
		err         string
	}{
		{"both", write("both", "# c\nopen=o\nclose=c\n", 0o600), "o", "c", ""},
		{"read only", write("ro", "open=o\n", 0o400), "o", "", ""},
		{"too open", write("loose", "open=o\n", 0o644), "", "", "permissions 0644 are too open (want 0600 or stricter)"},
		{"empty secret", write("empty", "open=\n", 0o600), "", "", "line 1: empty open secret"},
		{"missing", filepath.Join(dir, "missing"), "", "", "no such file or directory"},
		{"empty name", "", "", "", "no such file or directory"},
		{"directory", dir, "", "", "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
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
