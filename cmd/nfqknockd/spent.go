package main

import (
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

// spentKey names one one-time sequence: its user, kind, period and nonce.
type spentKey struct {
	user   string
	kind   knock.Action
	period int64
	nonce  uint32
}

func newSpent(period time.Duration) *spent {
	return &spent{period: period, used: map[spentKey]struct{}{}}
}

// use marks the sequence of v (an Open or Close of user) used, and reports
// whether it was unused. Sequences of periods that can no longer be
// accepted (older than the one before v's) are forgotten, which bounds
// spent to users x 2 x OneTimeNonces x 3 sequences.
func (s *spent) use(user string, v knock.Verdict) bool {
	k := spentKey{user: user, kind: v.Kind, period: v.Seq.Period, nonce: v.Seq.Nonce}
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
