package nft

// Opening and closing guarded ports for a source in the kernel: Allow,
// Revoke and Allowed on the sets allow4 and allow6 (the keys and checks
// are in allow.go).

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Allow opens ports for source a: it adds (a, port) to allow4 or allow6 for
// every port, with timeout ttl (0: none) and user as the elements' comment
// (none for ""), in one transaction. An element already there takes the new
// timeout and user. An IPv4-mapped IPv6 address goes to allow4. A full set
// (Spec.MaxOpen) refuses the whole open with ENFILE.
//
// It is on the path of every open, so it costs one transaction that only
// adds: a transaction that deletes an element waits for the kernel's RCU
// grace period on commit (and a failing one on abort), several milliseconds
// on a busy host, against a fraction of one for an add. The add carries
// NLM_F_EXCL, so an element already there makes it fail with EEXIST; only
// then a second transaction adds, deletes and adds every element again, so
// that each takes the new timeout and comment on every kernel (adding alone
// keeps the old ones before 6.12). That transaction never fails on an
// absent element.
func (c *Conn) Allow(a netip.Addr, ports []uint16, user string, ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("add element %s: negative timeout %s", a, ttl)
	}
	if ttl > 0 && ttl < time.Millisecond {
		ttl = time.Millisecond // the kernel counts in milliseconds; 0 would mean none
	}
	ports, err := checkPorts(ports)
	if err == nil {
		err = checkUser(user)
	}
	if err != nil {
		return fmt.Errorf("add element %s: %w", a, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	set, a, err := allowSetOf(c.table, a)
	if err != nil {
		return fmt.Errorf("add element %s: %w", a, err)
	}
	keys := make([][]byte, len(ports))
	for i, p := range ports {
		keys[i] = allowKey(a, p)
	}
	add := elemOp{typ: unix.NFT_MSG_NEWSETELEM, timeout: ttl, comment: user}
	excl := add
	excl.excl = true
	sets := c.withBackup(set)
	err = c.elems(sets, keys, excl)
	if errors.Is(err, unix.EEXIST) {
		err = c.elems(sets, keys, add, elemOp{typ: unix.NFT_MSG_DELSETELEM}, add)
	}
	if err != nil {
		hint := ""
		if errors.Is(err, unix.ENFILE) {
			hint = " (the set is full)"
		}
		return fmt.Errorf("add element %s to %s of table inet %s: %w%s", elemString(a, ports), set.Name, c.table, err, hint)
	}
	for _, p := range ports {
		c.record(opening{a, p}, user, ttl)
	}
	return nil
}

// Revoke closes ports for source a: it removes (a, port) from allow4 or
// allow6 for every port, in one transaction. With ports nil it removes
// every element of a: those the Conn opened or carried over, and those the
// kernel holds. An element that is not there (never added, expired, or the
// table is gone) is not an error; an empty, non-nil ports does nothing.
//
// Reading the kernel's set costs a dump of it (about 200 ms for 20,000
// elements: the kernel walks the set again for each message of the dump),
// and is done only where it can find something the Conn does not know:
// where the table is not owned (others may add elements). An owned table
// holds only what the Conn wrote, which its record has.
//
// The transaction adds each element and then deletes it, so the delete
// never meets an absent element. Only when that add finds the set full
// (ENFILE: an absent element would have taken a place) does Revoke read
// which elements are there and delete those.
func (c *Conn) Revoke(a netip.Addr, ports []uint16) error {
	if len(ports) > 0 {
		var err error
		if ports, err = checkPorts(ports); err != nil {
			return fmt.Errorf("delete element %s: %w", a, err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	set, a, err := allowSetOf(c.table, a)
	if err != nil {
		return fmt.Errorf("delete element %s: %w", a, err)
	}
	if ports == nil {
		if ports, err = c.portsOf(set, a, !c.applied || c.flags == 0); err != nil {
			return fmt.Errorf("delete the elements of %s from %s of table inet %s: %w", a, set.Name, c.table, err)
		}
	}
	if len(ports) == 0 {
		return nil
	}
	keys := make([][]byte, len(ports))
	for i, p := range ports {
		keys[i] = allowKey(a, p)
		delete(c.opened, opening{a, p})
	}
	sets := c.withBackup(set)
	err = c.elems(sets, keys, elemOp{typ: unix.NFT_MSG_NEWSETELEM}, elemOp{typ: unix.NFT_MSG_DELSETELEM})
	if errors.Is(err, unix.ENFILE) {
		for _, set := range sets {
			if err = c.deletePresent(set, keys); err != nil && !IsNotFound(err) {
				break
			}
		}
	}
	if err != nil && !IsNotFound(err) {
		return fmt.Errorf("delete element %s from %s of table inet %s: %w", elemString(a, ports), set.Name, c.table, err)
	}
	return nil
}

// portsOf returns the ports of source a in the Conn's record and, with
// kernel, in set, in order. An absent table or set holds none. The caller
// holds c.mu.
func (c *Conn) portsOf(set *nftables.Set, a netip.Addr, kernel bool) ([]uint16, error) {
	var ports []uint16
	for o := range c.opened {
		if o.addr == a {
			ports = append(ports, o.port)
		}
	}
	if !kernel {
		slices.Sort(ports)
		return ports, nil
	}
	elems, err := c.readSet(set.Table, set.Name)
	if err != nil && !IsNotFound(err) {
		return nil, err
	}
	for _, e := range elems {
		if b, port, ok := parseAllowKey(e.Key); ok && b == a && port != 0 {
			ports = append(ports, port)
		}
	}
	slices.Sort(ports)
	return slices.Compact(ports), nil
}

// deletePresent deletes those of keys that set holds, reading it first, and
// again if an element expires in between. The caller holds c.mu.
func (c *Conn) deletePresent(set *nftables.Set, keys [][]byte) error {
	var err error
	for range maxAttempts {
		var elems []nftables.SetElement
		if elems, err = c.readSet(set.Table, set.Name); err != nil {
			return err
		}
		var present [][]byte
		for _, e := range elems {
			if slices.ContainsFunc(keys, func(k []byte) bool { return string(k) == string(e.Key) }) {
				present = append(present, e.Key)
			}
		}
		if len(present) == 0 {
			return nil
		}
		if err = c.elems([]*nftables.Set{set}, present, elemOp{typ: unix.NFT_MSG_DELSETELEM}); !IsNotFound(err) {
			return err
		}
	}
	return err
}

// Allowed returns the elements of allow4 and allow6, one per source and
// port, IPv4 first, in address then port order. An absent table gives an
// error for which IsNotFound is true.
func (c *Conn) Allowed() ([]Element, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.allowed(c.table)
}

// AllowedOf is Allowed of the table inet table, which this Conn did not
// program: what a table left without a daemon holds. An error that
// IsNotFound says there is no such table.
func (c *Conn) AllowedOf(table string) ([]Element, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.allowed(table)
}

// allowed lists the elements of the allow sets of table inet table. The
// caller holds c.mu.
func (c *Conn) allowed(table string) ([]Element, error) {
	t := &nftables.Table{Name: table, Family: nftables.TableFamilyINet}
	var out []Element
	for _, name := range []string{SetAllow4, SetAllow6} {
		elems, err := c.readSet(t, name)
		if err != nil {
			return nil, fmt.Errorf("list allowed sources of table inet %s: %w", table, err)
		}
		for _, e := range elems {
			if a, port, ok := parseAllowKey(e.Key); ok {
				out = append(out, Element{Addr: a, Port: port, User: e.Comment, Expires: e.Expires, Timeout: e.Timeout})
			}
		}
	}
	SortElements(out)
	return out, nil
}
