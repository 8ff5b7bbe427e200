package nft

import (
	"context"
	"fmt"
	"strings"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Repair is what Watch reports after it put a table back: which (the main
// table, or on a GenOwner kernel the backup), what another program changed
// in it (for example "table deleted", "elements of set guard deleted",
// "rule added to chain guarded"), and the error of the repair, nil when the
// table is back.
type Repair struct {
	Table   string
	Changed string
	Err     error
}

// attrObjTable is the attribute that names the table in nf_tables'
// notifications of tables, chains, rules, sets, elements, objects and
// flowtables (see objectMsgs).
const attrObjTable = 1

// watchBuffer is the receive buffer of Watch's socket: a flush of a large
// ruleset by another program sends a notification for every rule, set and
// element. (The Conn's own, as many for a repair of a table with many
// opened sources, are filtered out before they are queued: skipOwn.) As
// root it is set beyond net.core.rmem_max (SO_RCVBUFFORCE), whose default
// is 208 KiB.
const watchBuffer = 16 << 20

// Watch keeps the table that others can change where the kernel lacks the
// flag persist (Result.Gen): the main table on a GenNone kernel, the backup
// table on a GenOwner kernel. It listens to nf_tables' notifications and,
// when a transaction of another process changes that table in any way
// (`nft flush ruleset`, `nft delete table`, `nft flush table`, a set
// flushed, an element deleted or added, a rule or chain added, the table
// made dormant), puts the whole table back at once from the Conn's own
// record (opened sources, used one-time sequences, first ports): what
// others added goes, what they removed comes back. It then calls report,
// once per outside transaction. The Conn's own transactions are told apart
// by the port ID of its writing socket (see notification). It returns when
// ctx is done, or with an error if it cannot listen.
func (c *Conn) Watch(ctx context.Context, report func(Repair)) error {
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: c.netnsFd})
	if err != nil {
		return fmt.Errorf("watch nf_tables: %w", err)
	}
	defer nl.Close()
	bigReadBuffer(nl, watchBuffer)
	if err := nl.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		return fmt.Errorf("watch nf_tables: join the notification group: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { nl.Close() })
	defer stop()
	var changed changes   // of the outside transaction being read
	filtered := uint32(0) // the port skipOwn filters out
	for {
		if own := c.port.Load(); own != filtered && skipOwn(nl, own) == nil {
			filtered = own
		}
		msgs, err := nl.Receive()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if isLostAnswer(err) {
				// Notifications were lost: put the table back to be sure.
				report(c.repair("notifications lost (ENOBUFS)"))
				changed = changes{}
				continue
			}
			return fmt.Errorf("watch nf_tables: %w", err)
		}
		watched, own := c.watched(), c.port.Load()
		for _, m := range msgs {
			ch := notification(m, watched, own)
			switch {
			case ch.what != "" && !ch.own:
				changed.add(ch.what)
			case ch.gen && changed.any():
				report(c.repair(changed.String()))
				changed = changes{}
			}
		}
	}
}

// changes collects the descriptions of the changes of one transaction,
// each once: a flush of a large set sends one notification per element.
type changes struct {
	list []string
	seen map[string]bool
}

// add notes one change, unless it was noted already.
func (cs *changes) add(what string) {
	if cs.seen == nil {
		cs.seen = map[string]bool{}
	}
	if !cs.seen[what] {
		cs.seen[what] = true
		cs.list = append(cs.list, what)
	}
}

// any reports whether a change was noted.
func (cs *changes) any() bool { return len(cs.list) > 0 }

// String lists the changes; a deleted table says it all.
func (cs *changes) String() string {
	if cs.seen[tableDeleted] {
		return tableDeleted
	}
	return strings.Join(cs.list, ", ")
}

// bigReadBuffer raises nl's receive buffer to size, best effort: beyond
// net.core.rmem_max where the process may (CAP_NET_ADMIN), else as far as
// rmem_max allows.
func bigReadBuffer(nl *netlink.Conn, size int) {
	rc, err := nl.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, size)
		}
	})
}

// watched returns the name of the table Watch keeps.
func (c *Conn) watched() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == GenOwner {
		return BackupTable(c.table)
	}
	return c.table
}

// repair puts the watched table back with the last spec applied and the
// Conn's record: no set is read, so the table is back as soon as the
// kernel takes one transaction.
func (c *Conn) repair(changed string) Repair {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := Repair{Table: c.table, Changed: changed}
	if c.gen == GenOwner {
		r.Table = BackupTable(c.table)
	}
	if !c.applied {
		r.Err = fmt.Errorf("no ruleset applied yet")
		return r
	}
	for range maxAttempts {
		// Another outside change while the table is read fails the read
		// with ENOENT: read again.
		if r.Err = c.repairOnce(); r.Err == nil || !IsNotFound(r.Err) && !isLostAnswer(r.Err) {
			break
		}
	}
	return r
}

// repairOnce sends one repairing transaction. On a GenOwner kernel only
// the backup can have been touched by others (the main table is owned):
// it alone is replaced; elsewhere the main table is. The caller holds
// c.mu.
func (c *Conn) repairOnce() error {
	if c.gen != GenOwner {
		_, err := c.applyOnce(c.spec, true)
		return err
	}
	if _, err := c.checkBackup(c.table); err != nil {
		return err
	}
	carried, err := c.carried(nil, c.spec.Guard)
	if err != nil {
		return err
	}
	msgs, err := c.backupBatch(c.spec, carried)
	if err != nil {
		return fmt.Errorf("put back table inet %s: %w", BackupTable(c.table), err)
	}
	return c.sendBatch(msgs)
}
