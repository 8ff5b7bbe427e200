package main

import (
	"crypto/rand"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/knock"
	"github.com/nfqknockd/nfqknockd/nft"
	"github.com/nfqknockd/nfqknockd/nft/nfttest"
	"github.com/nfqknockd/nfqknockd/queue"
	"github.com/nfqknockd/nfqknockd/spa"
)

// spaUsers of the unit tests: alice may open 22 and name an address; bob
// may open 22 and 443 (no ports=), and name none.
var spaUsers = []knock.User{
	{Name: "alice", OpenSecret: "alice spa open", CloseSecret: "alice spa close", Ports: []uint16{22}, SPAAddress: true},
	{Name: "bob", OpenSecret: "bob spa open", CloseSecret: "bob spa close"},
}

// newSPAService is a test service guarding 22 and 443 with spaUsers,
// --spa 62201 and --open-timeout 10m.
func newSPAService(t *testing.T) *testService {
	t.Helper()
	path := filepath.Join(t.TempDir(), "access")
	if err := os.WriteFile(path, []byte(testutil.AccessText(spaUsers)), 0o600); err != nil {
		t.Fatal(err)
	}
	return newTestService(t, nfttest.NewFake(), "--guard", "443", "--access-file", path, "--spa", "62201",
		"--open-timeout", "10m", "--state-dir", "")
}

// spa sends the packet of u's m from src (the clock's time when m has none).
func (ts *testService) spa(src netip.Addr, u knock.User, m spa.Message) []byte {
	ts.t.Helper()
	if m.Time.IsZero() {
		m.Time = ts.now
	}
	var nonce [spa.NonceLen]byte
	rand.Read(nonce[:])
	pkt, err := spa.Seal(nil, spa.NewKey(u.OpenSecret), ts.cfg.Params.Period, nonce, &m)
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.send(src, pkt)
	return pkt
}

// send hands the UDP payload pkt from src to the shard.
func (ts *testService) send(src netip.Addr, pkt []byte) {
	ts.shards[0].handle(&queue.Packet{Proto: queue.ProtoUDP, Src: src, SrcPort: 40000, DstPort: 62201, Payload: pkt})
}

// TestServiceSPA: what an SPA packet opens, for how long, and what is
// refused, counted and logged.
func TestServiceSPA(t *testing.T) {
	alice, bob := spaUsers[0], spaUsers[1]
	other := netip.MustParseAddr("192.0.2.7")
	tests := []struct {
		name    string
		src     netip.Addr
		user    knock.User
		msg     spa.Message
		want    map[uint16]time.Duration // opened ports of target, and their ttl
		target  netip.Addr               // default src
		refused string                   // reason, for a refusal
	}{
		{name: "open: the user's ports, --open-timeout", src: src4, user: bob, msg: spa.Message{Action: spa.Open},
			want: map[uint16]time.Duration{22: 10 * time.Minute, 443: 10 * time.Minute}},
		{name: "ports and a shorter duration", src: src6, user: bob, msg: spa.Message{Action: spa.Open, Ports: []uint16{443}, Duration: time.Minute},
			want: map[uint16]time.Duration{443: time.Minute}},
		{name: "a longer duration is cut to --open-timeout", src: src4, user: alice, msg: spa.Message{Action: spa.Open, Duration: time.Hour},
			want: map[uint16]time.Duration{22: 10 * time.Minute}},
		{name: "a port not the user's", src: src4, user: alice, msg: spa.Message{Action: spa.Open, Ports: []uint16{22, 443}}, refused: "ports"},
		{name: "a port not guarded", src: src4, user: bob, msg: spa.Message{Action: spa.Open, Ports: []uint16{80}}, refused: "ports"},
		{name: "an address, allowed", src: src4, user: alice, msg: spa.Message{Action: spa.Open, Address: other},
			target: other, want: map[uint16]time.Duration{22: 10 * time.Minute}},
		{name: "an address, not allowed", src: src4, user: bob, msg: spa.Message{Action: spa.Open, Address: other}, refused: "address"},
		{name: "too old", src: src4, user: bob, msg: spa.Message{Action: spa.Open, Time: t0.Add(-3 * time.Minute)}, refused: "too_old"},
		{name: "future", src: src4, user: bob, msg: spa.Message{Action: spa.Open, Time: t0.Add(3 * time.Minute)}, refused: "future"},
		{name: "an IPv4-mapped source", src: mapped, user: bob, msg: spa.Message{Action: spa.Open}, refused: "source"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newSPAService(t)
			ts.spa(tc.src, tc.user, tc.msg)
			target := tc.target
			if !target.IsValid() {
				target = tc.src
			}
			tab, _ := ts.rules.State()
			for _, port := range []uint16{22, 443} {
				ttl, open := tab.TTL(target, port)
				want, wantOpen := tc.want[port]
				if open != wantOpen || ttl != want {
					t.Errorf("port %d of %s: open %v for %v, want %v for %v", port, target, open, ttl, wantOpen, want)
				}
			}
			if tc.target.IsValid() && ts.isOpen(tc.src) {
				t.Errorf("the packet's source %s opened too", tc.src)
			}
			counts := ts.spaCounts.sample().byResult()
			if tc.refused == "" {
				if counts["open"] != 1 {
					t.Errorf("counters %v, want 1 open", counts)
				}
				return
			}
			if counts["refused_"+tc.refused] != 1 || counts["open"] != 0 {
				t.Errorf("counters %v, want 1 refused %s", counts, tc.refused)
			}
			if want := "reason=" + tc.refused; !strings.Contains(ts.logs.String(), want) {
				t.Errorf("log lacks %s:\n%s", want, ts.logs)
			}
		})
	}
}

// TestServiceSPAReplayAndClose: the client's copies are counted, not
// logged; the same packet later, or from elsewhere, is a logged replay; a
// close closes; refusals of one reason are logged once a second.
func TestServiceSPAReplayAndClose(t *testing.T) {
	ts := newSPAService(t)
	bob := spaUsers[1]
	pkt := ts.spa(src4, bob, spa.Message{Action: spa.Open})
	ts.send(src4, pkt) // the client's copies
	ts.send(src4, pkt)
	if !ts.isOpen(src4) {
		t.Fatal("not opened")
	}
	if c := ts.spaCounts.sample().byResult(); c["open"] != 1 || c["refused_replay"] != 2 {
		t.Errorf("after the copies: %v, want 1 open, 2 replays", c)
	}
	if strings.Contains(ts.logs.String(), "reason=replay") {
		t.Errorf("a client's copy was logged as a replay:\n%s", ts.logs)
	}
	ts.send(netip.MustParseAddr("10.0.0.3"), pkt)
	if !strings.Contains(ts.logs.String(), `msg="spa refused" source=10.0.0.3 user=bob reason=replay action=open`) {
		t.Errorf("a replay from another address is not logged:\n%s", ts.logs)
	}
	ts.spa(src4, bob, spa.Message{Action: spa.Close})
	if ts.isOpen(src4) {
		t.Fatal("the SPA close did not close")
	}
	ts.now = ts.now.Add(3 * time.Second)
	ts.send(src4, pkt)
	if n := strings.Count(ts.logs.String(), "reason=replay"); n != 2 {
		t.Errorf("the replay from the client's address after 3 s: %d replay lines, want 2:\n%s", n, ts.logs)
	}
	if ts.isOpen(src4) {
		t.Fatal("a replay opened")
	}
	// 100 packets of unknown key ids in the same second: one line.
	for range 100 {
		junk := make([]byte, spa.PacketLen)
		rand.Read(junk)
		junk[0] = spa.Version
		ts.send(src4, junk)
	}
	if n := strings.Count(ts.logs.String(), "reason=key_id"); n != 1 {
		t.Errorf("%d key_id lines for 100 packets in a second, want 1", n)
	}
	ts.now = ts.now.Add(1100 * time.Millisecond)
	ts.send(src4, make([]byte, spa.PacketLen))
	ts.send(src4, append([]byte{spa.Version}, make([]byte, spa.PacketLen-1)...))
	if want := "reason=key_id not_logged_since=99"; !strings.Contains(ts.logs.String(), want) {
		t.Errorf("log lacks %s:\n%s", want, ts.logs)
	}
	if c := ts.spaCounts.sample().byResult(); c["refused_key_id"] != 101 || c["refused_version"] != 1 {
		t.Errorf("counters %v", c)
	}
}

// TestServiceSPAKeepsSequences: with --spa, the C-compatible sequences
// work as without it: the same open sequence opens again in its period
// (they never go through the ledger of used one-time sequences and SPA
// nonces), and an SPA packet opens beside them.
func TestServiceSPAKeepsSequences(t *testing.T) {
	ts := newTestService(t, nfttest.NewFake(), "-o", testOpen, "-c", testClose, "--spa", "62201", "--state-dir", "")
	open, close := ts.sequences(testOpen, testClose)
	for i := range 3 {
		ts.knock(src4, open)
		if !ts.isOpen(src4) {
			t.Fatalf("open %d of the same sequence in its period: not opened:\n%s", i+1, ts.logs)
		}
		ts.knock(src4, close)
		if ts.isOpen(src4) {
			t.Fatalf("close %d: not closed", i+1)
		}
	}
	if strings.Contains(ts.logs.String(), "replay") {
		t.Errorf("a C-compatible sequence was taken for a replay:\n%s", ts.logs)
	}
	ts.spa(src6, knock.User{OpenSecret: testOpen}, spa.Message{Action: spa.Open})
	if !ts.isOpen(src6) {
		t.Errorf("an SPA packet beside the sequences did not open:\n%s", ts.logs)
	}
}

// TestServiceSPAKeyIDs: the key ids the daemon gives the kernel are those
// of every user in force for now, and a reload to other users replaces
// them.
func TestServiceSPAKeyIDs(t *testing.T) {
	ts := newSPAService(t)
	ts.service.clock = nil
	if err := ts.renewSPAKeys(); err != nil {
		t.Fatal(err)
	}
	tab, _ := ts.rules.State()
	have := map[nft.SPAKeyID]bool{}
	for _, id := range tab.Spec.SPAKeys {
		have[id] = true
	}
	now := spa.PeriodOf(time.Now(), ts.cfg.Params.Period)
	for _, u := range spaUsers {
		if !have[nft.SPAKeyID(spa.NewKey(u.OpenSecret).KeyID(now))] {
			t.Errorf("user %s's key id of now is not in the kernel's set", u.Name)
		}
	}
	carol := knock.User{Name: "carol", OpenSecret: "carol spa open", CloseSecret: "carol spa close"}
	if have[nft.SPAKeyID(spa.NewKey(carol.OpenSecret).KeyID(now))] {
		t.Error("a stranger's key id is in the kernel's set")
	}
	// A reload to carol alone: her key id in, the others' out.
	if err := os.WriteFile(ts.cfg.AccessFile, []byte(testutil.AccessText([]knock.User{carol})), 0o600); err != nil {
		t.Fatal(err)
	}
	ts.reload()
	tab, _ = ts.rules.State()
	clear(have)
	for _, id := range tab.Spec.SPAKeys {
		have[id] = true
	}
	if !have[nft.SPAKeyID(spa.NewKey(carol.OpenSecret).KeyID(now))] || have[nft.SPAKeyID(spa.NewKey(spaUsers[0].OpenSecret).KeyID(now))] {
		t.Errorf("after the reload to carol the kernel's key ids are not hers alone:\n%s", ts.logs)
	}
}
