package main

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/nfqknockd/nfqknockd/knock"
	"github.com/nfqknockd/nfqknockd/queue"
)

// shard is one queue with its own tracker. The kernel hashes a source to
// one queue, so shards share no state and the per-packet path takes no
// lock; opens and closes go through the daemon's one ruleset, which
// serializes them.
type shard struct {
	q       *queue.Queue // nil in unit tests: do runs the task at once
	tracker *knock.Tracker
	rules   ruleset
	log     *slog.Logger
	ttl     time.Duration
	verbose bool             // -v: log every knock (never its port: the ports are the sequence)
	now     func() time.Time // the time of the packet's batch (queue.Queue.ReadAt)
	k       knock.Knock
}

// handle is called by the queue reader for every packet, before the verdict
// of its batch is sent: a source opened here is in the allow set before the
// knock that completed its sequence is accepted.
func (s *shard) handle(p *queue.Packet) {
	// An IPv4-mapped IPv6 source (::ffff:a.b.c.d) never knocks: it would
	// open the IPv4 address, which did not send the packet.
	if !p.BareSYN() || p.Src.Is4In6() {
		return
	}
	if s.verbose {
		s.log.Debug("knock", "source", p.Src)
	}
	s.k = knock.Knock{Src: p.Src, SrcPort: p.SrcPort, DstPort: p.DstPort, Seq: p.Seq}
	switch s.tracker.Knock(&s.k, s.now()).Action {
	case knock.Open:
		s.open(p.Src)
	case knock.Close:
		s.close(p.Src)
	}
}

func (s *shard) open(src netip.Addr) {
	if err := s.rules.Allow(src, s.ttl); err != nil {
		s.log.Error("open failed", "source", src, "err", err)
		return
	}
	s.log.Info("open", "source", src, "timeout", ttlString(s.ttl))
}

func (s *shard) close(src netip.Addr) {
	if err := s.rules.Revoke(src); err != nil {
		s.log.Error("close failed", "source", src, "err", err)
		return
	}
	s.log.Info("close", "source", src)
}

// do runs fn on the shard's reader goroutine (so the tracker needs no
// lock), or at once when the shard has no queue.
func (s *shard) do(fn func()) {
	if s.q == nil {
		fn()
		return
	}
	s.q.Do(fn)
}

// dumpSources logs the knocking sources (SIGUSR2), never their ports.
func (s *shard) dumpSources() {
	n := 0
	s.tracker.Each(func(src netip.Addr, last time.Time, knocks int) {
		n++
		s.log.Info("knocking", "source", src, "last", last.UTC().Format(time.RFC3339), "knocks", knocks)
	})
	s.log.Info("knocking sources", "count", n)
}

// setSecrets gives the shard's tracker new secrets (SIGHUP).
func (s *shard) setSecrets(open, close string) error {
	var err error
	s.do(func() { err = s.tracker.SetSecrets(open, close) })
	return err
}

func ttlString(d time.Duration) string {
	if d == 0 {
		return "until closed"
	}
	return d.String()
}
