package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/nfqknockd/nfqknockd/internal/netns"
)

// TestMain removes namespaces that crashed test runs left, runs the tests,
// and fails the run if any test left a namespace, a daemon or a table behind.
func TestMain(m *testing.M) {
	netns.SweepStale()
	code := m.Run()
	if err := e2eCleanup(); err != nil {
		fmt.Fprintln(os.Stderr, "left behind by the tests:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
