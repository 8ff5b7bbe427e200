package pkgtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var helpFlag = regexp.MustCompile(`(?m)^\s+(?:-([A-Za-z0-9]), )?--([a-z0-9-]+)`)

// TestManPagesCoverFlags checks that each man page describes every flag
// that its binary's --help lists, short and long, so the pages cannot fall
// behind the code unnoticed, and that go-md2man renders both without a
// warning.
func TestManPagesCoverFlags(t *testing.T) {
	bin := binDir(t)
	cases := []struct{ binary, page string }{
		{"nfqknockd", "nfqknockd.8"},
		{"nfqknock", "nfqknock.1"},
	}
	for _, c := range cases {
		t.Run(c.page, func(t *testing.T) {
			help, err := exec.Command(filepath.Join(bin, c.binary), "--help").Output()
			if err != nil {
				t.Fatalf("%s --help: %v", c.binary, err)
			}
			src, err := os.ReadFile(filepath.Join(root(t), "packaging", c.page+".md"))
			if err != nil {
				t.Fatal(err)
			}
			flags := helpFlag.FindAllStringSubmatch(string(help), -1)
			if len(flags) < 10 {
				t.Fatalf("found only %d flags in %s --help", len(flags), c.binary)
			}
			for _, f := range flags {
				if !strings.Contains(string(src), "**--"+f[2]+"**") {
					t.Errorf("%s.md does not describe **--%s**", c.page, f[2])
				}
				if f[1] != "" && !strings.Contains(string(src), "**-"+f[1]+"**, **--"+f[2]+"**") {
					t.Errorf("%s.md does not give **-%s**, **--%s**", c.page, f[1], f[2])
				}
			}
			for _, s := range []string{"# SYNOPSIS", "# OPTIONS", "# EXIT STATUS", "# EXAMPLES", "# SEE ALSO"} {
				if !strings.Contains(string(src), "\n"+s+"\n") {
					t.Errorf("%s.md has no %s section", c.page, s[2:])
				}
			}
		})
	}
	dir := manDir(t)
	for _, c := range cases {
		roff, err := os.ReadFile(filepath.Join(dir, c.page))
		if err != nil {
			t.Fatal(err)
		}
		name, section, _ := strings.Cut(c.page, ".")
		if want := ".TH " + name + " " + section + " "; !strings.Contains(string(roff), "\n"+want) && !strings.HasPrefix(string(roff), want) {
			t.Errorf("%s: no %q header in the roff", c.page, want)
		}
		if !strings.Contains(string(roff), testVersion) {
			t.Errorf("%s: the version is not stamped into the header", c.page)
		}
	}
}
