package nft

import (
	"strings"
	"testing"
	"time"
)

// checkSpent checks that c's table holds exactly the keys of want in
// spent, each with some life left and no more than want gives it.
func checkSpent(t *testing.T, c *Conn, when string, want map[[16]byte]time.Duration) []SpentKey {
	t.Helper()
	got, err := c.Spent()
	if err != nil {
		t.Fatalf("%s: Spent: %v", when, err)
	}
	if len(got) != len(want) {
		t.Fatalf("%s: Spent %v, want %d keys", when, got, len(want))
	}
	for i, k := range got {
		max, ok := want[k.Key]
		if !ok || k.Expires <= 0 || k.Expires > max {
			t.Errorf("%s: key %x expires %s; want one of ours, within %s", when, k.Key, k.Expires, max)
		}
		if i > 0 && string(got[i-1].Key[:]) >= string(k.Key[:]) {
			t.Errorf("%s: keys out of order: %v", when, got)
		}
	}
	return got
}

// TestSpentCarried: Spend keeps used one-time sequences in the set spent
// (a key already there is no error, an expired one is not added); they
// survive a restart (a new Conn takes the table over) and a repair of a
// table deleted behind the Conn's back, each with the life it had left;
// Destroy takes them with the table.
func TestSpentCarried(t *testing.T) {
	e := newEnv(t)
	spec := goldenSpec
	spec.NoOwner = true // nft may delete the table, as on a kernel without ownership
	if _, err := e.c.Apply(spec); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if got, err := e.c.Spent(); err != nil || len(got) != 0 {
		t.Fatalf("a new table: Spent %v, %v; want none", got, err)
	}
	k1, k2, k3 := [16]byte{0xfd, 1}, [16]byte{0x20, 2, 0xff}, [16]byte{3}
	want := map[[16]byte]time.Duration{k1: time.Hour, k2: 10 * time.Minute}
	for k, ttl := range want {
		if err := e.c.Spend(k, ttl); err != nil {
			t.Fatalf("Spend %x: %v", k, err)
		}
	}
	if err := e.c.Spend(k1, time.Hour); err != nil {
		t.Errorf("Spend of a key already there: %v", err)
	}
	if err := e.c.Spend(k3, 0); err != nil {
		t.Errorf("Spend of an expired key: %v", err)
	}
	before := checkSpent(t, e.c, "after Spend", want)
	if out := e.mustList(t, DefaultTable); !strings.Contains(out, "set spent {\n\t\ttype ipv6_addr\n\t\tsize 65536\n\t\tflags timeout\n\t\telements = { ") {
		t.Errorf("nft list shows no used sequences in spent:\n%s", out)
	}

	// A restart: the table stays, a new Conn takes it over.
	if err := e.c.Close(); err != nil {
		t.Fatal(err)
	}
	next := e.dial(t)
	if res, err := next.Apply(spec); err != nil || !res.TookOver {
		t.Fatalf("Apply after the restart: %+v, %v", res, err)
	}
	for _, k := range before {
		want[k.Key] = k.Expires // the life it had left, at most
	}
	after := checkSpent(t, next, "after the restart", want)
	if next.spent[k1].IsZero() || next.spent[k2].IsZero() {
		t.Errorf("the new Conn's record lacks the keys it took over: %v", next.spent)
	}

	// The table deleted behind the Conn's back, put back from its record.
	if out, err := e.nft("delete", "table", "inet", DefaultTable); err != nil {
		t.Fatalf("nft delete table: %v: %s", err, out)
	}
	if r := next.repair("table"); r.Err != nil {
		t.Fatalf("repair: %v", r.Err)
	}
	for _, k := range after {
		want[k.Key] = k.Expires
	}
	checkSpent(t, next, "after the repair", want)

	// A stop deletes them with the table.
	if err := next.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := next.Spent(); !IsNotFound(err) {
		t.Errorf("Spent without a table: %v, want ENOENT", err)
	}
	if len(next.spent) != 0 {
		t.Errorf("Destroy kept the record %v", next.spent)
	}
}

// TestSpentTakeoverOldTable: a table made by a version without the set
// spent is taken over (it holds no used sequences) and gets the set.
func TestSpentTakeoverOldTable(t *testing.T) {
	e := newEnv(t)
	spec := goldenSpec
	spec.NoOwner = true
	if _, err := e.c.Apply(spec); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if out, err := e.nft("delete", "set", "inet", DefaultTable, SetSpent); err != nil {
		t.Fatalf("nft delete set: %v: %s", err, out)
	}
	if got, err := e.c.Spent(); err != nil || len(got) != 0 {
		t.Fatalf("a table without spent: Spent %v, %v; want none and no error", got, err)
	}
	next := e.dial(t)
	if res, err := next.Apply(spec); err != nil || !res.TookOver {
		t.Fatalf("takeover of a table without spent: %+v, %v", res, err)
	}
	if err := next.Spend([16]byte{9}, time.Minute); err != nil {
		t.Fatalf("Spend after the takeover: %v", err)
	}
	checkSpent(t, next, "after the takeover", map[[16]byte]time.Duration{{9}: time.Minute})
}
