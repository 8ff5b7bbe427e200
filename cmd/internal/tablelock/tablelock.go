// Package tablelock keeps two nfqknockd from using the same table: one
// daemon per table name and network namespace.
//
// The lock is an flock(2) on a file in a directory that only root or the
// daemon's user can write in (privdir.Ensure), such as /run/nfqknockd: a
// local user can neither make the file nor open it, so cannot hold the
// lock. (The abstract unix socket used before could be bound first by any
// user of the network namespace, which kept the daemon from starting.)
// The kernel lets the lock go when its holder exits, crash included.
// Tables are per network namespace, so the file's name holds the
// namespace's inode number as well as the table's name: daemons in other
// namespaces with the same table name do not collide.
package tablelock

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrHeld is the error of Take when another process holds the lock.
var ErrHeld = errors.New("another nfqknockd is running with this table")

// Lock is a held lock.
type Lock struct {
	f    *os.File
	path string
}

// Netns returns the inode number of the calling thread's network
// namespace.
func Netns() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0, fmt.Errorf("network namespace: %w", err)
	}
	return st.Ino, nil
}

// Path returns the lock file of table in network namespace netns, in dir.
// A name too long for one file name is replaced by its SHA-256.
func Path(dir, table string, netns uint64) string {
	name := fmt.Sprintf("netns-%d.table-%s.lock", netns, table)
	if len(name) > 255 {
		sum := sha256.Sum256([]byte(table))
		name = fmt.Sprintf("netns-%d.table-sha256-%s.lock", netns, hex.EncodeToString(sum[:]))
	}
	return filepath.Join(dir, name)
}

// Take takes the lock at path without waiting: ErrHeld when another
// process (or another Take of this one) holds it. The directory must
// exist; Take does not check who may write in it (privdir.Ensure does).
func Take(path string) (*Lock, error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, ErrHeld
			}
			return nil, fmt.Errorf("flock %s: %w", path, err)
		}
		// The holder before removes the file before letting go: a lock
		// taken on a file no longer at path is no lock. Try again.
		if same(f, path) {
			// A file left by an older version may have another mode.
			if err := f.Chmod(0o600); err != nil {
				f.Close()
				return nil, fmt.Errorf("chmod %s: %w", path, err)
			}
			return &Lock{f: f, path: path}, nil
		}
		f.Close()
	}
}

// same says whether f is the file at path.
func same(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Lstat(path)
	return err == nil && os.SameFile(a, b)
}

// Unlock removes the file and lets the lock go.
func (l *Lock) Unlock() {
	os.Remove(l.path)
	l.f.Close()
}

// Held reports whether a process holds the lock at path (Take), without
// taking it: for a command that asks whether a daemon runs.
func Held(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}
