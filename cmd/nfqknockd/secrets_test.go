package main

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/knock"
)

// secretsInTests are the secrets of these tests: no error or warning may
// show one.
var secretsInTests = []string{"file-open", "file-close", "cred-open", "cred-close", "argv-open", "argv-close", "twin-secret",
	"new-open", "new-close", knock.DefaultOpenSecret, knock.DefaultCloseSecret}

// showsSecret returns the secret that msg shows, or "".
func showsSecret(msg string) string {
	for _, s := range secretsInTests {
		if strings.Contains(msg, s) {
			return s
		}
	}
	return ""
}

// setCredentials sets $CREDENTIALS_DIRECTORY to dir for the test, or unsets
// it when dir is "".
func setCredentials(t *testing.T, dir string) {
	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	if dir == "" {
		os.Unsetenv("CREDENTIALS_DIRECTORY")
	}
}

// TestSecrets: where the secrets come from, and the one-line errors of bad
// secret files and of lone or equal secrets. No error ever shows a secret.
func TestSecrets(t *testing.T) {
	dir := t.TempDir()
	good := testutil.WriteFile(t, dir, "good", "# secrets\nopen=file-open\nclose=file-close\n", 0o600)
	open := testutil.WriteFile(t, dir, "open", "open=file-open\n", 0o600)
	closeOnly := testutil.WriteFile(t, dir, "close", "close=file-close\n", 0o600)
	none := testutil.WriteFile(t, dir, "none", "# to do\n", 0o600)
	twins := testutil.WriteFile(t, dir, "twins", "open=twin-secret\nclose=twin-secret\n", 0o600)
	loose := testutil.WriteFile(t, dir, "loose", "open=file-open\nclose=file-close\n", 0o644)
	empty := testutil.WriteFile(t, dir, "empty", "open=\nclose=x\n", 0o600)
	credDir := filepath.Join(dir, "cred")
	os.Mkdir(credDir, 0o700)
	cred := testutil.WriteFile(t, dir, "cred/nfqknockd.secrets", "open=cred-open\nclose=cred-close\n", 0o400)
	credOpenDir := filepath.Join(dir, "cred-half")
	os.Mkdir(credOpenDir, 0o700)
	credOpen := testutil.WriteFile(t, dir, "cred-half/nfqknockd.secrets", "open=cred-open\n", 0o400)
	// systemd 257 and later give a credential mode 0440 (the service's
	// group may read it); one that others may read, or the group write,
	// is still refused.
	cred440Dir := filepath.Join(dir, "cred440")
	os.Mkdir(cred440Dir, 0o700)
	testutil.WriteFile(t, dir, "cred440/nfqknockd.secrets", "open=cred-open\nclose=cred-close\n", 0o440)
	cred444Dir := filepath.Join(dir, "cred444")
	os.Mkdir(cred444Dir, 0o700)
	cred444 := testutil.WriteFile(t, dir, "cred444/nfqknockd.secrets", "open=cred-open\nclose=cred-close\n", 0o444)
	cred460Dir := filepath.Join(dir, "cred460")
	os.Mkdir(cred460Dir, 0o700)
	cred460 := testutil.WriteFile(t, dir, "cred460/nfqknockd.secrets", "open=cred-open\nclose=cred-close\n", 0o460)
	nowhere := filepath.Join(dir, "nowhere")

	tests := []struct {
		name            string
		args            []string
		credentials     string // $CREDENTIALS_DIRECTORY
		open, close     string
		openFrom, clFrm secretSource
		from            string // startSecrets().from()
		err             string
	}{
		{"defaults", nil, "", knock.DefaultOpenSecret, knock.DefaultCloseSecret, fromDefault, fromDefault,
			"the C daemon's public defaults", ""},
		{"argv", []string{"-o", "argv-open", "-c", "argv-close"}, "", "argv-open", "argv-close", fromArgv, fromArgv,
			"the command line", ""},
		{"file", []string{"--secret-file", good}, "", "file-open", "file-close", fromFile, fromFile,
			"--secret-file " + good, ""},
		{"argv wins over file", []string{"--secret-file", good, "-c", "argv-close"}, "", "file-open", "argv-close", fromFile, fromArgv,
			"open: --secret-file " + good + ", close: the command line", ""},
		{"argv wins over file for both", []string{"--secret-file", good, "-c", "argv-close", "-o", "argv-open"}, "", "argv-open", "argv-close",
			fromArgv, fromArgv, "the command line", ""},
		{"file with open only, -c", []string{"--secret-file", open, "-c", "argv-close"}, "", "file-open", "argv-close", fromFile, fromArgv,
			"open: --secret-file " + open + ", close: the command line", ""},
		{"file with close only, -o", []string{"--secret-file", closeOnly, "-o", "argv-open"}, "", "argv-open", "file-close", fromArgv, fromFile,
			"open: the command line, close: --secret-file " + closeOnly, ""},
		{"credential", nil, credDir, "cred-open", "cred-close", fromCredential, fromCredential,
			"the systemd credential nfqknockd.secrets", ""},
		{"credential 0440 (systemd 257)", nil, cred440Dir, "cred-open", "cred-close", fromCredential, fromCredential,
			"the systemd credential nfqknockd.secrets", ""},
		{"credential 0444", nil, cred444Dir, "", "", "", "", "",
			"$CREDENTIALS_DIRECTORY " + cred444 + ": permissions 0444 are too open for a credential (want 0440 or stricter)"},
		{"credential 0460", nil, cred460Dir, "", "", "", "", "",
			"$CREDENTIALS_DIRECTORY " + cred460 + ": permissions 0460 are too open for a credential (want 0440 or stricter)"},
		{"credential with open only, -c", []string{"-c", "argv-close"}, credOpenDir, "cred-open", "argv-close", fromCredential, fromArgv,
			"open: the systemd credential nfqknockd.secrets, close: the command line", ""},
		{"file wins over credential", []string{"--secret-file", good}, credDir, "file-open", "file-close", fromFile, fromFile,
			"--secret-file " + good, ""},
		{"argv only, credential unread", []string{"-o", "argv-open", "-c", "argv-close"}, nowhere, "argv-open", "argv-close",
			fromArgv, fromArgv, "the command line", ""},
		{"too open", []string{"--secret-file", loose}, "", "", "", "", "", "",
			"--secret-file " + loose + ": permissions 0644 are too open (want 0600 or stricter)"},
		{"missing", []string{"--secret-file", nowhere}, "", "", "", "", "", "",
			"--secret-file " + nowhere + ": no such file or directory"},
		{"directory", []string{"--secret-file", dir}, "", "", "", "", "", "", "--secret-file " + dir + ": not a regular file"},
		{"empty secret", []string{"--secret-file", empty}, "", "", "", "", "", "", "--secret-file " + empty + ": line 1: empty open secret"},
		{"empty name", []string{"--secret-file="}, "", "", "", "", "", "", "--secret-file '': file name is empty"},
		{"credential missing", nil, nowhere, "", "", "", "", "",
			"$CREDENTIALS_DIRECTORY " + filepath.Join(nowhere, "nfqknockd.secrets") + ": no such file or directory"},
		// One secret without the other.
		{"only -o", []string{"-o", "argv-open"}, "", "", "", "", "", "",
			"--open-secret: given without --close-secret: " + testutil.WantWhyClose},
		{"only -c", []string{"-c", "argv-close"}, "", "", "", "", "", "",
			"--close-secret: given without --open-secret: " + testutil.WantWhyOpen},
		{"only -c, credential unset", []string{"--close-secret=argv-close"}, "", "", "", "", "", "",
			"--close-secret: given without --open-secret: " + testutil.WantWhyOpen},
		{"file with open only", []string{"--secret-file", open}, "", "", "", "", "", "",
			"--secret-file " + open + ": no close= line and no --close-secret: " + testutil.WantWhyClose},
		{"file with open only, -o", []string{"--secret-file", open, "-o", "argv-open"}, "", "", "", "", "", "",
			"--secret-file " + open + ": no close= line and no --close-secret: " + testutil.WantWhyClose},
		{"file with close only", []string{"--secret-file", closeOnly}, "", "", "", "", "", "",
			"--secret-file " + closeOnly + ": no open= line and no --open-secret: " + testutil.WantWhyOpen},
		{"file without secrets", []string{"--secret-file", none}, "", "", "", "", "", "",
			"--secret-file " + none + ": no open= and no close= line: give both secrets"},
		{"credential with open only", nil, credOpenDir, "", "", "", "", "",
			"$CREDENTIALS_DIRECTORY " + credOpen + ": no close= line and no --close-secret: " + testutil.WantWhyClose},
		{"credential with open only, -o", []string{"-o", "argv-open"}, credOpenDir, "", "", "", "", "",
			"$CREDENTIALS_DIRECTORY " + credOpen + ": no close= line and no --close-secret: " + testutil.WantWhyClose},
		// Equal secrets.
		{"equal on argv", []string{"-o", "twin-secret", "-c", "twin-secret"}, "", "", "", "", "", "",
			"--close-secret: same as --open-secret: " + testutil.WantWhyEqual},
		{"equal in file", []string{"--secret-file", twins}, "", "", "", "", "", "",
			"--secret-file " + twins + ": open= and close= hold the same secret: " + testutil.WantWhyEqual},
		{"file close equal to -o", []string{"--secret-file", good, "-o", "file-close"}, "", "", "", "", "", "",
			"--secret-file " + good + ": close= holds the same secret as --open-secret: " + testutil.WantWhyEqual},
		{"file open equal to -c", []string{"--secret-file", good, "-c", "file-open"}, "", "", "", "", "", "",
			"--secret-file " + good + ": open= holds the same secret as --close-secret: " + testutil.WantWhyEqual},
		{"credential open equal to -c", []string{"-c", "cred-open"}, credDir, "", "", "", "", "",
			"$CREDENTIALS_DIRECTORY " + cred + ": open= holds the same secret as --close-secret: " + testutil.WantWhyEqual},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setCredentials(t, tt.credentials)
			c, err := parseFlags(append([]string{"-p", "22"}, tt.args...))
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				if s := showsSecret(err.Error()); s != "" {
					t.Errorf("error shows the secret %q: %v", s, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Params.OpenSecret != tt.open || c.Params.CloseSecret != tt.close || c.OpenFrom != tt.openFrom || c.CloseFrom != tt.clFrm {
				t.Errorf("got %q from %q, %q from %q; want %q from %q, %q from %q",
					c.Params.OpenSecret, c.OpenFrom, c.Params.CloseSecret, c.CloseFrom, tt.open, tt.openFrom, tt.close, tt.clFrm)
			}
			if got := c.startSecrets().from(); got != tt.from {
				t.Errorf("from() = %q, want %q", got, tt.from)
			}
			if s := showsSecret(c.startSecrets().from()); s != "" {
				t.Errorf("from() shows the secret %q", s)
			}
		})
	}
}

// TestSecretsFromQuotes: a path that needs quotes is quoted in the start
// line.
func TestSecretsFromQuotes(t *testing.T) {
	c := &config{SecretFile: "/etc/my secrets", OpenFrom: fromFile, CloseFrom: fromArgv}
	if got, want := c.startSecrets().from(), "open: --secret-file '/etc/my secrets', close: the command line"; got != want {
		t.Errorf("from() = %q, want %q", got, want)
	}
	c = &config{OpenFrom: fromArgv, CloseFrom: fromDefault}
	if got, want := c.startSecrets().from(), "open: the command line, close: the C daemon's public default"; got != want {
		t.Errorf("from() = %q, want %q", got, want)
	}
}

// TestReloadSecrets: SIGHUP re-reads the secrets that came from a file or
// the credential, with the checks of the start, and never shows a secret.
func TestReloadSecrets(t *testing.T) {
	dir := t.TempDir()
	credDir := filepath.Join(dir, "cred")
	os.Mkdir(credDir, 0o700)
	secrets := filepath.Join(dir, "secrets")
	cred := filepath.Join(credDir, credentialName)
	write := func(name, content string, mode os.FileMode) {
		t.Helper()
		os.Remove(name)
		if err := os.WriteFile(name, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	getenv := func(dir string) func(string) string {
		return func(k string) string {
			if k == "CREDENTIALS_DIRECTORY" {
				return dir
			}
			return ""
		}
	}
	const both = "open=file-open\nclose=file-close\n"

	tests := []struct {
		name        string
		args        []string // parsed at start, with -p 22
		credentials string   // $CREDENTIALS_DIRECTORY at start and at the reload
		at          string   // what the file holds at the reload; "-" to remove it
		mode        os.FileMode
		open, close string
		err         string
	}{
		{"file", []string{"--secret-file", secrets}, "", "open=new-open\nclose=new-close\n", 0o600, "new-open", "new-close", ""},
		{"file unchanged", []string{"--secret-file", secrets}, "", both, 0o400, "file-open", "file-close", ""},
		{"file, argv open stays", []string{"--secret-file", secrets, "-o", "argv-open"}, "", "open=new-open\nclose=new-close\n", 0o600,
			"argv-open", "new-close", ""},
		{"file, argv close stays", []string{"--secret-file", secrets, "-c", "argv-close"}, "", "open=new-open\n", 0o600,
			"new-open", "argv-close", ""},
		{"credential", nil, credDir, "open=new-open\nclose=new-close\n", 0o400, "new-open", "new-close", ""},
		{"credential, argv close stays", []string{"-c", "argv-close"}, credDir, "open=new-open\nclose=new-close\n", 0o400,
			"new-open", "argv-close", ""},
		{"too open", []string{"--secret-file", secrets}, "", both, 0o640, "", "",
			"--secret-file " + secrets + ": permissions 0640 are too open (want 0600 or stricter)"},
		{"removed", []string{"--secret-file", secrets}, "", "-", 0, "", "",
			"--secret-file " + secrets + ": no such file or directory"},
		{"bad line", []string{"--secret-file", secrets}, "", "open=new-open\nclose new-close\n", 0o600, "", "",
			"--secret-file " + secrets + ": line 2: want open=SECRET or close=SECRET"},
		{"close line gone", []string{"--secret-file", secrets}, "", "open=new-open\n", 0o600, "", "",
			"--secret-file " + secrets + ": no close= line and no --close-secret: " + testutil.WantWhyClose},
		{"open line gone", []string{"--secret-file", secrets, "-c", "argv-close"}, "", "close=new-close\n", 0o600, "", "",
			"--secret-file " + secrets + ": no open= line and no --open-secret: " + testutil.WantWhyOpen},
		{"both lines gone", []string{"--secret-file", secrets}, "", "\n", 0o600, "", "",
			"--secret-file " + secrets + ": no open= and no close= line: give both secrets"},
		{"equal", []string{"--secret-file", secrets}, "", "open=twin-secret\nclose=twin-secret\n", 0o600, "", "",
			"--secret-file " + secrets + ": open= and close= hold the same secret: " + testutil.WantWhyEqual},
		{"equal to argv", []string{"--secret-file", secrets, "-o", "argv-open"}, "", "close=argv-open\n", 0o600, "", "",
			"--secret-file " + secrets + ": close= holds the same secret as --open-secret: " + testutil.WantWhyEqual},
		{"credential equal", nil, credDir, "open=twin-secret\nclose=twin-secret\n", 0o400, "", "",
			"$CREDENTIALS_DIRECTORY " + cred + ": open= and close= hold the same secret: " + testutil.WantWhyEqual},
		{"argv only", []string{"-o", "argv-open", "-c", "argv-close"}, "", both, 0o600, "", "",
			"nothing to reload: the secrets come from the command line; only --secret-file or the systemd credential nfqknockd.secrets is re-read"},
		{"argv only, file given", []string{"-o", "argv-open", "-c", "argv-close", "--secret-file", secrets}, "", both, 0o600, "", "",
			"nothing to reload: the secrets come from the command line; only --secret-file or the systemd credential nfqknockd.secrets is re-read"},
		{"defaults", nil, "", both, 0o600, "", "",
			"nothing to reload: the secrets come from the C daemon's public defaults; only --secret-file or the systemd credential nfqknockd.secrets is re-read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setCredentials(t, tt.credentials)
			file := secrets
			if tt.credentials != "" {
				file = cred
			}
			write(file, both, 0o400)
			c, err := parseFlags(append([]string{"-p", "22"}, tt.args...))
			if err != nil {
				t.Fatal(err)
			}
			before := *c
			if tt.at == "-" {
				os.Remove(file)
			} else {
				write(file, tt.at, tt.mode)
			}
			open, close, err := c.reloadSecrets(getenv(tt.credentials))
			if tt.err != "" {
				if err == nil || err.Error() != tt.err || open != "" || close != "" {
					t.Fatalf("= %q, %q, %v; want the error %q", open, close, err, tt.err)
				}
				if s := showsSecret(err.Error()); s != "" {
					t.Errorf("error shows the secret %q: %v", s, err)
				}
			} else if err != nil || open != tt.open || close != tt.close {
				t.Fatalf("= %q, %q, %v; want %q, %q", open, close, err, tt.open, tt.close)
			}
			if c.Params.OpenSecret != before.Params.OpenSecret || c.Params.CloseSecret != before.Params.CloseSecret ||
				c.OpenFrom != before.OpenFrom || c.CloseFrom != before.CloseFrom {
				t.Errorf("reloadSecrets changed the config")
			}
		})
	}

	// The credential's directory gone from the environment.
	setCredentials(t, credDir)
	write(cred, both, 0o400)
	c, err := parseFlags([]string{"-p", "22"})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.reloadSecrets(getenv(""))
	if want := "$CREDENTIALS_DIRECTORY is not set: cannot re-read the systemd credential nfqknockd.secrets"; err == nil || err.Error() != want {
		t.Errorf("reload without $CREDENTIALS_DIRECTORY: %v, want %q", err, want)
	}
}

// TestStartWarnings: weak secrets and narrow knock ranges are warned about
// at start; no warning shows a secret or a port of a sequence.
func TestStartWarnings(t *testing.T) {
	dir := t.TempDir()
	placeholder := testutil.WriteFile(t, dir, "secrets", "open=CHANGE-ME-open-secret\nclose=file-close-1234\n", 0o600)
	long := testutil.WriteFile(t, dir, "long", "open=file-open-1234\nclose=file-close-1234\n", 0o600)
	const (
		short    = " is shorter than 12 characters: it may be guessed, and the sequences with it; set a long random one, e.g. from `head -c 24 /dev/urandom | base64`"
		fix      = "; set a long random one, e.g. from `head -c 24 /dev/urandom | base64`"
		defaults = "the secrets are the C daemon's public defaults: anyone can compute the sequences; give --secret-file"
		argv     = "secrets on the command line can be read by every local user (/proc/PID/cmdline); prefer --secret-file or the systemd credential nfqknockd.secrets"
		argvOne  = " secret on the command line can be read by every local user (/proc/PID/cmdline); prefer --secret-file or the systemd credential nfqknockd.secrets"
	)
	tests := []struct {
		args []string
		want []string
	}{
		{nil, []string{defaults}},
		{[]string{"--secret-file", long}, nil},
		{[]string{"-o", "argv-open-1234", "-c", "argv-close-123"}, []string{argv}},
		{[]string{"-o", "argv-open-12", "-c", "argv-close"}, []string{argv, "the close secret (from the command line)" + short}},
		{[]string{"-o", "argv-open", "-c", "argv-close"}, []string{
			argv,
			"the open secret (from the command line)" + short,
			"the close secret (from the command line)" + short,
		}},
		{[]string{"-o", "ĳĳĳĳĳĳĳĳĳĳĳĳ", "-c", "argv-close-1234"}, []string{argv}}, // 12 characters, 24 bytes
		{[]string{"--secret-file", long, "-o", "argv-open-1234"}, []string{"the open" + argvOne}},
		{[]string{"--secret-file", placeholder}, []string{
			"the open secret (from --secret-file " + placeholder + ") is the placeholder of the example secrets file: anyone who read it can compute the sequences" + fix,
		}},
		{[]string{"--secret-file", placeholder, "-c", "change-me-please"}, []string{
			"the close" + argvOne,
			"the open secret (from --secret-file " + placeholder + ") is the placeholder of the example secrets file: anyone who read it can compute the sequences" + fix,
			"the close secret (from the command line) is the placeholder of the example secrets file: anyone who read it can compute the sequences" + fix,
		}},
		{[]string{"--secret-file", long, "-o", knock.DefaultCloseSecret}, []string{
			"the open" + argvOne,
			"the open secret (from the command line) is a public default of the C daemon: anyone can compute the sequences" + fix,
		}},
		{[]string{"--range", "7000-7009", "--secret-file", long}, []string{
			"the knock range makes the sequences guessable: end-start is 9, so md5 sequences of 8 ports number only 9^8 = 43046721, fewer than 2^40: one sweep of about as many knocks (a de Bruijn sequence) hits the open sequence; make end-start at least 32, or use -d sha256",
		}},
		{[]string{"-a", "7000", "-b", "7003", "-d", "sha256", "-o", "argv-open", "-c", "argv-close-1234"}, []string{
			argv,
			"the open secret (from the command line)" + short,
			"the knock range makes the sequences guessable: end-start is 3, so sha256 sequences of 16 ports number only 3^16 = 43046721, fewer than 2^40: one sweep of about as many knocks (a de Bruijn sequence) hits the open sequence; make end-start at least 6, or use -d sha512",
		}},
		// Wide enough for one pair of secrets, narrow for its 1024
		// one-time nonces (knock.TeamWarning). Ports 5000-5032: none is a
		// number of the warning (checkNoSequence would take it for a port
		// of the current sequence).
		{[]string{"--range", "5000-5032", "--one-time", "--secret-file", long}, []string{
			"the knock range is narrow for 1 users with one-time sequences: 1024 open sequences are valid at once, so a sweep hits one in about 32^8 / 1024 = 1073741824 knocks, fewer than 2^40; widen the range or use a longer digest",
		}},
		{[]string{"--range", "7000-7001", "-d", "sha512"}, []string{
			defaults,
			"the knock range makes the sequences guessable: end-start is 1, so sha512 sequences of 32 ports number only 1^32 = 1, fewer than 2^40: one sweep of about as many knocks (a de Bruijn sequence) hits the open sequence; make end-start at least 3",
		}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			setCredentials(t, "")
			c, err := parseFlags(append([]string{"-p", "22"}, tt.args...))
			if err != nil {
				t.Fatal(err)
			}
			got := c.startWarnings(c.startSecrets())
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("startWarnings() =\n%q\nwant\n%q", got, tt.want)
			}
			checkNoSequence(t, c, got)
		})
	}
}

// checkNoSequence fails when a warning shows a secret or a port of a
// sequence of the period.
func checkNoSequence(t *testing.T, c *config, warnings []string) {
	t.Helper()
	number := regexp.MustCompile(`\d+`)
	open, close := c.Params.Sequences(time.Now())
	for _, w := range warnings {
		for _, secret := range []string{c.Params.OpenSecret, c.Params.CloseSecret} {
			if strings.Contains(w, secret) {
				t.Errorf("warning shows a secret: %q", w)
			}
		}
		for _, n := range number.FindAllString(w, -1) {
			for _, p := range append(open, close...) {
				// Small numbers are the warnings' own (12 characters).
				if n == strconv.Itoa(int(p)) && p > 100 {
					t.Errorf("warning shows the port %d of a sequence: %q", p, w)
				}
			}
		}
	}
}

// TestPlaceholders: the example secrets file's placeholders are recognised.
func TestPlaceholders(t *testing.T) {
	f, err := os.Open("../../packaging/secrets.example")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var found int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(strings.TrimLeft(sc.Text(), "#"))
		for _, key := range []string{"open=", "close="} {
			if secret, ok := strings.CutPrefix(line, key); ok {
				found++
				if !isPlaceholder(strings.TrimSpace(secret)) {
					t.Errorf("the example's %q is not recognised as a placeholder", line)
				}
			}
		}
	}
	if found < 2 {
		t.Errorf("found %d placeholders in the example file, want 2", found)
	}
	for _, s := range []string{"", "CHANGE", "my-CHANGE-ME", "abracadabra"} {
		if isPlaceholder(s) {
			t.Errorf("isPlaceholder(%q) = true", s)
		}
	}
}
