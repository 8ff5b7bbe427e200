//go:build unix

package cli

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/nfqknockd/nfqknockd/knock"
)

// checkPrivate refuses, as ssh does for a private key, a secret file that
// is not a regular file, that group or others may read or write
// (knock.CheckSecretMode), or that another account than root or the
// process's own owns (it could change the secrets, and who gets in).
func checkPrivate(_ *os.File, fi fs.FileInfo) error {
	if err := knock.CheckSecretMode(fi.Mode()); err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if euid := os.Geteuid(); st.Uid != 0 && int(st.Uid) != euid {
		return fmt.Errorf("owned by uid %d: want root or this process's user (uid %d)", st.Uid, euid)
	}
	return nil
}
