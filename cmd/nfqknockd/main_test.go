package main

import (
	"testing"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// TestMain runs the tests and removes the binary that testutil.Build made
// (TestCtlRefusesOthers runs it as a client); the run fails if a test left
// a process of it behind. The tests of the built daemon in network
// namespaces are in internal/e2e.
func TestMain(m *testing.M) { testutil.Main(m) }
