package nft

import (
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Generation is how a kernel lets the daemon keep its table, from the
// table flags it has. Apply finds it once (a probe) and returns it in
// Result.Gen.
type Generation int

// The three generations of kernels.
const (
	// GenNone: no table flag owner (kernels before 5.12). Anybody may
	// delete the table (`nft flush ruleset`), so the daemon watches it and
	// puts it back at once (Watch): for the few milliseconds in between,
	// the guarded ports are open.
	GenNone Generation = iota
	// GenOwner: the flag owner but not persist (5.12 to 6.8). The table is
	// owned by the daemon's socket while it runs: `nft flush ruleset`
	// skips it and no other process can change it. It goes with the
	// socket, so a second, un-owned table, the backup (BackupTable), holds
	// the same guard and opened sources and stays when the daemon exits;
	// the daemon puts it back when others remove it (Watch), while the
	// owned table guards.
	GenOwner
	// GenPersist: the flags owner and persist (6.9 and later). One table,
	// owned while the daemon runs and kept, un-owned, when it exits.
	GenPersist
)

// String says what the generation means for an admin.
func (g Generation) String() string {
	switch g {
	case GenNone:
		return "kernel without the table flag owner (before 5.12): a watch puts the table back when it is removed, leaving the guarded ports open for a few milliseconds"
	case GenOwner:
		return "kernel with the table flag owner but not persist (5.12 to 6.8): the table is owned while the daemon runs; a backup table keeps the guard when it exits"
	case GenPersist:
		return "kernel with the table flags owner and persist (6.9 and later): the table is owned while the daemon runs and stays guarding when it exits"
	}
	return fmt.Sprintf("Generation(%d)", int(g))
}

// Flags names the table flags of the generation as nft prints them.
func (g Generation) Flags() string {
	switch g {
	case GenOwner:
		return "owner"
	case GenPersist:
		return "owner,persist"
	}
	return "none"
}

// tableFlags returns the flags of our main table in generation g.
func (g Generation) tableFlags() uint32 {
	switch g {
	case GenOwner:
		return TableFlagOwner
	case GenPersist:
		return TableFlagOwner | TableFlagPersist
	}
	return 0
}

// decideGen finds out once which generation the kernel is, capped by the
// spec's test switches (NoOwner, NoPersist). The caller holds c.mu.
func (c *Conn) decideGen(s Spec) error {
	if c.probed {
		return nil
	}
	max := GenPersist
	switch {
	case s.NoOwner:
		max = GenNone
	case s.NoPersist:
		max = GenOwner
	}
	g := GenNone
	for _, try := range []Generation{GenPersist, GenOwner} {
		if try > max {
			continue
		}
		ok, err := c.probeFlags(try.tableFlags())
		if err != nil {
			return err
		}
		if ok {
			g = try
			break
		}
	}
	c.gen, c.flags, c.probed = g, g.tableFlags(), true
	return nil
}

// probeFlags reports whether the kernel takes the table flags: it sends a
// batch that adds and deletes a scratch table with them, which leaves
// nothing behind either way. A kernel without a flag refuses it with
// EOPNOTSUPP (owner before 5.12, persist before 6.9). The caller holds c.mu.
func (c *Conn) probeFlags(flags uint32) (bool, error) {
	nl, err := c.writer()
	if err != nil {
		return false, err
	}
	// The writing socket's port tells this probe apart from another
	// daemon's probing at the same moment.
	name := fmt.Sprintf("nfqknockd_probe_%d", nl.PID())
	err = c.sendRetry([]netlink.Message{
		tableMessage(unix.NFT_MSG_NEWTABLE, name, flags, ""),
		tableMessage(unix.NFT_MSG_DELTABLE, name, 0, ""),
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL):
		return false, nil
	}
	return false, fmt.Errorf("probe the table flags %#x: %w", flags, err)
}
