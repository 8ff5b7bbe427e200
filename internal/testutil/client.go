package testutil

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// NeedNft skips the test when nft is missing outside CI.
func NeedNft(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		if testing.Verbose() {
			t.Log(err)
		}
		t.Skip("needs nft (apt-get install nftables)")
	}
}

// FirstCause returns the first of `nfqknock doctor`'s likely causes, "" for none.
func FirstCause(stdout string) string {
	_, rest, ok := strings.Cut(stdout, "likely causes, the most likely first:\n  1. ")
	if !ok {
		return ""
	}
	line, _, _ := strings.Cut(rest, "\n")
	return line
}

// ClientConfigDir points $XDG_CONFIG_HOME and %AppData% of this process,
// and so of the clients it runs, at a new empty directory: no test finds
// the user's nfqknock files. It returns the check for Main that removes
// the directory after the tests.
func ClientConfigDir() func() error {
	dir, err := os.MkdirTemp("", "nfqknock-test-config-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CONFIG_HOME", dir)
	os.Setenv("AppData", dir)
	return func() error { return os.RemoveAll(dir) }
}
