package pkgtest

// TestDocsAgree's exit statuses: what the documents state, what the code
// returns, and what real invocations give.

import (
	"bytes"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// codeStatuses returns the exit statuses the code of a command returns:
// for nfqknock its exit* constants, for nfqknockd the codes of fail(...)
// and the literal returns of realMain, runCheck and runCtl.
func codeStatuses(t *testing.T, cmd string) map[int]bool {
	t.Helper()
	fset := token.NewFileSet()
	files, _ := filepath.Glob(filepath.Join(root(t), "cmd", cmd, "*.go"))
	got := map[int]bool{}
	lit := func(e ast.Expr) {
		if b, ok := e.(*ast.BasicLit); ok && b.Kind == token.INT {
			n, _ := strconv.Atoi(b.Value)
			got[n] = true
		}
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			switch d := d.(type) {
			case *ast.GenDecl: // nfqknock: const exitOK = 0 ...
				for _, s := range d.Specs {
					if v, ok := s.(*ast.ValueSpec); ok && cmd == "nfqknock" && len(v.Values) == 1 && strings.HasPrefix(v.Names[0].Name, "exit") {
						lit(v.Values[0])
					}
				}
			case *ast.FuncDecl:
				ast.Inspect(d, func(n ast.Node) bool {
					switch n := n.(type) {
					case *ast.CallExpr:
						if id, ok := n.Fun.(*ast.Ident); ok && id.Name == "fail" && len(n.Args) > 0 {
							lit(n.Args[0])
						}
					case *ast.ReturnStmt:
						if name := d.Name.Name; len(n.Results) == 1 && (name == "realMain" || name == "runCheck" || strings.HasPrefix(name, "runCtl")) {
							lit(n.Results[0])
						}
					}
					return true
				})
			}
		}
	}
	return got
}

// manExitStatus returns the EXIT STATUS entries of a man page: status,
// and its text with white space collapsed and ** dropped.
func manExitStatus(t *testing.T, page string) map[int]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), "packaging", page))
	if err != nil {
		t.Fatal(err)
	}
	text, err := section("\n"+string(b), "# EXIT STATUS")
	if err != nil {
		t.Fatalf("%s: %v", page, err)
	}
	entries := map[int]string{}
	cur := -1
	for _, l := range strings.Split(text, "\n") {
		if m := regexp.MustCompile(`^\*\*(\d+)\*\*$`).FindStringSubmatch(l); m != nil {
			cur, _ = strconv.Atoi(m[1])
			entries[cur] = ""
		} else if cur >= 0 {
			entries[cur] += " " + l
		}
	}
	for n, e := range entries {
		entries[n] = flatten(strings.TrimPrefix(strings.TrimSpace(e), ":"))
	}
	return entries
}

// flatten collapses white space and drops Markdown's ** and backquotes.
func flatten(s string) string {
	s = strings.NewReplacer("**", "", "`", "", "\\", "").Replace(s)
	return strings.Join(strings.Fields(s), " ")
}

func keys(m map[int]bool) []int {
	var k []int
	for n := range m {
		k = append(k, n)
	}
	sort.Ints(k)
	return k
}

// exitPhrase finds the statuses a sentence states: "exit 2", "exits 1",
// "exit status 0", "Exit status: 0 done, 1 ..., 2 ...", and an "or N"
// right after one ("exits 0, or 2", "exit 2 (flags) or 1 (...)").
var (
	exitPhrase = regexp.MustCompile(`(?i)\bexit(?:s| status| code)?:? \**(\d+)\b`)
	orStatus   = regexp.MustCompile(`^[^.;]{0,60}?\bor \**(\d+)\b`)
)

// statedStatuses returns every status the text states, with its context.
func statedStatuses(text string) map[int][]string {
	out := map[int][]string{}
	flat := flatten(text)
	for _, m := range exitPhrase.FindAllStringSubmatchIndex(flat, -1) {
		n, _ := strconv.Atoi(flat[m[2]:m[3]])
		ctx := flat[m[0]:min(len(flat), m[1]+60)]
		out[n] = append(out[n], ctx)
		if o := orStatus.FindStringSubmatch(flat[m[1]:]); o != nil {
			k, _ := strconv.Atoi(o[1])
			out[k] = append(out[k], ctx)
		}
	}
	return out
}

// testExitStatuses checks that the statuses stated anywhere are the
// code's, that each man page lists exactly its command's, that the
// client's --help agrees with its man page, and that each stated case is
// what a real invocation gives.
func testExitStatuses(t *testing.T, bin string, helps map[string]string) {
	code := map[string]map[int]bool{"nfqknockd": codeStatuses(t, "nfqknockd"), "nfqknock": codeStatuses(t, "nfqknock")}
	for cmd, want := range map[string][]int{"nfqknockd": {0, 1, 2}, "nfqknock": {0, 1, 2}} {
		if got := keys(code[cmd]); !equalInts(got, want) {
			t.Errorf("%s's code returns the statuses %v; the documents state %v", cmd, got, want)
		}
	}
	man := map[string]map[int]string{"nfqknockd": manExitStatus(t, "nfqknockd.8.md"), "nfqknock": manExitStatus(t, "nfqknock.1.md")}
	for cmd, entries := range man {
		got := map[int]bool{}
		for n := range entries {
			got[n] = true
		}
		if !equalInts(keys(got), keys(code[cmd])) {
			t.Errorf("%s's man page, EXIT STATUS: %v; its code: %v", cmd, keys(got), keys(code[cmd]))
		}
	}
	// Every status stated in a document or a --help is one of the code's.
	texts := map[string]string{"nfqknockd --help": helps["nfqknockd"], "nfqknock --help": helps["nfqknock"]}
	for _, f := range docFiles(t) {
		b, err := os.ReadFile(filepath.Join(root(t), f))
		if err != nil {
			t.Fatal(err)
		}
		texts[f] = string(b)
	}
	stated := 0
	for name, text := range texts {
		for n, ctx := range statedStatuses(text) {
			stated += len(ctx)
			if !code["nfqknockd"][n] && !code["nfqknock"][n] {
				t.Errorf("%s states exit status %d, which neither command returns: %q", name, n, ctx)
			}
		}
	}
	// The client's --help line against its man page: "0 done, 1 network
	// failure (...), 2 bad input (...)".
	_, line, ok := strings.Cut(flatten(helps["nfqknock"]), "Exit status: ")
	if !ok {
		t.Errorf("nfqknock --help has no Exit status: line")
	}
	for _, part := range regexp.MustCompile(`(\d) ([a-z ]+)`).FindAllStringSubmatch(line, 3) {
		n, _ := strconv.Atoi(part[1])
		if e := strings.ToLower(man["nfqknock"][n]); !strings.HasPrefix(e, strings.TrimSpace(part[2])) {
			t.Errorf("nfqknock --help says %s %q, its man page %q", part[1], part[2], man["nfqknock"][n])
		}
	}

	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	if err := os.WriteFile(secrets, []byte("open=exit status open\nclose=exit status close\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, []byte("open=exit status open\nclose=exit status close\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	unshare := []string{"unshare", "-rn"} // no route at all, and no capability outside
	n := 0
	for _, c := range []struct {
		cmd    string
		status int
		doc    string // the document that states it
		says   string // what it says (white space collapsed, ** dropped)
		man    string // what the man page's entry for status says
		wrap   []string
		args   []string
		stderr string // a part of the one line on stderr ("" when none)
	}{
		{"nfqknockd", 0, "packaging/nfqknockd.8.md", "Done: --help, --version, -s, check", "Done", nil, []string{"--help"}, ""},
		{"nfqknockd", 0, "packaging/nfqknockd.8.md", "Done: --help, --version, -s, check", "Done", nil, []string{"-o", "a-secret", "-c", "another", "-s"}, ""},
		{"nfqknockd", 0, "README.md", "and exits 0 (or 2 with the line naming what is wrong), touching nothing", "check", nil, []string{"check", "--guard", "22", "--secret-file", secrets, "--lock-dir", empty}, ""},
		{"nfqknockd", 2, "README.md", "A refused start is one line, exit 2 (flags, secrets)", "a bad flag or value", nil, []string{"--guard", "22", "--no-such-flag"}, "--no-such-flag"},
		{"nfqknockd", 2, "nfqknockd --help", "exits 0, or 2 with one line naming what is wrong", "a secret file that is missing", nil, []string{"check", "--guard", "22", "--secret-file", filepath.Join(dir, "missing")}, "missing"},
		{"nfqknockd", 2, "packaging/nfqknockd.8.md", "a secret file that is missing, unreadable, readable by group or others", "readable by group or others", nil, []string{"check", "--guard", "22", "--secret-file", open}, "0644"},
		{"nfqknockd", 1, "packaging/nfqknockd.8.md", "status or revoke: no daemon answers", "no daemon answers", nil, []string{"status", "--lock-dir", empty}, "no daemon answers"},
		{"nfqknockd", 1, "README.md", "or 1 (no CAP_NET_ADMIN,", "CAP_NET_ADMIN is missing", append(unshare, "setpriv", "--bounding-set=-all"), []string{"--guard", "22", "--secret-file", secrets, "--lock-dir", empty}, "CAP_NET_ADMIN"},
		{"nfqknock", 0, "packaging/nfqknock.1.md", "Done.", "Done", nil, []string{"--secret-file", secrets, "show"}, ""},
		{"nfqknock", 2, "nfqknock --help", "2 bad input (an unknown host too)", "a bad flag or value", nil, []string{"--no-such-flag", "show"}, "--no-such-flag"},
		{"nfqknock", 2, "packaging/nfqknock.1.md", "or has no address of the family asked for", "an unknown host", nil, []string{"--secret-file", secrets, "-6", "open", "192.0.2.7"}, "192.0.2.7"},
		{"nfqknock", 1, "packaging/nfqknock.1.md", "the host cannot be reached (no route,", "the host cannot be reached", unshare, []string{"--secret-file", secrets, "open", "192.0.2.7"}, "unreachable"},
	} {
		if !strings.Contains(flatten(texts[c.doc]), c.says) {
			t.Errorf("%s no longer says %q (exit %d)", c.doc, c.says, c.status)
		}
		if !strings.Contains(man[c.cmd][c.status], c.man) {
			t.Errorf("%s's man page, EXIT STATUS %d: %q lacks %q, which %s states", c.cmd, c.status, man[c.cmd][c.status], c.man, c.doc)
		}
		argv := append(append(append([]string{}, c.wrap...), filepath.Join(bin, c.cmd)), c.args...)
		if len(c.wrap) > 0 {
			if out, err := exec.Command(c.wrap[0], append(c.wrap[1:], "true")...).CombinedOutput(); err != nil {
				t.Logf("skipped %q: %s cannot run here: %v %s", argv, c.wrap[0], err, out)
				continue
			}
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "HOME="+empty)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		got := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			got = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
		oneLine := c.stderr == "" || (len(lines) == 1 && strings.Contains(lines[0], c.stderr))
		if got != c.status || !oneLine {
			t.Errorf("%q: exit %d, stderr %q; %s states exit %d (%q), with one line naming %q", argv, got, stderr.String(), c.doc, c.status, c.says, c.stderr)
		}
		n++
	}
	t.Logf("exit statuses: the code returns nfqknockd %v, nfqknock %v; %d statements in the documents and --help, each of a status the code returns; %d invocations gave the status stated", keys(code["nfqknockd"]), keys(code["nfqknock"]), stated, n)
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
