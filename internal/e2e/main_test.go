package e2e

import (
	"os"
	"testing"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// TestMain removes namespaces that crashed test runs left, runs the tests,
// and fails the run if any test left a namespace, a process of the built
// binaries or a table behind. The built clients find their default files
// in an empty directory of their own, never the user's.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nfqknock-test-config-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CONFIG_HOME", dir)
	os.Setenv("AppData", dir)
	testutil.Main(m, tableLeft, func() error { return os.RemoveAll(dir) })
}
