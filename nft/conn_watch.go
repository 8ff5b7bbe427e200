package nft

// Watch: a socket listening to nf_tables' notifications puts the table
// back when others change it (the notifications are decoded in notify.go).

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

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
	// A change between the last transaction and the join above told
	// nobody: a watched table gone by now (a flush at the daemon's start)
	// is put back at once.
	if gone, err := c.watchedGone(); err == nil && gone {
		report(c.repair(tableGoneBefore))
	}
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

// tableGoneBefore is the Changed of a repair of a table found gone when
// the watch began.
const tableGoneBefore = "table gone before the watch began"

// watchedGone reports whether the watched table (watched) is absent.
func (c *Conn) watchedGone() (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.applied {
		return false, nil
	}
	if c.gen == GenOwner {
		ok, err := c.checkBackup(c.table)
		return !ok, err
	}
	_, ok, err := c.checkOurs(c.table)
	return !ok, err
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

// skipOwn attaches to nl, Watch's socket, a socket filter that drops the
// notifications sent with the port ID port (the Conn's writing socket's)
// before they are queued: a repair or an Apply of a table with many opened
// sources notifies every element, and those would otherwise fill the
// socket's buffer (ENOBUFS: notifications lost, so a repair for nothing).
// nf_tables sends the notifications of one transaction in buffers of their
// own, each message with the transaction's port ID (nft_commit_notify), so
// the filter looks at the first message's nlmsg_pid. Best effort: without
// the filter, notification still tells the Conn's own messages apart.
func skipOwn(nl *netlink.Conn, port uint32) error {
	// Classic BPF loads words in network byte order; nlmsg_pid is in the
	// host's.
	var native [4]byte
	binary.NativeEndian.PutUint32(native[:], port)
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 12}, // nlmsg_pid
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: binary.BigEndian.Uint32(native[:])},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},          // ours: drop
		{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff}, // keep
	}
	rc, err := nl.SyscallConn()
	if err != nil {
		return fmt.Errorf("filter own notifications: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
			&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
	}); err != nil {
		return fmt.Errorf("filter own notifications: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("filter own notifications: %w", serr)
	}
	return nil
}
