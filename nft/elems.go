package nft

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
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

// elems sends one transaction of ops, each on the elements keys of each of
// sets (a set of the main table and its twin in the backup), on the
// writing socket, and waits for the kernel's answer to each message. It
// writes the messages itself because nftables.Conn cannot set NLM_F_EXCL on
// an element. A lost answer (ENOBUFS) sends the transaction again, up to
// maxAttempts times: an exclusive add that went through the first time then
// says EEXIST, which Allow handles. The caller holds c.mu.
func (c *Conn) elems(sets []*nftables.Set, keys [][]byte, ops ...elemOp) error {
	msgs := make([]netlink.Message, 0, len(ops)*len(sets))
	for _, op := range ops {
		for _, set := range sets {
			for chunk := range slices.Chunk(keys, maxElemsPerMsg) {
				m, err := elemMessage(set, chunk, op)
				if err != nil {
					return err
				}
				msgs = append(msgs, m)
			}
		}
	}
	return c.sendRetry(msgs)
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

// maxDumps bounds how many times readSet dumps one set.
const maxDumps = 8

// readSet returns the elements of set name in table t. An absent table or
// set gives an error for which IsNotFound is true.
//
// One dump of a large set is not to be trusted: the kernel sends a hash set
// in several messages, each time skipping as many elements as it already
// sent, and a resize of the hash table in between (right after many
// elements were added) reorders it, so that a dump repeats some elements
// and misses others (measured: 18,003 different ones among 20,000). So
// readSet dumps again, a little later each time, until a dump without
// repeats holds the same addresses as the dump before it. If that never
// happens within maxDumps, it returns every address any dump held, with the
// newest copy of each: a source that expired meanwhile is carried a moment
// longer rather than an allowed one lost.
func (c *Conn) readSet(t *nftables.Table, name string) ([]nftables.SetElement, error) {
	nc, err := c.newConn()
	if err != nil {
		return nil, err
	}
	// GetSetByName keeps the errno (ENOENT for a missing table or set);
	// GetSetElements does not, so it only runs on a set that exists.
	set, err := nc.GetSetByName(t, name)
	if err != nil {
		return nil, fmt.Errorf("get set %s: %w", name, err)
	}
	all := map[string]nftables.SetElement{}
	var prev map[string]bool // the addresses of the last dump without repeats
	for i := range maxDumps {
		if i > 0 {
			time.Sleep(time.Duration(i) * 5 * time.Millisecond)
		}
		elems, err := getSetElements(nc, set)
		if err != nil {
			return nil, fmt.Errorf("get elements of set %s: %w", name, err)
		}
		var out []nftables.SetElement
		keys := make(map[string]bool, len(elems))
		repeats := false
		for _, e := range elems {
			if e.IntervalEnd {
				continue
			}
			k := string(e.Key)
			repeats = repeats || keys[k]
			keys[k] = true
			all[k] = e
			out = append(out, e)
		}
		switch {
		case repeats:
			prev = nil
		case prev != nil && maps.Equal(keys, prev):
			return out, nil
		default:
			prev = keys
		}
	}
	out := make([]nftables.SetElement, 0, len(all))
	for _, e := range all {
		out = append(out, e)
	}
	return out, nil
}

// getSetElements is nc.GetSetElements, which panics on an element whose
// userdata is malformed (google/nftables v0.3.0 userdata.Get slices past
// the end): an element someone else wrote into our set must not stop the
// daemon, so the panic becomes an error.
func getSetElements(nc *nftables.Conn, set *nftables.Set) (elems []nftables.SetElement, err error) {
	defer func() {
		if r := recover(); r != nil {
			elems, err = nil, fmt.Errorf("malformed element: %v", r)
		}
	}()
	return nc.GetSetElements(set)
}
