// Package privdir checks the directories where nfqknockd keeps its lock
// and its state: a directory that a local user could write in would let
// that user hold the lock (and keep the daemon from starting) or replace
// the state (and replay a used one-time sequence).
package privdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// Ensure makes dir (mode 0700) when it is missing and its parent exists,
// and checks that only root or the process's user can write in it: it is
// a directory, owned by root or by the effective user, and neither its
// group nor others may write in it. The error says what is wrong, without
// the directory's name (the caller's line names it).
func Ensure(dir string) error {
	err := os.Mkdir(dir, 0o700)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("cannot create it: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return err
	}
	return check(fi, os.Geteuid())
}

// check says whether fi is a directory that only root or user euid can
// write in.
func check(fi fs.FileInfo, euid int) error {
	if !fi.IsDir() {
		return errors.New("not a directory")
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return errors.New("cannot tell its owner")
	}
	if int(st.Uid) != 0 && int(st.Uid) != euid {
		return fmt.Errorf("owned by uid %d, neither root nor this process's user (uid %d): that user could hold or change what is in it", st.Uid, euid)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("mode %04o lets other users write in it: give a directory only root or the daemon's user can write (chmod go-w)", perm)
	}
	return nil
}
