package main

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"

	"github.com/nfqknockd/nfqknockd/cmd/internal/spentfile"
	"github.com/nfqknockd/nfqknockd/knock"
	"github.com/nfqknockd/nfqknockd/nft"
)

// spent records the one-time sequences used, for every shard. A tracker
// refuses a sequence it saw used, but the kernel sends each source to one
// queue by address: a replay from another address may reach another
// shard, whose tracker never saw the sequence. So every open and close of
// a one-time sequence also goes through spent, which opens are rare enough
// to lock for.
//
// The shard also writes each fresh key into the table's set spent
// (nft.Interface.Spend), which outlives the daemon on a restart, an upgrade or a
// crash; the next daemon seeds its spent from there (seed), so a sequence
// used before the restart stays used after it.
type spent struct {
	period, grace time.Duration
	mu            sync.Mutex
	used          map[[16]byte]time.Time // key: until when its sequence can be accepted
}

func newSpent(period, grace time.Duration) *spent {
	return &spent{period: period, grace: grace, used: map[[16]byte]time.Time{}}
}

// spentKey names one one-time sequence: a digest of its secret (a user
// renamed at a reload keeps its used sequences, a user given a new secret
// under the same name gets fresh ones), its period and its nonce, cut to
// 16 bytes. It says nothing of the secret nor of the sequence's ports.
func spentKey(secret string, period int64, nonce uint32) [16]byte {
	s := sha256.Sum256([]byte(secret))
	b := make([]byte, 0, len(s)+12)
	b = append(b, s[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(period))
	b = binary.BigEndian.AppendUint32(b, nonce)
	sum := sha256.Sum256(b)
	return [16]byte(sum[:16])
}

// use marks the sequence of v (an Open or Close of u) used at now, and
// reports whether it was unused; when it was, key and ttl are what to
// write into the table (the sequence's key, and the time until the end of
// its period plus the grace, when it can no longer be accepted).
// Sequences past that end are forgotten, which bounds spent to users x 2 x
// OneTimeNonces x 3 sequences.
func (s *spent) use(u knock.User, v knock.Verdict, now time.Time) (fresh bool, key [16]byte, ttl time.Duration) {
	secret := u.OpenSecret
	if v.Kind == knock.Close {
		secret = u.CloseSecret
	}
	key = spentKey(secret, v.Seq.Period, v.Seq.Nonce)
	until := time.Unix(v.Seq.Period, 0).Add(s.period + s.grace)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prune(now)
	if _, ok := s.used[key]; ok {
		return false, key, 0
	}
	s.used[key] = until
	return true, key, until.Sub(now)
}

// seed marks the keys used, for their remaining life from now (what the
// daemon before this one used, read from the table), and returns how many
// it holds then.
func (s *spent) seed(keys []nft.SpentKey, now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		until := now.Add(k.Expires)
		if u, ok := s.used[k.Key]; !ok || u.Before(until) {
			s.used[k.Key] = until
		}
	}
	s.prune(now)
	return len(s.used)
}

// seedFile marks the entries of the state file used until their
// instant, and returns how many sequences it holds then.
func (s *spent) seedFile(entries []spentfile.Entry, now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range entries {
		if u, ok := s.used[e.Key]; !ok || u.Before(e.Until) {
			s.used[e.Key] = e.Until
		}
	}
	s.prune(now)
	return len(s.used)
}

// entries returns the sequences used, for the state file.
func (s *spent) entries() []spentfile.Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]spentfile.Entry, 0, len(s.used))
	for k, u := range s.used {
		out = append(out, spentfile.Entry{Key: k, Until: u})
	}
	return out
}

// prune forgets the sequences that can no longer be accepted at now. The
// caller holds s.mu.
func (s *spent) prune(now time.Time) {
	for k, until := range s.used {
		if !until.After(now) {
			delete(s.used, k)
		}
	}
}
