package cli

import (
	"errors"
	"io/fs"
	"os"

	"github.com/nfqknockd/nfqknockd/knock"
)

// ReadSecretFile reads the secrets from the file name, in the format of
// knock.ParseSecrets; "" is a secret the file does not give. It refuses
// what OpenPrivate refuses. Its errors do not name the file: the caller's
// message does.
func ReadSecretFile(name string) (open, close string, err error) {
	return readSecrets(name, OpenPrivate)
}

// readSecrets reads the secrets of the file name, opened with open.
func readSecrets(name string, open func(string) (*os.File, error)) (string, string, error) {
	f, err := open(name)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	return knock.ParseSecrets(f)
}

// OpenPrivate opens a file of secrets (a secret file, nfqknockd's access
// file). Like ssh with a private key, it refuses a file that others may
// read or write: on Unix, one with a mode that lets group or others at it
// (knock.CheckSecretMode), or that another account than root or this
// process's owns; on Windows, one that another account than the user,
// SYSTEM or Administrators owns or has access to (checkACL). Its errors do
// not name the file: the caller's message does.
func OpenPrivate(name string) (*os.File, error) {
	return openChecked(name, checkPrivate)
}

// openChecked opens the file name and returns it if check accepts it.
func openChecked(name string, check func(*os.File, fs.FileInfo) error) (*os.File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, pathErr(err)
	}
	fi, err := f.Stat()
	if err == nil {
		err = check(f, fi)
	}
	if err != nil {
		f.Close()
		return nil, pathErr(err)
	}
	return f, nil
}

// pathErr drops the operation and path of an *fs.PathError.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
