package nft

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
)

// errNoAddr is the error for an invalid address.
var errNoAddr = errors.New("invalid address")

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
