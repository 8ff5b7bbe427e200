// Package nfttest is a fake of nft.Interface for the unit tests of code that
// programs its table through it: a table without a kernel, with the
// kernel's transaction semantics, and hooks that inject what the kernel
// and other processes do (a failing operation, a table that is not ours, a
// table deleted behind the daemon's back).
//
// Only tests import it (the way knftables exports its fake and tailscale
// its linuxfwtest): no command links it.
package nfttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfqknockd/nfqknockd/nft"
)

// Elem is an element of the fake allow sets: a source and a port.
type Elem struct {
	Src  netip.Addr
	Port uint16
}

// Open is what a fake element holds: its timeout (0: none) and user.
type Open struct {
	TTL  time.Duration
	User string
}

// Table is the state of the fake kernel's table.
type Table struct {
	Spec    nft.Spec
	Allowed map[Elem]Open
	Spent   map[[16]byte]time.Duration // the used one-time sequences and their ttl
}

// TTL returns the timeout of (src, port) and whether it is opened; a nil
// Table (no table) has none.
func (t *Table) TTL(src netip.Addr, port uint16) (time.Duration, bool) {
	if t == nil {
		return 0, false
	}
	o, ok := t.Allowed[Elem{src, port}]
	return o.TTL, ok
}

// clone returns a copy of t whose maps are its own.
func (t *Table) clone() *Table {
	if t == nil {
		return nil
	}
	return &Table{Spec: t.Spec, Allowed: maps.Clone(t.Allowed), Spent: maps.Clone(t.Spent)}
}

// Fake is an nft.Interface without a kernel, with the semantics the daemon
// relies on: every operation is a transaction that changes all or nothing
// (it works on a copy and commits it on success), Apply carries the opened
// sources over, like nft.Conn it keeps its own record of what it opened
// and puts it back (the used one-time sequences too), and Watch repairs
// what the test deletes behind its back (Vanish). Its methods are safe for
// concurrent use.
type Fake struct {
	mu      sync.Mutex
	table   *Table // nil: no table
	fail    error  // the next operation fails with it, changing nothing
	record  map[Elem]Open
	spent   map[[16]byte]time.Duration // the record of Spend
	applied *nft.Spec
	closed  bool
	notOurs bool // the table of the name is someone else's
	vanish  chan string
}

var _ nft.Interface = (*Fake)(nil)

// NewFake returns a Fake whose kernel has no table.
func NewFake() *Fake {
	return &Fake{record: map[Elem]Open{}, spent: map[[16]byte]time.Duration{}, vanish: make(chan string)}
}

// NewFakeWith returns a Fake whose kernel holds a copy of t (nil: no
// table) and whose record is empty: the kernel as a previous daemon left
// it (its State), for the next one, which takes the table over.
func NewFakeWith(t *Table) *Fake {
	f := NewFake()
	f.table = t.clone()
	return f
}

// FailNext makes the next operation that would change the table (Apply,
// Allow, Spend, SetFirst, Revoke, Destroy) fail with err, changing
// nothing.
func (f *Fake) FailNext(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

// SetNotOurs makes the table of the name someone else's (notOurs true):
// Check and Apply then fail with nft.ErrNotOurs.
func (f *Fake) SetNotOurs(notOurs bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.notOurs = notOurs
}

// Vanish deletes the table as another process would (`nft delete table`),
// saying what changed (what), and blocks until Watch has taken it: Watch
// puts the table back and reports the repair.
func (f *Fake) Vanish(what string) {
	f.vanish <- what
}

// State returns a copy of the table (nil: none) and whether Close was
// called.
func (f *Fake) State() (*Table, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.table.clone(), f.closed
}

// txn runs fn on a copy of the table and commits it when fn and the
// injected failure allow; op names the operation in the error.
func (f *Fake) txn(op string, fn func(t **Table) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail; err != nil {
		f.fail = nil
		return fmt.Errorf("%s: %w", op, err)
	}
	t := f.table.clone()
	if err := fn(&t); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	f.table = t
	return nil
}

// Check says whether the table may be programmed: nft.ErrNotOurs after
// SetNotOurs(true), else nil.
func (f *Fake) Check(table string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.notOurs {
		return fmt.Errorf("table inet %s: %w", table, nft.ErrNotOurs)
	}
	return nil
}

// Apply programs the table with s, carrying over the opened sources and
// used one-time sequences of the table and of the record; Result.TookOver
// says the table was there before the Fake's first Apply.
func (f *Fake) Apply(s nft.Spec) (nft.Result, error) {
	var res nft.Result
	err := f.txn("apply table inet "+s.Table, func(t **Table) error {
		if f.notOurs {
			return nft.ErrNotOurs
		}
		res = nft.Result{Gen: gen(s), TookOver: *t != nil && f.applied == nil}
		allowed := maps.Clone(f.record)
		if *t != nil {
			maps.Copy(allowed, (*t).Allowed)
		}
		res.Carried = len(allowed)
		spent := maps.Clone(f.spent)
		if spent == nil {
			spent = map[[16]byte]time.Duration{}
		}
		if *t != nil {
			maps.Copy(spent, (*t).Spent)
		}
		*t = &Table{Spec: s, Allowed: allowed, Spent: spent}
		return nil
	})
	if err == nil {
		f.mu.Lock()
		f.applied = &s
		f.mu.Unlock()
	}
	return res, err
}

// Allow opens every port in one transaction, as nft.Conn does; the record
// changes only when it commits. Without a table it fails with ENOENT.
func (f *Fake) Allow(src netip.Addr, ports []uint16, user string, ttl time.Duration) error {
	return f.txn("add element "+src.String(), func(t **Table) error {
		if *t == nil {
			return unix.ENOENT
		}
		if len(ports) == 0 {
			return errors.New("no port")
		}
		for _, p := range ports {
			(*t).Allowed[Elem{src, p}] = Open{ttl, user}
		}
		for _, p := range ports {
			f.record[Elem{src, p}] = Open{ttl, user}
		}
		return nil
	})
}

// Spend adds key to the table's spent, and to the record when it commits;
// a key already there is no error (it keeps its ttl).
func (f *Fake) Spend(key [16]byte, ttl time.Duration) error {
	return f.txn("add a used one-time sequence", func(t **Table) error {
		if *t == nil {
			return unix.ENOENT
		}
		if (*t).Spent == nil {
			(*t).Spent = map[[16]byte]time.Duration{}
		}
		if _, ok := (*t).Spent[key]; !ok {
			(*t).Spent[key] = ttl
		}
		if f.spent == nil {
			f.spent = map[[16]byte]time.Duration{}
		}
		f.spent[key] = (*t).Spent[key]
		return nil
	})
}

// Spent lists the table's spent, in key order (the fake's clock stands
// still: each key has its whole ttl left).
func (f *Fake) Spent() ([]nft.SpentKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.table == nil {
		return nil, fmt.Errorf("list the used one-time sequences: %w", unix.ENOENT)
	}
	var out []nft.SpentKey
	for k, ttl := range f.table.Spent {
		out = append(out, nft.SpentKey{Key: k, Expires: ttl})
	}
	slices.SortFunc(out, func(a, b nft.SpentKey) int { return bytes.Compare(a.Key[:], b.Key[:]) })
	return out, nil
}

// SetFirst replaces the first ports of the table's Spec.
func (f *Fake) SetFirst(ports []nft.FirstPort) error {
	return f.txn("set first ports", func(t **Table) error {
		if *t == nil {
			return unix.ENOENT
		}
		(*t).Spec.First = ports
		return nil
	})
}

// SetSPAKeys replaces the SPA key ids of the table's Spec.
func (f *Fake) SetSPAKeys(ids []nft.SPAKeyID) error {
	return f.txn("set SPA key ids", func(t **Table) error {
		if *t == nil {
			return unix.ENOENT
		}
		(*t).Spec.SPAKeys = slices.Clone(ids)
		return nil
	})
}

// Revoke closes ports of src (nil: every one, in the record and the table);
// absent elements are no error.
func (f *Fake) Revoke(src netip.Addr, ports []uint16) error {
	return f.txn("delete element "+src.String(), func(t **Table) error {
		match := func(e Elem) bool { return e.Src == src && (ports == nil || slices.Contains(ports, e.Port)) }
		maps.DeleteFunc(f.record, func(e Elem, _ Open) bool { return match(e) })
		if *t != nil {
			maps.DeleteFunc((*t).Allowed, func(e Elem, _ Open) bool { return match(e) })
		}
		return nil
	})
}

// OpenedSources counts the table's opened sources per family.
func (f *Fake) OpenedSources() (v4, v6 int) {
	els, _ := f.Allowed()
	for i, e := range els {
		if i > 0 && els[i-1].Addr == e.Addr {
			continue
		}
		if e.Addr.Is4() {
			v4++
		} else {
			v6++
		}
	}
	return v4, v6
}

// Allowed lists the table's opened sources in address and port order (the
// fake's clock stands still: each has its whole timeout left).
func (f *Fake) Allowed() ([]nft.Element, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.table == nil {
		return nil, fmt.Errorf("list allowed sources: %w", unix.ENOENT)
	}
	return f.elements(), nil
}

// Opened lists the table's opened sources, as Allowed without the error.
func (f *Fake) Opened() []nft.Element {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.table == nil {
		return nil
	}
	return f.elements()
}

// elements are the table's allow elements, sorted. The caller holds f.mu.
func (f *Fake) elements() []nft.Element {
	var out []nft.Element
	for e, o := range f.table.Allowed {
		out = append(out, nft.Element{Addr: e.Src, Port: e.Port, User: o.User, Timeout: o.TTL, Expires: o.TTL})
	}
	nft.SortElements(out)
	return out
}

// Destroy deletes the table and forgets the record.
func (f *Fake) Destroy() error {
	return f.txn("delete table", func(t **Table) error {
		*t = nil
		clear(f.record)
		clear(f.spent)
		return nil
	})
}

// Close notes that the daemon let go of the table (State's second
// result), which stays.
func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

// Watch deletes the table when the test calls Vanish (an outside `nft
// delete table`) and puts it back as nft.Conn.Watch does, reporting the
// repair; it returns nil when ctx is done.
func (f *Fake) Watch(ctx context.Context, report func(nft.Repair)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case what := <-f.vanish:
			f.mu.Lock()
			f.table = nil
			s := *f.applied
			f.mu.Unlock()
			_, err := f.Apply(s)
			report(nft.Repair{Table: s.Table, Changed: what, Err: err})
		}
	}
}

// gen is the kernel generation the fake gives spec: the newest, less
// what the test switches turn off.
func gen(s nft.Spec) nft.Generation {
	switch {
	case s.NoOwner:
		return nft.GenNone
	case s.NoPersist:
		return nft.GenOwner
	}
	return nft.GenPersist
}
