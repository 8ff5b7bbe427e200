package nft

import (
	"strings"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The backup table of GenOwner kernels (5.12 to 6.8): the main table is
// owned by the daemon's socket and goes when the daemon exits, so a second
// table, named BackupTable(main), without owner, holds the same guard: the
// sets guard, allow4, allow6, static4, static6, spent and (with SPA) spa,
// and the chains guard and guarded, hooked at the same priority as the main
// table's guard. Two base chains on one hook both see a packet and a drop in either
// drops it, so a new connection to a guarded port passes only where both
// tables allow it. Every open, close and used one-time sequence goes into
// both tables in one transaction. When the daemon exits (a restart, an
// upgrade, a crash), the backup keeps guarding, with the opened sources,
// and the next daemon takes it over together with a new owned table, in
// one transaction. When another program removes the backup (`nft flush
// ruleset` does), the owned table still guards and Watch puts the backup
// back.
//
// The backup has no knock chain: knocks are seen by the main table alone,
// and while no daemon runs nobody can open, as with one table.

// backupSuffix makes the name of the backup table from the main table's.
const backupSuffix = "_backup"

// BackupTable returns the name of the backup table of the main table name
// (GenOwner kernels): "nfqknock_backup" for "nfqknock".
func BackupTable(name string) string { return name + backupSuffix }

// Table comments. The main table's says which generation of kernel keeps it,
// and so what an admin can expect of it; each starts with TableComment,
// which isOurs looks for. The backup's says what it is for.
const (
	commentPersist = TableComment + "; owned and persistent (kernel 6.9+): stays guarding when the daemon exits"
	commentOwner   = TableComment + "; owned (kernel without persist): goes when the daemon exits, the backup table keeps guarding"
	commentWatched = TableComment + "; not owned (kernel before 5.12): the daemon puts it back when removed"
	BackupComment  = "nfqknockd backup guard: keeps the guarded ports closed when the daemon exits (kernel without table persist); managed by the daemon, do not edit"
)

// mainComment returns the comment of the main table in generation g.
func mainComment(g Generation) string {
	switch g {
	case GenPersist:
		return commentPersist
	case GenOwner:
		return commentOwner
	}
	return commentWatched
}

// isBackupComment reports whether c is the comment of a backup table.
func isBackupComment(c string) bool {
	return strings.HasPrefix(c, "nfqknockd backup guard")
}

// backupSetIDBase shifts the set IDs of the backup's objects: the two
// tables are written in one transaction, where a set added by the batch is
// referred to by its ID.
const backupSetIDBase = 100

// backupSets are the sets the backup table holds.
var backupSets = map[string]bool{SetGuard: true, SetAllow4: true, SetAllow6: true, SetStatic4: true, SetStatic6: true, SetSpent: true, SetSPA: true}

// BuildBackup makes the ruleset of the backup table of s: the sets and
// chains of the guard, as Build makes them for the table
// BackupTable(s.Table), without the knock chain and the kernel filter. It
// talks to no kernel.
func BuildBackup(s Spec) (*Ruleset, error) {
	s, err := s.normalize()
	if err != nil {
		return nil, err
	}
	s.Table = BackupTable(s.Table)
	if err := ValidTableName(s.Table); err != nil {
		return nil, err
	}
	full, err := Build(s, Native)
	if err != nil {
		return nil, err
	}
	rs := &Ruleset{Table: full.Table}
	for i, set := range full.Sets {
		if backupSets[set.Name] {
			set.ID += backupSetIDBase
			rs.Sets = append(rs.Sets, set)
			rs.Elements = append(rs.Elements, full.Elements[i])
		}
	}
	for _, ch := range full.Chains {
		if ch.Name == ChainGuard || ch.Name == ChainGuarded {
			rs.Chains = append(rs.Chains, ch)
		}
	}
	for _, r := range full.Rules {
		if r.Chain.Name != ChainGuard && r.Chain.Name != ChainGuarded {
			continue
		}
		for _, e := range r.Exprs {
			if l, ok := e.(*expr.Lookup); ok {
				l.SetID += backupSetIDBase
			}
		}
		rs.Rules = append(rs.Rules, r)
	}
	return rs, nil
}

// dropBackupBatch returns the messages that delete the backup table of
// main, which must exist: a kernel of another generation than GenOwner has
// no use for it (the daemon ran on another kernel, or a test switched).
func dropBackupBatch(main string) []netlink.Message {
	name := BackupTable(main)
	return []netlink.Message{
		tableMessage(unix.NFT_MSG_NEWTABLE, name, 0, ""),
		tableMessage(unix.NFT_MSG_DELTABLE, name, 0, ""),
	}
}
