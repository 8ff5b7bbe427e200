package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nfqknockd/nfqknockd/cmd/internal/spentfile"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/knock"
	"github.com/nfqknockd/nfqknockd/nft/nfttest"
)

// TestServiceStateFileStop: a one-time open just before a stop (no writer
// goroutine ran) is in the state file after it; a daemon started after the
// stop, with an empty table, refuses it as a replay and puts it into its
// table; the file holds digests and times only.
func TestServiceStateFileStop(t *testing.T) {
	ts, _ := newAccessService(t, unitUsers[:1], "--one-time")
	path := spentfile.Path(t.TempDir(), "nfqknock")
	ts.spentPath = path
	p := ts.cfg.Params
	alice := unitUsers[0]
	open := knock.OneTimeSequence(p.Digest, alice.OpenSecret, p.PeriodStart(ts.now), 7, p.Range)
	ts.knock(src4, open)
	if !ts.isOpen(src4) {
		t.Fatalf("the one-time open did not open; log:\n%s", ts.logs)
	}
	if end, done := ts.signal(syscall.SIGTERM); !done || ts.finish(end) != 0 {
		t.Fatal("SIGTERM did not end the daemon with status 0")
	}
	entries, err := spentfile.Read(path, ts.now)
	if err != nil || len(entries) != 1 {
		t.Fatalf("state file after the stop: %v, %v; want one entry", entries, err)
	}
	data, _ := os.ReadFile(path)
	for _, s := range []string{alice.OpenSecret, alice.CloseSecret, alice.Name} {
		if strings.Contains(string(data), s) {
			t.Errorf("the state file shows %q:\n%s", s, data)
		}
	}

	next := nfttest.NewFake()
	ts2 := newTestService(t, next, "--guard", "443", "--access-file", accessPath(t), "--one-time")
	ts2.spentPath = path
	ts2.seedSpent()
	if want := `msg="one-time sequences used before this start are refused" kept=0 from_file=1 used=1`; !strings.Contains(ts2.logs.String(), want) {
		t.Errorf("the start log lacks %s:\n%s", want, ts2.logs)
	}
	attacker := netip.MustParseAddr("10.0.0.66")
	ts2.knock(attacker, open)
	if ts2.isOpen(attacker) || !strings.Contains(ts2.logs.String(), "msg=replay source=10.0.0.66 user=alice sequence=open") {
		t.Fatalf("an open used before the stop was no replay after it; log:\n%s", ts2.logs)
	}
	if tab, _ := next.State(); len(tab.Spent) != 1 {
		t.Errorf("the new table keeps %d used sequences, want the file's 1", len(tab.Spent))
	}
}

// accessPath writes an access file of unitUsers[:1] and returns its path.
func accessPath(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "access")
	if err := os.WriteFile(path, []byte(testutil.AccessText(unitUsers[:1])), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestServiceStateFileCorrupt: a state file that is wrong is logged in
// one line naming the file and what is wrong, and ignored: the daemon
// goes on, and writes a good file in its place.
func TestServiceStateFileCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name, data, err string
	}{
		{"not ours", "hello\n", "line 1: not"},
		{"cut short", spentfile.Header + "\n0123", "line 2: no newline"},
		{"bad time", spentfile.Header + "\n000102030405060708090a0b0c0d0e0f x\n", "line 2: the time is not"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, _ := newAccessService(t, unitUsers[:1], "--one-time")
			path := spentfile.Path(t.TempDir(), "nfqknock")
			if err := os.WriteFile(path, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			ts.spentPath = path
			ts.seedSpent()
			var lines []string
			for _, l := range strings.Split(ts.logs.String(), "\n") {
				if strings.Contains(l, "state file ignored") {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 || !strings.Contains(lines[0], "file="+path) || !strings.Contains(lines[0], path+": "+tc.err) {
				t.Fatalf("log lines of the corrupt file: %q, want one naming %s and %q", lines, path, tc.err)
			}
			if entries, err := spentfile.Read(path, ts.now); err != nil || len(entries) != 0 {
				t.Errorf("the file after the start: %v, %v; want a good one, empty", entries, err)
			}
		})
	}
}
