package pkgtest

// TestDocsAgree's flags: every long flag the documents name is one of our
// commands' (or another program's, named), and each man page's OPTIONS
// are its command's --help flags, with the same short forms.

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// foreignFlags are the long flags the documents name of other programs.
var foreignFlags = map[string]string{
	"--add-port":        "firewall-cmd",
	"--allow-untrusted": "apk add",
	"--capabilities":    "supervise-daemon",
	"--collector":       "node_exporter (--collector.textfile.directory)",
	"--family":          "make bench's floodbench (BENCHFLAGS)",
	"--filter":          "make bench's floodbench",
	"--queue-all-rows":  "make bench's floodbench",
	"--sender":          "make bench's floodbench",
	"--spa-copies":      "make bench's floodbench",
	"--table-cost":      "make bench's floodbench",
	"--gu":              "what a user types before completing nfqknockd --guard",
	"--no-new-privs":    "supervise-daemon",
	"--now":             "systemctl enable",
	"--offline":         "systemd-analyze security",
	"--permanent":       "firewall-cmd",
	"--posix":           "bash",
	"--reload":          "firewall-cmd",
	"--secbits":         "supervise-daemon",
	"--set-target":      "firewall-cmd",
	"--stderr-logger":   "supervise-daemon",
	"--zone":            "firewall-cmd",
}

// helpFlags returns the flags a --help text defines, long name to short
// ("" when none): its flag list's lines, and the flags of its Usage lines.
func helpFlags(help string) map[string]string {
	flags := map[string]string{"--completion": ""} // cli.CompletionFlag, hidden
	def := regexp.MustCompile(`^\s+(?:(-[\w\d]), )?\s*(--[a-z0-9-]+)`)
	usage := true
	for _, l := range strings.Split(help, "\n") {
		if m := def.FindStringSubmatch(l); m != nil && !strings.HasPrefix(strings.TrimSpace(l), "nfqknock") {
			flags[m[2]] = m[1]
		}
		if l == "" {
			usage = false
		}
		if usage {
			for _, f := range regexp.MustCompile(`--[a-z][a-z0-9-]*`).FindAllString(l, -1) {
				if _, ok := flags[f]; !ok {
					flags[f] = ""
				}
			}
		}
	}
	return flags
}

// manOptions returns the flags of a man page's OPTIONS: long to short.
func manOptions(t *testing.T, page string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), "packaging", page))
	if err != nil {
		t.Fatal(err)
	}
	text, err := section("\n"+string(b), "# OPTIONS")
	if err != nil {
		t.Fatalf("%s: %v", page, err)
	}
	opts := map[string]string{}
	heading := regexp.MustCompile(`^(?:\*\*(-[\w\d])\*\*, )?\*\*(--[a-z0-9-]+)\*\*`)
	for _, l := range strings.Split(text, "\n") {
		if m := heading.FindStringSubmatch(l); m != nil {
			opts[m[2]] = m[1]
		}
	}
	return opts
}

// docFlag finds a long flag in prose or code: not inside a word, a path
// or a link's anchor ("#when-it-does-not-open--v-and-doctor").
var docFlag = regexp.MustCompile(`(?:^|[^\w/#-])(--[a-z][a-z0-9-]*)`)

// testFlags checks the long flags of the documents against the --help
// texts.
func testFlags(t *testing.T, helps map[string]string) {
	daemon, client := helpFlags(helps["nfqknockd"]), helpFlags(helps["nfqknock"])
	named, files := 0, append(docFiles(t), "packaging/nfqknockd.default", "packaging/nfqknockd.confd", "packaging/nfqknockd.service", "packaging/secrets.example")
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root(t), f))
		if err != nil {
			t.Fatal(err)
		}
		for n, l := range strings.Split(string(b), "\n") {
			for _, m := range docFlag.FindAllStringSubmatch(l, -1) {
				flag := m[1]
				_, d := daemon[flag]
				_, c := client[flag]
				_, other := foreignFlags[flag]
				if !d && !c && !other {
					t.Errorf("%s:%d names %s, a flag of neither nfqknockd --help nor nfqknock --help: %q", f, n+1, flag, strings.TrimSpace(l))
				}
				if (f == "packaging/nfqknockd.default" || f == "packaging/nfqknockd.confd") && !d && !other {
					t.Errorf("%s:%d names %s, not a flag of nfqknockd --help", f, n+1, flag)
				}
				named++
			}
		}
	}
	for _, p := range []struct{ page, cmd string }{{"nfqknockd.8.md", "nfqknockd"}, {"nfqknock.1.md", "nfqknock"}} {
		opts := manOptions(t, p.page)
		b, err := os.ReadFile(filepath.Join(root(t), "packaging", p.page))
		if err != nil {
			t.Fatal(err)
		}
		synopsis, err := section("\n"+string(b), "# SYNOPSIS")
		if err != nil {
			t.Fatalf("%s: %v", p.page, err)
		}
		help := helpFlags(helps[p.cmd])
		var missing, extra, short []string
		for f, s := range help {
			hs, inMan := opts[f]
			switch {
			case f == "--completion":
			case !inMan && strings.Contains(synopsis, "**"+f+"**"):
				// A subcommand's flag (status, revoke): in the SYNOPSIS.
			case !inMan:
				missing = append(missing, f)
			case hs != s:
				short = append(short, f+": man "+hs+", --help "+s)
			}
		}
		for f := range opts {
			if _, ok := help[f]; !ok {
				extra = append(extra, f)
			}
		}
		sort.Strings(missing)
		sort.Strings(extra)
		if len(missing)+len(extra)+len(short) > 0 {
			t.Errorf("%s's OPTIONS against %s --help: missing %q, not in --help %q, other short forms %q", p.page, p.cmd, missing, extra, short)
		}
		t.Logf("%s: %d options checked against %s --help", p.page, len(opts), p.cmd)
	}
	// The client config's keys are the client's long flag names.
	_, keys, ok := strings.Cut(strings.Join(strings.Fields(helps["nfqknock"]), " "), "Keys: ")
	keys, _, _ = strings.Cut(keys, ".")
	if !ok || keys == "" {
		t.Errorf("nfqknock --help lists no config Keys:")
	}
	for _, k := range strings.Split(keys, ", ") {
		if _, ok := client["--"+k]; !ok {
			t.Errorf("nfqknock --help: config key %q is not a long flag of the client", k)
		}
	}
	t.Logf("long flags named in the documents: %d, checked against nfqknockd --help (%d flags), nfqknock --help (%d) and other programs' (%d)", named, len(daemon), len(client), len(foreignFlags))
}
