package nft

import (
	"encoding/binary"
	"fmt"
	"slices"

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

// maxElemsPerMsg bounds the elements of one netlink message; a larger list
// is split into several messages of the same batch.
const maxElemsPerMsg = 1024

// addElements adds elems to set, in messages of at most maxElemsPerMsg
// elements.
func addElements(nc *nftables.Conn, set *nftables.Set, elems []nftables.SetElement) error {
	for chunk := range slices.Chunk(elems, maxElemsPerMsg) {
		if err := nc.SetAddElements(set, chunk); err != nil {
			return fmt.Errorf("add %d elements to %s: %w", len(chunk), set.Name, err)
		}
	}
	return nil
}
