package nft

import (
	"errors"

	"golang.org/x/sys/unix"
)

// IsNotFound reports whether err says that an object (table, set, element,
// expression type) does not exist in the kernel (ENOENT).
func IsNotFound(err error) bool {
	return errors.Is(err, unix.ENOENT)
}

// IsPermission reports whether err comes from missing privileges
// (CAP_NET_ADMIN in the namespace): EPERM or EACCES.
func IsPermission(err error) bool {
	return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)
}

// isUnsupported reports whether a batch failed because the kernel lacks a
// piece it uses: the native queue expression answers ENOENT (module not
// there) or EOPNOTSUPP.
func isUnsupported(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP)
}

// isLostAnswer reports whether the kernel's answer to a batch was lost
// (ENOBUFS: the socket's receive buffer overflowed). The batch may have been
// applied or not: the caller re-reads the state.
func isLostAnswer(err error) bool {
	return errors.Is(err, unix.ENOBUFS)
}
