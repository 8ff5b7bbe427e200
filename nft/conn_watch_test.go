package nft

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// reportTo returns a report function for Watch that sends each repair to
// repairs, until ctx is done: a Watch that repairs in a loop must not block
// the test's end.
// startWatch runs c.Watch until the test ends, and returns the repairs it
// reports. It waits a moment for Watch to join the notification group.
func startWatch(t *testing.T, c *Conn) <-chan Repair {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	repairs := make(chan Repair, 16)
	done := make(chan error, 1)
	go func() { done <- c.Watch(ctx, reportTo(ctx, repairs)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	time.Sleep(100 * time.Millisecond) // Watch has joined the group
	return repairs
}

func reportTo(ctx context.Context, repairs chan<- Repair) func(Repair) {
	return func(r Repair) {
		select {
		case repairs <- r:
		case <-ctx.Done():
		}
	}
}

// bigOpened is how many opened sources per family TestWatchLargeTable
// puts in the table: about the most allow4 and allow6 hold (65,536).
const bigOpened = 65000

// TestWatchLargeTable: with allow4 and allow6 nearly full, one outside
// delete of the watched table (without ownership: the table; owner
// without persist: the backup) is one repair, which succeeds. The
// repair's own notifications (one per element, some 130,000) must neither
// overflow Watch's socket (ENOBUFS would look like lost outside changes:
// a second repair, and so on) nor the answers to the repair's batch the
// writing socket (ENOBUFS for a batch that went through).
func TestWatchLargeTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec func(Spec) Spec
		tbl  string
	}{
		{"none", func(s Spec) Spec { s.NoOwner = true; return s }, DefaultTable},
		{"owner", func(s Spec) Spec { s.NoPersist = true; return s }, BackupTable(DefaultTable)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			spec := tc.spec(goldenSpec)
			if _, err := e.c.Apply(spec); err != nil {
				t.Fatal(err)
			}
			// The record of Allow, filled at once: Apply carries it into
			// the table.
			until := time.Now().Add(time.Hour)
			for i := range bigOpened {
				a4 := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
				a6 := netip.AddrFrom16([16]byte{0: 0xfd, 14: byte(i >> 8), 15: byte(i)})
				e.c.opened[opening{a4, 22}] = openRecord{until: until, user: "alice"}
				e.c.opened[opening{a6, 22}] = openRecord{until: until, user: "alice"}
			}
			start := time.Now()
			if _, err := e.c.Apply(spec); err != nil {
				t.Fatalf("Apply with %d opened sources per family: %v", bigOpened, err)
			}
			t.Logf("Apply with %d opened sources per family: %v", bigOpened, time.Since(start).Round(time.Millisecond))
			repairs := startWatch(t, e.c)
			if out, err := e.nft("delete", "table", "inet", tc.tbl); err != nil {
				t.Fatalf("nft delete table: %v: %s", err, out)
			}
			deleted := time.Now()
			select {
			case r := <-repairs:
				if r.Err != nil || r.Changed != tableDeleted {
					t.Fatalf("repair %+v, want the table put back after %q", r, tableDeleted)
				}
				t.Logf("repaired %v after the delete", time.Since(deleted).Round(time.Millisecond))
			case <-time.After(30 * time.Second):
				t.Fatal("no repair")
			}
			select {
			case r := <-repairs:
				t.Errorf("a second repair for one outside change: %+v", r)
			case <-time.After(3 * time.Second):
			}
			got, err := e.c.Allowed()
			if err != nil || len(got) != 2*bigOpened {
				t.Errorf("after the repair Allowed has %d elements (%v), want %d", len(got), err, 2*bigOpened)
			}
		})
	}
}

// TestWatchTableGoneBefore: a watched table deleted between the Apply and
// the start of Watch (its notifications went to nobody: a flush right at
// the daemon's start) is put back when the watch begins. Without
// ownership (the table) and owner without persist (the backup).
func TestWatchTableGoneBefore(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec func(Spec) Spec
		tbl  string
	}{
		{"none", func(s Spec) Spec { s.NoOwner = true; return s }, DefaultTable},
		{"owner", func(s Spec) Spec { s.NoPersist = true; return s }, BackupTable(DefaultTable)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if _, err := e.c.Apply(tc.spec(goldenSpec)); err != nil {
				t.Fatal(err)
			}
			if out, err := e.nft("delete", "table", "inet", tc.tbl); err != nil {
				t.Fatalf("nft delete table: %v: %s", err, out)
			}
			repairs := startWatch(t, e.c)
			select {
			case r := <-repairs:
				if r.Err != nil || r.Changed != tableGoneBefore {
					t.Fatalf("repair %+v, want the table put back as %q", r, tableGoneBefore)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the table deleted before the watch began was not put back")
			}
			if out, err := e.nft("list", "table", "inet", tc.tbl); err != nil {
				t.Errorf("table inet %s after the repair: %v: %s", tc.tbl, err, out)
			}
		})
	}
}
