package main

// Unit tests of --access-file and --one-time through the fake ruleset.

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/knock"
	"github.com/nfqknockd/nfqknockd/nft/nfttest"
	"github.com/nfqknockd/nfqknockd/queue"
)

// unitUsers: alice may open 22, bob 443, carol every guarded port.
var unitUsers = []knock.User{
	{Name: "alice", OpenSecret: "unit-alice-open-secret", CloseSecret: "unit-alice-close-secret", Ports: []uint16{22}},
	{Name: "bob", OpenSecret: "unit-bob-open-secret", CloseSecret: "unit-bob-close-secret", Ports: []uint16{443}},
	{Name: "carol", OpenSecret: "unit-carol-open-secret", CloseSecret: "unit-carol-close-secret"},
}

// newAccessService writes users to an access file and starts a test
// service guarding 22 and 443 with it and extra flags.
func newAccessService(t *testing.T, users []knock.User, extra ...string) (*testService, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "access")
	if err := os.WriteFile(path, []byte(testutil.AccessText(users)), 0o600); err != nil {
		t.Fatal(err)
	}
	return newTestService(t, nfttest.NewFake(), append([]string{"--guard", "443", "--access-file", path}, extra...)...), path
}

// ports returns the ports open for src in the fake table, with their user.
func (ts *testService) ports(src netip.Addr) []string {
	tab, _ := ts.rules.State()
	var out []string
	for e, o := range tab.Allowed {
		if e.Src == src {
			out = append(out, fmt.Sprintf("%d:%s", e.Port, o.User))
		}
	}
	slices.Sort(out)
	return out
}

// TestServiceAccessUsers: each user opens its own ports, named after it;
// a close closes them; SIGHUP without bob closes bob's source and his
// knocks no longer open; a broken file changes nothing.
func TestServiceAccessUsers(t *testing.T) {
	ts, path := newAccessService(t, unitUsers)
	a, b, c := src4, src6, netip.MustParseAddr("10.0.0.3")
	seqs := func(u knock.User) ([]uint16, []uint16) { return ts.sequences(u.OpenSecret, u.CloseSecret) }
	for i, src := range []netip.Addr{a, b, c} {
		open, _ := seqs(unitUsers[i])
		ts.knock(src, open)
	}
	for src, want := range map[netip.Addr]string{a: "[22:alice]", b: "[443:bob]", c: "[22:carol 443:carol]"} {
		if got := fmt.Sprint(ts.ports(src)); got != want {
			t.Errorf("%s opened %s, want %s; log:\n%s", src, got, want, ts.logs)
		}
	}
	_, aliceClose := seqs(unitUsers[0])
	ts.knock(a, aliceClose)
	if got := ts.ports(a); len(got) != 0 {
		t.Errorf("alice's close left %v", got)
	}
	for _, want := range []string{"msg=open source=10.0.0.2 user=alice timeout=1h0m0s", "msg=close source=10.0.0.2 user=alice", "msg=open source=fd00::2 user=bob"} {
		if !strings.Contains(ts.logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, ts.logs)
		}
	}

	// A broken file: nothing changes.
	if err := os.WriteFile(path, []byte("[alice]\nopen = x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts.signal(syscall.SIGHUP)
	if !strings.Contains(ts.logs.String(), "reload refused") || len(ts.ports(b)) != 1 {
		t.Fatalf("a broken access file: ports of bob %v; log:\n%s", ts.ports(b), ts.logs)
	}
	// bob leaves.
	if err := os.WriteFile(path, []byte(testutil.AccessText([]knock.User{unitUsers[0], unitUsers[2]})), 0o600); err != nil {
		t.Fatal(err)
	}
	ts.signal(syscall.SIGHUP)
	if got := ts.ports(b); len(got) != 0 {
		t.Errorf("bob removed: his source still has %v; log:\n%s", got, ts.logs)
	}
	if want := `msg=close source=fd00::2 port=443 user=bob reason="user removed from the access file"`; !strings.Contains(ts.logs.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, ts.logs)
	}
	bobOpen, _ := seqs(unitUsers[1])
	ts.knock(b, bobOpen)
	if got := ts.ports(b); len(got) != 0 {
		t.Errorf("bob's knock after his removal opened %v", got)
	}
	if got := fmt.Sprint(ts.ports(c)); got != "[22:carol 443:carol]" {
		t.Errorf("carol after bob's removal: %s", got)
	}
	for _, u := range unitUsers {
		if strings.Contains(ts.logs.String(), u.OpenSecret) || strings.Contains(ts.logs.String(), u.CloseSecret) {
			t.Errorf("the log shows a secret of %s", u.Name)
		}
	}
}

// TestServiceOneTimeAcrossShards: a one-time sequence used through one
// shard is a replay through another (the kernel sends another address to
// another queue), for an open and for a close; a new nonce opens.
func TestServiceOneTimeAcrossShards(t *testing.T) {
	ts, _ := newAccessService(t, unitUsers[:1], "--one-time")
	tr, err := knock.NewTracker(ts.cfg.trackerConfig())
	if err != nil {
		t.Fatal(err)
	}
	second := ts.newShard(nil, tr)
	second.rules, second.now = ts.rules, ts.shards[0].now
	ts.shards = append(ts.shards, second)
	knockOn := func(sh *shard, src netip.Addr, ports []uint16) {
		for _, p := range ports {
			ts.seq++
			ts.now = ts.now.Add(10e6)
			sh.handle(&queue.Packet{Src: src, SrcPort: 40000, DstPort: p, Seq: ts.seq, Flags: queue.FlagSYN})
		}
	}
	p := ts.cfg.Params
	alice := unitUsers[0]
	open := knock.OneTimeSequence(p.Digest, alice.OpenSecret, p.PeriodStart(ts.now), 7, p.Range)
	close := knock.OneTimeSequence(p.Digest, alice.CloseSecret, p.PeriodStart(ts.now), 9, p.Range)
	attacker := netip.MustParseAddr("10.0.0.66")

	knockOn(ts.shards[0], src4, open)
	knockOn(second, attacker, open)
	if !ts.isOpen(src4) || ts.isOpen(attacker) {
		t.Fatalf("open: client %v, replay from another shard %v; log:\n%s", ts.isOpen(src4), ts.isOpen(attacker), ts.logs)
	}
	knockOn(ts.shards[0], src4, close)
	knockOn(second, src4, open) // the client's own open, replayed through the other shard
	if ts.isOpen(src4) {
		t.Fatalf("a used open reopened through another shard")
	}
	knockOn(second, src4, knock.OneTimeSequence(p.Digest, alice.OpenSecret, p.PeriodStart(ts.now), 8, p.Range))
	if !ts.isOpen(src4) {
		t.Fatalf("a new nonce did not open")
	}
	knockOn(second, src4, close)
	if !ts.isOpen(src4) {
		t.Fatalf("a used close closed again through another shard")
	}
	logs := ts.logs.String()
	for _, want := range []string{"msg=replay source=10.0.0.66 user=alice sequence=open", "msg=replay source=10.0.0.2 user=alice sequence=open", "msg=replay source=10.0.0.2 user=alice sequence=close"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if n := ts.metrics.replays.Load(); n != 3 {
		t.Errorf("replays counted %d, want 3", n)
	}
}

// TestServiceAccessRestartAndPorts: a daemon that takes over the table of
// the daemon before closes what its access file no longer allows (bob,
// removed; alice's port 443, no longer hers) and keeps the rest (carol,
// and alice's 22); a reload that takes a port from a user closes it too.
func TestServiceAccessRestartAndPorts(t *testing.T) {
	users := []knock.User{unitUsers[0], unitUsers[1], unitUsers[2]}
	users[0].Ports = []uint16{22, 443}
	ts, _ := newAccessService(t, users)
	a, b, c := src4, src6, netip.MustParseAddr("10.0.0.3")
	for i, src := range []netip.Addr{a, b, c} {
		open, _ := ts.sequences(users[i].OpenSecret, users[i].CloseSecret)
		ts.knock(src, open)
	}
	if end, done := ts.signal(restartSignal); !done || ts.finish(end) != 0 {
		t.Fatal("the restart signal did not end the daemon with status 0")
	}
	tab, _ := ts.rules.State()

	// The next daemon: alice may open 22 only, bob is gone.
	next := nfttest.NewFakeWith(tab)
	path := filepath.Join(t.TempDir(), "access")
	if err := os.WriteFile(path, []byte(testutil.AccessText([]knock.User{unitUsers[0], unitUsers[2]})), 0o600); err != nil {
		t.Fatal(err)
	}
	ts2 := newTestService(t, next, "--guard", "443", "--access-file", path)
	for src, want := range map[netip.Addr]string{a: "[22:alice]", b: "[]", c: "[22:carol 443:carol]"} {
		if got := fmt.Sprint(ts2.ports(src)); got != want {
			t.Errorf("after the takeover %s has %s, want %s; log:\n%s", src, got, want, ts2.logs)
		}
	}
	for _, want := range []string{
		`msg=close source=10.0.0.2 port=443 user=alice reason="port no longer among the user's ports"`,
		`msg=close source=fd00::2 port=443 user=bob reason="user removed from the access file"`,
	} {
		if !strings.Contains(ts2.logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, ts2.logs)
		}
	}

	// A reload that leaves carol port 22 only closes her 443.
	carol := unitUsers[2]
	carol.Ports = []uint16{22}
	if err := os.WriteFile(path, []byte(testutil.AccessText([]knock.User{unitUsers[0], carol})), 0o600); err != nil {
		t.Fatal(err)
	}
	ts2.signal(syscall.SIGHUP)
	if got := fmt.Sprint(ts2.ports(c)); got != "[22:carol]" {
		t.Errorf("after carol lost 443: %s; log:\n%s", got, ts2.logs)
	}
}

// TestServiceOneTimeRestart: the one-time sequences used before a restart
// stay used after it: the daemon keeps them in the table's set spent, and
// the next daemon, which takes the table over, refuses them as replays
// (an open and a close); a new nonce still opens. Without --one-time
// nothing is written there.
func TestServiceOneTimeRestart(t *testing.T) {
	ts, _ := newAccessService(t, unitUsers[:1], "--one-time")
	p := ts.cfg.Params
	alice := unitUsers[0]
	seq := func(secret string, nonce uint32) []uint16 {
		return knock.OneTimeSequence(p.Digest, secret, p.PeriodStart(ts.now), nonce, p.Range)
	}
	open, close := seq(alice.OpenSecret, 7), seq(alice.CloseSecret, 9)
	ts.knock(src4, open)
	ts.knock(src4, close)
	ts.knock(src4, seq(alice.OpenSecret, 8))
	if !ts.isOpen(src4) {
		t.Fatalf("the one-time opens did not open; log:\n%s", ts.logs)
	}
	if end, done := ts.signal(restartSignal); !done || ts.finish(end) != 0 {
		t.Fatal("the restart signal did not end the daemon with status 0")
	}
	tab, _ := ts.rules.State()
	if len(tab.Spent) != 3 {
		t.Fatalf("the table keeps %d used sequences, want 3: %v", len(tab.Spent), tab.Spent)
	}
	for k, ttl := range tab.Spent {
		// The end of the period plus the grace, from a knock in its first
		// second: a little less than period + grace.
		if ttl <= p.Period || ttl > p.Period+p.Grace {
			t.Errorf("key %x kept for %s, want the rest of the period plus the grace", k, ttl)
		}
	}

	next := nfttest.NewFakeWith(tab)
	path := filepath.Join(t.TempDir(), "access")
	if err := os.WriteFile(path, []byte(testutil.AccessText(unitUsers[:1])), 0o600); err != nil {
		t.Fatal(err)
	}
	ts2 := newTestService(t, next, "--guard", "443", "--access-file", path, "--one-time")
	if want := "kept=3"; !strings.Contains(ts2.logs.String(), want) {
		t.Errorf("the start log lacks %q:\n%s", want, ts2.logs)
	}
	attacker := netip.MustParseAddr("10.0.0.66")
	ts2.knock(attacker, open)
	if ts2.isOpen(attacker) {
		t.Fatalf("an open used before the restart opened after it; log:\n%s", ts2.logs)
	}
	ts2.knock(src4, close)
	if !ts2.isOpen(src4) {
		t.Fatalf("a close used before the restart closed after it; log:\n%s", ts2.logs)
	}
	for _, want := range []string{"msg=replay source=10.0.0.66 user=alice sequence=open", "msg=replay source=10.0.0.2 user=alice sequence=close"} {
		if !strings.Contains(ts2.logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, ts2.logs)
		}
	}
	ts2.knock(attacker, seq(alice.OpenSecret, 10))
	if !ts2.isOpen(attacker) {
		t.Errorf("a new nonce did not open after the restart; log:\n%s", ts2.logs)
	}
	if tab, _ := next.State(); len(tab.Spent) != 4 {
		t.Errorf("the table keeps %d used sequences, want 4", len(tab.Spent))
	}
	for _, s := range []string{alice.OpenSecret, alice.CloseSecret} {
		if strings.Contains(ts2.logs.String(), s) || strings.Contains(ts.logs.String(), s) {
			t.Errorf("a log shows a secret")
		}
	}

	// Without --one-time the set stays empty.
	plain := newTestService(t, nfttest.NewFake(), "-o", testOpen, "-c", testClose)
	o, _ := plain.sequences(testOpen, testClose)
	plain.knock(src4, o)
	if tab, _ := plain.rules.State(); !plain.isOpen(src4) || len(tab.Spent) != 0 {
		t.Errorf("without --one-time: opened %v, spent %v", plain.isOpen(src4), tab.Spent)
	}
}

// TestServiceOneTimeSpendFails: when the table cannot keep a used sequence
// (a full set spent: ENFILE), the daemon logs an error, opens all the same,
// and still refuses the sequence from memory.
func TestServiceOneTimeSpendFails(t *testing.T) {
	ts, _ := newAccessService(t, unitUsers[:1], "--one-time")
	p := ts.cfg.Params
	open := knock.OneTimeSequence(p.Digest, unitUsers[0].OpenSecret, p.PeriodStart(ts.now), 5, p.Range)
	ts.knock(src4, open[:len(open)-1])
	ts.rules.FailNext(unix.ENFILE) // the next operation: the Spend of the last knock
	ts.knock(src4, open[len(open)-1:])
	if !ts.isOpen(src4) {
		t.Fatalf("a failed Spend kept the open from opening; log:\n%s", ts.logs)
	}
	if want := `msg="could not keep the used one-time sequence in the table: a restart in its period forgets it" source=10.0.0.2 user=alice`; !strings.Contains(ts.logs.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, ts.logs)
	}
	attacker := netip.MustParseAddr("10.0.0.66")
	ts.knock(attacker, open)
	if ts.isOpen(attacker) || !strings.Contains(ts.logs.String(), "msg=replay source=10.0.0.66") {
		t.Errorf("the sequence is not refused from memory; log:\n%s", ts.logs)
	}
}
