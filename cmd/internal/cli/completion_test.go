package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/nfqknockd/nfqknockd/knock"
)

// testCompletion is a command with one flag of each kind, a hidden one,
// help text with the characters the scripts quote, and subcommands.
func testCompletion() Completion {
	fs := pflag.NewFlagSet("knocker", pflag.ContinueOnError)
	fs.SortFlags = false
	var (
		ports, file string
		digest      knock.Digest
		verbose     bool
		d           time.Duration
	)
	fs.StringVarP(&ports, "guard", "p", "", "guard `PORT`s; repeatable")
	fs.VarP(&DigestValue{D: &digest}, "digest", "d", "`DIGEST` of the sequences")
	fs.StringVar(&file, "secret-file", "", "read 'secrets' [\"quoted\"] from `FILE`: a \\ path")
	BoolFlag(fs, &verbose, "verbose", "v", "log more (as -v)")
	fs.Var(&DurationValue{D: &d, Hint: "1s"}, "gap", "pause of `DURATION`")
	fs.String("internal", "", "never shown")
	_ = fs.MarkHidden("internal")
	return Completion{Name: "knocker", Flags: fs, Files: []string{"secret-file"}, Commands: []Subcommand{
		{Name: "show", Help: "print: it's all"},
		{Name: "open", Help: "knock at HOST", Args: []string{ArgHost}},
		{Name: "proxy", Help: "carry HOST:PORT", Args: []string{ArgHost, ArgPort}},
	}}
}

// TestComplete checks the command lines that --completion handles and how.
func TestComplete(t *testing.T) {
	for _, c := range []struct {
		args       []string
		handled    bool
		code       int
		out, errln string
	}{
		{[]string{"--completion", "bash"}, true, 0, "# bash completion for knocker", ""},
		{[]string{"--completion=zsh"}, true, 0, "#compdef knocker\n# zsh completion", ""},
		{[]string{"--completion", "fish"}, true, 0, "# fish completion", ""},
		{[]string{"--completion"}, true, 2, "", "knocker: --completion: needs a value: bash, zsh, fish\n"},
		{[]string{"--completion="}, true, 2, "", "knocker: --completion '': want bash, zsh, fish\n"},
		{[]string{"--completion", "tcsh"}, true, 2, "", "knocker: --completion tcsh: want bash, zsh, fish\n"},
		{[]string{"--completion", "bash", "x y"}, true, 2, "", "knocker: 'x y': unexpected argument after --completion bash\n"},
		{[]string{"--completions", "bash"}, false, 0, "", ""},
		{[]string{"-v", "--completion", "bash"}, false, 0, "", ""},
		{nil, false, 0, "", ""},
	} {
		var stdout, stderr bytes.Buffer
		called := false
		code, handled := Complete(c.args, func() Completion { called = true; return testCompletion() }, &stdout, &stderr)
		if handled != c.handled || code != c.code || called != c.handled {
			t.Errorf("Complete(%q) = %d, %v (spec called: %v), want %d, %v", c.args, code, handled, called, c.code, c.handled)
		}
		if !strings.HasPrefix(stdout.String(), c.out) || (c.out == "" && stdout.Len() > 0) || stderr.String() != c.errln {
			t.Errorf("Complete(%q): stdout %.60q, stderr %q; want %q..., %q", c.args, stdout.String(), stderr.String(), c.out, c.errln)
		}
	}
}

// TestCompletionFlags checks what the scripts are made of: the visible
// flags, in order, with their kinds.
func TestCompletionFlags(t *testing.T) {
	got := testCompletion().flags()
	want := []flag{
		{long: "guard", short: "p", value: true, meta: "PORT", help: "guard PORTs"},
		{long: "digest", short: "d", value: true, meta: "DIGEST", help: "DIGEST of the sequences", choices: []string{"md5", "sha256", "sha384", "sha512"}},
		{long: "secret-file", value: true, meta: "FILE", help: `read 'secrets' ["quoted"] from FILE: a \ path`, file: true},
		{long: "verbose", short: "v", help: "log more"},
		{long: "gap", value: true, meta: "DURATION", help: "pause of DURATION"},
	}
	if len(got) != len(want) {
		t.Fatalf("flags: %+v\nwant %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.long != w.long || g.short != w.short || g.value != w.value || g.meta != w.meta || g.help != w.help ||
			!slices.Equal(g.choices, w.choices) || g.file != w.file {
			t.Errorf("flag %d: %+v, want %+v", i, g, w)
		}
	}
	if _, err := testCompletion().Script("tcsh"); err == nil {
		t.Error("Script(tcsh): no error")
	}
}

// TestCompletionSyntax parses each script of testCompletion, whose help
// holds quotes, brackets and a backslash, with its shell, where the shell
// is installed (the packages' tests also run them: internal/pkgtest).
func TestCompletionSyntax(t *testing.T) {
	c := testCompletion()
	for _, sh := range []struct{ shell, name string }{{"bash", "bash"}, {"zsh", "zsh"}, {"fish", "fish"}} {
		t.Run(sh.shell, func(t *testing.T) {
			if _, err := exec.LookPath(sh.name); err != nil {
				t.Skipf("%s not installed", sh.name)
			}
			script, err := c.Script(sh.shell)
			if err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(t.TempDir(), "completion")
			if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(sh.name, "-n", f).CombinedOutput(); err != nil || len(out) > 0 {
				t.Errorf("%s -n: %v\n%s\n%s", sh.name, err, out, script)
			}
		})
	}
}
