package nft

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// elemOp is one set element message of a transaction sent by elems.
type elemOp struct {
	typ     int           // NFT_MSG_NEWSETELEM or NFT_MSG_DELSETELEM
	excl    bool          // NLM_F_EXCL: an add fails with EEXIST on an element already there
	timeout time.Duration // of an add; 0: none
	comment string        // of an add: the elements' comment; "": none
}

// elemMessage returns the message of op on the elements keys of set. An
// add's comment goes into each element's userdata as nft writes it (TLV
// NFTNL_UDATA_SET_ELEM_COMMENT, a NUL-terminated string), so that `nft
// list` prints `comment "alice"`.
func elemMessage(set *nftables.Set, keys [][]byte, op elemOp) (netlink.Message, error) {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, set.Table.Name)
	ae.String(unix.NFTA_SET_ELEM_LIST_SET, set.Name)
	add := op.typ == unix.NFT_MSG_NEWSETELEM
	ae.Nested(unix.NFTA_SET_ELEM_LIST_ELEMENTS, func(ae *netlink.AttributeEncoder) error {
		for _, key := range keys {
			ae.Nested(unix.NFTA_LIST_ELEM, func(ae *netlink.AttributeEncoder) error {
				ae.Nested(unix.NFTA_SET_ELEM_KEY, func(ae *netlink.AttributeEncoder) error {
					ae.Bytes(unix.NFTA_DATA_VALUE, key)
					return nil
				})
				if add && op.timeout > 0 {
					ae.Uint64(unix.NFTA_SET_ELEM_TIMEOUT, uint64(op.timeout.Milliseconds()))
				}
				if add && op.comment != "" {
					ae.Bytes(unix.NFTA_SET_ELEM_USERDATA, userdata.AppendString(nil, userdata.NFTNL_UDATA_SET_ELEM_COMMENT, op.comment))
				}
				return nil
			})
		}
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		return netlink.Message{}, fmt.Errorf("encode element of %s: %w", set.Name, err)
	}
	flags := netlink.Request | netlink.Acknowledge
	if op.typ == unix.NFT_MSG_NEWSETELEM {
		flags |= netlink.Create
		if op.excl {
			flags |= netlink.Excl
		}
	}
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | op.typ), Flags: flags},
		// struct nfgenmsg: the table's family, NFNETLINK_V0, res_id 0
		Data: append([]byte{byte(set.Table.Family), unix.NFNETLINK_V0, 0, 0}, attrs...),
	}, nil
}
