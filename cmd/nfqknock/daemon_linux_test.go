package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// TestShowMatchesDaemon: `nfqknock show` prints what the built
// `nfqknockd -s` prints for the same sequence flags (each with --at, so
// that no rotation falls between the two runs).
func TestShowMatchesDaemon(t *testing.T) {
	daemon := testutil.Build(t, "../nfqknockd", "")
	for _, flags := range [][]string{
		{"-o", "123", "-c", "321", "--at", "2025-11-04T12:34:56Z"},
		{"-d", "sha256", "--range", "1000-2000", "-o", "a", "-c", "b", "--at", "1700000000"},
		{"-d", "SHA384", "-a", "10", "-b", "20", "--open-secret=x y", "--close-secret=z'q", "--period", "10m", "--at", "1762259696"},
		{"--digest", "sha512", "--start", "1024", "--end", "49151", "-o", "a", "-c", "b", "--local-hour", "--at", "2026-03-29T01:30:00+01:00"},
	} {
		want, err := exec.Command(daemon, append([]string{"-s"}, flags...)...).Output()
		if err != nil {
			t.Fatalf("nfqknockd -s %q: %v", flags, err)
		}
		code, stdout, stderr := runArgs(t, append([]string{"show"}, flags...)...)
		if code != 0 || stdout != string(want) || stderr != "" {
			t.Errorf("show %q = %d, %q, %q; nfqknockd -s printed %q", flags, code, stdout, stderr, want)
		}
	}
}

// TestVersionSameAsDaemon: both commands, built with the -ldflags of the
// Makefile's LDFLAGS line (its $(VERSION) replaced), print the same version
// string: the one stamped.
func TestVersionSameAsDaemon(t *testing.T) {
	const stamp = "v9.8.7-versiontest"
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	var ldflags string
	for line := range strings.SplitSeq(string(mk), "\n") {
		if rest, ok := strings.CutPrefix(line, "LDFLAGS"); ok {
			if _, v, ok := strings.Cut(rest, ":="); ok {
				ldflags = strings.ReplaceAll(strings.TrimSpace(v), "$(VERSION)", stamp)
			}
		}
	}
	if !strings.Contains(ldflags, "-X ") || !strings.Contains(ldflags, stamp) {
		t.Fatalf("Makefile: no LDFLAGS := ... -X ...=$(VERSION) line (got %q)", ldflags)
	}
	for _, name := range []string{"nfqknockd", "nfqknock"} {
		bin := testutil.Build(t, "../"+name, ldflags)
		out, err := exec.Command(bin, "--version").Output()
		if want := name + " " + stamp + "\n"; err != nil || string(out) != want {
			t.Errorf("%s --version (-ldflags %q) = %q, %v; want %q", name, ldflags, out, err, want)
		}
	}
}
