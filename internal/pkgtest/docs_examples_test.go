package pkgtest

// TestDocsAgree's examples: every command line of README.md, docs/*.md,
// the man pages and the --help texts that runs nfqknockd or nfqknock is
// read by the built binary's own parser, run so that it touches nothing.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// example is a command line of a document that runs one of our commands.
type example struct {
	where string // document and line, or --help
	line  string // the command, from the command's name on
}

// docFiles returns the documents TestDocsAgree reads, relative to the
// repository's top.
func docFiles(t *testing.T) []string {
	t.Helper()
	docs, err := filepath.Glob(filepath.Join(root(t), "docs", "*.md"))
	if err != nil || len(docs) == 0 {
		t.Fatalf("no docs/*.md: %v", err)
	}
	files := []string{"README.md", "packaging/nfqknockd.8.md", "packaging/nfqknock.1.md"}
	for _, d := range docs {
		files = append(files, filepath.Join("docs", filepath.Base(d)))
	}
	return files
}

// codeLines returns the lines of the code blocks of a document, with their
// line numbers: fenced blocks of any language in Markdown, and in the man
// pages (go-md2man) also blocks indented by four spaces after a blank line
// (not a definition's continuation).
func codeLines(text string, manPage bool) map[int]string {
	lines := map[int]string{}
	fenced, indented := false, false
	prevBlank := true
	for i, l := range strings.Split(text, "\n") {
		trimmed := strings.TrimLeft(l, " ")
		switch {
		case strings.HasPrefix(trimmed, "```"):
			fenced = !fenced
		case fenced:
			lines[i+1] = trimmed
		case manPage && strings.HasPrefix(l, "    ") && (prevBlank || indented):
			indented = true
			lines[i+1] = trimmed
		default:
			indented = false
		}
		prevBlank = strings.TrimSpace(l) == ""
		if prevBlank && !fenced {
			indented = false
		}
	}
	return lines
}

// segmentEnd cuts a command line into the simple commands a shell would
// run; a redirection ends one.
var segmentEnd = regexp.MustCompile(`&&|\|\||[;|()<>` + "`" + `]|\$\(`)

// invocations returns the commands of line that run nfqknockd or
// nfqknock (after sudo, exec or VAR=value), from the command's name on,
// without the shell comment; a ProxyCommand line counts as one.
func invocations(line string) []string {
	if i := strings.Index(line, " #"); i >= 0 {
		line = line[:i]
	}
	if strings.HasPrefix(line, "#") || strings.HasPrefix(line, "-") {
		return nil // a comment, or a line of a flag list (--help's)
	}
	line = strings.TrimPrefix(strings.TrimSpace(line), "ProxyCommand ")
	var out []string
	for _, seg := range segmentEnd.Split(line, -1) {
		words := strings.Fields(seg)
		for len(words) > 0 && (words[0] == "sudo" || words[0] == "exec" || strings.Contains(words[0], "=")) {
			words = words[1:]
		}
		if len(words) > 0 && (words[0] == "nfqknockd" || words[0] == "nfqknock") {
			out = append(out, strings.Join(words, " "))
		}
	}
	return out
}

// docExamples collects the examples of the documents and of the --help
// texts (their Examples: part, and the client's ProxyCommand line).
func docExamples(t *testing.T, helps map[string]string) []example {
	t.Helper()
	var ex []example
	for _, f := range docFiles(t) {
		b, err := os.ReadFile(filepath.Join(root(t), f))
		if err != nil {
			t.Fatal(err)
		}
		lines := codeLines(string(b), strings.HasPrefix(f, "packaging/"))
		nums := make([]int, 0, len(lines))
		for n := range lines {
			nums = append(nums, n)
		}
		sort.Ints(nums)
		for _, n := range nums {
			for _, inv := range invocations(lines[n]) {
				ex = append(ex, example{fmt.Sprintf("%s:%d", f, n), inv})
			}
		}
	}
	for _, cmd := range []string{"nfqknockd", "nfqknock"} {
		help := helps[cmd]
		part := help
		if i := strings.Index(help, "\nExamples:\n"); i >= 0 {
			part = help[i:]
		} else {
			part = ""
		}
		for _, l := range strings.Split(part, "\n") {
			if strings.HasPrefix(l, "  "+cmd+" ") {
				ex = append(ex, example{cmd + " --help Examples", strings.TrimSpace(l)})
			}
		}
		for _, l := range strings.Split(help, "\n") {
			if _, pc, ok := strings.Cut(l, "ProxyCommand "); ok {
				ex = append(ex, example{cmd + " --help", strings.TrimRight(strings.TrimSpace(pc), ")")})
			}
		}
	}
	return ex
}

// placeholders are what the documents write for a value, and what the
// test gives for each. [HOST] is show's optional HOST, given.
func placeholders(secrets, dir string) *strings.Replacer {
	return strings.NewReplacer(
		"[HOST]", "server1.example.org", "HOST", "server1.example.org",
		"%h", "server1.example.org", "%p", "22", "PORT", "22",
		"FILE", secrets, "/etc/nfqknockd/secrets", secrets,
		"ADDR", "192.0.2.7", "NAME", "alice", "DIR", dir,
		"TIME", "2025-11-04T12:34:56Z", "VERSION", testVersion,
	)
}

// runExample runs one example, made harmless, with the built binaries in
// bin: the daemon's start becomes `nfqknockd check` with the same flags,
// its status and revoke ask an empty --lock-dir, and the client's open,
// close, proxy and doctor get --at, which its parser refuses, after every
// other flag, the command and the config are read, with a line naming
// --at (show alone may have --at). It returns what failed, or "".
func runExample(bin string, env []string, emptyDir string, args []string) string {
	cmd, args := args[0], args[1:]
	want, wantErr := 0, ""
	has := func(names ...string) bool {
		for _, a := range args {
			for _, n := range names {
				if a == n || strings.HasPrefix(a, n+"=") {
					return true
				}
			}
		}
		return false
	}
	switch {
	case has("--completion", "-h", "--help", "--version"):
	case cmd == "nfqknockd" && len(args) > 0 && (args[0] == "status" || args[0] == "revoke"):
		args, want = append(args, "--lock-dir", emptyDir), 1
	case cmd == "nfqknockd" && len(args) > 0 && args[0] == "check", cmd == "nfqknockd" && has("-s", "--show"):
	case cmd == "nfqknockd":
		args = append([]string{"check"}, args...)
	case !has("show"):
		args = append([]string{"--at", "2025-11-04T12:34:56Z"}, args...)
		want, wantErr = 2, "nfqknock: --at 2025-11-04T12:34:56Z: only meaningful with show\n"
	}
	c := exec.Command(filepath.Join(bin, cmd), args...)
	c.Env = env
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		return err.Error()
	}
	if code != want || !strings.Contains(stderr.String(), wantErr) {
		return fmt.Sprintf("ran %s %q: exit %d, stderr %q; want exit %d and %q", cmd, args, code, stderr.String(), want, wantErr)
	}
	return ""
}

// testExamples runs every example; the packaged environment file gives
// $NFQKNOCKD_ARGS.
func testExamples(t *testing.T, bin string, helps map[string]string) {
	def, err := os.ReadFile(filepath.Join(root(t), "packaging", "nfqknockd.default"))
	if err != nil {
		t.Fatal(err)
	}
	defEnv, err := parseEnvFile(string(def))
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".config", "nfqknock"), 0o700); err != nil {
		t.Fatal(err)
	}
	secrets := filepath.Join(home, ".config", "nfqknock", "secrets")
	if err := os.WriteFile(secrets, []byte("open=docs example open secret\nclose=docs example close secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyDir := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != "HOME" && k != "XDG_CONFIG_HOME" && !strings.HasPrefix(k, "NFQKNOCK") && k != "CREDENTIALS_DIRECTORY" {
			env = append(env, kv)
		}
	}
	env = append(env, "HOME="+home)
	repl := placeholders(secrets, emptyDir)
	examples := docExamples(t, helps)
	ran := map[string]int{}
	for _, e := range examples {
		line := strings.ReplaceAll(e.line, "$NFQKNOCKD_ARGS", defEnv["NFQKNOCKD_ARGS"])
		args, err := splitWords(repl.Replace(line))
		if err != nil {
			t.Errorf("%s: %q: %v", e.where, e.line, err)
			continue
		}
		if msg := runExample(bin, env, emptyDir, args); msg != "" {
			t.Errorf("%s: %q: %s", e.where, e.line, msg)
		}
		t.Logf("%s: %s", e.where, e.line)
		ran[args[0]]++
	}
	// The packaged environment file's, and every NFQKNOCKD_ARGS="..." the
	// documents give, with the secrets file, as `nfqknockd check` reads them.
	assign := regexp.MustCompile(`NFQKNOCKD_(?:ARGS|OPTS)="([^"]*)"`)
	for _, f := range append(docFiles(t), "packaging/nfqknockd.default", "packaging/nfqknockd.confd") {
		b, err := os.ReadFile(filepath.Join(root(t), f))
		if err != nil {
			t.Fatal(err)
		}
		for n, l := range strings.Split(string(b), "\n") {
			for _, m := range assign.FindAllStringSubmatch(l, -1) {
				if m[1] == "..." || m[1] == "" {
					continue
				}
				args, err := splitWords(repl.Replace("nfqknockd " + m[1] + " --secret-file /etc/nfqknockd/secrets"))
				if err == nil {
					if msg := runExample(bin, env, emptyDir, args); msg != "" {
						t.Errorf("%s:%d: %s: %s", f, n+1, m[0], msg)
					}
				}
				ran["NFQKNOCKD_ARGS"]++
			}
		}
	}
	t.Logf("examples read by the built parsers: nfqknockd %d, nfqknock %d, NFQKNOCKD_ARGS/OPTS values %d", ran["nfqknockd"], ran["nfqknock"], ran["NFQKNOCKD_ARGS"])
	if ran["nfqknockd"] < 5 || ran["nfqknock"] < 5 {
		t.Errorf("too few examples found (%v): the documents' shape changed?", ran)
	}
}
