package nft

// Probing which generation the kernel is (the generations are in gen.go).

import (
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

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
