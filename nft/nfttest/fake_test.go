package nfttest

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfqknockd/nfqknockd/nft"
)

var (
	src4 = netip.MustParseAddr("10.0.0.2")
	src6 = netip.MustParseAddr("fd00::2")
	key1 = [16]byte{1}
	key2 = [16]byte{2}
	spec = nft.Spec{Table: "nfqknock", Start: 1, End: 65535, Guard: []uint16{22, 443}}

	errInjected = errors.New("injected failure")
)

// programmed returns a Fake with the table of spec, src4 opened on 22 and
// 443 for alice for an hour, and key1 spent for a minute.
func programmed(t *testing.T) *Fake {
	t.Helper()
	f := NewFake()
	if _, err := f.Apply(spec); err != nil {
		t.Fatal(err)
	}
	if err := f.Allow(src4, []uint16{22, 443}, "alice", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := f.Spend(key1, time.Minute); err != nil {
		t.Fatal(err)
	}
	return f
}

// state returns the Fake's table, failing the test when there is none.
func state(t *testing.T, f *Fake) *Table {
	t.Helper()
	tab, _ := f.State()
	if tab == nil {
		t.Fatal("no table")
	}
	return tab
}

// repair deletes the table behind the Fake's back (Vanish) with Watch
// running, and returns the repair Watch reports: the table comes back from
// the Fake's record.
func repair(t *testing.T, f *Fake) nft.Repair {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	reports := make(chan nft.Repair, 1)
	done := make(chan error, 1)
	go func() { done <- f.Watch(ctx, func(r nft.Repair) { reports <- r }) }()
	f.Vanish("table deleted")
	r := <-reports
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watch: %v", err)
	}
	return r
}

// TestFailedOperationChangesNothing: an operation that fails, injected or
// by itself, changes neither the table nor the record that a repair puts
// back.
func TestFailedOperationChangesNothing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inject bool // FailNext before op
		op     func(f *Fake) error
		want   error // nil: only "an error"
	}{
		{"apply", true, func(f *Fake) error {
			_, err := f.Apply(nft.Spec{Table: "nfqknock", Start: 1, End: 65535, Guard: []uint16{80}})
			return err
		}, errInjected},
		{"allow", true, func(f *Fake) error { return f.Allow(src6, []uint16{22}, "bob", 0) }, errInjected},
		{"allow another port", true, func(f *Fake) error { return f.Allow(src4, []uint16{80}, "alice", time.Hour) }, errInjected},
		{"allow without ports", false, func(f *Fake) error { return f.Allow(src6, nil, "bob", 0) }, nil},
		{"spend", true, func(f *Fake) error { return f.Spend(key2, time.Minute) }, errInjected},
		{"set first", true, func(f *Fake) error { return f.SetFirst([]nft.FirstPort{{Port: 1000, Timeout: time.Minute}}) }, errInjected},
		{"set SPA key ids", true, func(f *Fake) error { return f.SetSPAKeys([]nft.SPAKeyID{{1, 2, 3}}) }, errInjected},
		{"revoke", true, func(f *Fake) error { return f.Revoke(src4, nil) }, errInjected},
		{"destroy", true, func(f *Fake) error { return f.Destroy() }, errInjected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := programmed(t)
			before := state(t, f)
			if tc.inject {
				f.FailNext(errInjected)
			}
			err := tc.op(f)
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if got := state(t, f); !reflect.DeepEqual(got, before) {
				t.Errorf("the table changed:\n got %+v\nwant %+v", got, before)
			}
			if r := repair(t, f); r.Err != nil {
				t.Fatalf("repair: %v", r.Err)
			}
			if got := state(t, f); !reflect.DeepEqual(got, before) {
				t.Errorf("the record changed: the repair put back\n%+v\nwant %+v", got, before)
			}
		})
	}
}

// TestFailNextOnce: an injected failure fails one operation; the next one
// runs.
func TestFailNextOnce(t *testing.T) {
	f := programmed(t)
	f.FailNext(unix.ENFILE)
	if err := f.Spend(key2, time.Minute); !errors.Is(err, unix.ENFILE) {
		t.Fatalf("Spend: %v, want ENFILE", err)
	}
	if err := f.Spend(key2, time.Minute); err != nil {
		t.Fatalf("the Spend after: %v", err)
	}
	if keys, err := f.Spent(); err != nil || len(keys) != 2 {
		t.Errorf("Spent: %v, %v; want 2 keys", keys, err)
	}
}

// TestNoTable: without a table, what needs one fails with ENOENT and
// creates none.
func TestNoTable(t *testing.T) {
	for name, op := range map[string]func(f *Fake) error{
		"allow":           func(f *Fake) error { return f.Allow(src4, []uint16{22}, "", 0) },
		"spend":           func(f *Fake) error { return f.Spend(key1, time.Minute) },
		"set first":       func(f *Fake) error { return f.SetFirst(nil) },
		"set SPA key ids": func(f *Fake) error { return f.SetSPAKeys(nil) },
		"allowed":         func(f *Fake) error { _, err := f.Allowed(); return err },
		"spent":           func(f *Fake) error { _, err := f.Spent(); return err },
	} {
		t.Run(name, func(t *testing.T) {
			f := NewFake()
			if err := op(f); !errors.Is(err, unix.ENOENT) {
				t.Errorf("got %v, want ENOENT", err)
			}
			if tab, _ := f.State(); tab != nil {
				t.Errorf("a table appeared: %+v", tab)
			}
		})
	}
	f := NewFake()
	if err := f.Revoke(src4, nil); err != nil {
		t.Errorf("Revoke without a table: %v", err)
	}
	if err := f.Destroy(); err != nil {
		t.Errorf("Destroy without a table: %v", err)
	}
}

// TestApply: the result of Apply on a fresh kernel, on a table left by a
// previous daemon (NewFakeWith), and again on its own table.
func TestApply(t *testing.T) {
	left := state(t, programmed(t))
	for _, tc := range []struct {
		name     string
		f        func() *Fake
		spec     nft.Spec
		want     nft.Result
		carried  int // elements in the table after
		spentLen int
	}{
		{"fresh", NewFake, spec, nft.Result{Gen: nft.GenPersist}, 0, 0},
		{"takeover", func() *Fake { return NewFakeWith(left) }, spec, nft.Result{Gen: nft.GenPersist, TookOver: true, Carried: 2}, 2, 1},
		{"again", func() *Fake { return programmed(t) }, spec, nft.Result{Gen: nft.GenPersist, Carried: 2}, 2, 1},
		{"no owner", NewFake, nft.Spec{Table: "t", NoOwner: true}, nft.Result{Gen: nft.GenNone}, 0, 0},
		{"no persist", NewFake, nft.Spec{Table: "t", NoPersist: true}, nft.Result{Gen: nft.GenOwner}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f()
			res, err := f.Apply(tc.spec)
			if err != nil || res != tc.want {
				t.Fatalf("Apply: %+v, %v; want %+v", res, err, tc.want)
			}
			tab := state(t, f)
			if !reflect.DeepEqual(tab.Spec, tc.spec) || len(tab.Allowed) != tc.carried || len(tab.Spent) != tc.spentLen {
				t.Errorf("table after Apply: %+v; want the spec, %d elements, %d spent", tab, tc.carried, tc.spentLen)
			}
		})
	}
}

// TestNotOurs: a table that is someone else's fails Check and Apply with
// ErrNotOurs, and Apply changes nothing.
func TestNotOurs(t *testing.T) {
	f := NewFake()
	f.SetNotOurs(true)
	if err := f.Check("filter"); !errors.Is(err, nft.ErrNotOurs) {
		t.Errorf("Check: %v, want ErrNotOurs", err)
	}
	if _, err := f.Apply(spec); !errors.Is(err, nft.ErrNotOurs) {
		t.Errorf("Apply: %v, want ErrNotOurs", err)
	}
	if tab, _ := f.State(); tab != nil {
		t.Errorf("Apply made a table: %+v", tab)
	}
	f.SetNotOurs(false)
	if err := f.Check("filter"); err != nil {
		t.Errorf("Check after SetNotOurs(false): %v", err)
	}
}

// TestRevoke: Revoke closes the ports given (nil: all) of one source;
// absent elements are no error.
func TestRevoke(t *testing.T) {
	for _, tc := range []struct {
		name  string
		src   netip.Addr
		ports []uint16
		want  []nft.Element
	}{
		{"one port", src4, []uint16{443}, []nft.Element{
			{Addr: src4, Port: 22, User: "alice", Timeout: time.Hour, Expires: time.Hour},
			{Addr: src6, Port: 22, User: "bob"},
		}},
		{"every port", src4, nil, []nft.Element{{Addr: src6, Port: 22, User: "bob"}}},
		{"absent port", src6, []uint16{443}, []nft.Element{
			{Addr: src4, Port: 22, User: "alice", Timeout: time.Hour, Expires: time.Hour},
			{Addr: src4, Port: 443, User: "alice", Timeout: time.Hour, Expires: time.Hour},
			{Addr: src6, Port: 22, User: "bob"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := programmed(t)
			if err := f.Allow(src6, []uint16{22}, "bob", 0); err != nil {
				t.Fatal(err)
			}
			if err := f.Revoke(tc.src, tc.ports); err != nil {
				t.Fatal(err)
			}
			if got, err := f.Allowed(); err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Allowed: %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestOpenedSourcesAndSpent: OpenedSources counts sources, not ports, per
// family; a key spent again keeps its first ttl; Spent is in key order.
func TestOpenedSourcesAndSpent(t *testing.T) {
	f := programmed(t)
	if err := f.Allow(src6, []uint16{22}, "", 0); err != nil {
		t.Fatal(err)
	}
	if v4, v6 := f.OpenedSources(); v4 != 1 || v6 != 1 {
		t.Errorf("OpenedSources: %d, %d; want 1, 1", v4, v6)
	}
	for _, k := range [][16]byte{key2, key1} {
		if err := f.Spend(k, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	want := []nft.SpentKey{{Key: key1, Expires: time.Minute}, {Key: key2, Expires: time.Hour}}
	if got, err := f.Spent(); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Spent: %+v, %v; want %+v", got, err, want)
	}
}

// TestDestroyCloseAndRepair: a repair puts back the table with what the
// Fake opened and spent; Close leaves the table; Destroy deletes it and
// forgets the record.
func TestDestroyCloseAndRepair(t *testing.T) {
	f := programmed(t)
	before := state(t, f)
	if r := repair(t, f); r != (nft.Repair{Table: spec.Table, Changed: "table deleted"}) {
		t.Errorf("repair: %+v", r)
	}
	if got := state(t, f); !reflect.DeepEqual(got, before) {
		t.Errorf("after the repair: %+v, want %+v", got, before)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if tab, closed := f.State(); tab == nil || !closed {
		t.Errorf("after Close: table %+v, closed %v; want the table, closed", tab, closed)
	}
	if err := f.Destroy(); err != nil {
		t.Fatal(err)
	}
	if tab, _ := f.State(); tab != nil {
		t.Errorf("Destroy left the table: %+v", tab)
	}
	res, err := f.Apply(spec)
	if err != nil || res.Carried != 0 || len(state(t, f).Spent) != 0 {
		t.Errorf("Apply after Destroy: %+v, %v, spent %v; want nothing carried", res, err, state(t, f).Spent)
	}
}
