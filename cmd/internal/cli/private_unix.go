//go:build !windows

package cli

import (
	"io/fs"
	"os"

	"github.com/nfqknockd/nfqknockd/knock"
)

// checkPrivate refuses, as ssh does for a private key, a secret file that
// is not a regular file or that group or others may read or write
// (knock.CheckSecretMode).
func checkPrivate(_ *os.File, fi fs.FileInfo) error {
	return knock.CheckSecretMode(fi.Mode())
}
