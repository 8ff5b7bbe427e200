package nft

import (
	"context"
	"net/netip"
	"time"
)

// Interface is what the daemon asks of its nftables table: a *Conn, or
// in the unit tests the fake of package nfttest, which keeps the same
// transaction semantics (every call that changes the table changes all or
// nothing).
type Interface interface {
	// Check says whether the table may be programmed: nil, or
	// ErrNotOurs or *HeldError, changing nothing.
	Check(table string) error
	// Apply programs (or takes over) the table in one transaction.
	Apply(Spec) (Result, error)
	// Allow opens ports of the guard for a source, for ttl (0: until
	// revoked), naming user ("" for none), in one transaction.
	Allow(src netip.Addr, ports []uint16, user string, ttl time.Duration) error
	// SetFirst replaces the first ports of the kernel filter.
	SetFirst(ports []FirstPort) error
	// SetSPAKeys replaces the SPA key ids the kernel lets through (--spa).
	SetSPAKeys(ids []SPAKeyID) error
	// Revoke closes ports for a source again (nil: every port it has).
	Revoke(src netip.Addr, ports []uint16) error
	// Allowed lists the opened sources, one element per source and port.
	Allowed() ([]Element, error)
	// Spend keeps a used one-time sequence's key in the table for ttl (a
	// key already there is no error; a full set: ENFILE).
	Spend(key [16]byte, ttl time.Duration) error
	// Spent lists the keys of the used one-time sequences the table
	// holds, with their remaining life.
	Spent() ([]SpentKey, error)
	// Opened lists the opened sources, one element per source and port,
	// from what the implementation recorded, without asking the kernel
	// (for nfqknockd status).
	Opened() []Element
	// OpenedSources counts the opened sources per family without asking
	// the kernel (for the metrics).
	OpenedSources() (v4, v6 int)
	// Destroy deletes the table (stop).
	Destroy() error
	// Close lets go of the table and leaves it guarding (restart).
	Close() error
	// Watch puts the table back when others delete parts of it, where the
	// kernel cannot keep them out; it returns when ctx is done.
	Watch(ctx context.Context, report func(Repair)) error
}
