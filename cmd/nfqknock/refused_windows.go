package main

import (
	"errors"

	"golang.org/x/sys/windows"
)

// refused reports whether a connect failed because the host answered with a
// reset: Windows reports WSAECONNREFUSED (after trying the SYN again).
func refused(err error) bool { return errors.Is(err, windows.WSAECONNREFUSED) }
