package nft

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strings"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Repair is what Watch reports after it put a table back: which (the main
// table, or on a GenOwner kernel the backup), what vanished (for example
// "table", "chain guard", "rule of chain knock"), and the error of the
// repair, nil when the table is back.
type Repair struct {
	Table    string
	Vanished string
	Err      error
}

// Attributes of the nf_tables notifications Watch reads: the table name is
// attribute 1 of table, chain, rule and set messages (NFTA_TABLE_NAME,
// NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE); the chain name is
// given by nameAttr.
const (
	attrObjTable  = 1
	attrGenProcID = 2 // NFTA_GEN_PROC_PID
)

// watchBuffer is the receive buffer of Watch's socket: a flush of a large
// ruleset sends a notification for every rule and set.
const watchBuffer = 4 << 20

// Watch keeps the table that others can remove where the kernel lacks the
// flag persist (Result.Gen): the main table on a GenNone kernel, the backup
// table on a GenOwner kernel. It listens to nf_tables' notifications and,
// when a transaction of another process deletes that table, or a chain,
// rule or set of it (`nft flush ruleset`, `nft delete table`, `nft flush
// table`), puts the whole table back at once from the Conn's own record
// (opened sources, used one-time sequences, first ports), and calls
// report. It returns when ctx is done, or with an error if it cannot
// listen.
func (c *Conn) Watch(ctx context.Context, report func(Repair)) error {
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: c.netnsFd})
	if err != nil {
		return fmt.Errorf("watch nf_tables: %w", err)
	}
	defer nl.Close()
	_ = nl.SetReadBuffer(watchBuffer)
	if err := nl.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		return fmt.Errorf("watch nf_tables: join the notification group: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { nl.Close() })
	defer stop()
	var vanished []string // of the transaction being read
	for {
		msgs, err := nl.Receive()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if isLostAnswer(err) {
				// Notifications were lost: put the table back to be sure.
				report(c.repair("notifications lost (ENOBUFS)"))
				vanished = nil
				continue
			}
			return fmt.Errorf("watch nf_tables: %w", err)
		}
		for _, m := range msgs {
			what, gen, pid := c.notification(m)
			switch {
			case what != "":
				vanished = append(vanished, what)
			case gen && len(vanished) > 0:
				if !ownThread(pid) {
					report(c.repair(strings.Join(dedupe(vanished), ", ")))
				}
				vanished = nil
			}
		}
	}
}

// notification reads one nf_tables notification: what of our table it
// deleted (or ""), or, for the message that ends a transaction (NEWGEN),
// gen and the ID of the process that made it.
func (c *Conn) notification(m netlink.Message) (what string, gen bool, pid uint32) {
	if int(m.Header.Type>>8) != unix.NFNL_SUBSYS_NFTABLES || len(m.Data) < 4 {
		return "", false, 0
	}
	typ := int(m.Header.Type & 0xff)
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		return "", false, 0
	}
	ad.ByteOrder = binary.BigEndian
	var table, name string
	for ad.Next() {
		switch {
		case typ == unix.NFT_MSG_NEWGEN && ad.Type() == attrGenProcID:
			pid = ad.Uint32()
		case ad.Type() == attrObjTable:
			table = ad.String()
		case ad.Type() == nameAttr(typ):
			name = ad.String()
		}
	}
	if typ == unix.NFT_MSG_NEWGEN {
		return "", true, pid
	}
	if m.Data[0] != unix.NFPROTO_INET || table != c.watched() {
		return "", false, 0
	}
	switch typ {
	case unix.NFT_MSG_DELTABLE:
		return "table", false, 0
	case unix.NFT_MSG_DELCHAIN:
		return "chain " + name, false, 0
	case unix.NFT_MSG_DELRULE:
		return "rules of chain " + name, false, 0
	case unix.NFT_MSG_DELSET:
		return "set " + name, false, 0
	}
	return "", false, 0
}

// ownThread reports whether tid, the ID that nf_tables gives as the
// process of a transaction (the sending thread's), is a thread of this
// process: its transactions are no outside changes.
func ownThread(tid uint32) bool {
	if tid == uint32(os.Getpid()) {
		return true
	}
	_, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", tid))
	return err == nil
}

// nameAttr is the attribute that names the object of a notification:
// NFTA_CHAIN_NAME (3) for a chain, NFTA_RULE_CHAIN (2) for a rule (its
// chain), NFTA_SET_NAME (2) for a set.
func nameAttr(typ int) uint16 {
	switch typ {
	case unix.NFT_MSG_DELCHAIN:
		return 3
	case unix.NFT_MSG_DELRULE, unix.NFT_MSG_DELSET:
		return 2
	}
	return 0
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
func (c *Conn) repair(vanished string) Repair {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := Repair{Table: c.table, Vanished: vanished}
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

func dedupe(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
