package testutil

import (
	"fmt"
	"os"
	"syscall"
	"testing"
)

// StreamID returns f's "DEV:INO", as systemd sets JOURNAL_STREAM.
func StreamID(t testing.TB, f *os.File) string {
	t.Helper()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}
