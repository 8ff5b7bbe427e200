package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Conn programs our table in one network namespace. Every method opens its
// own netlink socket for the duration of the call, so a Conn holds no socket
// between calls and needs no Close. Its methods are safe for concurrent use
// (they run one after another).
type Conn struct {
	opts    []nftables.ConnOption
	rawDial func() (*netlink.Conn, error) // a socket for the batches Conn writes itself
	mu      sync.Mutex
	table   string
}

// maxAttempts bounds how often one operation is sent again after its answer
// was lost (ENOBUFS). Every operation is idempotent, so sending it again is
// how the state is re-read.
const maxAttempts = 3

// maxElemsPerMsg bounds the elements of one netlink message; a larger list
// is split into several messages of the same batch.
const maxElemsPerMsg = 1024

// sendBuffer is the send buffer we ask for (as root, SO_SNDBUFFORCE), so that
// one batch carrying many allowed sources over still fits in one sendmsg.
const sendBuffer = 8 << 20

// Dial returns a Conn for the network namespace whose file descriptor is
// netnsFd (0: the namespace of the calling process). The caller keeps the
// descriptor open while it uses the Conn. Dial checks that nf_tables answers
// (IsPermission tells a missing CAP_NET_ADMIN apart). The table is
// DefaultTable until Apply or SetTable names another one.
func Dial(netnsFd int) (*Conn, error) {
	if netnsFd < 0 {
		return nil, fmt.Errorf("dial nftables: bad namespace descriptor %d", netnsFd)
	}
	opts := []nftables.ConnOption{nftables.WithSockOptions(bigSendBuffer)}
	if netnsFd != 0 {
		opts = append(opts, nftables.WithNetNSFd(netnsFd))
	}
	c := dial(opts...)
	c.rawDial = func() (*netlink.Conn, error) {
		return netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netnsFd})
	}
	nc, err := c.newConn()
	if err != nil {
		return nil, err
	}
	if _, err := nc.ListTablesOfFamily(nftables.TableFamilyINet); err != nil {
		hint := ""
		if IsPermission(err) {
			hint = " (needs CAP_NET_ADMIN)"
		}
		return nil, fmt.Errorf("dial nftables: list inet tables: %w%s", err, hint)
	}
	return c, nil
}

// dial returns a Conn that makes its nftables connections with opts (tests
// pass nftables.WithTestDial).
func dial(opts ...nftables.ConnOption) *Conn {
	return &Conn{opts: opts, table: DefaultTable}
}

// bigSendBuffer raises the socket's send buffer, best effort: without the
// privilege, or on a test socket, the default stays.
func bigSendBuffer(c *netlink.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	_ = rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sendBuffer) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, sendBuffer)
		}
	})
	return nil
}

// newConn returns a fresh nftables connection: each operation starts from
// an empty batch.
func (c *Conn) newConn() (*nftables.Conn, error) {
	nc, err := nftables.New(c.opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables connection: %w", err)
	}
	return nc, nil
}

// Table returns the name of the table the Conn works on.
func (c *Conn) Table() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.table
}

// SetTable makes the Conn work on table name (for Allow, Revoke, Allowed and
// Destroy without a preceding Apply). Apply sets it too.
func (c *Conn) SetTable(name string) error {
	if err := ValidTableName(name); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.table = name
	return nil
}

// run builds a batch with fill on a fresh connection and flushes it. When
// the kernel's answer is lost (ENOBUFS) it builds and flushes it again, up to
// maxAttempts times: every batch we send is idempotent.
func (c *Conn) run(fill func(nc *nftables.Conn) error) error {
	var err error
	for range maxAttempts {
		var nc *nftables.Conn
		if nc, err = c.newConn(); err != nil {
			return err
		}
		if err = fill(nc); err != nil {
			return err
		}
		if err = nc.Flush(); err == nil || !isLostAnswer(err) {
			return err
		}
	}
	return err
}

// Apply replaces our table with the ruleset of s in one transaction: add the
// table, delete it (whatever it held), add it again with its sets, chains and
// rules. The sources allowed in an existing allow4/allow6 are carried over
// with their remaining timeouts (sources without timeout stay without), so a
// daemon restarted after a crash locks nobody out. It tries the native queue
// expression first and, when the kernel lacks it (ENOENT, EOPNOTSUPP), the
// xtables NFQUEUE target; it returns the variant in use. A failed
// transaction changes nothing.
func (c *Conn) Apply(s Spec) (QueueVariant, error) {
	s, err := s.normalize()
	if err != nil {
		return Native, fmt.Errorf("apply: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var v QueueVariant
	for range maxAttempts {
		if v, err = c.applyOnce(s); err == nil || !isLostAnswer(err) {
			break
		}
	}
	if err != nil {
		return v, err
	}
	c.table = s.Table
	return v, nil
}

// applyOnce reads the allowed sources and sends the replacing batch, native
// queue first.
func (c *Conn) applyOnce(s Spec) (QueueVariant, error) {
	t := &nftables.Table{Name: s.Table, Family: nftables.TableFamilyINet}
	carried := map[string][]nftables.SetElement{}
	for _, name := range []string{SetAllow4, SetAllow6} {
		elems, err := c.readSet(t, name)
		if err != nil && !IsNotFound(err) {
			return Native, fmt.Errorf("apply table inet %s: read the allowed sources to keep: %w", s.Table, err)
		}
		carried[name] = carryOver(elems)
	}
	var nativeErr error
	for _, v := range []QueueVariant{Native, Compat} {
		rs, err := Build(s, v)
		if err != nil {
			return v, fmt.Errorf("apply table inet %s: %w", s.Table, err)
		}
		nc, err := c.newConn()
		if err != nil {
			return v, err
		}
		if err := addRuleset(nc, rs, carried[SetAllow4], carried[SetAllow6]); err != nil {
			return v, fmt.Errorf("apply table inet %s with %s: %w", s.Table, v, err)
		}
		err = nc.Flush()
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

// carryOver turns elements read from the kernel into elements to add again:
// an element with a timeout gets its remaining life as its new timeout; one
// that has (nearly) expired is dropped, never turned into one without
// timeout.
func carryOver(elems []nftables.SetElement) []nftables.SetElement {
	var out []nftables.SetElement
	for _, e := range elems {
		n := nftables.SetElement{Key: e.Key}
		if e.Timeout != 0 {
			if e.Expires < time.Millisecond {
				continue
			}
			n.Timeout = e.Expires
		}
		out = append(out, n)
	}
	return out
}

// addRuleset adds the replacing batch for rs to nc, with allow4 and allow6
// holding the elements e4 and e6.
func addRuleset(nc *nftables.Conn, rs *Ruleset, e4, e6 []nftables.SetElement) error {
	nc.AddTable(rs.Table)
	nc.DelTable(rs.Table)
	nc.AddTable(rs.Table)
	for _, x := range []struct {
		set   *nftables.Set
		elems []nftables.SetElement
	}{{rs.GuardSet, rs.GuardElements}, {rs.Allow4, e4}, {rs.Allow6, e6}} {
		if err := nc.AddSet(x.set, nil); err != nil {
			return fmt.Errorf("add set %s: %w", x.set.Name, err)
		}
		if err := addElements(nc, x.set, x.elems); err != nil {
			return err
		}
	}
	nc.AddChain(rs.KnockChain)
	nc.AddChain(rs.GuardChain)
	for _, r := range rs.Rules {
		nc.AddRule(r)
	}
	return nil
}

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

// allowSet returns the set that holds a (allow4 or allow6) and the key of a
// in it. An IPv4-mapped IPv6 address counts as IPv4.
func allowSet(table string, a netip.Addr) (*nftables.Set, []byte, error) {
	if !a.IsValid() {
		return nil, nil, fmt.Errorf("invalid address")
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
// goes to allow4.
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
		return fmt.Errorf("add element %s to %s of table inet %s: %w", a.Unmap(), set.Name, c.table, err)
	}
	return nil
}

// elemOp is one set element message of a transaction sent by elems.
type elemOp struct {
	typ     int           // NFT_MSG_NEWSETELEM or NFT_MSG_DELSETELEM
	excl    bool          // NLM_F_EXCL: an add fails with EEXIST on an element already there
	timeout time.Duration // of an add; 0: none
}

// elems sends one transaction of ops on the element key of set, on a fresh
// socket, and waits for the kernel's answer to each message. It writes the
// messages itself because nftables.Conn cannot set NLM_F_EXCL on an element.
// A lost answer (ENOBUFS) sends the transaction again, up to maxAttempts
// times: an exclusive add that went through the first time then says
// EEXIST, which Allow handles.
func (c *Conn) elems(set *nftables.Set, key []byte, ops ...elemOp) error {
	msgs := make([]netlink.Message, 0, len(ops)+2)
	msgs = append(msgs, batchMessage(unix.NFNL_MSG_BATCH_BEGIN))
	for _, op := range ops {
		m, err := elemMessage(set, key, op)
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	msgs = append(msgs, batchMessage(unix.NFNL_MSG_BATCH_END))
	var err error
	for range maxAttempts {
		if err = c.sendBatch(msgs, len(ops)); err == nil || !isLostAnswer(err) {
			return err
		}
	}
	return err
}

// sendBatch sends msgs (a whole batch) on a fresh socket and reads acks
// answers: the first error the kernel reports, or nil.
func (c *Conn) sendBatch(msgs []netlink.Message, acks int) error {
	nl, err := c.rawDial()
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	defer nl.Close()
	if _, err := nl.SendMessages(msgs); err != nil {
		return fmt.Errorf("send batch: %w", err)
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

// batchMessage returns NFNL_MSG_BATCH_BEGIN or _END for nf_tables.
func batchMessage(typ int) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(typ), Flags: netlink.Request},
		// struct nfgenmsg: AF_UNSPEC, NFNETLINK_V0, res_id (big endian)
		Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES},
	}
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

// Revoke removes source a from allow4 or allow6. A source that is not there
// (never added, expired, or the table is gone) is not an error.
func (c *Conn) Revoke(a netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	set, key, err := allowSet(c.table, a)
	if err != nil {
		return fmt.Errorf("delete element %s: %w", a, err)
	}
	err = c.run(func(nc *nftables.Conn) error {
		return nc.SetDeleteElements(set, []nftables.SetElement{{Key: key}})
	})
	if err != nil && !IsNotFound(err) {
		return fmt.Errorf("delete element %s from %s of table inet %s: %w", a.Unmap(), set.Name, c.table, err)
	}
	return nil
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

// Destroy deletes our table, with everything in it, in one transaction. An
// absent table is not an error.
func (c *Conn) Destroy() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &nftables.Table{Name: c.table, Family: nftables.TableFamilyINet}
	// Add then delete: the delete never meets an absent table, and the
	// kernels before 6.3 have no NFT_MSG_DESTROYTABLE.
	err := c.run(func(nc *nftables.Conn) error {
		nc.AddTable(t)
		nc.DelTable(t)
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete table inet %s: %w", c.table, err)
	}
	return nil
}
