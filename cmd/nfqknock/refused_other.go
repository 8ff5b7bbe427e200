//go:build !windows

package main

import (
	"errors"
	"syscall"
)

// refused reports whether a connect failed because the host answered with a
// reset (ECONNREFUSED).
func refused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
