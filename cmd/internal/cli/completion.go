package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/nfqknockd/nfqknockd/knock"
)

// Completion describes a command for its shell completion scripts, which
// Script generates from the command's own pflag.FlagSet: the flags' names,
// short names, whether they take a value, their help and, for a digest,
// the digests; so that the scripts never differ from the flags.
type Completion struct {
	// Name is the command's name: nfqknockd or nfqknock.
	Name string
	// Flags are the command's flags; hidden ones are left out.
	Flags *pflag.FlagSet
	// Files are the names of the flags whose value is a file name (a name
	// of no flag is ignored).
	Files []string
	// Commands are the subcommands (nfqknock's show, open...); none for
	// a command that takes flags only.
	Commands []Subcommand
}

// Subcommand is a subcommand with its help and its arguments.
type Subcommand struct {
	Name, Help string
	// Args says what each argument is: ArgHost or ArgPort.
	Args []string
}

// The kinds of a subcommand's arguments.
const (
	ArgHost = "host" // completed with the host names the shell knows
	ArgPort = "port" // a TCP port: not completed
)

// Shells are the shells Script writes completions for.
var Shells = []string{"bash", "zsh", "fish"}

// CompletionFlag is the hidden flag that prints a completion script:
// `nfqknockd --completion bash`. The packages' build runs it.
const CompletionFlag = "completion"

// Complete handles the command line `--completion SHELL` (or
// --completion=SHELL), which must come alone: it writes the script for
// SHELL to stdout and returns exit status 0 and true; bad input gets one
// line on stderr and status 2. For any other command line it does nothing
// and returns false. spec is called only when it is needed.
func Complete(args []string, spec func() Completion, stdout, stderr io.Writer) (int, bool) {
	if len(args) == 0 || (args[0] != "--"+CompletionFlag && !strings.HasPrefix(args[0], "--"+CompletionFlag+"=")) {
		return 0, false
	}
	c := spec()
	st := Style{Safe: ShellSafe}
	shell, hasValue := strings.CutPrefix(args[0], "--"+CompletionFlag+"=")
	rest := args[1:]
	if !hasValue && len(rest) > 0 {
		shell, rest = rest[0], rest[1:]
		hasValue = true
	}
	var err *UsageError
	switch {
	case !hasValue:
		err = &UsageError{Msg: "--" + CompletionFlag + ": needs a value: " + strings.Join(Shells, ", ")}
	case !slices.Contains(Shells, shell):
		err = st.BadFlag(CompletionFlag, shell, "want "+strings.Join(Shells, ", "))
	case len(rest) > 0:
		err = &UsageError{Msg: st.Quote(rest[0]) + ": unexpected argument after --" + CompletionFlag + " " + shell}
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.Name, err)
		return 2, true
	}
	script, _ := c.Script(shell)
	if _, err := io.WriteString(stdout, script); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.Name, err)
		return 1, true
	}
	return 0, true
}

// flag is a flag as the scripts see it.
type flag struct {
	long, short string   // without dashes; short may be empty
	value       bool     // takes a value
	meta        string   // the value's name in the help (PORT), "" if none
	help        string   // one line
	choices     []string // the values it takes, if a fixed few
	file        bool     // the value is a file name
}

// names returns the flag's names with their dashes: --long, then -s.
func (f flag) names() []string {
	if f.short == "" {
		return []string{"--" + f.long}
	}
	return []string{"--" + f.long, "-" + f.short}
}

// flags returns the visible flags of c, in their order.
func (c Completion) flags() []flag {
	var out []flag
	c.Flags.VisitAll(func(pf *pflag.Flag) {
		if pf.Hidden || pf.Name == CompletionFlag {
			return
		}
		meta, usage := pflag.UnquoteUsage(pf)
		f := flag{long: pf.Name, short: pf.Shorthand, value: pf.NoOptDefVal == "", help: firstClause(usage),
			file: slices.Contains(c.Files, pf.Name)}
		if f.value {
			f.meta = meta
		}
		if _, ok := pf.Value.(*DigestValue); ok {
			f.choices = digestNames()
		}
		out = append(out, f)
	})
	return out
}

// digestNames returns the names of the digests: md5, sha256...
func digestNames() []string {
	var names []string
	for d := knock.MD5; ; d++ {
		if _, err := knock.ParseDigest(d.String()); err != nil {
			return names
		}
		names = append(names, d.String())
	}
}

// firstClause shortens a flag's help to its first clause: up to the first
// ";" or " (", on one line.
func firstClause(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	for _, sep := range []string{"; ", " ("} {
		if i := strings.Index(s, sep); i > 0 {
			s = s[:i]
		}
	}
	return s
}

// Script returns the completion script of c for shell: bash, zsh or fish.
func (c Completion) Script(shell string) (string, error) {
	switch shell {
	case "bash":
		return c.bash(), nil
	case "zsh":
		return c.zsh(), nil
	case "fish":
		return c.fish(), nil
	}
	return "", fmt.Errorf("no completion for shell %q: want %s", shell, strings.Join(Shells, ", "))
}

// header is the first comment of every script.
func (c Completion) header(shell string) string {
	return fmt.Sprintf("# %s completion for %s, generated by `%s --completion %s` from its flags: do not edit.\n",
		shell, c.Name, c.Name, shell)
}

// ident returns c.Name as a shell function name part.
func (c Completion) ident() string {
	return strings.NewReplacer("-", "_", ".", "_").Replace(c.Name)
}

// singleQuote quotes s for sh, bash, zsh and fish in single quotes (fish
// also needs backslashes escaped there).
func singleQuote(s string, fish bool) string {
	if fish {
		s = strings.ReplaceAll(s, `\`, `\\`)
		return "'" + strings.ReplaceAll(s, "'", `\'`) + "'"
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
