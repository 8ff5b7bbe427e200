package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// allowSet returns the set that holds a (allow4 or allow6) and the key of a
// in it. An IPv4-mapped IPv6 address counts as IPv4.
func allowSet(table string, a netip.Addr) (*nftables.Set, []byte, error) {
	if !a.IsValid() {
		return nil, nil, errNoAddr
	}
	a = a.Unmap().WithZone("")
	t := &nftables.Table{Name: table, Family: nftables.TableFamilyINet}
	if a.Is4() {
		k := a.As4()
		return &nftables.Set{Table: t, Name: SetAllow4, KeyType: nftables.TypeIPAddr, HasTimeout: true}, k[:], nil
	}
	k := a.As16()
	return &nftables.Set{Table: t, Name: SetAllow6, KeyType: nftables.TypeIP6Addr, HasTimeout: true}, k[:], nil
}

// Allow adds source a to allow4 or allow6 with timeout ttl (0: no timeout).
// A source already there gets the new timeout. An IPv4-mapped IPv6 address
// goes to allow4. A full set (Spec.MaxOpen) refuses it with ENFILE.
//
// It is on the path of every open, so it costs one transaction that only
// adds: a transaction that deletes an element waits for the kernel's RCU
// grace period on commit (and a failing one on abort), several milliseconds
// on a busy host, against a fraction of one for an add. The add carries
// NLM_F_EXCL, so a source already there makes it fail with EEXIST; only
// then a second transaction adds, deletes and adds it again, so that it
// takes the new timeout on every kernel (adding alone keeps the old one
// before 6.12). That transaction never fails on an absent element.
func (c *Conn) Allow(a netip.Addr, ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("add element %s: negative timeout %s", a, ttl)
	}
	if ttl > 0 && ttl < time.Millisecond {
		ttl = time.Millisecond // the kernel counts in milliseconds; 0 would mean none
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	set, key, err := allowSet(c.table, a)
	if err != nil {
		return fmt.Errorf("add element %s: %w", a, err)
	}
	add := elemOp{typ: unix.NFT_MSG_NEWSETELEM, timeout: ttl}
	excl := add
	excl.excl = true
	err = c.elems(set, key, excl)
	if errors.Is(err, unix.EEXIST) {
		err = c.elems(set, key, add, elemOp{typ: unix.NFT_MSG_DELSETELEM}, add)
	}
	if err != nil {
		hint := ""
		if errors.Is(err, unix.ENFILE) {
			hint = " (the set is full)"
		}
		return fmt.Errorf("add element %s to %s of table inet %s: %w%s", a.Unmap(), set.Name, c.table, err, hint)
	}
	c.record(a.Unmap().WithZone(""), ttl)
	return nil
}

// Revoke removes source a from allow4 or allow6. A source that is not there
// (never added, expired, or the table is gone) is not an error.
func (c *Conn) Revoke(a netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	set, key, err := allowSet(c.table, a)
	if err != nil {
		return fmt.Errorf("delete element %s: %w", a, err)
	}
	delete(c.opened, a.Unmap().WithZone(""))
	err = c.elems(set, key, elemOp{typ: unix.NFT_MSG_DELSETELEM})
	if err != nil && !IsNotFound(err) {
		return fmt.Errorf("delete element %s from %s of table inet %s: %w", a.Unmap(), set.Name, c.table, err)
	}
	return nil
}

// elemOp is one set element message of a transaction sent by elems.
type elemOp struct {
	typ     int           // NFT_MSG_NEWSETELEM or NFT_MSG_DELSETELEM
	excl    bool          // NLM_F_EXCL: an add fails with EEXIST on an element already there
	timeout time.Duration // of an add; 0: none
}

// elems sends one transaction of ops on the element key of set, on the
// writing socket, and waits for the kernel's answer to each message. It
// writes the messages itself because nftables.Conn cannot set NLM_F_EXCL on
// an element. A lost answer (ENOBUFS) sends the transaction again, up to
// maxAttempts times: an exclusive add that went through the first time then
// says EEXIST, which Allow handles. The caller holds c.mu.
func (c *Conn) elems(set *nftables.Set, key []byte, ops ...elemOp) error {
	msgs := make([]netlink.Message, 0, len(ops))
	for _, op := range ops {
		m, err := elemMessage(set, key, op)
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	return c.sendRetry(msgs)
}

// elemMessage returns the message of op on the element key of set.
func elemMessage(set *nftables.Set, key []byte, op elemOp) (netlink.Message, error) {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, set.Table.Name)
	ae.String(unix.NFTA_SET_ELEM_LIST_SET, set.Name)
	ae.Nested(unix.NFTA_SET_ELEM_LIST_ELEMENTS, func(ae *netlink.AttributeEncoder) error {
		ae.Nested(unix.NFTA_LIST_ELEM, func(ae *netlink.AttributeEncoder) error {
			ae.Nested(unix.NFTA_SET_ELEM_KEY, func(ae *netlink.AttributeEncoder) error {
				ae.Bytes(unix.NFTA_DATA_VALUE, key)
				return nil
			})
			if op.typ == unix.NFT_MSG_NEWSETELEM && op.timeout > 0 {
				ae.Uint64(unix.NFTA_SET_ELEM_TIMEOUT, uint64(op.timeout.Milliseconds()))
			}
			return nil
		})
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

// Allowed returns the sources in allow4 and allow6, IPv4 first, each family
// in address order. An absent table gives an error for which IsNotFound is
// true.
func (c *Conn) Allowed() ([]Element, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &nftables.Table{Name: c.table, Family: nftables.TableFamilyINet}
	var out []Element
	for _, name := range []string{SetAllow4, SetAllow6} {
		elems, err := c.readSet(t, name)
		if err != nil {
			return nil, fmt.Errorf("list allowed sources of table inet %s: %w", c.table, err)
		}
		for _, e := range elems {
			a, _ := netip.AddrFromSlice(e.Key)
			out = append(out, Element{Addr: a, Expires: e.Expires, Timeout: e.Timeout})
		}
	}
	slices.SortFunc(out, func(x, y Element) int { return x.Addr.Compare(y.Addr) })
	return out, nil
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
	want := uint32(4)
	if name == SetAllow6 {
		want = 16
	}
	all := map[string]nftables.SetElement{}
	var prev map[string]bool // the addresses of the last dump without repeats
	for i := range maxDumps {
		if i > 0 {
			time.Sleep(time.Duration(i) * 5 * time.Millisecond)
		}
		elems, err := nc.GetSetElements(set)
		if err != nil {
			return nil, fmt.Errorf("get elements of set %s: %w", name, err)
		}
		var out []nftables.SetElement
		keys := make(map[string]bool, len(elems))
		repeats := false
		for _, e := range elems {
			// A set of another shape, left by someone else, carries nothing.
			if uint32(len(e.Key)) != want || e.IntervalEnd {
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
