package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// TestCheck runs nfqknockd check in process: the start line's settings
// and the start's warnings on stdout and exit 0, or one line and exit 2;
// never a secret.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	const open, close = "check-open-Xq81-long-enough", "check-close-Zr22-long-enough"
	secrets := testutil.WriteFile(t, dir, "secrets", "open = "+open+"\nclose = "+close+"\n", 0o600)
	access := testutil.WriteFile(t, dir, "access", "[alice]\nopen = "+open+"\nclose = "+close+"\nports = 22\n[bob]\nopen = bob-open-secret-9x\nclose = bob-close-secret-9x\n", 0o600)
	theirs := filepath.Join(dir, "theirs")
	if err := os.Mkdir(theirs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string // substrings, in order, of stdout
		warnings int      // WARN lines on stdout
		stderr   string   // the whole of stderr
	}{
		{"secret file", []string{"-p", "22,2222", "--secret-file", secrets},
			0, []string{`level=INFO msg="checked: a start would use" table="inet nfqknock" queue="num 100 total 1" range=1-65535 guard=22,2222 allow=none digest=md5`, `secrets="--secret-file ` + secrets + `"`}, 0, ""},
		{"public defaults", []string{"-p", "22"},
			0, []string{`secrets="the C daemon's public defaults"`, `level=WARN msg="the secrets are the C daemon's public defaults`}, 1, ""},
		{"access file, one-time", []string{"-p", "22", "--access-file", access, "--one-time", "--range", "1000-1003"},
			0, []string{`range=1000-1003`, `one_time=true`, `level=WARN`}, 1, ""},
		{"open port over the guard", []string{"-p", "22,23", "-P", "23", "--secret-file", secrets},
			0, []string{`guard=22 `, `level=WARN msg="port given with both --guard and --open-port is not guarded" port=23`}, 1, ""},
		{"no port left", []string{"-p", "22", "-P", "22", "--secret-file", secrets},
			2, nil, 0, "nfqknockd: --guard 22: no port to guard: every one is also given with -P/--open-port, which wins\n"},
		{"missing secret file", []string{"-p", "22", "--secret-file", dir + "/nope"},
			2, nil, 0, "nfqknockd: --secret-file " + dir + "/nope: no such file or directory\n"},
		{"-s", []string{"-s"}, 2, nil, 0, "nfqknockd: check: -s and --version are not for check: give the daemon's flags\n"},
		{"lock dir others may write in", []string{"-p", "22", "--secret-file", secrets, "--lock-dir", "/tmp"},
			2, nil, 0, "nfqknockd: --lock-dir /tmp: mode 0777 lets other users write in it: give a directory only root or the daemon's user can write (chmod go-w)\n"},
		{"state dir missing its parent", []string{"-p", "22", "--secret-file", secrets, "--one-time", "--state-dir", dir + "/no/state"},
			2, nil, 0, "nfqknockd: --state-dir " + dir + "/no/state: cannot create it: no such file or directory\n"},
		{"state dir to be made", []string{"-p", "22", "--secret-file", secrets, "--one-time", "--state-dir", dir + "/state"},
			0, []string{`one_time=true`}, 0, ""},
		{"metrics dir not the daemon's", []string{"-p", "22", "--secret-file", secrets, "--metrics-file", theirs + "/m.prom"},
			2, nil, 0, "nfqknockd: --metrics-file " + theirs + "/m.prom: cannot create a file in " + theirs + ": permission denied\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(append([]string{"check"}, tt.args...)...)
			if code != tt.code || stderr != tt.stderr {
				t.Fatalf("exit %d, stderr %q; want exit %d, stderr %q\nstdout:\n%s", code, stderr, tt.code, tt.stderr, stdout)
			}
			rest := stdout
			for _, want := range tt.stdout {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Fatalf("stdout lacks %q (in order):\n%s", want, stdout)
				}
				rest = rest[i+len(want):]
			}
			if n := strings.Count(stdout, "level=WARN"); n != tt.warnings {
				t.Errorf("%d warnings, want %d:\n%s", n, tt.warnings, stdout)
			}
			if code == 2 && stdout != "" {
				t.Errorf("stdout %q on a refusal", stdout)
			}
			for _, s := range []string{open, close, "bob-open-secret-9x"} {
				if strings.Contains(stdout+stderr, s) {
					t.Errorf("a secret is shown:\n%s%s", stdout, stderr)
				}
			}
		})
	}
}

// TestShowDefaultSecretsWarns: -s without secrets prints the public
// defaults' sequences, and says so on stderr; with secrets it says nothing.
func TestShowDefaultSecretsWarns(t *testing.T) {
	code, stdout, stderr := run("-s")
	if code != 0 || !strings.HasPrefix(stdout, "OPEN: ") || !strings.Contains(stderr, "public default secrets") {
		t.Errorf("-s: exit %d, stdout %q, stderr %q; want the sequences and a warning", code, stdout, stderr)
	}
	code, stdout, stderr = run("-o", "123", "-c", "321", "-s")
	if code != 0 || !strings.HasPrefix(stdout, "OPEN: ") || stderr != "" {
		t.Errorf("-o -c -s: exit %d, stdout %q, stderr %q; want the sequences alone", code, stdout, stderr)
	}
	// With --one-time (the checklist runs -s with the daemon's flags): the
	// same C-compatible lines, and a note that they open nothing.
	code, stdout2, stderr := run("-o", "123", "-c", "321", "-s", "--one-time")
	if code != 0 || stdout2 != stdout || !strings.Contains(stderr, "open nothing in this mode") {
		t.Errorf("-s --one-time: exit %d, stdout %q (want %q), stderr %q", code, stdout2, stdout, stderr)
	}
}
