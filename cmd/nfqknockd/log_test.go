package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// logLines logs one line at each level through newLogger(f), with an
// attribute and a group, and returns what f holds.
func logLines(t *testing.T, f *os.File) []string {
	t.Helper()
	log := newLogger(f, slog.LevelDebug).With("queue", 100)
	log.Debug("knock", "source", "10.0.0.2")
	log.Info("open", "source", "10.0.0.2")
	log.WithGroup("table").Warn("put back", "name", "nfqknock")
	log.Error("queue reader stopped", "err", "multi\nline")
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestJournalLogger(t *testing.T) {
	dir := t.TempDir()
	newFile := func(name string) *os.File {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	journal := []string{
		`<7>level=DEBUG msg=knock queue=100 source=10.0.0.2`,
		`<6>level=INFO msg=open queue=100 source=10.0.0.2`,
		`<4>level=WARN msg="put back" queue=100 table.name=nfqknock`,
		`<3>level=ERROR msg="queue reader stopped" queue=100 err="multi\nline"`,
	}
	// The current format: the time first, no priority.
	current := regexp.MustCompile(`^time=\S+ level=(DEBUG|INFO|WARN|ERROR) msg=`)
	other := newFile("other")
	tests := []struct {
		name   string
		stream func(f *os.File) string // JOURNAL_STREAM for the log file f; "-" unsets it
		want   []string                // nil: the current format
	}{
		{"journal", func(f *os.File) string { return testutil.StreamID(t, f) }, journal},
		{"unset", func(*os.File) string { return "-" }, nil},
		{"another stream", func(*os.File) string { return testutil.StreamID(t, other) }, nil},
		{"empty", func(*os.File) string { return "" }, nil},
		{"malformed", func(*os.File) string { return "journal" }, nil},
		{"not numbers", func(*os.File) string { return "a:b" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFile(strings.ReplaceAll(tt.name, " ", "-"))
			if v := tt.stream(f); v == "-" {
				t.Setenv("JOURNAL_STREAM", "")
				os.Unsetenv("JOURNAL_STREAM")
			} else {
				t.Setenv("JOURNAL_STREAM", v)
			}
			lines := logLines(t, f)
			if tt.want != nil {
				if strings.Join(lines, "\n") != strings.Join(tt.want, "\n") {
					t.Errorf("journal lines:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(tt.want, "\n"))
				}
				return
			}
			if len(lines) != len(journal) {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), len(journal), strings.Join(lines, "\n"))
			}
			for i, l := range lines {
				if !current.MatchString(l) {
					t.Errorf("line %q is not in the current format", l)
				}
				// The same line but for the time and the priority.
				_, rest, _ := strings.Cut(l, " ")
				if rest != journal[i][3:] {
					t.Errorf("line %q, want %q after the time", l, journal[i][3:])
				}
			}
		})
	}
}

// TestErrorPrefix: the line of a failed start has priority 3 on the
// journal, and no prefix elsewhere, also when only the variable is set.
func TestErrorPrefix(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", testutil.StreamID(t, os.Stderr))
	if p := errorPrefix(os.Stderr); p != "<3>" {
		t.Errorf("errorPrefix(stderr) on the journal = %q, want <3>", p)
	}
	if p := errorPrefix(&bytes.Buffer{}); p != "" {
		t.Errorf("errorPrefix(buffer) = %q, want none", p)
	}
	t.Setenv("JOURNAL_STREAM", "1:1")
	if p := errorPrefix(os.Stderr); p != "" {
		t.Errorf("errorPrefix(stderr) with another stream = %q, want none", p)
	}
}

// TestJournalLoggerAllocs: the journal's lines cost no more allocations
// than the current format's.
func TestJournalLoggerAllocs(t *testing.T) {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	allocs := func() float64 {
		log := newLogger(f, slog.LevelInfo)
		return testing.AllocsPerRun(100, func() { log.Info("open", "source", "10.0.0.2", "timeout", "1h0m0s") })
	}
	t.Setenv("JOURNAL_STREAM", "")
	plain := allocs()
	t.Setenv("JOURNAL_STREAM", testutil.StreamID(t, f))
	journal := allocs()
	t.Logf("allocations per line: %v plain, %v journal", plain, journal)
	if journal > plain {
		t.Errorf("a journal line allocates %v times, a plain one %v", journal, plain)
	}
}
