package pkgtest

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// TestDocsAgree checks that README.md, docs/*.md, the man pages and the
// commands' --help do not contradict each other: every example command
// line is read by the built binary's parser without a usage error
// (examples), the exit statuses they state agree with each other and the
// code and are produced by real invocations (exit), and every long flag
// they name exists in the --help of nfqknockd or nfqknock (flags).
func TestDocsAgree(t *testing.T) {
	bin := binDir(t)
	helps := map[string]string{}
	for _, c := range []string{"nfqknockd", "nfqknock"} {
		out, err := exec.Command(filepath.Join(bin, c), "--help").Output()
		if err != nil {
			t.Fatalf("%s --help: %v", c, err)
		}
		helps[c] = string(out)
	}
	t.Run("examples", func(t *testing.T) { testExamples(t, bin, helps) })
	t.Run("exit", func(t *testing.T) { testExitStatuses(t, bin, helps) })
	t.Run("flags", func(t *testing.T) { testFlags(t, helps) })
}
