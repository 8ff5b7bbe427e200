package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/knock"
)

// TestSecrets: where the secrets come from, and the one-line errors of bad
// secret files. No error ever shows a secret.
func TestSecrets(t *testing.T) {
	dir := t.TempDir()
	good := testutil.WriteFile(t, dir, "good", "# secrets\nopen=file-open\nclose=file-close\n", 0o600)
	open := testutil.WriteFile(t, dir, "open", "open=file-open\n", 0o600)
	loose := testutil.WriteFile(t, dir, "loose", "open=file-open\nclose=file-close\n", 0o644)
	empty := testutil.WriteFile(t, dir, "empty", "open=\nclose=x\n", 0o600)
	credDir := filepath.Join(dir, "cred")
	os.Mkdir(credDir, 0o700)
	testutil.WriteFile(t, dir, "cred/nfqknockd.secrets", "open=cred-open\nclose=cred-close\n", 0o400)

	tests := []struct {
		name        string
		args        []string
		credentials string // $CREDENTIALS_DIRECTORY
		open, close string
		from        secretSource
		err         string
	}{
		{"defaults", nil, "", knock.DefaultOpenSecret, knock.DefaultCloseSecret, fromDefault, ""},
		{"argv", []string{"-o", "a", "-c", "b"}, "", "a", "b", fromArgv, ""},
		{"file", []string{"--secret-file", good}, "", "file-open", "file-close", fromFile, ""},
		{"argv wins over file", []string{"--secret-file", good, "-c", "b"}, "", "file-open", "b", fromFile, ""},
		{"file with open only, -c", []string{"--secret-file", open, "-c", "b"}, "", "file-open", "b", fromFile, ""},
		{"credential", nil, credDir, "cred-open", "cred-close", fromCredential, ""},
		{"file wins over credential", []string{"--secret-file", good}, credDir, "file-open", "file-close", fromFile, ""},
		{"argv only, credential unread", []string{"-o", "a", "-c", "b"}, filepath.Join(dir, "nowhere"), "a", "b", fromArgv, ""},
		{"too open", []string{"--secret-file", loose}, "", "", "", "",
			"--secret-file " + loose + ": permissions 0644 are too open (want 0600 or stricter)"},
		{"missing", []string{"--secret-file", filepath.Join(dir, "none")}, "", "", "", "",
			"--secret-file " + filepath.Join(dir, "none") + ": no such file or directory"},
		{"directory", []string{"--secret-file", dir}, "", "", "", "", "--secret-file " + dir + ": not a regular file"},
		{"empty secret", []string{"--secret-file", empty}, "", "", "", "", "--secret-file " + empty + ": line 1: empty open secret"},
		{"no close line", []string{"--secret-file", open}, "", "", "", "", "--secret-file " + open + ": no close= line (and no -c)"},
		{"empty name", []string{"--secret-file="}, "", "", "", "", "--secret-file '': file name is empty"},
		{"credential missing", nil, filepath.Join(dir, "nowhere"), "", "", "",
			"$CREDENTIALS_DIRECTORY " + filepath.Join(dir, "nowhere", "nfqknockd.secrets") + ": no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CREDENTIALS_DIRECTORY", tt.credentials)
			if tt.credentials == "" {
				os.Unsetenv("CREDENTIALS_DIRECTORY")
			}
			c, err := parseFlags(append([]string{"-p", "22"}, tt.args...))
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				for _, s := range []string{"file-open", "file-close", "cred-open"} {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error shows a secret: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Params.OpenSecret != tt.open || c.Params.CloseSecret != tt.close || c.SecretsFrom != tt.from {
				t.Errorf("got %q, %q from %q; want %q, %q from %q",
					c.Params.OpenSecret, c.Params.CloseSecret, c.SecretsFrom, tt.open, tt.close, tt.from)
			}
		})
	}
}
