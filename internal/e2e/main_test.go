package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// TestMain removes namespaces that crashed test runs left, runs the tests,
// and fails the run if any test left a namespace, a process of the built
// binaries, a table or a state file in the host's --state-dir behind. The
// built clients find their default files in an empty directory of their
// own, never the user's.
func TestMain(m *testing.M) {
	testutil.Main(m, tableLeft, stateFileLeft(), testutil.ClientConfigDir())
}

// hostStateFile is the state file a daemon with the default --state-dir
// and --table writes: a test must give its daemon a --state-dir of its own
// (env.stateDir), or its used one-time sequences and SPA nonces land on the
// host and are shared with every other test.
const hostStateFile = "/var/lib/nfqknockd/nfqknock.spent"

// stateFileLeft returns a check that reports hostStateFile written while
// the tests ran.
func stateFileLeft() func() error {
	before, _ := os.Stat(hostStateFile)
	return func() error {
		after, err := os.Stat(hostStateFile)
		if err != nil || before != nil && after.ModTime().Equal(before.ModTime()) {
			return nil
		}
		return fmt.Errorf("%s written by a test: give the daemon --state-dir", hostStateFile)
	}
}
