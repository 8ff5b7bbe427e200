package knock

import (
	"encoding/hex"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSpentKey: the keys of used sequences outlive the daemon (the table's
// set spent, the state file), so they are pinned: SHA-256 of SHA-256(secret)
// || period (int64, big-endian) || nonce (uint32, big-endian), cut to 16
// bytes (checked with Python's hashlib).
func TestSpentKey(t *testing.T) {
	for _, tt := range []struct {
		secret string
		period int64
		nonce  uint32
		want   string
	}{
		{"open secret", 1700000000, 7, "d9a6a99546cbbeaf135d43b92f1d8ad0"},
		{"close secret", 1700000000, 1023, "31c4482e0072b8abaa0d5d0d1521c6bd"},
	} {
		k := SpentKey(tt.secret, tt.period, tt.nonce)
		if got := hex.EncodeToString(k[:]); got != tt.want {
			t.Errorf("SpentKey(%q, %d, %d) = %s, want %s", tt.secret, tt.period, tt.nonce, got, tt.want)
		}
	}
}

// TestLedger: a one-time sequence is fresh once, then a Replay until the
// end of its period plus the grace; the open and close sequences of one
// nonce are apart; Seed keeps the later instant of a key, and forgets
// what has ended.
func TestLedger(t *testing.T) {
	const period, grace = time.Hour, time.Minute
	l := NewLedger(period, grace)
	u := User{OpenSecret: "open secret", CloseSecret: "close secret"}
	start := int64(1_700_000_000 / 3600 * 3600)
	now := time.Unix(start, 0).Add(10 * time.Minute)
	open := Verdict{Action: Open, Kind: Open, Seq: SeqID{Period: start, Nonce: 7}}

	v := open
	fresh, key, ttl := l.Use(u, &v, now)
	if !fresh || v.Action != Open || key != SpentKey("open secret", start, 7) || ttl != 51*time.Minute {
		t.Fatalf("first use: fresh %v, %v, key %x, ttl %v", fresh, v.Action, key, ttl)
	}
	v = open
	if fresh, _, ttl := l.Use(u, &v, now.Add(time.Second)); fresh || v.Action != Replay || v.Kind != Open || ttl != 0 {
		t.Errorf("second use: fresh %v, %v of %v, ttl %v; want a replay of open", fresh, v.Action, v.Kind, ttl)
	}
	closing := Verdict{Action: Close, Kind: Close, Seq: open.Seq}
	if fresh, key, _ := l.Use(u, &closing, now); !fresh || closing.Action != Close || key != SpentKey("close secret", start, 7) {
		t.Errorf("close of the same nonce: fresh %v, %v", fresh, closing.Action)
	}
	none := Verdict{}
	if fresh, _, _ := l.Use(u, &none, now); fresh || none.Action != None {
		t.Errorf("Use of a None verdict: fresh %v, %v", fresh, none.Action)
	}
	// After the period and the grace, the sequence is forgotten.
	v = open
	if fresh, _, _ := l.Use(u, &v, time.Unix(start, 0).Add(period+grace)); !fresh {
		t.Errorf("after the period and the grace: %v, want fresh", v.Action)
	}

	l = NewLedger(period, grace)
	a, b := [16]byte{1}, [16]byte{2}
	if n := l.Seed([]Spent{{Key: a, Until: now.Add(time.Minute)}, {Key: b, Until: now}}, now); n != 1 {
		t.Errorf("Seed: holds %d, want 1 (b ends now)", n)
	}
	if n := l.Seed([]Spent{{Key: a, Until: now.Add(time.Second)}, {Key: b, Until: now.Add(time.Hour)}}, now); n != 2 {
		t.Errorf("second Seed: holds %d, want 2", n)
	}
	got := map[[16]byte]time.Time{}
	for _, e := range l.Entries() {
		got[e.Key] = e.Until
	}
	if len(got) != 2 || !got[a].Equal(now.Add(time.Minute)) || !got[b].Equal(now.Add(time.Hour)) {
		t.Errorf("Entries: %v, want a until +1m (the later), b until +1h", got)
	}
}

// TestLedgerShared: shards use one Ledger at once; a sequence is fresh for
// exactly one of them.
func TestLedgerShared(t *testing.T) {
	l := NewLedger(time.Hour, time.Minute)
	u := User{OpenSecret: "open secret", CloseSecret: "close secret"}
	now := time.Unix(1_700_000_000, 0)
	var fresh atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			v := Verdict{Action: Open, Kind: Open, Seq: SeqID{Period: now.Unix() / 3600 * 3600, Nonce: 3}}
			if ok, _, _ := l.Use(u, &v, now); ok {
				fresh.Add(1)
			}
		})
	}
	wg.Wait()
	if n := fresh.Load(); n != 1 {
		t.Errorf("%d shards found the sequence fresh, want 1", n)
	}
}

// TestLedgerSpend: an SPA digest is fresh once, stays spent until its
// instant, is forgotten after it, and survives Entries and Seed.
func TestLedgerSpend(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := NewLedger(time.Hour, 0)
	key := [16]byte{1, 2, 3}
	until := now.Add(2 * time.Minute)
	for _, tc := range []struct {
		at        time.Time
		wantFresh bool
		wantTTL   time.Duration
	}{
		{now, true, 2 * time.Minute},
		{now.Add(time.Second), false, 0},
		{until.Add(-time.Second), false, 0},
		{until, true, 0}, // forgotten at its instant: spent again, until the same instant
	} {
		fresh, ttl := l.Spend(key, until, tc.at)
		if fresh != tc.wantFresh || ttl != tc.wantTTL {
			t.Errorf("Spend at %v = %v, %v; want %v, %v", tc.at.Sub(now), fresh, ttl, tc.wantFresh, tc.wantTTL)
		}
	}
	other := NewLedger(time.Hour, 0)
	other.Seed(l.Entries(), now)
	if fresh, _ := other.Spend(key, until.Add(time.Hour), now); fresh {
		t.Error("a digest seeded from another ledger's entries is fresh")
	}
}
