package pkgtest

// What TestQuickStart reads of README.md: the quick start's commands and
// claims, and the client's and ssh's parts it points to. A README whose
// quick start changed shape is an error that says what the test no longer
// finds, so that the test never passes by following something else.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// quickStart is what README.md's quick start tells an admin to do.
type quickStart struct {
	install    string // step 1: the Debian line of the sh block, as written
	secrets    string // step 2: the sh block that writes the secrets
	flagsLine  string // step 3: the line /etc/default/nfqknockd already has
	start      string // step 5: the command that starts the daemon
	clientDirs string // the client's Linux block: the line that makes the secrets file
	clientShow string // the client's Linux block: the line that prints the sequences
	sshConfig  string // the ssh part: the config block (Host, HostName, ProxyCommand)
	check      string // Before you log out: nfqknockd check with the daemon's flags
	show       string // Before you log out: nfqknockd -s with the daemon's flags
}

// The quick start's claims, as README words them (white space collapsed).
var quickStartClaims = []string{
	"1. **Install the package.**",
	"2. **Write the secrets**, two long random ones, into `/etc/nfqknockd/secrets`, mode 0600, owned by root",
	"3. **Set the flags** in `/etc/default/nfqknockd`: `NFQKNOCKD_ARGS=\"--guard 22\"` is there already.",
	"4. **Set up [the client](#the-client)**",
	"`nfqknock` in your PATH, the two lines of `/etc/nfqknockd/secrets` in its secrets file, the ProxyCommand in `~/.ssh/config`",
	"5. **Start it**: `systemctl enable --now nfqknockd`. The session you are in stays: the guard drops new connections only.",
}

// section returns the text of the README section that begins with the
// heading line, up to the next heading of its level or above (outside
// code blocks, where a line may begin with "#").
func section(readme, heading string) (string, error) {
	i := strings.Index(readme, "\n"+heading+"\n")
	if i < 0 {
		return "", fmt.Errorf("no section %q", heading)
	}
	level := strings.Index(heading, " ")
	var out []string
	fenced := false
	for _, l := range strings.Split(readme[i+len(heading)+2:], "\n") {
		if strings.HasPrefix(strings.TrimLeft(l, " "), "```") {
			fenced = !fenced
		}
		if n := len(l) - len(strings.TrimLeft(l, "#")); !fenced && n > 0 && n <= level && strings.HasPrefix(l[n:], " ") {
			break
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n"), nil
}

// fencedBlocks returns the fenced code blocks of text of language lang
// ("" for none), each without its fences and dedented by its fence's
// indentation (a block in a list item).
func fencedBlocks(text, lang string) []string {
	var blocks []string
	var cur []string
	indent, in := "", false
	for _, l := range strings.Split(text, "\n") {
		trimmed := strings.TrimLeft(l, " ")
		switch {
		case !in && strings.HasPrefix(trimmed, "```"):
			if strings.TrimSpace(strings.TrimPrefix(trimmed, "```")) == lang {
				in, indent, cur = true, l[:len(l)-len(trimmed)], nil
			} else {
				in, indent, cur = true, "\x00", nil // a block of another language
			}
		case in && strings.HasPrefix(trimmed, "```"):
			if indent != "\x00" {
				blocks = append(blocks, strings.Join(cur, "\n")+"\n")
			}
			in = false
		case in:
			cur = append(cur, strings.TrimPrefix(l, indent))
		}
	}
	return blocks
}

// oneBlock returns the only block of blocks that contains want.
func oneBlock(blocks []string, want, where string) (string, error) {
	var found []string
	for _, b := range blocks {
		if strings.Contains(b, want) {
			found = append(found, b)
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("%s: %d code blocks hold %q, want 1", where, len(found), want)
	}
	return found[0], nil
}

// lineWith returns the only line of block that begins with prefix.
func lineWith(block, prefix, where string) (string, error) {
	var found []string
	for _, l := range strings.Split(block, "\n") {
		if strings.HasPrefix(l, prefix) {
			found = append(found, l)
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("%s: %d lines begin with %q, want 1:\n%s", where, len(found), prefix, block)
	}
	return found[0], nil
}

// parseQuickStart reads the quick start of a README's text.
func parseQuickStart(readme string) (*quickStart, error) {
	qs := &quickStart{}
	text, err := section(readme, "## Quick start")
	if err != nil {
		return nil, err
	}
	flat := strings.Join(strings.Fields(text), " ")
	for _, c := range quickStartClaims {
		if !strings.Contains(flat, c) {
			return nil, fmt.Errorf("the quick start no longer says %q", c)
		}
	}
	sh := fencedBlocks(text, "sh")
	if len(sh) != 2 {
		return nil, fmt.Errorf("the quick start has %d sh blocks, want 2 (install, secrets)", len(sh))
	}
	if qs.install, err = lineWith(sh[0], "dpkg -i ", "the quick start's install block"); err != nil {
		return nil, err
	}
	qs.secrets = sh[1]
	if !strings.HasPrefix(qs.secrets, "install ") || !strings.Contains(qs.secrets, "> /etc/nfqknockd/secrets\n") {
		return nil, fmt.Errorf("the quick start's secrets block no longer installs and writes /etc/nfqknockd/secrets:\n%s", qs.secrets)
	}
	qs.flagsLine = `NFQKNOCKD_ARGS="--guard 22"`
	qs.start = "systemctl enable --now nfqknockd"

	client, err := section(readme, "## The client")
	if err != nil {
		return nil, err
	}
	linux, err := oneBlock(fencedBlocks(client, "sh"), "~/.config/nfqknock/secrets", "the client's Linux part")
	if err != nil {
		return nil, err
	}
	if qs.clientDirs, err = lineWith(linux, "mkdir -p ~/.config/nfqknock && ", "the client's Linux part"); err != nil {
		return nil, err
	}
	if qs.clientShow, err = lineWith(linux, "nfqknock show ", "the client's Linux part"); err != nil {
		return nil, err
	}
	if _, err := lineWith(linux, "$EDITOR ~/.config/nfqknock/secrets   # open=... and close=..., as in /etc/nfqknockd/secrets", "the client's Linux part"); err != nil {
		return nil, err
	}
	if qs.sshConfig, err = oneBlock(fencedBlocks(client, ""), "    ProxyCommand nfqknock proxy %h %p\n", "the client's ssh part"); err != nil {
		return nil, err
	}
	for _, want := range []string{"Host server1\n", "    HostName server1.example.org\n"} {
		if !strings.Contains(qs.sshConfig, want) {
			return nil, fmt.Errorf("the client's ssh block lacks %q:\n%s", want, qs.sshConfig)
		}
	}

	logout, err := section(readme, "## Before you log out")
	if err != nil {
		return nil, err
	}
	blocks := fencedBlocks(logout, "sh")
	if qs.check, err = oneBlock(blocks, "nfqknockd check $NFQKNOCKD_ARGS", "Before you log out"); err != nil {
		return nil, err
	}
	if qs.show, err = oneBlock(blocks, "nfqknockd $NFQKNOCKD_ARGS --secret-file /etc/nfqknockd/secrets -s)", "Before you log out"); err != nil {
		return nil, err
	}
	return qs, nil
}

// readQuickStart reads the repository's README.md's quick start, failing
// the test when it changed shape.
func readQuickStart(t *testing.T) *quickStart {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	qs, err := parseQuickStart(string(b))
	if err != nil {
		t.Fatalf("README.md changed shape, TestQuickStart no longer follows it: %v", err)
	}
	return qs
}

// TestQuickStartShape checks that parseQuickStart reads the README and
// refuses one whose quick start says something else.
func TestQuickStartShape(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	qs, err := parseQuickStart(readme)
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	if qs.install != "dpkg -i nfqknockd_*.deb                      # Debian, Ubuntu" {
		t.Errorf("install line %q", qs.install)
	}
	t.Logf("the quick start's secrets block:\n%s", qs.secrets)
	for _, c := range []struct{ name, old, new, want string }{
		{"no quick start", "## Quick start\n", "## Quickstart\n", `no section "## Quick start"`},
		{"rpm only", "   dpkg -i nfqknockd_*.deb", "   rpm -i nfqknockd_*.deb", `lines begin with "dpkg -i "`},
		{"secrets elsewhere", "base64)\" > /etc/nfqknockd/secrets", "base64)\" > /etc/nfqknockd/secret", "no longer installs and writes"},
		{"a third block", "   It holds the daemon", "   ```sh\n   true\n   ```\n   It holds the daemon", "3 sh blocks"},
		{"session claim", "The session you are in\n   stays", "The session you are in\n   ends", "The session you are in stays"},
		{"other flags", "`NFQKNOCKD_ARGS=\"--guard 22\"`\n   is there already", "`NFQKNOCKD_ARGS=\"--guard 2222\"`\n   is there already", "--guard 22"},
		{"other ProxyCommand", "    ProxyCommand nfqknock proxy %h %p\n    # Windows", "    ProxyCommand nfqknock proxy -v %h %p\n    # Windows", "ProxyCommand nfqknock proxy %h %p"},
		{"no -s", "--secret-file /etc/nfqknockd/secrets -s)", "--secret-file /etc/nfqknockd/secrets --show)", "-s)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(readme, c.old) {
				t.Fatalf("README.md has no %q to change", c.old)
			}
			_, err := parseQuickStart(strings.Replace(readme, c.old, c.new, 1))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error naming %q", err, c.want)
			}
		})
	}
}
