//go:build unix

// Unix modes and error texts.

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/knock"
)

// TestSecrets covers where the secrets come from (flag, environment, file),
// their precedence, and every way a secret file is refused.
func TestSecrets(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string, mode os.FileMode) string {
		return testutil.WriteFile(t, dir, name, content, mode)
	}
	both := file("both", "# nfqknock secrets\n\nopen=file open\nclose=file close\n", 0o600)
	readOnly := file("readonly", "open=ro open\nclose=ro close\n", 0o400)
	spaced := file("spaced", "  # comment\n open = a=b#c \n\tclose\t=\t x y \r\n", 0o600)
	openOnly := file("openonly", "open=only open\n", 0o600)
	tooOpen := file("tooopen", "open=x\nclose=y\n", 0o644)
	groupRead := file("groupread", "open=x\nclose=y\n", 0o640)
	groupWrite := file("groupwrite", "open=x\nclose=y\n", 0o620)
	otherRead := file("otherread", "open=x\nclose=y\n", 0o604)
	emptyOpen := file("emptyopen", "open=\nclose=y\n", 0o600)
	noEqual := file("noequal", "# c\nopen x\n", 0o600)
	badKey := file("badkey", "open=x\nOpen=y\n", 0o600)
	twice := file("twice", "close=x\nclose=y\n", 0o600)
	// Windows PowerShell 5.1's `>` writes UTF-16LE with a byte-order mark;
	// older editors put a UTF-8 byte-order mark first.
	utf16 := file("utf16", "\xff\xfeo\x00p\x00e\x00n\x00=\x00x\x00\n\x00", 0o600)
	utf8BOM := file("utf8bom", "\xef\xbb\xbfopen=bom open\nclose=bom close\n", 0o600)
	missing := filepath.Join(dir, "missing")
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}

	env := func(open, close string) map[string]string {
		return map[string]string{envOpenSecret: open, envCloseSecret: close}
	}
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		open      string
		close     string
		wantError string // the line after "nfqknock: "
	}{
		{name: "flags", args: []string{"show", "-o", "fo", "-c", "fc"}, open: "fo", close: "fc"},
		{name: "long flags", args: []string{"show", "--open-secret", "fo", "--close-secret=fc"}, open: "fo", close: "fc"},
		{name: "environment", args: []string{"show"}, env: env("eo", "ec"), open: "eo", close: "ec"},
		{name: "file", args: []string{"show", "--secret-file", both}, open: "file open", close: "file close"},
		{name: "file with a UTF-8 byte-order mark", args: []string{"show", "--secret-file", utf8BOM}, open: "bom open", close: "bom close"},
		{name: "file 0400", args: []string{"show", "--secret-file", readOnly}, open: "ro open", close: "ro close"},
		{name: "file trims spaces, keeps = and # in the secret", args: []string{"show", "--secret-file", spaced}, open: "a=b#c", close: "x y"},
		{name: "flag over environment", args: []string{"show", "-o", "fo", "-c", "fc"}, env: env("eo", "ec"), open: "fo", close: "fc"},
		{name: "environment over file", args: []string{"show", "--secret-file", both}, env: env("eo", ""), open: "eo", close: "file close"},
		{name: "flag over environment over file", args: []string{"show", "--secret-file", both, "-c", "fc"}, env: env("eo", ""), open: "eo", close: "fc"},
		{name: "empty environment is unset", args: []string{"show", "--secret-file", both}, env: env("", ""), open: "file open", close: "file close"},
		{name: "open needs only the open secret", args: []string{"open", "h", "--secret-file", openOnly}, open: "only open"},
		{name: "close needs only the close secret", args: []string{"close", "h"}, env: env("", "ec"), close: "ec"},

		{name: "no secret", args: []string{"show"},
			wantError: "no open secret: give it with --open-secret, NFQKNOCK_OPEN_SECRET or an open= line in --secret-file"},
		{name: "no close secret for proxy", args: []string{"proxy", "h", "22", "--secret-file", openOnly},
			wantError: "no close secret: give it with --close-secret, NFQKNOCK_CLOSE_SECRET or a close= line in --secret-file"},
		{name: "no open secret for open", args: []string{"open", "h"}, env: env("", "ec"),
			wantError: "no open secret: give it with --open-secret, NFQKNOCK_OPEN_SECRET or an open= line in --secret-file"},
		{name: "empty flag", args: []string{"show", "-o", "", "-c", "x"}, wantError: "--open-secret '': secret must not be empty"},
		{name: "empty close flag", args: []string{"show", "-o", "x", "--close-secret="}, wantError: "--close-secret '': secret must not be empty"},
		{name: "file 0644", args: []string{"show", "--secret-file", tooOpen}, wantError: "--secret-file " + tooOpen + ": permissions 0644 are too open (want 0600 or stricter)"},
		{name: "file 0640", args: []string{"show", "--secret-file", groupRead}, wantError: "--secret-file " + groupRead + ": permissions 0640 are too open (want 0600 or stricter)"},
		{name: "file 0620", args: []string{"show", "--secret-file", groupWrite}, wantError: "--secret-file " + groupWrite + ": permissions 0620 are too open (want 0600 or stricter)"},
		{name: "file 0604", args: []string{"show", "--secret-file", otherRead}, wantError: "--secret-file " + otherRead + ": permissions 0604 are too open (want 0600 or stricter)"},
		{name: "too open file refused even when flags give both", args: []string{"show", "-o", "a", "-c", "b", "--secret-file", tooOpen},
			wantError: "--secret-file " + tooOpen + ": permissions 0644 are too open (want 0600 or stricter)"},
		{name: "missing file", args: []string{"show", "--secret-file", missing}, wantError: "--secret-file " + missing + ": no such file or directory"},
		{name: "empty file name", args: []string{"show", "--secret-file", ""}, wantError: "--secret-file '': no such file or directory"},
		{name: "directory", args: []string{"show", "--secret-file", sub}, wantError: "--secret-file " + sub + ": not a regular file"},
		{name: "empty secret in file", args: []string{"show", "--secret-file", emptyOpen}, wantError: "--secret-file " + emptyOpen + ": line 1: empty open secret"},
		{name: "line without =", args: []string{"show", "--secret-file", noEqual}, wantError: "--secret-file " + noEqual + ": line 2: want open=SECRET or close=SECRET"},
		{name: "unknown key", args: []string{"show", "--secret-file", badKey}, wantError: "--secret-file " + badKey + ": line 2: unknown key (want open or close; the key is not shown: it may be a mistyped secret)"},
		{name: "UTF-16 file", args: []string{"show", "--secret-file", utf16}, wantError: "--secret-file " + utf16 + ": " + knock.ErrUTF16.Error()},
		{name: "key twice", args: []string{"show", "--secret-file", twice}, wantError: "--secret-file " + twice + ": line 2: second close secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseArgs(tt.args, func(k string) string { return tt.env[k] })
			if tt.wantError != "" {
				var out strings.Builder
				if code := report(err, &out); code != 2 || out.String() != "nfqknock: "+tt.wantError+"\n" {
					t.Fatalf("%q: exit %d, %q; want 2, %q", tt.args, code, out.String(), "nfqknock: "+tt.wantError+"\n")
				}
				return
			}
			if err != nil {
				t.Fatalf("%q: %v", tt.args, err)
			}
			if o.params.OpenSecret != tt.open || o.params.CloseSecret != tt.close {
				t.Fatalf("%q: secrets %q, %q; want %q, %q", tt.args, o.params.OpenSecret, o.params.CloseSecret, tt.open, tt.close)
			}
		})
	}
}

// TestSecretsThroughRun checks the environment precedence through run and
// the real environment: the shown sequences are those of the winning
// secrets.
func TestSecretsThroughRun(t *testing.T) {
	dir := t.TempDir()
	f := testutil.WriteFile(t, dir, "s", "open=123\nclose=nope\n", 0o600)
	t.Setenv(envOpenSecret, "nope")
	t.Setenv(envCloseSecret, "321")
	v := readVectors(t)[0]
	// open: flag "123" beats the environment's "nope"; close: the
	// environment's "321" beats the file's "nope".
	code, stdout, stderr := runArgs(t, "show", "--secret-file", f, "-o", "123", "--at", v.unix)
	want := "OPEN: " + v.open + "\nCLOSE: " + v.close + "\n"
	if code != 0 || stdout != want || stderr != "" {
		t.Fatalf("show = %d, %q, %q; want 0, %q", code, stdout, stderr, want)
	}
}
