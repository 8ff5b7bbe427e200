package knock

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"
)

// Spent is a used one-time sequence: its key (SpentKey), and the instant
// until which it could be accepted (after that it needs no keeping).
type Spent struct {
	Key   [16]byte
	Until time.Time
}

// Ledger records the one-time sequences used, for every Tracker of a
// daemon. A Tracker refuses a sequence it saw used, but the kernel sends
// each source to one queue by address: a replay from another address may
// reach another queue's Tracker, which never saw the sequence. So every
// Open and Close of a one-time sequence also goes through the one Ledger
// the Trackers share, which opens are rare enough to lock for: a Ledger
// is safe for concurrent use.
//
// A Ledger does no I/O: what outlives the daemon (the table's set spent
// over a restart, the state file over a stop) is the caller's. The caller
// keeps the key and life that Use returns for a fresh sequence, seeds the
// Ledger with what it kept (Seed), and reads it back (Entries).
type Ledger struct {
	period, grace time.Duration
	mu            sync.Mutex
	used          map[[16]byte]time.Time // key: until when its sequence can be accepted
}

// NewLedger returns an empty Ledger for sequences of the given period and
// grace (Params.Period and Params.Grace).
func NewLedger(period, grace time.Duration) *Ledger {
	return &Ledger{period: period, grace: grace, used: map[[16]byte]time.Time{}}
}

// SpentKey names one one-time sequence: a digest of its secret (a user
// renamed at a reload keeps its used sequences, a user given a new secret
// under the same name gets fresh ones), its period and its nonce, cut to
// 16 bytes. It says nothing of the secret nor of the sequence's ports.
// The keys outlive the daemon (in the table and the state file): they
// must not change from one version to the next.
func SpentKey(secret string, period int64, nonce uint32) [16]byte {
	s := sha256.Sum256([]byte(secret))
	b := make([]byte, 0, len(s)+12)
	b = append(b, s[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(period))
	b = binary.BigEndian.AppendUint32(b, nonce)
	sum := sha256.Sum256(b)
	return [16]byte(sum[:16])
}

// Use marks the sequence of v (an Open or Close of user u, from a one-time
// Tracker) used at now, and reports whether it was unused. When it was
// used before (through another Tracker, or before a restart: see Seed),
// Use makes v a Replay. When it was unused, key and ttl are what to keep
// outside the Ledger: the sequence's key, and the time until the end of
// its period plus the grace, when it can no longer be accepted. A v of
// another action is left alone, and is not fresh.
//
// Sequences past that end are forgotten, which bounds the Ledger to users
// x 2 x OneTimeNonces x 3 sequences.
func (l *Ledger) Use(u User, v *Verdict, now time.Time) (fresh bool, key [16]byte, ttl time.Duration) {
	if v.Action != Open && v.Action != Close {
		return false, key, 0
	}
	secret := u.OpenSecret
	if v.Kind == Close {
		secret = u.CloseSecret
	}
	key = SpentKey(secret, v.Seq.Period, v.Seq.Nonce)
	until := time.Unix(v.Seq.Period, 0).Add(l.period + l.grace)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune(now)
	if _, ok := l.used[key]; ok {
		v.Action = Replay
		return false, key, 0
	}
	l.used[key] = until
	return true, key, until.Sub(now)
}

// Seed marks the sequences of used used until their instant (those the
// daemon before this one used, kept in the table or a file), and returns
// how many sequences the Ledger holds then. A key seeded twice keeps its
// later instant.
func (l *Ledger) Seed(used []Spent, now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range used {
		if u, ok := l.used[e.Key]; !ok || u.Before(e.Until) {
			l.used[e.Key] = e.Until
		}
	}
	l.prune(now)
	return len(l.used)
}

// Entries returns the sequences used, in no order, for the caller to keep.
func (l *Ledger) Entries() []Spent {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Spent, 0, len(l.used))
	for k, u := range l.used {
		out = append(out, Spent{Key: k, Until: u})
	}
	return out
}

// prune forgets the sequences that can no longer be accepted at now. The
// caller holds l.mu.
func (l *Ledger) prune(now time.Time) {
	for k, until := range l.used {
		if !until.After(now) {
			delete(l.used, k)
		}
	}
}

// Spend marks key used until until (an SPA packet's nonce digest: until
// the packet's time is out of the window), and reports whether it was
// unused; ttl is then how long the caller keeps it outside the Ledger.
// Keys share the Ledger with the one-time sequences' (SpentKey), whose
// digests they never meet.
func (l *Ledger) Spend(key [16]byte, until, now time.Time) (fresh bool, ttl time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune(now)
	if _, ok := l.used[key]; ok {
		return false, 0
	}
	l.used[key] = until
	return true, until.Sub(now)
}
