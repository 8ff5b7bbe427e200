package main

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfqknockd/nfqknockd/nft"
)

// fakeElem is an element of the fake allow sets: a source and a port.
type fakeElem struct {
	src  netip.Addr
	port uint16
}

// fakeOpen is what a fake element holds: its timeout (0: none) and user.
type fakeOpen struct {
	ttl  time.Duration
	user string
}

// fakeTable is the state of the fake kernel's table.
type fakeTable struct {
	spec    nft.Spec
	allowed map[fakeElem]fakeOpen
	spent   map[[16]byte]time.Duration // the used one-time sequences and their ttl
}

// ttl returns the timeout of (src, port) and whether it is opened.
func (t *fakeTable) ttl(src netip.Addr, port uint16) (time.Duration, bool) {
	if t == nil {
		return 0, false
	}
	o, ok := t.allowed[fakeElem{src, port}]
	return o.ttl, ok
}

func (t *fakeTable) clone() *fakeTable {
	if t == nil {
		return nil
	}
	return &fakeTable{spec: t.spec, allowed: maps.Clone(t.allowed), spent: maps.Clone(t.spent)}
}

// fakeRules is a ruleset without a kernel, with the semantics the daemon
// relies on: every operation is a transaction that changes all or nothing
// (it works on a copy and commits it on success), Apply carries the opened
// sources over, like nft.Conn it keeps its own record of what it opened
// and puts it back (the used one-time sequences too), and Watch repairs what the test deletes behind its
// back (vanish).
type fakeRules struct {
	mu      sync.Mutex
	table   *fakeTable // nil: no table
	fail    error      // the next operation fails with it, changing nothing
	record  map[fakeElem]fakeOpen
	spent   map[[16]byte]time.Duration // the record of Spend
	applied *nft.Spec
	closed  bool
	notOurs bool // the table of the name is someone else's
	vanish  chan string
	ops     []string
}

func newFakeRules() *fakeRules {
	return &fakeRules{record: map[fakeElem]fakeOpen{}, spent: map[[16]byte]time.Duration{}, vanish: make(chan string)}
}

// txn runs fn on a copy of the table and commits it when fn and the
// injected failure allow.
func (f *fakeRules) txn(op string, fn func(t **fakeTable) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops = append(f.ops, op)
	if err := f.fail; err != nil {
		f.fail = nil
		return err
	}
	t := f.table.clone()
	if err := fn(&t); err != nil {
		return err
	}
	f.table = t
	return nil
}

func (f *fakeRules) Check(string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.notOurs {
		return nft.ErrNotOurs
	}
	return nil
}

func (f *fakeRules) Apply(s nft.Spec) (nft.Result, error) {
	var res nft.Result
	err := f.txn("apply", func(t **fakeTable) error {
		if f.notOurs {
			return nft.ErrNotOurs
		}
		res = nft.Result{Gen: fakeGen(s), TookOver: *t != nil && f.applied == nil}
		allowed := maps.Clone(f.record)
		if *t != nil {
			maps.Copy(allowed, (*t).allowed)
		}
		res.Carried = len(allowed)
		spent := maps.Clone(f.spent)
		if spent == nil {
			spent = map[[16]byte]time.Duration{}
		}
		if *t != nil {
			maps.Copy(spent, (*t).spent)
		}
		*t = &fakeTable{spec: s, allowed: allowed, spent: spent}
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
// changes only when it commits.
func (f *fakeRules) Allow(src netip.Addr, ports []uint16, user string, ttl time.Duration) error {
	return f.txn("allow "+src.String(), func(t **fakeTable) error {
		if *t == nil {
			return unix.ENOENT
		}
		if len(ports) == 0 {
			return errors.New("no port")
		}
		for _, p := range ports {
			(*t).allowed[fakeElem{src, p}] = fakeOpen{ttl, user}
		}
		for _, p := range ports {
			f.record[fakeElem{src, p}] = fakeOpen{ttl, user}
		}
		return nil
	})
}

// Spend adds key to the table's spent, and to the record when it commits;
// a key already there is no error.
func (f *fakeRules) Spend(key [16]byte, ttl time.Duration) error {
	return f.txn("spend", func(t **fakeTable) error {
		if *t == nil {
			return unix.ENOENT
		}
		if (*t).spent == nil {
			(*t).spent = map[[16]byte]time.Duration{}
		}
		if _, ok := (*t).spent[key]; !ok {
			(*t).spent[key] = ttl
		}
		if f.spent == nil {
			f.spent = map[[16]byte]time.Duration{}
		}
		f.spent[key] = (*t).spent[key]
		return nil
	})
}

// Spent lists the table's spent, in key order (the fake's clock stands
// still: each key has its whole ttl left).
func (f *fakeRules) Spent() ([]nft.SpentKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.table == nil {
		return nil, unix.ENOENT
	}
	var out []nft.SpentKey
	for k, ttl := range f.table.spent {
		out = append(out, nft.SpentKey{Key: k, Expires: ttl})
	}
	slices.SortFunc(out, func(a, b nft.SpentKey) int { return bytes.Compare(a.Key[:], b.Key[:]) })
	return out, nil
}

func (f *fakeRules) SetFirst(ports []nft.FirstPort) error {
	return f.txn("first", func(t **fakeTable) error {
		if *t == nil {
			return unix.ENOENT
		}
		(*t).spec.First = ports
		return nil
	})
}

// Revoke closes ports of src (nil: every one, in the record and the table);
// absent elements are no error.
func (f *fakeRules) Revoke(src netip.Addr, ports []uint16) error {
	return f.txn("revoke "+src.String(), func(t **fakeTable) error {
		match := func(e fakeElem) bool { return e.src == src && (ports == nil || slices.Contains(ports, e.port)) }
		maps.DeleteFunc(f.record, func(e fakeElem, _ fakeOpen) bool { return match(e) })
		if *t != nil {
			maps.DeleteFunc((*t).allowed, func(e fakeElem, _ fakeOpen) bool { return match(e) })
		}
		return nil
	})
}

func (f *fakeRules) OpenedSources() (v4, v6 int) {
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

func (f *fakeRules) Allowed() ([]nft.Element, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.table == nil {
		return nil, unix.ENOENT
	}
	var out []nft.Element
	for e, o := range f.table.allowed {
		out = append(out, nft.Element{Addr: e.src, Port: e.port, User: o.user, Timeout: o.ttl, Expires: o.ttl})
	}
	slices.SortFunc(out, func(x, y nft.Element) int {
		if c := x.Addr.Compare(y.Addr); c != 0 {
			return c
		}
		return int(x.Port) - int(y.Port)
	})
	return out, nil
}

func (f *fakeRules) Destroy() error {
	return f.txn("destroy", func(t **fakeTable) error {
		*t = nil
		clear(f.record)
		clear(f.spent)
		return nil
	})
}

func (f *fakeRules) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

// Watch deletes the table when the test sends on vanish (an outside `nft
// delete table`) and puts it back as nft.Conn.Watch does.
func (f *fakeRules) Watch(ctx context.Context, report func(nft.Repair)) error {
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
			report(nft.Repair{Table: s.Table, Vanished: what, Err: err})
		}
	}
}

// state returns a copy of the table (nil: none) and the opened sources.
func (f *fakeRules) state() (*fakeTable, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.table.clone(), f.closed
}

// fakeGen is the kernel generation the fake gives spec: the newest, less
// what the test switches turn off.
func fakeGen(s nft.Spec) nft.Generation {
	switch {
	case s.NoOwner:
		return nft.GenNone
	case s.NoPersist:
		return nft.GenOwner
	}
	return nft.GenPersist
}
