package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// credentialName is the name of the systemd credential that holds the
// secrets (packaging/nfqknockd.service: LoadCredential=).
const credentialName = "nfqknockd.secrets"

// tcase is a bad input of TestBadInputLeavesNoTable.
type tcase struct {
	name string
	argv []string // after the daemon's path; prefix runs it under another program
	pre  []string
	code int
	want string // the whole stderr line, without "nfqknockd: "
}

// accessCases are the bad access files: each one line naming the file,
// the line and what is wrong, exit 2. file writes a file in the test's
// directory and returns its path.
func accessCases(t *testing.T, file func(name, content string, mode os.FileMode) string) []tcase {
	ok := "[alice]\nopen = access-open-secret\nclose = access-close-secret\n"
	var cases []tcase
	for _, c := range []struct{ name, content, want string }{
		{"malformed line", "[alice]\nopen access-open-secret\n", "line 2: malformed line (want [user] or KEY = VALUE)"},
		{"spa-address not yes or no", ok + "spa-address = 1\n", "line 4: spa-address wants yes or no"},
		{"unknown key", ok + "colour = blue\n", "line 4: unknown key (want open, close, ports or spa-address)"},
		{"duplicate user", ok + ok, "line 4: second section of the user of line 1"},
		{"empty secret", "[alice]\nopen =\nclose = access-close-secret\n", "line 2: empty open secret"},
		{"port out of range", ok + "ports = 70000\n", "line 4: port must be 1..65535"},
		{"port not guarded", ok + "ports = 22, 23\n", "line 4: port 23 is not guarded"},
		{"key outside a section", "open = access-open-secret\n", "line 1: open outside a [user] section"},
		{"bad user name", "[al ice]\n", "line 1: invalid user name (want 1-32 characters of A-Z a-z 0-9 _ . -)"},
		{"user without close", "[alice]\nopen = access-open-secret\n", "line 1: user without a close secret"},
		{"shared secret", ok + "[bob]\nopen = access-open-secret\nclose = bob-close-secret\n", "line 5: the user of line 1 has this secret (each user needs secrets of their own)"},
		{"no user", "# nobody yet\n", "no user: want a [user] section with open and close secrets"},
	} {
		name := file("access-"+strings.ReplaceAll(c.name, " ", "-"), c.content, 0o600)
		cases = append(cases, tcase{name: "access file: " + c.name, argv: []string{"-p", "22", "--access-file", name}, code: 2,
			want: "--access-file " + name + ": " + c.want})
	}
	good := file("access-good", ok, 0o600)
	loose := file("access-loose", ok, 0o640)
	nobodys := file("access-nobodys", ok, 0o600)
	if err := os.Chown(nobodys, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	return append(cases,
		tcase{name: "access file of another user", argv: []string{"-p", "22", "--access-file", nobodys}, code: 2,
			want: "--access-file " + nobodys + ": owned by uid 65534: want root or this process's user (uid 0)"},
		tcase{name: "access file group-readable", argv: []string{"-p", "22", "--access-file", loose}, code: 2,
			want: "--access-file " + loose + ": permissions 0640 are too open (want 0600 or stricter)"},
		tcase{name: "access file with -o", argv: []string{"-p", "22", "--access-file", good, "-o", "argv-open-secret"}, code: 2,
			want: "--access-file: cannot be combined with --open-secret: each user's secrets are in the access file"},
		tcase{name: "access file with --secret-file", argv: []string{"-p", "22", "--access-file", good, "--secret-file", good}, code: 2,
			want: "--access-file: cannot be combined with --secret-file: each user's secrets are in the access file"},
		tcase{name: "access file empty name", argv: []string{"-p", "22", "--access-file", ""}, code: 2,
			want: "--access-file '': file name is empty"},
	)
}

// TestBadInputLeavesNoTable runs the built daemon in a network namespace
// with every bad input: each prints its exact one-line error, exits with its
// status, prints nothing on stdout, and leaves no table behind.
func TestBadInputLeavesNoTable(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil { // nobody may reach the files
		t.Fatal(err)
	}
	file := func(name, content string, mode os.FileMode) string {
		return testutil.WriteFile(t, dir, name, content, mode)
	}
	loose := file("loose", "open=a\nclose=b\n", 0o644)
	theirs := file("theirs", "open=a\nclose=b\n", 0o600)
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	rootOnly := file("root-only", "open=a\nclose=b\n", 0o600)
	emptySecret := file("empty", "open=a\nclose=\n", 0o600)
	openOnly := file("open-only", "open=file-open-secret\n", 0o600)
	closeOnly := file("close-only", "close=file-close-secret\n", 0o600)
	noSecret := file("no-secret", "# nothing yet\n", 0o600)
	twins := file("twins", "open=twin-secret\nclose=twin-secret\n", 0o600)
	credDir := filepath.Join(dir, "cred")
	if err := os.Mkdir(credDir, 0o755); err != nil {
		t.Fatal(err)
	}
	file("cred/"+credentialName, "open=cred-open-secret\n", 0o400)
	withCred := []string{"env", "CREDENTIALS_DIRECTORY=" + credDir}
	missing := filepath.Join(dir, "missing")
	// The daemon keeps CAP_NET_ADMIN alone: root cannot write in a
	// directory of nobody's.
	nobodys := filepath.Join(dir, "nobodys")
	if err := os.Mkdir(nobodys, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(nobodys, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	openDir := filepath.Join(dir, "open")
	if err := os.Mkdir(openDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(openDir, 0o777); err != nil {
		t.Fatal(err)
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) not found: %v", err)
	}
	asNobody := []string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"}

	var cases []tcase
	for _, c := range testutil.BadFlags() {
		cases = append(cases, tcase{name: strings.Join(c.Args, " "), argv: c.Args, code: 2, want: c.Want})
	}
	cases = append(cases, accessCases(t, file)...)
	cases = append(cases,
		tcase{name: "secret file world-readable", argv: []string{"-p", "22", "--secret-file", loose}, code: 2,
			want: "--secret-file " + loose + ": permissions 0644 are too open (want 0600 or stricter)"},
		tcase{name: "secret file of another user", argv: []string{"-p", "22", "--secret-file", theirs}, code: 2,
			want: "--secret-file " + theirs + ": owned by uid 65534: want root or this process's user (uid 0)"},
		tcase{name: "secret file missing", argv: []string{"-p", "22", "--secret-file", missing}, code: 2,
			want: "--secret-file " + missing + ": no such file or directory"},
		tcase{name: "secret file unreadable", pre: asNobody, argv: []string{"-p", "22", "--secret-file", rootOnly}, code: 2,
			want: "--secret-file " + rootOnly + ": permission denied"},
		tcase{name: "empty secret in file", argv: []string{"-p", "22", "--secret-file", emptySecret}, code: 2,
			want: "--secret-file " + emptySecret + ": line 2: empty close secret"},
		tcase{name: "secret file with open only", argv: []string{"-p", "22", "--secret-file", openOnly}, code: 2,
			want: "--secret-file " + openOnly + ": no close= line and no --close-secret: " + testutil.WantWhyClose},
		tcase{name: "secret file with open only, -o", argv: []string{"-p", "22", "-o", "argv-open-secret", "--secret-file", openOnly}, code: 2,
			want: "--secret-file " + openOnly + ": no close= line and no --close-secret: " + testutil.WantWhyClose},
		tcase{name: "secret file with close only", argv: []string{"-p", "22", "--secret-file", closeOnly}, code: 2,
			want: "--secret-file " + closeOnly + ": no open= line and no --open-secret: " + testutil.WantWhyOpen},
		tcase{name: "secret file without secrets", argv: []string{"-p", "22", "--secret-file", noSecret}, code: 2,
			want: "--secret-file " + noSecret + ": no open= and no close= line: give both secrets"},
		tcase{name: "secret file with equal secrets", argv: []string{"-p", "22", "--secret-file", twins}, code: 2,
			want: "--secret-file " + twins + ": open= and close= hold the same secret: " + testutil.WantWhyEqual},
		tcase{name: "secret file close equal to -o", argv: []string{"-p", "22", "-o", "file-close-secret", "--secret-file", closeOnly}, code: 2,
			want: "--secret-file " + closeOnly + ": close= holds the same secret as --open-secret: " + testutil.WantWhyEqual},
		tcase{name: "secret file open equal to -c", argv: []string{"-p", "22", "-c", "file-open-secret", "--secret-file", openOnly}, code: 2,
			want: "--secret-file " + openOnly + ": open= holds the same secret as --close-secret: " + testutil.WantWhyEqual},
		tcase{name: "credential with open only", pre: withCred, argv: []string{"-p", "22"}, code: 2,
			want: "$CREDENTIALS_DIRECTORY " + filepath.Join(credDir, credentialName) + ": no close= line and no --close-secret: " + testutil.WantWhyClose},
		tcase{name: "credential with open only, -o", pre: withCred, argv: []string{"-p", "22", "-o", "argv-open-secret"}, code: 2,
			want: "$CREDENTIALS_DIRECTORY " + filepath.Join(credDir, credentialName) + ": no close= line and no --close-secret: " + testutil.WantWhyClose},
		tcase{name: "metrics directory not writable", argv: []string{"-p", "22", "-o", "a", "-c", "b", "--metrics-file", nobodys + "/nfqknockd.prom"}, code: 2,
			want: "--metrics-file " + nobodys + "/nfqknockd.prom: cannot create a file in " + nobodys + ": permission denied"},
		tcase{name: "lock directory writable by all", argv: []string{"-p", "22", "-o", "a", "-c", "b", "--lock-dir", openDir}, code: 2,
			want: "--lock-dir " + openDir + ": mode 0777 lets other users write in it: give a directory only root or the daemon's user can write (chmod go-w)"},
		tcase{name: "lock directory of another user", argv: []string{"-p", "22", "-o", "a", "-c", "b", "--lock-dir", nobodys}, code: 2,
			want: "--lock-dir " + nobodys + ": owned by uid 65534, neither root nor this process's user (uid 0): that user could hold or change what is in it"},
		tcase{name: "lock directory a file", argv: []string{"-p", "22", "-o", "a", "-c", "b", "--lock-dir", rootOnly}, code: 2,
			want: "--lock-dir " + rootOnly + ": not a directory"},
		tcase{name: "state directory writable by all", argv: []string{"-p", "22", "-o", "a", "-c", "b", "--one-time", "--state-dir", openDir}, code: 2,
			want: "--state-dir " + openDir + ": mode 0777 lets other users write in it: give a directory only root or the daemon's user can write (chmod go-w)"},
		tcase{name: "state directory's parent missing", argv: []string{"-p", "22", "-o", "a", "-c", "b", "--one-time", "--state-dir", missing + "/state"}, code: 2,
			want: "--state-dir " + missing + "/state: cannot create it: no such file or directory"},
		tcase{name: "no CAP_NET_ADMIN", pre: asNobody, argv: []string{"-p", "22", "-o", "a", "-c", "b"}, code: 1,
			want: "CAP_NET_ADMIN is missing: run as root or grant the capability (it binds NFQUEUE and programs nf_tables)"},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			argv := append(append(append([]string{}, c.pre...), e.bin), c.argv...)
			code, stdout, stderr := e.runServer(t, argv)
			for _, secret := range []string{"file-open-secret", "file-close-secret", "twin-secret", "cred-open-secret", "argv-open-secret", "access-open-secret", "access-close-secret"} {
				if strings.Contains(stderr, secret) {
					t.Errorf("stderr shows a secret: %q", stderr)
				}
			}
			if code != c.code || stdout != "" || stderr != "nfqknockd: "+c.want+"\n" {
				t.Errorf("exit %d, stdout %q, stderr %q\nwant exit %d, no stdout, stderr %q", code, stdout, stderr, c.code, "nfqknockd: "+c.want+"\n")
			}
			if out, _ := e.nft("list", "tables"); strings.TrimSpace(out) != "" {
				t.Errorf("table left behind: %s", out)
			}
			// nfqknockd check refuses the same input with the same line.
			if c.code != 2 {
				return
			}
			argv = append(append(append([]string{}, c.pre...), e.bin, "check"), c.argv...)
			code, stdout, stderr = e.runServer(t, argv)
			if code != 2 || stdout != "" || stderr != "nfqknockd: "+c.want+"\n" {
				t.Errorf("check: exit %d, stdout %q, stderr %q\nwant exit 2, no stdout, stderr %q", code, stdout, stderr, "nfqknockd: "+c.want+"\n")
			}
		})
	}

	// A queue bound by another process: one line, exit 1, and the other's
	// table untouched.
	first := e.start("--table", "first")
	code, stdout, stderr := e.runServer(t, []string{e.bin, "-p", "22", "-o", "a", "-c", "b"})
	want := "nfqknockd: -q 100: queue 100 is already bound by another process: netlink receive: operation not permitted\n"
	if code != 1 || stdout != "" || stderr != want {
		t.Errorf("queue taken: exit %d, stdout %q, stderr %q; want exit 1 and %q", code, stdout, stderr, want)
	}
	if out, _ := e.nft("list", "tables"); strings.TrimSpace(out) != "table inet first" {
		t.Errorf("tables after the failed start: %q, want only the first daemon's", out)
	}
	if code := first.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("first daemon's exit status = %d", code)
	}
}

// runServer runs argv in the server namespace and returns its exit status,
// stdout and stderr.
func (e *env) runServer(t *testing.T, argv []string) (int, string, string) {
	t.Helper()
	return runIn(t, e.pair.Server, argv)
}

// runIn runs argv in namespace ns, stdin empty, and returns its exit
// status, stdout and stderr.
func runIn(t *testing.T, ns string, argv []string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	case err != nil:
		t.Fatal(err)
	}
	return 0, stdout.String(), stderr.String()
}
