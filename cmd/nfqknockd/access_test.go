package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/knock"
)

// TestAccessCredential: the systemd credential nfqknockd.access gives the
// users when no flag gives secrets, before nfqknockd.secrets; a flag that
// gives secrets, or --access-file, wins over it; SIGHUP re-reads it.
func TestAccessCredential(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		// 0440, as systemd 257 and later make credentials (0400 before).
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o440); err != nil {
			t.Fatal(err)
		}
	}
	write(accessCredential, testutil.AccessText(unitUsers))
	write(credentialName, "open=cred-open-secret\nclose=cred-close-secret\n")
	other := filepath.Join(t.TempDir(), "access")
	if err := os.WriteFile(other, []byte(testutil.AccessText(unitUsers[:1])), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		if k == "CREDENTIALS_DIRECTORY" {
			return dir
		}
		return ""
	}
	parse := func(args ...string) *config {
		t.Helper()
		c := defaultConfig()
		fs, v := newFlagSet(c)
		if err := fs.Parse(append([]string{"--guard", "22,443"}, args...)); err != nil {
			t.Fatal(err)
		}
		v.copyBack()
		if err := loadAccess(c, fs, getenv); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if c.Users == nil {
			if err := loadSecrets(c, fs, getenv); err != nil {
				t.Fatalf("%v: %v", args, err)
			}
		}
		return c
	}
	for _, tc := range []struct {
		args  []string
		users int
		from  secretSource
	}{
		{nil, 3, fromAccessCredential},
		{[]string{"--access-file", other}, 1, fromAccessFile},
		{[]string{"-o", "argv-open-secret", "-c", "argv-close-secret"}, 0, fromArgv},
	} {
		c := parse(tc.args...)
		if len(c.Users) != tc.users || c.OpenFrom != tc.from {
			t.Errorf("%v: %d users from %q, want %d from %q", tc.args, len(c.Users), c.OpenFrom, tc.users, tc.from)
		}
	}
	c := parse()
	if got := c.startSecrets().from(); got != "the systemd credential nfqknockd.access (3 users: alice, bob, carol)" {
		t.Errorf("from() = %q", got)
	}
	write(accessCredential+".new", testutil.AccessText(unitUsers[2:]))
	if err := os.Rename(filepath.Join(dir, accessCredential+".new"), filepath.Join(dir, accessCredential)); err != nil {
		t.Fatal(err)
	}
	users, err := c.reloadAccess(getenv)
	if err != nil || len(users) != 1 || users[0].Name != "carol" {
		t.Errorf("reloadAccess: %v, %v", users, err)
	}
	if _, err := c.reloadAccess(func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "CREDENTIALS_DIRECTORY is not set") {
		t.Errorf("reloadAccess without $CREDENTIALS_DIRECTORY: %v", err)
	}
}

// TestShowAccessFile: -s with an access file prints each user's C
// sequences under a [NAME] line, in the file's order, and needs no --guard.
func TestShowAccessFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access")
	if err := os.WriteFile(path, []byte(testutil.AccessText(unitUsers)), 0o600); err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1_700_000_000, 0)
	code, stdout, stderr := run("-s", "--access-file", path, "--at", "1700000000")
	var want strings.Builder
	for _, u := range unitUsers {
		p := knock.DefaultParams()
		p.OpenSecret, p.CloseSecret = u.OpenSecret, u.CloseSecret
		want.WriteString("[" + u.Name + "]\n" + knock.FormatSequences(p.Sequences(at)))
	}
	if code != 0 || stderr != "" || stdout != want.String() {
		t.Errorf("-s --access-file: exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, stderr, stdout, want.String())
	}
}
