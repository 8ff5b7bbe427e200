package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/psx"
)

// capNetAdmin is the number of CAP_NET_ADMIN.
const capNetAdmin = 12

// effectiveCaps returns the effective capability set of this process, read
// from /proc/self/status.
func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read capabilities: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "CapEff:")
		if !ok {
			continue
		}
		caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return 0, fmt.Errorf("parse CapEff %q: %w", v, err)
		}
		return caps, nil
	}
	return 0, errors.New("read capabilities: no CapEff line in /proc/self/status")
}

// hasCapNetAdmin reports whether this process has CAP_NET_ADMIN in its
// effective set.
func hasCapNetAdmin() (bool, error) {
	caps, err := effectiveCaps()
	return caps&(1<<capNetAdmin) != 0, err
}

// dropCapabilities keeps CAP_NET_ADMIN and drops every other capability
// from every thread: the effective, permitted and inheritable sets, the
// ambient set, and (when allowed, that is with CAP_SETPCAP) the bounding
// set. It also sets no_new_privs. The daemon needs nothing else: it binds
// NFQUEUE and programs nf_tables over netlink; the one program it may run,
// --on-event's, runs from a thread that dropped even CAP_NET_ADMIN (hooks.go).
//
// Capabilities belong to threads; Go runs on several, so every change goes
// through libcap's psx.Syscall6, which makes it on every thread: through
// syscall.AllThreadsSyscall in a binary built without cgo (the Makefile's),
// and through psx's hook of pthread_create in one built with cgo (a plain
// `go build` or `go install` where a C compiler is installed), where Go's
// AllThreadsSyscall refuses to run.
func dropCapabilities() error {
	all := func(trap, a1, a2, a3 uintptr) error {
		// Syscall6 with zeroes: under cgo psx calls C's syscall(), which
		// would pass whatever its registers hold as the arguments not
		// given, and prctl refuses PR_SET_NO_NEW_PRIVS and
		// PR_CAP_AMBIENT_CLEAR_ALL unless they are 0 (EINVAL).
		if _, _, e := psx.Syscall6(trap, a1, a2, a3, 0, 0, 0); e != 0 {
			return e
		}
		return nil
	}
	if err := all(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	if err := all(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	caps, err := effectiveCaps()
	if err != nil {
		return err
	}
	if caps&^(1<<capNetAdmin) != 0 { // dropping the bounding set needs CAP_SETPCAP, which goes next
		for c := 0; c <= unix.CAP_LAST_CAP; c++ {
			if c == capNetAdmin {
				continue
			}
			if err := all(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0); err != nil && !errors.Is(err, syscall.EINVAL) {
				return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
			}
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{{Effective: 1 << capNetAdmin, Permitted: 1 << capNetAdmin}}
	err = all(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	runtime.KeepAlive(&hdr)
	runtime.KeepAlive(&data)
	if err != nil {
		return fmt.Errorf("set capabilities to CAP_NET_ADMIN only: %w", err)
	}
	return nil
}
