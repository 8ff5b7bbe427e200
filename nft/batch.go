package nft

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Table flags (linux/netfilter/nf_tables.h, enum nft_table_flags).
const (
	// TableFlagOwner binds the table to the netlink socket that made it:
	// only that socket may change it, and `nft flush ruleset` skips it
	// (kernel 5.12).
	TableFlagOwner = 0x2
	// TableFlagPersist keeps an owned table when its socket closes, without
	// an owner (kernel 6.9).
	TableFlagPersist = 0x4
)

// Attributes of a table message (enum nft_table_attributes).
const (
	attrTableName     = 1 // NFTA_TABLE_NAME
	attrTableFlags    = 2 // NFTA_TABLE_FLAGS
	attrTableUserdata = 6 // NFTA_TABLE_USERDATA
	attrTableOwner    = 7 // NFTA_TABLE_OWNER
)

// tableMessage returns a NEWTABLE or DELTABLE message for the inet table
// name. google/nftables v0.3.0 always sends the flags 0 and no userdata, so
// the table messages of our batches are built here: a NEWTABLE carries
// flags and, unless it is "", the comment note.
func tableMessage(typ int, name string, flags uint32, note string) netlink.Message {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.String(attrTableName, name)
	if typ == unix.NFT_MSG_NEWTABLE {
		ae.Uint32(attrTableFlags, flags)
		if note != "" {
			ae.Bytes(attrTableUserdata, comment(note))
		}
	}
	attrs, _ := ae.Encode() // strings and numbers always encode
	hf := netlink.Request | netlink.Acknowledge
	if typ == unix.NFT_MSG_NEWTABLE {
		hf |= netlink.Create
	}
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | typ), Flags: hf},
		Data:   append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...),
	}
}

// encode returns the messages that fill adds to a google/nftables batch,
// without the batch's begin and end: google/nftables encodes the sets,
// chains, rules and elements, and Conn sends them on its own socket.
func encode(fill func(nc *nftables.Conn) error) ([]netlink.Message, error) {
	var msgs []netlink.Message
	record := func(req []netlink.Message) ([]netlink.Message, error) {
		if len(req) == 0 { // a read for the next acknowledgement
			return []netlink.Message{{Header: netlink.Header{Type: netlink.Error}, Data: make([]byte, 4)}}, nil
		}
		if len(req) >= 2 {
			msgs = append(msgs, req[1:len(req)-1]...)
		}
		return nil, nil
	}
	nc, err := nftables.New(nftables.WithTestDial(record))
	if err != nil {
		return nil, fmt.Errorf("encode batch: %w", err)
	}
	if err := fill(nc); err != nil {
		return nil, err
	}
	if err := nc.Flush(); err != nil {
		return nil, fmt.Errorf("encode batch: %w", err)
	}
	return msgs, nil
}

// batchMessage returns NFNL_MSG_BATCH_BEGIN or _END for nf_tables.
func batchMessage(typ int) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(typ), Flags: netlink.Request},
		// struct nfgenmsg: AF_UNSPEC, NFNETLINK_V0, res_id (big endian)
		Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES},
	}
}

// sendBatch sends msgs as one transaction on the Conn's writing socket and
// waits for the kernel's answer to each: the first error it reports, or
// nil. The caller holds c.mu.
//
// The socket lasts as long as the Conn: when the table is owned, it is the
// only socket the kernel lets change it. The kernel answers a batch before
// sendmsg returns, so answers left from an earlier batch that failed are
// read and dropped first.
func (c *Conn) sendBatch(msgs []netlink.Message) error {
	nl, err := c.writer()
	if err != nil {
		return err
	}
	drain(nl)
	full := make([]netlink.Message, 0, len(msgs)+2)
	full = append(full, batchMessage(unix.NFNL_MSG_BATCH_BEGIN))
	full = append(full, msgs...)
	full = append(full, batchMessage(unix.NFNL_MSG_BATCH_END))
	if _, err := nl.SendMessages(full); err != nil {
		return fmt.Errorf("send batch: %w", err)
	}
	acks := 0
	for _, m := range msgs {
		if m.Header.Flags&netlink.Acknowledge != 0 {
			acks++
		}
	}
	for acks > 0 {
		// Receive turns an error message into an error; the kernel sends
		// one answer (an ack or an error) per message of the batch.
		got, err := nl.Receive()
		if err != nil {
			return err
		}
		for _, m := range got {
			if m.Header.Type == netlink.Error {
				acks--
			}
		}
	}
	return nil
}

// drain reads and drops what is waiting on nl, without blocking: the
// answers to the rest of a batch that failed (the kernel answers every
// message of a batch, and sendBatch stops at the first error). A socket
// without a file descriptor (a test socket) is left alone.
func drain(nl *netlink.Conn) {
	rc, err := nl.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, 8192)
	_ = rc.Read(func(fd uintptr) bool {
		for {
			_, _, err := unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
			if err == unix.EAGAIN || err == unix.EBADF {
				return true
			}
		}
	})
}

// writer returns the Conn's writing socket, dialled on first use. The
// caller holds c.mu.
func (c *Conn) writer() (*netlink.Conn, error) {
	if c.nl != nil {
		return c.nl, nil
	}
	nl, err := c.rawDial()
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	_ = bigSendBuffer(nl)
	c.nl = nl
	return nl, nil
}

// sendRetry sends the batch that build returns, building and sending it
// again when the kernel's answer was lost (ENOBUFS), up to maxAttempts
// times: every batch we send is idempotent, or handles EEXIST itself.
func (c *Conn) sendRetry(msgs []netlink.Message) error {
	var err error
	for range maxAttempts {
		if err = c.sendBatch(msgs); err == nil || !isLostAnswer(err) {
			return err
		}
	}
	return err
}
