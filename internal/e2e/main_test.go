package e2e

import (
	"testing"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// TestMain removes namespaces that crashed test runs left, runs the tests,
// and fails the run if any test left a namespace, a daemon or a table behind.
func TestMain(m *testing.M) { testutil.Main(m, tableLeft) }
