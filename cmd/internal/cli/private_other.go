//go:build !unix && !windows

package cli

import (
	"io/fs"
	"os"

	"github.com/nfqknockd/nfqknockd/knock"
)

// checkPrivate refuses a secret file that is not a regular file or whose
// mode lets group or others at it (knock.CheckSecretMode): these systems
// tell nothing of the owner.
func checkPrivate(_ *os.File, fi fs.FileInfo) error {
	return knock.CheckSecretMode(fi.Mode())
}
