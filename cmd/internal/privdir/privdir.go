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
	"path/filepath"
	"strings"
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
		return fmt.Errorf("cannot create it: %w", bare(err))
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return bare(err)
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

// Check is Ensure without the making, for a dry run: nil for a directory
// only root or the process's user can write in, and for a missing one
// whose parent exists (a start makes it).
func Check(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		_, perr := os.Stat(filepath.Dir(dir))
		if perr == nil {
			return nil
		}
		return fmt.Errorf("cannot create it: %w", bare(perr)) // as Ensure says it
	}
	if err != nil {
		return bare(err)
	}
	return check(fi, os.Geteuid())
}

// Trusted checks that only root or the process's user can change the
// program at path, an absolute path: that it and every directory on the
// way to it from /, both as path names them and as the symbolic links
// resolve, belong to root or the effective user and that neither group nor
// others may write in them (a sticky directory such as /tmp may, when what
// is in it belongs to root or the user: others cannot rename that). It
// returns the path with the links resolved.
func Trusted(path string) (string, error) {
	if !filepath.IsAbs(path) {
		return "", errors.New("give an absolute path")
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", bare(err)
	}
	for _, p := range []string{path, real} {
		if err := trustedChain(p, os.Geteuid()); err != nil {
			return "", err
		}
	}
	return real, nil
}

// trustedChain checks each name from / down to path with Lstat (see
// Trusted).
func trustedChain(path string, euid int) error {
	cur := "/"
	parts := strings.Split(strings.Trim(filepath.Clean(path), "/"), "/")
	for i := -1; i < len(parts); i++ {
		if i >= 0 {
			cur = filepath.Join(cur, parts[i])
		}
		fi, err := os.Lstat(cur)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return errors.New("cannot tell the owner of " + cur)
		}
		if int(st.Uid) != 0 && int(st.Uid) != euid {
			return fmt.Errorf("%s is owned by uid %d, neither root nor this process's user (uid %d): that user could replace the program", cur, st.Uid, euid)
		}
		// A link's own mode means nothing (its directory was checked);
		// in a sticky directory others cannot rename what is not theirs,
		// and the next name must be root's or the user's.
		sticky := fi.IsDir() && fi.Mode()&fs.ModeSticky != 0
		if fi.Mode()&fs.ModeSymlink == 0 && !sticky && fi.Mode().Perm()&0o022 != 0 {
			return fmt.Errorf("%s: mode %04o lets other users change it: chmod go-w", cur, fi.Mode().Perm())
		}
	}
	return nil
}

// bare is err without its path (the caller's line names it).
func bare(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
