package cli

import (
	"errors"
	"io/fs"
	"os"

	"github.com/nfqknockd/nfqknockd/knock"
)

// ReadSecretFile reads the secrets from the file name, in the format of
// knock.ParseSecrets; "" is a secret the file does not give. Like ssh with a
// private key, it refuses a file that others may read or write: on Unix, one
// with a mode that lets group or others at it (knock.CheckSecretMode); on
// Windows, one that another account than the user, SYSTEM or Administrators
// owns or has access to (checkACL). Its errors do not name the file: the
// caller's message does.
func ReadSecretFile(name string) (open, close string, err error) {
	f, err := os.Open(name)
	if err != nil {
		return "", "", pathErr(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", "", pathErr(err)
	}
	if err := checkPrivate(f, fi); err != nil {
		return "", "", err
	}
	return knock.ParseSecrets(f)
}

// pathErr drops the operation and path of an *fs.PathError.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
