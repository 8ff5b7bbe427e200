package queue

import (
	"testing"

	"github.com/nfqknockd/nfqknockd/internal/netns"
)

// TestDrops: with nobody reading at first and a tiny receive buffer, the kernel
// numbers every queued SYN, keeps what the buffer holds and lets the rest
// pass (fail-open): Drops counts exactly those, and the kernel's own
// dropped and user-dropped counters of the queue stay 0. A full queue
// (MaxLen) lets packets pass that no counter sees.
func TestDrops(t *testing.T) {
	const sent = 200
	// Fields of the queue's line: packets waiting, dropped, user dropped,
	// last id.
	const waiting, dropped, userDropped, lastID = 2, 5, 6, 7
	t.Run("socket full", func(t *testing.T) {
		e := newEnv(t)
		q, err := Open(Config{Num: testQueue, NetNS: e.fd, Logger: testLogger(t), RcvBuf: 4096, MaxLen: 100000})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { q.Close() })
		e.sendSYNs(t, netns.ClientIP4, netns.ServerIP4, 41000, 9, 1, sent)
		var l []uint64
		var drops uint64
		waitFor(t, "every SYN numbered, held or dropped", func() bool {
			l = e.queueLine(t)
			if drops, err = q.Drops(); err != nil {
				t.Fatalf("Drops: %v", err)
			}
			return l != nil && l[lastID] == sent && l[waiting]+drops == sent
		})
		t.Logf("%d SYNs sent: %d held, Drops %d; queue line %v", sent, l[waiting], drops, l)
		if drops == 0 || l[dropped] != 0 || l[userDropped] != 0 {
			t.Errorf("Drops = %d, kernel dropped %d, user dropped %d; want Drops > 0 and the kernel's counters 0 (fail-open)", drops, l[dropped], l[userDropped])
		}
		if again, err := q.Drops(); err != nil || again != drops {
			t.Errorf("Drops again = %d, %v; want %d", again, err, drops)
		}
		// Read what the buffer held (Close then gets the kernel's answers
		// at once): Received and Drops add up to what was sent.
		_, stop := run(t, q)
		waitFor(t, "the held SYNs read", func() bool { return q.Stats().Received == l[waiting] })
		stop()
	})
	t.Run("queue full", func(t *testing.T) {
		e := newEnv(t)
		const maxLen = 4
		q, err := Open(Config{Num: testQueue, NetNS: e.fd, Logger: testLogger(t), MaxLen: maxLen})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { q.Close() })
		e.sendSYNs(t, netns.ClientIP4, netns.ServerIP4, 41000, 9, 1, sent)
		var l []uint64
		waitFor(t, "the queue to fill", func() bool { l = e.queueLine(t); return l != nil && l[waiting] == maxLen })
		// The other SYNs passed (fail-open) or are about to: none is
		// numbered, and no counter counts them.
		drops, err := q.Drops()
		if err != nil {
			t.Fatalf("Drops: %v", err)
		}
		l = e.queueLine(t)
		t.Logf("%d SYNs sent: queue line %v, Drops %d", sent, l, drops)
		if l[lastID] != maxLen || l[dropped] != 0 || l[userDropped] != 0 || drops != 0 {
			t.Errorf("queue line %v, Drops %d: want %d numbered and every drop counter 0", l, drops, maxLen)
		}
	})
}
