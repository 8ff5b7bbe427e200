package nft

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
)

// ownerSpec is goldenSpec as a kernel with the table flag owner but not
// persist (5.12 to 6.8) gets it: an owned table and a backup table.
var ownerSpec = func() Spec { s := goldenSpec; s.Guard = []uint16{22, 443}; s.NoPersist = true; return s }()

// TestOwnerBackup: on a GenOwner kernel (persist switched off) the owned
// table and its backup both guard, each on its own: with the backup
// deleted (and not put back) the owned table keeps the unknocked out, and
// once the owner is gone the backup does, with the opened source and the
// used one-time sequence; the next Conn takes the backup over in one
// transaction. Outside changes reach the backup only, and Watch puts it
// back from the Conn's record; Destroy deletes both.
func TestOwnerBackup(t *testing.T) {
	e := newEnv(t)
	res, err := e.c.Apply(ownerSpec)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if res.Gen != GenOwner {
		t.Fatalf("Apply found %v, want GenOwner", res.Gen)
	}
	backup := BackupTable(DefaultTable)
	main := e.mustList(t, DefaultTable)
	if !strings.Contains(main, "flags owner") || strings.Contains(main, "flags owner,persist") || !strings.Contains(main, commentOwner) {
		t.Errorf("the main table is not owned without persist, or lacks its comment:\n%s", main)
	}
	e.listen(t, 22, 443)
	if err := e.c.Allow(client4, ports(22), "alice", time.Hour); err != nil {
		t.Fatal(err)
	}
	key := spentKey
	if err := e.c.Spend(key, time.Hour); err != nil {
		t.Fatal(err)
	}
	before := e.mustList(t, backup)
	for _, want := range []string{BackupComment, `10.200.0.2 . 22 timeout 1h`, `comment "alice"`, "chain guard", "chain guarded", "set spent"} {
		if !strings.Contains(before, want) {
			t.Errorf("the backup lacks %q:\n%s", want, before)
		}
	}
	if strings.Contains(before, "flags owner") || strings.Contains(before, "chain knock") {
		t.Errorf("the backup is owned or has a knock chain:\n%s", before)
	}
	server := netns.ServerIP4
	e.expect(t, "both tables", server, 22, true)
	e.expect(t, "both tables", server, 443, false)

	checkBackupWatch(t, e, before)

	// The owned table alone guards.
	if out, err := e.nft("delete", "table", "inet", backup); err != nil {
		t.Fatalf("nft delete table inet %s: %v: %s", backup, err, out)
	}
	e.expect(t, "owned table alone", server, 22, true)
	e.expect(t, "owned table alone", server, 443, false)
	// Opens and closes while the backup is missing (before Watch puts it
	// back) go to the owned table, and the repair takes them from the
	// record.
	if err := e.c.Allow(other4, ports(22), "bob", time.Hour); err != nil {
		t.Fatalf("Allow without the backup: %v", err)
	}
	if err := e.c.Allow(other4, ports(443), "bob", time.Hour); err != nil {
		t.Fatalf("Allow without the backup: %v", err)
	}
	if err := e.c.Revoke(other4, ports(443)); err != nil {
		t.Fatalf("Revoke without the backup: %v", err)
	}
	if _, err := e.c.Apply(ownerSpec); err != nil {
		t.Fatalf("Apply again: %v", err)
	}
	if got := e.mustList(t, backup); !strings.Contains(got, `10.200.0.3 . 22 timeout`) || strings.Contains(got, "10.200.0.3 . 443") {
		t.Errorf("the backup put back lacks what was opened without it, or holds what was closed:\n%s", got)
	}
	if err := e.c.Revoke(other4, nil); err != nil {
		t.Fatal(err)
	}

	// The owner goes (a restart, a crash): the backup alone guards.
	if err := e.c.Close(); err != nil {
		t.Fatal(err)
	}
	if got := e.tables(t); len(got) != 1 || got[0] != backup {
		t.Fatalf("after the owner closed the inet tables are %v, want the backup alone", got)
	}
	e.expect(t, "backup alone", server, 22, true)
	e.expect(t, "backup alone", server, 443, false)

	second := e.dial(t)
	res, err = second.Apply(ownerSpec)
	if err != nil {
		t.Fatalf("takeover: %v", err)
	}
	if !res.TookOver || res.Carried != 1 || res.Gen != GenOwner {
		t.Errorf("takeover result %+v, want TookOver, Carried 1, GenOwner", res)
	}
	if got, err := second.Allowed(); err != nil || len(got) != 1 || got[0].Addr != client4 || got[0].User != "alice" {
		t.Errorf("after the takeover the opened sources are %v (%v), want %s . 22 of alice", got, err, client4)
	}
	if spent, err := second.Spent(); err != nil || len(spent) != 1 || spent[0].Key != key {
		t.Errorf("after the takeover the used one-time sequences are %v (%v), want the one spent", spent, err)
	}
	if !strings.Contains(e.mustList(t, DefaultTable), "flags owner") {
		t.Errorf("the new Conn does not own the table")
	}
	if err := second.Destroy(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if got := e.tables(t); len(got) != 0 {
		t.Errorf("after Destroy the inet tables are %v", got)
	}
}

// checkBackupWatch runs Watch while others change the tables: changes of
// the owned table are refused, and a removed or edited backup (editChanges)
// comes back as it was (before: its listing), one repair for each change.
func checkBackupWatch(t *testing.T, e *env, before string) {
	t.Helper()
	backup := BackupTable(DefaultTable)
	ctx, cancel := context.WithCancel(context.Background())
	repairs := make(chan Repair, 16)
	done := make(chan error, 1)
	go func() { done <- e.c.Watch(ctx, reportTo(ctx, repairs)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	}()
	time.Sleep(100 * time.Millisecond) // Watch has joined the group
	main := normalizeExpiry(normalize(e.mustList(t, DefaultTable)))
	changes := [][]string{
		{"flush", "ruleset"},
		{"delete", "table", "inet", backup},
		{"flush", "chain", "inet", backup, ChainGuarded},
		{"delete", "table", "inet", DefaultTable},
		{"flush", "table", "inet", DefaultTable},
		{"flush", "set", "inet", DefaultTable, SetGuard},
	}
	for _, args := range append(changes, editChanges(backup)...) {
		cmd := strings.Join(args, " ")
		out, err := e.nft(args...)
		if strings.Contains(cmd, DefaultTable) && !strings.Contains(cmd, backup) {
			if err == nil || !strings.Contains(out, "Operation not permitted") {
				t.Errorf("nft %s: %v %s; want Operation not permitted", cmd, err, out)
			}
			continue
		}
		if err != nil {
			t.Fatalf("nft %s: %v: %s", cmd, err, out)
		}
		select {
		case r := <-repairs:
			if r.Err != nil || r.Table != backup {
				t.Fatalf("after nft %s: repair %+v, want the backup put back", cmd, r)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("after nft %s: no repair", cmd)
		}
		select {
		case r := <-repairs:
			t.Errorf("after nft %s: a second repair (%s): one outside change, one repair", cmd, r.Changed)
		case <-time.After(200 * time.Millisecond):
		}
		if got := e.mustList(t, backup); normalizeExpiry(normalize(got)) != normalizeExpiry(normalize(before)) {
			t.Errorf("after nft %s the backup is:\n%s\nwant:\n%s", cmd, got, before)
		}
		if got := normalizeExpiry(normalize(e.mustList(t, DefaultTable))); got != main {
			t.Errorf("after nft %s the owned table changed:\n%s", cmd, got)
		}
	}
}

// TestBackupNameNotOurs: a table named as our backup that someone else
// made is never touched: a GenOwner kernel, which needs the name, refuses
// to start; the other generations leave it alone, through Apply and
// Destroy.
func TestBackupNameNotOurs(t *testing.T) {
	for _, tt := range []struct {
		name string
		spec Spec
		ok   bool
	}{
		{"persist", goldenSpec, true},
		{"owner", ownerSpec, false},
		{"none", func() Spec { s := goldenSpec; s.NoOwner = true; return s }(), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			backup := BackupTable(DefaultTable)
			if out, err := e.nft("add", "table", "inet", backup); err != nil {
				t.Fatalf("nft add table: %v: %s", err, out)
			}
			before := e.mustList(t, backup)
			_, err := e.c.Apply(tt.spec)
			if tt.ok && err != nil {
				t.Fatalf("Apply beside someone else's %s: %v", backup, err)
			}
			if !tt.ok && !errors.Is(err, ErrNotOurs) {
				t.Fatalf("Apply over someone else's %s: %v, want ErrNotOurs", backup, err)
			}
			if err := e.c.Destroy(); (err == nil) != tt.ok {
				t.Fatalf("Destroy: %v", err)
			}
			if after := e.mustList(t, backup); after != before {
				t.Errorf("someone else's %s changed:\n%s\nwas:\n%s", backup, after, before)
			}
			if got := e.tables(t); len(got) != 1 || got[0] != backup {
				t.Errorf("inet tables after Destroy: %v, want %s alone", got, backup)
			}
		})
	}
}

// TestOwnerBackupSPA: with SPA, the backup table holds the set spa and the
// guard's rule that drops SPA datagrams, so that while no daemon runs they
// reach no socket either.
func TestOwnerBackupSPA(t *testing.T) {
	e := newEnv(t)
	s := ownerSpec
	s.SPA = []uint16{62201}
	if _, err := e.c.Apply(s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	backup := e.mustList(t, BackupTable(DefaultTable))
	for _, want := range []string{"set spa {", "elements = { 62201 }", CommentSPADrop} {
		if !strings.Contains(backup, want) {
			t.Errorf("the backup lacks %q:\n%s", want, backup)
		}
	}
	if strings.Contains(backup, "chain spa") || strings.Contains(backup, "sparate") {
		t.Errorf("the backup has SPA's queue chain or rate sets:\n%s", backup)
	}
}
