package main

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/nfqknockd/nfqknockd/knock"
)

// spent records the one-time sequences used, for every shard. A tracker
// refuses a sequence it saw used, but the kernel sends each source to one
// queue by address: a replay from another address may reach another
// shard, whose tracker never saw the sequence. So every open and close of
// a one-time sequence also goes through spent, which opens are rare enough
// to lock for.
type spent struct {
	period time.Duration
	mu     sync.Mutex
	used   map[spentKey]struct{}
}

// spentKey names one one-time sequence: a digest of its secret (a user
// renamed at a reload keeps its used sequences, a user given a new secret
// under the same name gets fresh ones), its period and its nonce.
type spentKey struct {
	secret [16]byte
	period int64
	nonce  uint32
}

func newSpent(period time.Duration) *spent {
	return &spent{period: period, used: map[spentKey]struct{}{}}
}

// use marks the sequence of v (an Open or Close of u) used, and reports
// whether it was unused. Sequences of periods that can no longer be
// accepted (older than the one before v's) are forgotten, which bounds
// spent to users x 2 x OneTimeNonces x 3 sequences.
func (s *spent) use(u knock.User, v knock.Verdict) bool {
	secret := u.OpenSecret
	if v.Kind == knock.Close {
		secret = u.CloseSecret
	}
	sum := sha256.Sum256([]byte(secret))
	k := spentKey{secret: [16]byte(sum[:16]), period: v.Seq.Period, nonce: v.Seq.Nonce}
	oldest := v.Seq.Period - 2*int64(s.period/time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	for old := range s.used {
		if old.period < oldest {
			delete(s.used, old)
		}
	}
	if _, ok := s.used[k]; ok {
		return false
	}
	s.used[k] = struct{}{}
	return true
}
