package main

import (
	"errors"
	"path/filepath"

	"github.com/nfqknockd/nfqknockd/cmd/internal/privdir"
	"github.com/nfqknockd/nfqknockd/cmd/internal/tablelock"
)

// The default directories of the lock (the unit's RuntimeDirectory=) and
// of the state (its StateDirectory=); the OpenRC script makes both.
const (
	defaultLockDir  = "/run/nfqknockd"
	defaultStateDir = "/var/lib/nfqknockd"
)

// dirValue is an absolute directory name; "" only when none is set (for
// no directory at all).
type dirValue struct {
	s    *string
	none bool
}

func (v *dirValue) Set(s string) error {
	switch {
	case s == "" && v.none:
	case s == "":
		return errors.New("empty: give a directory")
	case !filepath.IsAbs(s):
		return errors.New("not an absolute path")
	default:
		s = filepath.Clean(s)
	}
	*v.s = s
	return nil
}
func (v *dirValue) String() string { return *v.s }
func (v *dirValue) Type() string   { return "dir" }

// tableLock is held while a daemon uses a table in its network
// namespace: an flock on a file in --lock-dir, which only root or the
// daemon's user can write in (package tablelock). A second daemon for
// the same table fails to take it and touches nothing, whatever its
// queue; a local user cannot take it first.
type tableLock = tablelock.Lock

// lockTable takes the lock of the table: exit 1 when another daemon holds
// it, exit 2 when --lock-dir is not a directory that only root or the
// daemon's user can write in.
func (d *service) lockTable() error {
	dir := d.cfg.LockDir
	if err := privdir.Ensure(dir); err != nil {
		return fail(2, "--lock-dir %s: %v", style.Quote(dir), err)
	}
	ns, err := tablelock.Netns()
	if err != nil {
		return fail(1, "--table %s: lock: %v", d.cfg.Table, err)
	}
	l, err := tablelock.Take(tablelock.Path(dir, d.cfg.Table, ns))
	switch {
	case errors.Is(err, tablelock.ErrHeld):
		return fail(1, "--table %s: %v", d.cfg.Table, err)
	case err != nil:
		return fail(1, "--lock-dir %s: %v", style.Quote(dir), err)
	}
	d.lock = l
	return nil
}
