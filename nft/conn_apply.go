package nft

// Apply: the transaction that replaces the table (and, on GenOwner kernels,
// its backup) with the ruleset of a Spec, carrying over the opened sources
// and the used one-time sequences.

import (
	"fmt"
	"slices"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Result says how Apply programmed the table.
type Result struct {
	// Queue is the queue variant of the knock rule.
	Queue QueueVariant
	// Gen is the kernel's generation: how the table is kept. Unless it is
	// GenPersist, the caller runs Watch, which puts back the table
	// (GenNone) or the backup table (GenOwner) when others remove it.
	Gen Generation
	// TookOver is true when a table of ours was there (left by an earlier
	// daemon) and was replaced; Carried is the number of elements of
	// allow4 and allow6 (opened source and port) it carried over.
	TookOver bool
	Carried  int
}

// Apply replaces our table with the ruleset of s in one transaction: add the
// table, delete it (whatever it held), add it again, owned where the kernel
// allows it, with its sets, chains and rules; on a GenOwner kernel the same
// transaction replaces the backup table (BuildBackup), and on the others it
// deletes a backup table left there. The elements of an existing
// allow4/allow6 and those of the Conn's own record are carried over with
// their ports, users and remaining timeouts (elements without timeout stay
// without), so a daemon restarted after a crash or a restart locks nobody
// out; so are those of spent (the used one-time sequences), so that it
// refuses what the daemon before it accepted; they are read from the table
// and from the backup table, whichever exist. The sources of an older version's allow sets, keyed by address
// alone, are carried over to every port of s.Guard, without user.
//
// A table of the name that is not ours gives ErrNotOurs, one owned by
// another process a *HeldError; neither is touched. Apply tries the native
// queue expression first and, when the kernel lacks it (ENOENT,
// EOPNOTSUPP), the xtables NFQUEUE target. A failed transaction changes
// nothing.
func (c *Conn) Apply(s Spec) (Result, error) {
	s, err := s.normalize()
	if err != nil {
		return Result{}, fmt.Errorf("apply: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var res Result
	for range maxAttempts {
		if res, err = c.applyOnce(s, false); err == nil || !isLostAnswer(err) {
			break
		}
	}
	if err != nil {
		return res, err
	}
	// The first ports change every period (SetFirst keeps the record): a
	// repair puts back the record's, never those of the start.
	s.First, s.SPAKeys = nil, nil
	c.table, c.spec, c.applied = s.Table, s, true
	return res, nil
}

// applyOnce checks whose the tables are, reads the sources to carry over
// (unless fromRecord: then the Conn's record alone, as a repair does) and
// sends the replacing batch, native queue first. The caller holds c.mu.
func (c *Conn) applyOnce(s Spec, fromRecord bool) (Result, error) {
	if err := c.decideGen(s); err != nil {
		return Result{}, err
	}
	res := Result{Gen: c.gen}
	old, exists, err := c.checkOurs(s.Table)
	if err != nil {
		return res, err
	}
	backup, err := c.checkBackup(s.Table)
	if err != nil {
		return res, err
	}
	res.TookOver = (exists || backup) && !c.applied
	// The first add of the batch (see replaceBatch) adopts an orphaned
	// table of ours, which kept the flag persist; a table without it (made
	// where the kernel had no ownership, or by hand) takes no new owner
	// (EOPNOTSUPP), so that add leaves its flags as they are.
	head := tableHead{first: c.flags, flags: c.flags, comment: mainComment(c.gen)}
	if exists && old.Flags&TableFlagPersist == 0 {
		head.first = old.Flags & (TableFlagOwner | TableFlagPersist)
	}
	var from []string
	if !fromRecord {
		from = c.existing(s.Table, exists, backup)
	}
	carried, err := c.carried(from, s.Guard)
	if err != nil {
		return res, err
	}
	res.Carried = len(carried[0]) + len(carried[1])
	for _, name := range from {
		if err := c.adoptSpent(name); err != nil {
			return res, err
		}
	}
	if s.First != nil && !fromRecord {
		c.recordFirst(s.First)
	}
	if s.SPAKeys != nil && !fromRecord {
		c.spaKeys = slices.Clone(s.SPAKeys)
	}
	tail, err := c.backupTail(s, carried, backup)
	if err != nil {
		return res, fmt.Errorf("apply table inet %s: %w", BackupTable(s.Table), err)
	}
	res.Queue, err = c.sendRuleset(s, carried, head, tail)
	return res, err
}

// existing returns the names of the tables to read the opened sources and
// used one-time sequences from: the main table and the backup, those that
// exist.
func (c *Conn) existing(main string, exists, backup bool) []string {
	var out []string
	if exists {
		out = append(out, main)
	}
	if backup {
		out = append(out, BackupTable(main))
	}
	return out
}

// backupTail returns the messages that follow the main table's in Apply's
// batch: the backup table replaced (GenOwner), deleted (another generation,
// where one is there), or nothing.
func (c *Conn) backupTail(s Spec, carried [2][]nftables.SetElement, exists bool) ([]netlink.Message, error) {
	switch {
	case c.gen == GenOwner:
		return c.backupBatch(s, carried)
	case exists:
		return dropBackupBatch(s.Table), nil
	}
	return nil, nil
}

// sendRuleset sends the batch that replaces the main table (head) followed
// by tail, with the native queue expression and, when the kernel lacks
// it, the xtables NFQUEUE target; it returns the variant that went
// through. The caller holds c.mu.
func (c *Conn) sendRuleset(s Spec, carried [2][]nftables.SetElement, head tableHead, tail []netlink.Message) (QueueVariant, error) {
	var nativeErr error
	for _, v := range []QueueVariant{Native, Compat} {
		msgs, err := c.rulesetBatch(s, v, carried, head)
		if err != nil {
			return v, fmt.Errorf("apply table inet %s with %s: %w", s.Table, v, err)
		}
		err = c.sendBatch(append(msgs, tail...))
		switch {
		case err == nil:
			return v, nil
		case v == Native && isUnsupported(err):
			nativeErr = err
			continue
		case nativeErr != nil:
			hint := ""
			if isUnsupported(err) {
				hint = " (the kernel has neither nft_queue nor nft_compat with xt_NFQUEUE)"
			}
			return v, fmt.Errorf("apply table inet %s with %s (after %s failed: %v): %w%s", s.Table, v, Native, nativeErr, err, hint)
		}
		return v, fmt.Errorf("apply table inet %s with %s: %w", s.Table, v, err)
	}
	panic("unreachable")
}

// rulesetBatch returns the messages that replace the main table, written
// as head says (replaceBatch).
func (c *Conn) rulesetBatch(s Spec, v QueueVariant, carried [2][]nftables.SetElement, head tableHead) ([]netlink.Message, error) {
	rs, err := Build(s, v)
	if err != nil {
		return nil, err
	}
	return c.replaceBatch(rs, carried, head)
}

// tableHead is how replaceBatch writes a table: the flags of its first
// add, those of the new table, and the new table's comment.
type tableHead struct {
	first, flags uint32
	comment      string
}

// replaceBatch returns the messages that replace the table of rs, allow4
// and allow6 holding carried. Its first add carries the flags head.first:
// the Conn's own, which take over an orphaned table of ours, or those of a
// table there that cannot be taken over.
func (c *Conn) replaceBatch(rs *Ruleset, carried [2][]nftables.SetElement, head tableHead) ([]netlink.Message, error) {
	name := rs.Table.Name
	// Add then delete: the delete never meets an absent table, and the add
	// takes over an orphaned table of ours (the owner's socket has closed).
	msgs := []netlink.Message{
		tableMessage(unix.NFT_MSG_NEWTABLE, name, head.first, ""),
		tableMessage(unix.NFT_MSG_DELTABLE, name, 0, ""),
		tableMessage(unix.NFT_MSG_NEWTABLE, name, head.flags, head.comment),
	}
	body, err := encode(func(nc *nftables.Conn) error {
		for i, set := range rs.Sets {
			elems := rs.Elements[i]
			switch set.Name {
			case SetAllow4:
				elems = carried[0]
			case SetAllow6:
				elems = carried[1]
			case SetFirst:
				elems = c.firstElements()
			case SetSpent:
				elems = c.spentElements()
			case SetSPAKeys:
				elems = spaKeyElements(c.spaKeys)
			}
			if err := nc.AddSet(set, nil); err != nil {
				return fmt.Errorf("add set %s: %w", set.Name, err)
			}
			if err := addElements(nc, set, elems); err != nil {
				return err
			}
		}
		for _, ch := range rs.Chains {
			nc.AddChain(ch)
		}
		for _, r := range rs.Rules {
			nc.AddRule(r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return append(msgs, body...), nil
}
