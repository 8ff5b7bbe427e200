package pkgtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// bashDriver sources a completion file, sets COMP_WORDS and COMP_CWORD as
// bash does when TAB is pressed, calls the completion function registered
// for the command, and prints COMPREPLY, one a line.
// Arguments: FILE CWORD WORD...
const bashDriver = `
file=$1 COMP_CWORD=$2
shift 2
COMP_WORDS=("$@")
COMP_LINE="${COMP_WORDS[*]}"
COMP_POINT=${#COMP_LINE}
source "$file" || exit 3
spec=$(complete -p "${COMP_WORDS[0]}") || exit 4
fn=${spec#*-F }
fn=${fn%% *}
"$fn" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
`

// TestCompletionBash sources the bash completions that the packages ship
// (made by each command's --completion) and completes, as bash does on
// TAB: flag names (long and short), the values of a flag (given as the
// next word, after "=", after a short flag), file names, nfqknock's
// subcommands (after flags and their values) and host names.
func TestCompletionBash(t *testing.T) {
	bash := needCommand(t, "bash", "bash")
	dir := compDir(t)
	tmp := t.TempDir()
	hosts := filepath.Join(tmp, "hosts") // bash's HOSTFILE: the host names to complete
	if err := os.WriteFile(hosts, []byte("10.0.0.1 gateway.example gw\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	secrets := filepath.Join(tmp, "my-secrets")
	if err := os.WriteFile(secrets, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	driver := filepath.Join(tmp, "driver.bash")
	if err := os.WriteFile(driver, []byte(bashDriver), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		line string   // the words, the last one being completed ("" after a space)
		want []string // COMPREPLY exactly; nil: empty
		has  []string // COMPREPLY holds these, when want is nil
	}{
		{line: "nfqknockd --gu", want: []string{"--guard"}},
		{line: "nfqknockd --open-", want: []string{"--open-port", "--open-secret", "--open-timeout"}},
		{line: "nfqknockd -", has: []string{"-p", "-P", "-s", "-v", "--guard", "--secret-file", "--help"}},
		{line: "nfqknockd ", has: []string{"--guard", "-p"}},
		{line: "nfqknockd -d s", want: []string{"sha256", "sha384", "sha512"}},
		{line: "nfqknockd -vd m", want: []string{"md5"}},
		{line: "nfqknockd --digest = sha5", want: []string{"sha512"}},
		{line: "nfqknockd --digest = ", want: []string{"md5", "sha256", "sha384", "sha512"}},
		{line: "nfqknockd --secret-file " + filepath.Join(tmp, "my-"), want: []string{secrets}},
		{line: "nfqknockd --guard ", want: nil},
		{line: "nfqknock ", want: []string{"show", "open", "close", "proxy", "doctor"}},
		{line: "nfqknock op", want: []string{"open"}},
		{line: "nfqknock -d sha256 o", want: []string{"open"}},
		{line: "nfqknock --digest = sha256 c", want: []string{"close"}},
		{line: "nfqknock -4 --secret-file f p", want: []string{"proxy"}},
		{line: "nfqknock open ga", want: []string{"gateway.example"}},
		{line: "nfqknock -6 proxy g", want: []string{"gateway.example", "gw"}},
		{line: "nfqknock proxy gw ", want: nil},
		{line: "nfqknock --kn", want: []string{"--knock-timeout"}},
		{line: "nfqknock -", has: []string{"-d", "-a", "-b", "-o", "-c", "-4", "-6", "-h", "--secret-file"}},
	} {
		// The words, split at spaces; bash makes --flag=value three
		// words, written "--flag = value" here.
		words := strings.Split(c.line, " ")
		args := append([]string{driver, filepath.Join(dir, words[0]+".bash"), strconv.Itoa(len(words) - 1)}, words...)
		cmd := exec.Command(bash, args...)
		cmd.Env = append(os.Environ(), "HOSTFILE="+hosts)
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("%q: %v", c.line, err)
			continue
		}
		checkCompletions(t, fmt.Sprintf("%q: COMPREPLY", c.line), strings.Fields(string(out)), c.want, c.has)
	}
}

// TestCompletionZsh checks the zsh completions that the packages ship:
// each parses (zsh -n), and sourced after compinit it registers its
// function for its command. (Completing needs zsh's line editor: not run.)
func TestCompletionZsh(t *testing.T) {
	zsh := needCommand(t, "zsh", "zsh")
	dir := compDir(t)
	for _, c := range []string{"nfqknockd", "nfqknock"} {
		file := filepath.Join(dir, "_"+c)
		if out, err := exec.Command(zsh, "-n", file).CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("zsh -n %s: %v\n%s", file, err, out)
		}
		cmd := exec.Command(zsh, "-f", "-c", `autoload -Uz compinit && compinit -u -D && source "$1" && print -r -- "$_comps[$2]"`, "zsh", file, c)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "_"+c {
			t.Errorf("zsh: source %s: the completion of %s is %q, %v; want _%s", file, c, out, err, c)
		}
	}
}

// TestCompletionFish checks the fish completions that the packages ship:
// each parses (fish -n), and fish's own completion (complete -C) of a
// command line with them gives flag names, a flag's values and
// nfqknock's subcommands.
func TestCompletionFish(t *testing.T) {
	fish := needCommand(t, "fish", "fish")
	dir := compDir(t)
	home := t.TempDir()
	for _, c := range []struct {
		line string
		want []string // the completions exactly, without their descriptions
		has  []string
	}{
		{line: "nfqknockd --gu", want: []string{"--guard"}},
		{line: "nfqknockd -", has: []string{"-p", "-P", "-s", "--guard"}},
		{line: "nfqknockd -d ", want: []string{"md5", "sha256", "sha384", "sha512"}},
		{line: "nfqknockd --digest=sha3", want: []string{"--digest=sha384"}},
		{line: "nfqknock ", want: []string{"close", "doctor", "open", "proxy", "show"}},
		{line: "nfqknock pr", want: []string{"proxy"}},
		{line: "nfqknock --kn", want: []string{"--knock-timeout"}},
	} {
		name := strings.Fields(c.line)[0]
		file := filepath.Join(dir, name+".fish")
		if out, err := exec.Command(fish, "-n", file).CombinedOutput(); err != nil || len(out) > 0 {
			t.Fatalf("fish -n %s: %v\n%s", file, err, out)
		}
		cmd := exec.Command(fish, "--no-config", "-c", `source $argv[1]; complete -C $argv[2]`, file, c.line)
		cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "XDG_DATA_HOME="+home)
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("fish: complete -C %q: %v", c.line, err)
			continue
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if w, _, _ := strings.Cut(l, "\t"); w != "" {
				got = append(got, w)
			}
		}
		checkCompletions(t, fmt.Sprintf("fish: complete -C %q:", c.line), got, c.want, c.has)
	}
}

// checkCompletions checks the completions got: exactly want, or, when has
// is set, holding each of has.
func checkCompletions(t *testing.T, what string, got, want, has []string) {
	t.Helper()
	switch {
	case has != nil:
		for _, w := range has {
			if !slices.Contains(got, w) {
				t.Errorf("%s %q, want it to hold %q", what, got, w)
			}
		}
	case !slices.Equal(got, want):
		t.Errorf("%s %q, want %q", what, got, want)
	}
}
