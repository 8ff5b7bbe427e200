package nft

// The backup table in the kernel: written with Apply's batch, found and
// checked, and written with every open, close and spend (what it holds is
// BuildBackup, backup.go).

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
)

// backupBatch returns the messages that replace the backup table of s,
// allow4 and allow6 holding carried and spent the Conn's record. The
// backup has no owner: its first add never takes one over.
func (c *Conn) backupBatch(s Spec, carried [2][]nftables.SetElement) ([]netlink.Message, error) {
	rs, err := BuildBackup(s)
	if err != nil {
		return nil, err
	}
	return c.replaceBatch(rs, carried, tableHead{flags: 0, comment: BackupComment})
}

// checkBackup reports whether our backup table of main exists. A table of
// that name that is not ours is refused where the Conn needs the name (a
// GenOwner kernel), and elsewhere left alone as if absent. The caller
// holds c.mu.
func (c *Conn) checkBackup(main string) (bool, error) {
	name := BackupTable(main)
	t, err := c.readTable(name)
	switch {
	case IsNotFound(err):
		return false, nil
	case err != nil:
		return false, err
	case isBackupComment(t.Comment):
		return true, nil
	case c.gen == GenOwner:
		return false, fmt.Errorf("table inet %s: %w", name, ErrNotOurs)
	}
	return false, nil
}

// withBackup returns set and, where the Conn keeps a backup table, the set
// of the same name there: the sets every open, close and spend writes.
// The caller holds c.mu.
func (c *Conn) withBackup(set *nftables.Set) []*nftables.Set {
	if c.gen != GenOwner || !c.applied || set.Table.Name != c.table {
		return []*nftables.Set{set}
	}
	twin := *set
	twin.Table = &nftables.Table{Name: BackupTable(c.table), Family: set.Table.Family}
	return []*nftables.Set{set, &twin}
}
