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
	return checkOwner(fi)
}

// OpenCredential opens a systemd credential (a file of
// $CREDENTIALS_DIRECTORY) of secrets. systemd copies it into a directory
// that only the service can reach, and gives it mode 0400 up to systemd 256
// and 0440 from 257 on, the group being the service's: so the group may
// read it. The rest is refused as OpenPrivate refuses it: another kind of
// file, a mode that lets the group write or others at it, an owner other
// than root or this process's. Its errors do not name the file.
func OpenCredential(name string) (*os.File, error) {
	return openChecked(name, func(_ *os.File, fi fs.FileInfo) error {
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("not a regular file")
		}
		if perm := fi.Mode().Perm(); perm&0o037 != 0 {
			return fmt.Errorf("permissions %04o are too open for a credential (want 0440 or stricter)", perm)
		}
		return checkOwner(fi)
	})
}

// ReadCredentialFile is ReadSecretFile for a systemd credential
// (OpenCredential).
func ReadCredentialFile(name string) (open, close string, err error) {
	return readSecrets(name, OpenCredential)
}

// checkOwner refuses a file that another account than root or the
// process's own owns.
func checkOwner(fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if euid := os.Geteuid(); st.Uid != 0 && int(st.Uid) != euid {
		return fmt.Errorf("owned by uid %d: want root or this process's user (uid %d)", st.Uid, euid)
	}
	return nil
}
