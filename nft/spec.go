// Package nft programs the kernel ruleset of nfqknockd through netlink
// (github.com/google/nftables): one private table, `inet nfqknock` by
// default, with the sets guard, allow4 and allow6 and the chains knock and
// guard (see DESIGN.md, "The kernel ruleset").
//
// The package has two halves. Build is pure: it turns a Spec into the
// table, sets, chains and rules, and is tested without a kernel. Conn is the
// thin applier: it sends those objects in one transaction (Apply), adds and
// removes allowed sources (Allow, Revoke), lists them (Allowed) and deletes
// the table (Destroy). A Conn is bound to one network namespace, so tests run
// against a real kernel without touching the host's ruleset.
//
// No program is ever executed: everything goes through netlink.
package nft

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// DefaultTable is the table name used when Spec.Table is empty.
const DefaultTable = "nfqknock"

// Names of the objects inside the table. They are fixed: an admin reads them
// in `nft list table inet nfqknock`, and the README documents them.
const (
	SetGuard   = "guard"  // inet_service: the guarded ports
	SetAllow4  = "allow4" // ipv4_addr, flags timeout: opened IPv4 sources
	SetAllow6  = "allow6" // ipv6_addr, flags timeout: opened IPv6 sources
	ChainKnock = "knock"  // bare SYNs to the knock range go to the queue
	ChainGuard = "guard"  // bare SYNs to guarded ports from unknown sources are dropped
)

// Chain priorities: knock runs before guard, so a knock that completes a
// sequence on a guarded port is still seen, and both run before the usual
// filter chains (priority 0) of the host.
const (
	KnockPriority = -10
	GuardPriority = -5
)

// QueueVariant is how the knock rule hands packets to user space.
type QueueVariant int

// The two ways to queue a packet. Native is the nft `queue` expression
// (nft_queue); Compat is the xtables NFQUEUE target run by nft_compat, for
// kernels built without nft_queue. `nft list` prints both the same way.
const (
	Native QueueVariant = iota
	Compat
)

// String names the variant for logs.
func (v QueueVariant) String() string {
	switch v {
	case Native:
		return "native queue"
	case Compat:
		return "xtables NFQUEUE (nft_compat)"
	}
	return fmt.Sprintf("QueueVariant(%d)", int(v))
}

// Spec is what the ruleset is made of. The zero value of Table and
// QueueTotal take their defaults; Guard may be in any order and hold
// duplicates.
type Spec struct {
	// Table is the name of the inet table; DefaultTable when empty.
	Table string
	// Start and End bound the knock range: the knock chain matches
	// `tcp dport Start-End`, both ends included, as the C daemon's
	// `iptables --dport Start:End` did. 1 <= Start <= End.
	Start, End uint16
	// Guard holds the guarded ports (the -P ports already taken out).
	Guard []uint16
	// QueueNum is the first queue number; QueueTotal the number of queues
	// (0 means 1). With QueueTotal > 1 the kernel spreads sources over
	// QueueNum..QueueNum+QueueTotal-1 by a hash of the addresses, so one
	// source always lands on the same queue.
	QueueNum, QueueTotal uint16
}

// normalize returns s with defaults filled in and the guard ports sorted and
// deduplicated, or an error naming the first field that is wrong.
func (s Spec) normalize() (Spec, error) {
	if s.Table == "" {
		s.Table = DefaultTable
	}
	if err := ValidTableName(s.Table); err != nil {
		return s, err
	}
	if s.Start == 0 || s.Start > s.End {
		return s, fmt.Errorf("knock range %d-%d: want 1 <= start <= end", s.Start, s.End)
	}
	if s.QueueTotal == 0 {
		s.QueueTotal = 1
	}
	if int(s.QueueNum)+int(s.QueueTotal)-1 > 0xffff {
		return s, fmt.Errorf("queues %d-%d: the last queue number is above 65535",
			s.QueueNum, int(s.QueueNum)+int(s.QueueTotal)-1)
	}
	g := slices.Clone(s.Guard)
	slices.SortFunc(g, cmp.Compare)
	s.Guard = slices.Compact(g)
	if len(s.Guard) > 0 && s.Guard[0] == 0 {
		return s, errors.New("guard port 0: ports are 1..65535")
	}
	return s, nil
}

// maxTableName is NFT_NAME_MAXLEN (256) less the terminating NUL.
const maxTableName = 255

// ValidTableName reports whether s can name our table: 1 to 255 bytes of
// ASCII letters, digits, '_', '-' and '.', starting with a letter or '_'.
// That is what the kernel stores and what an admin can type after
// `nft list table inet`.
func ValidTableName(s string) error {
	if s == "" {
		return errors.New("table name is empty")
	}
	if len(s) > maxTableName {
		return fmt.Errorf("table name %.20q...: longer than %d bytes", s, maxTableName)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '.'):
		default:
			return fmt.Errorf("table name %q: use letters, digits, '_', '-' and '.', starting with a letter or '_'", s)
		}
	}
	return nil
}

// Element is one allowed source as the kernel holds it.
type Element struct {
	Addr netip.Addr
	// Expires is the life left; 0 for an element without timeout.
	Expires time.Duration
	// Timeout is the timeout the element was added with; 0 for none.
	Timeout time.Duration
}
