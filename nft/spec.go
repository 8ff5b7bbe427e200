// Package nft programs the kernel ruleset of nfqknockd through netlink
// (github.com/google/nftables): one private table, `inet nfqknock` by
// default, with the sets guard, allow4, allow6, static4 and static6, the
// kernel filter's sets first, knocking4/6, rate4/6, flood4/6 and
// spill4/6, the set spent of the used one-time sequences and SPA nonces,
// the chains knock, knocks, guard and guarded, and with SPA the sets spa,
// spakeys, sparate4/6 and the chain spa (see docs/design.md, "The
// ruleset").
//
// The package has two halves. Build is pure: it turns a Spec into the
// sets, chains and rules, and is tested without a kernel. Conn is the
// applier: it owns the table through one netlink socket (NFT_TABLE_F_OWNER
// and NFT_TABLE_F_PERSIST where the kernel has them, else a monitor that
// puts the table back), sends the ruleset in one transaction (Apply), opens
// and closes guarded ports for sources (Allow, Revoke: the elements
// `source . port` of allow4 and allow6, with their user as comment), lists
// them (Allowed), renews the kernel filter's first ports (SetFirst), keeps
// the used one-time sequences (Spend, Spent), and deletes the table
// (Destroy) or leaves it guarding for the next daemon (Close). A Conn is
// bound to one network namespace, so tests run against a real kernel
// without touching the host's ruleset.
//
// The two halves are kept apart by file name. The pure files hold no
// *Conn, open no socket and read nothing of the kernel; they may encode
// and decode netlink messages as bytes (encode gets google/nftables'
// messages through a test dial), and their tests need no root:
//
//   - spec.go: Spec, names and limits; prefix.go: the --allow ranges and
//     their interval elements
//   - build.go: Build and Ruleset; filter.go: the kernel filter; spa.go:
//     the objects of single-packet authorization; backup.go: BuildBackup
//     and the backup's names
//   - allow.go, spent.go: the sets allow4/allow6 and spent, their keys;
//     record.go: carryOver
//   - batch.go, elems.go: table, batch and element messages; gen.go:
//     Generation
//   - table.go: TableInfo, parseTable; notify.go: notifications decoded;
//     watch.go: Repair
//   - interface.go: Interface; errors.go: IsNotFound, IsPermission
//
// The files that talk to the kernel are conn.go and conn_*.go: the Conn
// and all its methods, the netlink sockets, and the read of /proc:
//
//   - conn.go: Conn, Dial, Close, Check, Destroy, SetFirst; conn_spa.go:
//     SetSPAKeys
//   - conn_apply.go: Apply; conn_gen.go: the generation probe;
//     conn_backup.go: the backup table
//   - conn_allow.go: Allow, Revoke, Allowed; conn_spent.go: Spend, Spent;
//     conn_record.go: the record, and what Apply carries over
//   - conn_batch.go: batches sent and answered; conn_elems.go: element
//     transactions and set dumps; conn_table.go: table reads
//   - conn_watch.go: Watch; conn_conntrack.go: ConntrackInUse
//
// Tests follow the same names: conn_*_test.go run against a kernel in
// network namespaces (root) or, in conn_fake_test.go, a fake netlink
// socket; the others are pure.
//
// Interface is what the daemon asks of a Conn; package nfttest fakes it,
// with the same transaction semantics, for unit tests without a kernel.
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
// in `nft list table inet nfqknock`, and docs/design.md ("Sets") and
// docs/operations.md ("How it works") document them.
const (
	SetGuard     = "guard"     // inet_service: the guarded ports
	SetAllow4    = "allow4"    // ipv4_addr . inet_service, flags timeout: opened IPv4 sources and their ports
	SetAllow6    = "allow6"    // ipv6_addr . inet_service, flags timeout: opened IPv6 sources and their ports
	SetStatic4   = "static4"   // ipv4_addr, flags interval: --allow IPv4 ranges
	SetStatic6   = "static6"   // ipv6_addr, flags interval: --allow IPv6 ranges
	SetFirst     = "first"     // inet_service, flags timeout: first ports of the valid sequences
	SetKnocking4 = "knocking4" // ipv4_addr, dynamic: sources that knocked a first port
	SetKnocking6 = "knocking6" // ipv6_addr, dynamic
	SetRate4     = "rate4"     // ipv4_addr, dynamic: each knocking source's SYN rate
	SetRate6     = "rate6"     // ipv6_addr, dynamic
	SetFlood4    = "flood4"    // ipv4_addr, dynamic: knocking sources over the rate, not queued for a while
	SetFlood6    = "flood6"    // ipv6_addr, dynamic
	SetSpent     = "spent"     // ipv6_addr (an opaque 16-byte digest), flags timeout: used one-time sequences
	SetSpill4    = "spill4"    // ipv4_addr, dynamic: sources whose first-port SYN a full knocking4 did not take, queued like knocking ones
	SetSpill6    = "spill6"    // ipv6_addr, dynamic
	ChainKnock   = "knock"     // bare SYNs to the knock range and this host jump to knocks
	ChainKnocks  = "knocks"    // the kernel filter: only knocking sources are queued
	ChainGuard   = "guard"     // new connections to guarded ports jump to guarded
	ChainGuarded = "guarded"   // accept opened and --allow sources, drop the rest
)

// TableComment is the comment our table carries (NFTA_TABLE_USERDATA): it
// tells our table apart from a table of the same name that is not ours,
// which is never touched.
const TableComment = "nfqknockd: port knocking; managed by the daemon, do not edit"

// Chain priorities: both hook prerouting before DNAT (priority dstnat,
// -100), so that a port published by DNAT is guarded by the port the
// client used; knock (mangle, -150) runs before guard (mangle + 5), so a
// knock that completes a sequence on a guarded port is still seen.
const (
	KnockPriority = -150
	GuardPriority = -145
)

// FirstPort is an element of the set first: a port, for Timeout.
type FirstPort struct {
	Port    uint16
	Timeout time.Duration
}

// Limits of the kernel filter. A knocking source that sends bare SYNs
// faster than FloodRate per second, beyond a burst of FloodBurst, is not
// queued for FloodTimeout: nfqknock knocks a whole 32-port sequence with
// 10 ms gaps (100/s), netcat one port a second, so no knocking client comes
// near it, and a flooding source costs the daemon FloodBurst packets per
// FloodTimeout at most.
const (
	FloodRate           = 250
	FloodBurst          = 64
	FloodTimeout        = 10 * time.Second
	DefaultKnockTimeout = 12 * time.Second
	knockingSize        = 65536
)

// Limits of the spill (see filter.rules): while knocking4 or knocking6 is
// full, first-port SYNs of sources not in it reach the daemon at most
// OverflowRate per second and family, beyond a burst of OverflowBurst, and
// their sources join spill4 or spill6. The daemon spends a few
// microseconds on each (its queue path costs about 6 s of CPU per million
// SYNs at full rate).
const (
	OverflowRate  = 1000
	OverflowBurst = 1000
)

// DefaultMaxOpen is the size of allow4 and allow6 when Spec.MaxOpen is 0:
// how many (source, port) elements each holds. When a set is full the
// kernel refuses the next add (ENFILE): that open fails and is logged, and
// the opened sources stay as they are.
const DefaultMaxOpen = 65536

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
	// Allow are the --allow ranges, never guarded (static4, static6).
	// Neither /0 nor a range that reaches the last address is accepted
	// (CheckAllow); normalize masks them and drops those inside another
	// (NormalizeAllow).
	Allow []netip.Prefix
	// MaxOpen is the size of allow4 and allow6, in (source, port)
	// elements (0: DefaultMaxOpen).
	MaxOpen uint32
	// QueueAll queues every bare SYN of the range to this host, as the C
	// daemon did (--queue-all); otherwise only the SYNs of sources that
	// knocked a first port (First) go to the daemon.
	QueueAll bool
	// KnockTimeout is how long a source stays in knocking4/knocking6 after
	// its last knock (0: DefaultKnockTimeout); at least the tracker's
	// --timeout, so that the kernel never stops queueing a source whose
	// window the daemon still keeps.
	KnockTimeout time.Duration
	// First are the first ports of the sequences valid now, each for its
	// remaining validity (Conn.SetFirst renews them).
	First []FirstPort
	// Conntrack adds to the chain guard a rule for the packets of new
	// connections that are not bare SYNs (`ct state new`, see ctNewTCP),
	// which then meet the guard like SYNs. Set it only where conntrack is
	// in use in the network namespace already: a ct expression makes the
	// kernel track every connection of the namespace (see
	// ConntrackInUse).
	Conntrack bool
	// SPA are the UDP ports of single-packet authorization (--spa): UDP
	// to them and this host is queued, at most SPARate a second per
	// source, and never delivered (see addSPA). None: no SPA objects.
	SPA []uint16
	// SPAOnly leaves out the knock rule (--spa-only): no SYN is queued.
	SPAOnly bool
	// SPAKeys are the key ids SPA packets may carry now (set spakeys; the
	// daemon renews them with Conn.SetSPAKeys); a packet of another never
	// leaves the kernel.
	SPAKeys []SPAKeyID
	// NoOwner makes Conn.Apply leave out the table ownership flags, as on a
	// kernel without them: the monitor then puts the table back (tests).
	NoOwner bool
	// NoPersist makes Conn.Apply leave out the table flag persist, as on a
	// kernel with owner alone (5.12 to 6.8): an owned table and a backup
	// table (tests).
	NoPersist bool
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
	if s.MaxOpen == 0 {
		s.MaxOpen = DefaultMaxOpen
	}
	if s.KnockTimeout == 0 {
		s.KnockTimeout = DefaultKnockTimeout
	}
	if s.KnockTimeout < time.Millisecond {
		return s, fmt.Errorf("knock timeout %v: too short", s.KnockTimeout)
	}
	if s.SPAOnly && len(s.SPA) == 0 {
		return s, errors.New("SPA only, but no SPA port")
	}
	if err := checkSPA(s.SPA); err != nil {
		return s, err
	}
	s.SPA = slices.Compact(slices.Sorted(slices.Values(s.SPA)))
	allow, err := NormalizeAllow(s.Allow)
	if err != nil {
		return s, err
	}
	s.Allow = allow
	g := slices.Clone(s.Guard)
	slices.SortFunc(g, cmp.Compare)
	s.Guard = slices.Compact(g)
	if len(s.Guard) > 0 && s.Guard[0] == 0 {
		return s, errors.New("guard port 0: ports are 1..65535")
	}
	return s, nil
}

// maxTableName is NFT_NAME_MAXLEN (256) less the terminating NUL, less
// room for the backup table's name (BackupTable).
const maxTableName = 255 - len(backupSuffix)

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

// Element is one opened source and port as the kernel holds it.
type Element struct {
	Addr netip.Addr
	// Port is the guarded port the element opens for Addr; 0 for an
	// element of an older version's set, keyed by the address alone (it
	// opened every guarded port; Apply turns it into one element per
	// port).
	Port uint16
	// User is the name of the user who opened it, the element's comment;
	// "" for none.
	User string
	// Expires is the life left; 0 for an element without timeout.
	Expires time.Duration
	// Timeout is the timeout the element was added with; 0 for none.
	Timeout time.Duration
}
