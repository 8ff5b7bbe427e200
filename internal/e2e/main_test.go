package e2e

import (
	"testing"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// TestMain removes namespaces that crashed test runs left, runs the tests,
// and fails the run if any test left a namespace, a process of the built
// binaries or a table behind. The built clients find their default files
// in an empty directory of their own, never the user's.
func TestMain(m *testing.M) { testutil.Main(m, tableLeft, testutil.ClientConfigDir()) }
