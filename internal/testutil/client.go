package testutil

import (
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
