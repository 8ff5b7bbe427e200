package nft

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"golang.org/x/sys/unix"
)

// The key types of allow4 and allow6: an address and a port, each field
// padded to 4 bytes (8 and 20 bytes in all).
var (
	allow4Type = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)
	allow6Type = nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetService)
)

// MaxUserName is the longest user name an element's comment takes.
const MaxUserName = 32

// allowSet returns allow4 (is4) or allow6 of table t, without ID and size.
// The set is written as nft 1.0.6 writes `type ipv4_addr . inet_service`:
// the concatenated key type and length, and neither the flag
// NFT_SET_CONCAT nor the lengths of the fields (Concatenation), which only
// an interval set needs (the kernel's pipapo backend, 5.6); a hash set of
// concatenations works without them on any kernel, and `nft list` prints
// it the same.
func allowSet(t *nftables.Table, is4 bool) *nftables.Set {
	s := &nftables.Set{Table: t, Name: SetAllow6, KeyType: allow6Type,
		KeyByteOrder: binaryutil.BigEndian, HasTimeout: true}
	if is4 {
		s.Name, s.KeyType = SetAllow4, allow4Type
	}
	return s
}

// allowSetOf returns the set of table name that holds a (allow4 for IPv4,
// allow6 for IPv6) and a without zone, an IPv4-mapped IPv6 address counted
// as IPv4.
func allowSetOf(table string, a netip.Addr) (*nftables.Set, netip.Addr, error) {
	if !a.IsValid() {
		return nil, a, errNoAddr
	}
	a = a.Unmap().WithZone("")
	return allowSet(&nftables.Table{Name: table, Family: nftables.TableFamilyINet}, a.Is4()), a, nil
}

// allowKey returns the key of (a, port) in allow4 or allow6: the address,
// then the port in network byte order and 2 bytes of zeroes.
func allowKey(a netip.Addr, port uint16) []byte {
	return append(a.AsSlice(), byte(port>>8), byte(port), 0, 0)
}

// parseAllowKey reads the key of an element of allow4 or allow6: an address
// and a port (8 or 20 bytes), or an address alone (4 or 16 bytes: the set
// of an older version; port 0). ok is false for a key of another shape.
func parseAllowKey(k []byte) (a netip.Addr, port uint16, ok bool) {
	switch len(k) {
	case 4, 16:
		a, ok = netip.AddrFromSlice(k)
		return a, 0, ok
	case 8, 20:
		n := len(k) - 4
		if k[n+2] != 0 || k[n+3] != 0 {
			return a, 0, false
		}
		a, ok = netip.AddrFromSlice(k[:n])
		port = uint16(k[n])<<8 | uint16(k[n+1])
		return a, port, ok && port != 0
	}
	return a, 0, false
}

// checkPorts returns ports sorted without duplicates, or an error for an
// empty list or port 0.
func checkPorts(ports []uint16) ([]uint16, error) {
	if len(ports) == 0 {
		return nil, errors.New("no port")
	}
	p := slices.Clone(ports)
	slices.Sort(p)
	if p[0] == 0 {
		return nil, errors.New("port 0: ports are 1..65535")
	}
	return slices.Compact(p), nil
}

// checkUser accepts "" (no user) or 1 to MaxUserName of [A-Za-z0-9_.-]:
// the name goes into the element's comment, which `nft list` prints.
func checkUser(u string) error {
	if len(u) > MaxUserName {
		return fmt.Errorf("user name %.40q: longer than %d bytes", u, MaxUserName)
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("user name %q: use letters, digits, '_', '.' and '-'", u)
		}
	}
	return nil
}

// elemString renders a and ports as nft writes elements: "10.0.0.2 . 22",
// "10.0.0.2 . { 22, 443 }".
func elemString(a netip.Addr, ports []uint16) string {
	if len(ports) == 1 {
		return a.String() + " . " + strconv.Itoa(int(ports[0]))
	}
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(int(p))
	}
	return a.String() + " . { " + strings.Join(s, ", ") + " }"
}

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
	t := &nftables.Table{Name: c.table, Family: nftables.TableFamilyINet}
	var out []Element
	for _, name := range []string{SetAllow4, SetAllow6} {
		elems, err := c.readSet(t, name)
		if err != nil {
			return nil, fmt.Errorf("list allowed sources of table inet %s: %w", c.table, err)
		}
		for _, e := range elems {
			if a, port, ok := parseAllowKey(e.Key); ok {
				out = append(out, Element{Addr: a, Port: port, User: e.Comment, Expires: e.Expires, Timeout: e.Timeout})
			}
		}
	}
	slices.SortFunc(out, func(x, y Element) int {
		if c := x.Addr.Compare(y.Addr); c != 0 {
			return c
		}
		return cmp.Compare(x.Port, y.Port)
	})
	return out, nil
}
