package main

import (
	"strings"
	"testing"

	"github.com/nfqknockd/nfqknockd/cmd/internal/cli"
)

// TestCompletionCommands keeps the subcommands of the shell completions
// those that parseCommand takes: the same names, the same arguments (in the
// error's list, "[HOST]" when parseCommand takes the subcommand without
// its arguments too).
func TestCompletionCommands(t *testing.T) {
	arg := map[string]string{cli.ArgHost: "example.org", cli.ArgPort: "22"}
	var forms []string
	for _, s := range completion().Commands {
		args := []string{s.Name}
		var words []string
		for _, a := range s.Args {
			args = append(args, arg[a])
			words = append(words, strings.ToUpper(a))
		}
		form := strings.Join(append([]string{s.Name}, words...), " ")
		if len(words) > 0 && new(options).parseCommand(args[:1]) == nil {
			form = s.Name + " [" + strings.Join(words, " ") + "]"
		}
		forms = append(forms, form)
		if err := new(options).parseCommand(args); err != nil {
			t.Errorf("parseCommand(%q): %v", args, err)
		}
		if err := new(options).parseCommand(append(args, "extra")); err == nil {
			t.Errorf("parseCommand(%q): no error, but the completion says %s takes %d arguments", append(args, "extra"), s.Name, len(s.Args))
		}
	}
	// The error for an unknown command lists every command parseCommand
	// takes, in the form "show, open HOST, ... or proxy HOST PORT".
	err := new(options).parseCommand([]string{"nope"})
	if err == nil {
		t.Fatal("parseCommand(nope): no error")
	}
	_, list, _ := strings.Cut(err.Error(), "want ")
	list, _, _ = strings.Cut(list, " (see")
	want := strings.Join(forms[:len(forms)-1], ", ") + " or " + forms[len(forms)-1]
	if list != want {
		t.Errorf("parseCommand's commands: %q; the completion's: %q", list, want)
	}
}
