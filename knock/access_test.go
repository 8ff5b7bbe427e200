package knock

import (
	"errors"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"unicode"
)

var testGuard = []uint16{22, 80, 443, 8080}

func TestParseAccess(t *testing.T) {
	tests := []struct {
		name, in string
		want     []User
	}{
		{"one user", "[alice]\nopen = s3cret-Open\nclose = s3cret-Close\n",
			[]User{{Name: "alice", OpenSecret: "s3cret-Open", CloseSecret: "s3cret-Close"}}},
		{"spa-address", "[alice]\nopen = o1\nclose = c1\nspa-address = yes\n[bob]\nopen = o2\nclose = c2\nspa-address = no\n",
			[]User{{Name: "alice", OpenSecret: "o1", CloseSecret: "c1", SPAAddress: true}, {Name: "bob", OpenSecret: "o2", CloseSecret: "c2"}}},
		{"two users, ports, comments", `# the team
[alice]   # the admin
open = aaa#not-a-comment   # a comment
close=bbb
ports = 22, 443      # optional

	[bob.smith-2_]
ports=8080
close = ddd
open = ccc
`, []User{
			{Name: "alice", OpenSecret: "aaa#not-a-comment", CloseSecret: "bbb", Ports: []uint16{22, 443}},
			{Name: "bob.smith-2_", OpenSecret: "ccc", CloseSecret: "ddd", Ports: []uint16{8080}},
		}},
		{"CRLF, tabs, no final newline", "[a]\r\n\topen\t=\tx=y\r\n close=#z\r\n#\r\n[b]\r\nopen=p\r\nclose=q",
			[]User{{Name: "a", OpenSecret: "x=y", CloseSecret: "#z"}, {Name: "b", OpenSecret: "p", CloseSecret: "q"}}},
		{"spaces inside [ name ]", "[ alice ]\nopen=1\nclose=2\n", []User{{Name: "alice", OpenSecret: "1", CloseSecret: "2"}}},
		{"non-ASCII secret", "[z]\nopen = géheim☃\nclose = 秘密\n",
			[]User{{Name: "z", OpenSecret: "géheim☃", CloseSecret: "秘密"}}},
		{"longest name", "[" + strings.Repeat("n", 32) + "]\nopen=1\nclose=2\n",
			[]User{{Name: strings.Repeat("n", 32), OpenSecret: "1", CloseSecret: "2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAccess(strings.NewReader(tt.in), testGuard)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestParseAccessErrors: every refusal, with its exact message, which
// names the line and never holds a secret.
func TestParseAccessErrors(t *testing.T) {
	const ok = "[ok]\nopen = okOpenSecret\nclose = okCloseSecret\n"
	tests := []struct {
		name, in, err string
	}{
		{"malformed line", ok + "open SECRETVALUE\n", "line 4: malformed line (want [user] or KEY = VALUE)"},
		{"malformed section", "[alice\n", "line 1: malformed section (want [user])"},
		{"key outside a section", "open = SECRETVALUE\n[a]\n", "line 1: open outside a [user] section"},
		{"ports outside a section", "# x\nports = 22\n", "line 2: ports outside a [user] section"},
		{"spa-address not yes or no", ok + "spa-address = true\n", "line 4: spa-address wants yes or no"},
		{"second spa-address", ok + "spa-address = yes\nspa-address = no\n", "line 5: second spa-address in this section (first at line 4)"},
		{"unknown key", ok + "opne = SECRETVALUE\n", "line 4: unknown key (want open, close, ports or spa-address)"},
		{"unknown key that is a secret", ok + "SECRETVALUE=\n", "line 4: unknown key (want open, close, ports or spa-address)"},
		{"key with the secret after a space", ok + "open SECRETVALUE=\n", "line 4: unknown key (want open, close, ports or spa-address)"},
		{"upper-case key", ok + "Open = x\n", "line 4: unknown key (want open, close, ports or spa-address)"},
		{"duplicate user", ok + "[b]\nopen=1\nclose=2\n[ok]\n", "line 7: second section of the user of line 1"},
		{"duplicate key", "[a]\nopen = SECRETVALUE\nopen = SECRETVALUE2\n", "line 3: second open in this section (first at line 2)"},
		{"duplicate ports", "[a]\nports = 22\nports = 80\n", "line 3: second ports in this section (first at line 2)"},
		{"empty open secret", "[a]\nopen =\nclose = SECRETVALUE\n", "line 2: empty open secret"},
		{"empty close secret (a comment)", "[a]\nopen = SECRETVALUE\nclose = #SECRETVALUE\n", "line 3: empty close secret"},
		{"open == close", "[a]\nopen = SECRETVALUE\nclose = SECRETVALUE\n", "line 3: the open and close secrets are the same"},
		{"missing open", ok + "[b]\nclose = SECRETVALUE\n", "line 4: user without an open secret"},
		{"missing close", "[a]\nopen = SECRETVALUE\n[b]\nopen=1\nclose=2\n", "line 1: user without a close secret"},
		{"empty section", "[a]\n", "line 1: user without an open secret"},
		{"port 0", "[a]\nports = 0\n", "line 2: port must be 1..65535"},
		{"port 65536", "[a]\nports = 22, 65536\n", "line 2: port must be 1..65535"},
		{"port garbage", "[a]\nports = ssh\n", "line 2: port must be a number 1..65535"},
		{"port empty element", "[a]\nports = 22,,80\n", "line 2: port must be a number 1..65535"},
		{"port negative", "[a]\nports = -22\n", "line 2: port must be a number 1..65535"},
		{"empty port list", "[a]\nports =   # none\n", "line 2: empty port list (leave ports out for every guarded port)"},
		{"port not guarded", "[a]\nports = 22, 2222\n", "line 2: port 2222 is not guarded"},
		{"port twice", "[a]\nports = 22, 80, 22\n", "line 2: port 22 twice"},
		{"no user", "# nothing\n\n", "no user: want a [user] section with open and close secrets"},
		{"empty file", "", "no user: want a [user] section with open and close secrets"},
		{"empty name", "[]\n", "line 1: invalid user name (want 1-32 characters of A-Z a-z 0-9 _ . -)"},
		{"bad name", "[SECRETVALUE x]\n", "line 1: invalid user name (want 1-32 characters of A-Z a-z 0-9 _ . -)"},
		{"non-ASCII name", "[zoë]\n", "line 1: invalid user name (want 1-32 characters of A-Z a-z 0-9 _ . -)"},
		{"long name", "[" + strings.Repeat("n", 33) + "]\n", "line 1: invalid user name (want 1-32 characters of A-Z a-z 0-9 _ . -)"},
		{"same open secrets for two users", ok + "[b]\nopen = okOpenSecret\n", "line 5: the user of line 1 has this secret (each user needs secrets of their own)"},
		{"one user's close, another's open", ok + "[b]\nopen = x\nclose = okOpenSecret\n", "line 6: the user of line 1 has this secret (each user needs secrets of their own)"},
		{"inline comment without a space is the secret", "[a]\nopen = x\nclose = x#y\n[b]\nopen=x#y\n", "line 5: the user of line 1 has this secret (each user needs secrets of their own)"},
		{"too large", "[a]\nopen=1\nclose=2\n#" + strings.Repeat("x", MaxSecretFile), "larger than 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			users, err := ParseAccess(strings.NewReader(tt.in), testGuard)
			if err == nil || err.Error() != tt.err {
				t.Fatalf("err = %v, want %q", err, tt.err)
			}
			if users != nil {
				t.Errorf("users %v with the error", users)
			}
			for _, s := range []string{"SECRET", "okOpenSecret", "okCloseSecret"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("the error shows %q", s)
				}
			}
		})
	}
}

func TestParseAccessTooManyUsers(t *testing.T) {
	var b strings.Builder
	for i := range MaxUsers + 1 {
		b.WriteString("[u" + strconv.Itoa(i) + "]\nopen=o" + strconv.Itoa(i) + "\nclose=c" + strconv.Itoa(i) + "\n")
	}
	users, err := ParseAccess(strings.NewReader(b.String()), testGuard)
	if want := "line 769: more than 256 users"; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if users != nil {
		t.Fatal("users with the error")
	}
	users, err = ParseAccess(strings.NewReader(b.String()[:strings.LastIndex(b.String(), "[")]), testGuard)
	if err != nil || len(users) != MaxUsers {
		t.Fatalf("%d users: %d, %v", MaxUsers, len(users), err)
	}
}

func TestParseAccessReadError(t *testing.T) {
	_, err := ParseAccess(iotest.ErrReader(errors.New("boom")), testGuard)
	if err == nil || err.Error() != "read: boom" {
		t.Fatalf("err = %v", err)
	}
}

func TestValidUserName(t *testing.T) {
	for s, want := range map[string]bool{
		"a": true, "alice": true, "A.b-c_9": true, strings.Repeat("x", 32): true,
		"": false, strings.Repeat("x", 33): false, "a b": false, "a/b": false, "ü": false, "a\"": false,
	} {
		if got := ValidUserName(s); got != want {
			t.Errorf("ValidUserName(%q) = %v", s, got)
		}
	}
}

// formatAccess writes users back as an access file.
func formatAccess(users []User) string {
	var b strings.Builder
	for _, u := range users {
		b.WriteString("[" + u.Name + "]\nopen=" + u.OpenSecret + "\nclose=" + u.CloseSecret + "\n")
		if u.Ports != nil {
			b.WriteString("ports =")
			for i, p := range u.Ports {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(" " + strconv.Itoa(int(p)))
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// accessMessages are the messages of ParseAccess, digits replaced by N
// (see skeleton): an error is one of them and shows nothing else of the
// file than numbers.
var accessMessages = func() map[string]bool {
	m := map[string]bool{}
	for _, s := range []string{
		"larger than 1 bytes",
		ErrUTF16.Error(),
		"no user: want a [user] section with open and close secrets",
		"line 1: malformed section (want [user])",
		"line 1: malformed line (want [user] or KEY = VALUE)",
		"line 1: unknown key (want open, close, ports or spa-address)",
		"line 1: second section of the user of line 1",
		"line 1: more than 1 users",
		"line 1: invalid user name (want 1-1 characters of A-Z a-z 1-1 _ . -)",
		"line 1: the open and close secrets are the same",
		"line 1: the user of line 1 has this secret (each user needs secrets of their own)",
		"line 1: empty port list (leave ports out for every guarded port)",
		"line 1: port must be a number 1..1", "line 1: port must be 1..1",
		"line 1: port 1 is not guarded", "line 1: port 1 twice",
		"line 1: spa-address wants yes or no",
	} {
		m[skeleton(s)] = true
	}
	for _, k := range accessKeys {
		m[skeleton("line 1: "+k+" outside a [user] section")] = true
		m[skeleton("line 1: second "+k+" in this section (first at line 1)")] = true
		m[skeleton("line 1: empty "+k+" secret")] = true
	}
	m[skeleton("line 1: user without an open secret")] = true
	m[skeleton("line 1: user without a close secret")] = true
	return m
}()

var digitRuns = regexp.MustCompile(`[0-9]+`)

func skeleton(s string) string { return digitRuns.ReplaceAllString(s, "N") }

// secretLooking returns the values of the open and close lines of an access
// file, and their words: what an error must not show.
func secretLooking(in string) []string {
	var out []string
	for line := range strings.SplitSeq(in, "\n") {
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if k := strings.TrimSpace(key); k != "open" && k != "close" {
			continue
		}
		out = append(out, strings.TrimSpace(val))
		out = append(out, strings.Fields(val)...)
		out = append(out, strings.Fields(stripComment(val))...)
	}
	return out
}

// FuzzAccessFile: no input panics; an error is one of the messages of
// ParseAccess with nothing of the file but numbers, and shows no secret;
// an accepted file holds valid users, and reads back the same when written
// out again.
func FuzzAccessFile(f *testing.F) {
	for _, s := range []string{
		"[alice]\nopen = a1\nclose = a2\nports = 22, 443 # x\n[bob]\nopen=b1\nclose=b2\n",
		"[a]\r\nopen=x#y\r\nclose = #z\r\n",
		"open = SECRET\n", "[a]\nopen = SECRET VALUE\n", "[a]\nopen = s\nclose = s\n",
		"[a]\nports = 22,,80\n", "[a b]\n", "[a]\nSECRET=\n", "[]\n", "\xff[\x00]=#",
		"[a]\nopen=1\nclose=2\n[b]\nopen=3\nclose=1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		users, err := ParseAccess(strings.NewReader(string(in)), testGuard)
		if err != nil {
			if users != nil {
				t.Fatalf("users %v with error %v", users, err)
			}
			msg := err.Error()
			if !accessMessages[skeleton(msg)] {
				t.Fatalf("unexpected message %q", msg)
			}
			for _, s := range secretLooking(string(in)) {
				if len(s) >= 3 && strings.Trim(s, "0123456789") != "" && strings.Contains(msg, s) && !strings.Contains(accessWords, s) {
					t.Fatalf("error %q shows the secret %q", msg, s)
				}
			}
			return
		}
		if len(users) == 0 || len(users) > MaxUsers {
			t.Fatalf("%d users", len(users))
		}
		secrets := map[string]bool{}
		for _, u := range users {
			if !ValidUserName(u.Name) {
				t.Fatalf("user name %q", u.Name)
			}
			for _, s := range []string{u.OpenSecret, u.CloseSecret} {
				if s == "" || strings.IndexFunc(s, unicode.IsSpace) >= 0 || secrets[s] {
					t.Fatalf("secret %q: empty, with whitespace or seen before", s)
				}
				secrets[s] = true
			}
			for i, p := range u.Ports {
				if !containsPort(testGuard, p) || containsPort(u.Ports[:i], p) {
					t.Fatalf("ports %v", u.Ports)
				}
			}
			if u.Ports != nil && len(u.Ports) == 0 {
				t.Fatal("empty non-nil ports")
			}
		}
		again, err := ParseAccess(strings.NewReader(formatAccess(users)), testGuard)
		if err != nil || !reflect.DeepEqual(again, users) {
			t.Fatalf("round trip: %+v -> %q -> %+v, %v", users, formatAccess(users), again, err)
		}
	})
}

func containsPort(ports []uint16, p uint16) bool {
	for _, q := range ports {
		if q == p {
			return true
		}
	}
	return false
}

// accessWords is the text of every message: a secret found in it may be a
// word of the message, not a leak.
var accessWords = func() string {
	var b strings.Builder
	for m := range accessMessages {
		b.WriteString(m + "\n")
	}
	return b.String()
}()

// TestAccessSecretsAsSecretFile: a secret copied from a secret file into an
// access file is the same secret, spaces inside and all.
func TestAccessSecretsAsSecretFile(t *testing.T) {
	for _, pair := range [][2]string{
		{"correct horse battery staple", "another long phrase here"},
		{"tab\tinside", "non-breaking\u00a0space"},
	} {
		open, close, err := ParseSecrets(strings.NewReader("open = " + pair[0] + "\nclose = " + pair[1] + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		users, err := ParseAccess(strings.NewReader("[alice]\nopen = "+pair[0]+"\nclose = "+pair[1]+"\n"), []uint16{22})
		if err != nil {
			t.Fatalf("%q: %v", pair, err)
		}
		if users[0].OpenSecret != open || users[0].CloseSecret != close || open != pair[0] {
			t.Errorf("%q: access file %q/%q, secret file %q/%q", pair, users[0].OpenSecret, users[0].CloseSecret, open, close)
		}
	}
}
