package main

import (
	"errors"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/nfqknockd/nfqknockd/knock"
	"github.com/nfqknockd/nfqknockd/nft"
	"github.com/nfqknockd/nfqknockd/queue"
)

// shard is one queue with its own tracker. The kernel hashes a source to
// one queue, so shards share no state and the per-packet path takes no
// lock; opens and closes go through the daemon's one ruleset, which
// serializes them.
type shard struct {
	q       *queue.Queue // nil in unit tests: do runs the task at once
	tracker *knock.Tracker
	tracked atomic.Int64 // tracker.Len() for the metrics writer (countTracked)
	m       *metrics
	rules   nft.Interface
	log     *slog.Logger
	ttl     time.Duration
	verbose bool             // -v: log every knock (never its port: the ports are the sequence)
	now     func() time.Time // the time of the packet's batch (queue.Queue.ReadAt)
	k       knock.Knock
	// users are the tracker's users, in its order (Verdict.User indexes
	// them); guard the guarded ports, which an open of a user without
	// ports= opens. Both change only on the reader goroutine.
	users []knock.User
	guard []uint16
	// spent holds, with --one-time or --spa, the one-time sequences and
	// SPA nonces used, across the shards; oneTime says the knocks are
	// one-time sequences, which go through it (C-compatible ones never do).
	spent   *knock.Ledger
	oneTime bool
	// spentSaved asks for the file of the used sequences to be written
	// (--state-dir), after a fresh one.
	spentSaved func()
	hooks      *hooks   // --on-event; nil: none
	spa        *spaGate // --spa; nil: none
}

// handle is called by the queue reader for every packet, before the verdict
// of its batch is sent: a source opened here is in the allow set before the
// knock that completed its sequence is accepted.
func (s *shard) handle(p *queue.Packet) {
	// An IPv4-mapped IPv6 source (::ffff:a.b.c.d) never knocks: it would
	// open the IPv4 address, which did not send the packet.
	if p.Proto == queue.ProtoUDP {
		s.handleSPA(p)
		return
	}
	if !p.BareSYN() || p.Src.Is4In6() {
		return
	}
	if s.verbose {
		s.log.Debug("knock", "source", p.Src)
	}
	s.k = knock.Knock{Src: p.Src, SrcPort: p.SrcPort, DstPort: p.DstPort, Seq: p.Seq}
	now := s.now()
	v := s.tracker.Knock(&s.k, now)
	if s.oneTime && (v.Action == knock.Open || v.Action == knock.Close) {
		s.spend(&v, now)
	}
	switch v.Action {
	case knock.Open:
		s.open(p.Src, s.users[v.User])
	case knock.Close:
		s.close(p.Src, s.users[v.User])
	case knock.Replay:
		s.replay(p.Src, s.users[v.User], v.Kind)
	}
	s.countTracked()
}

// spend marks the one-time sequence of v used in the ledger, which makes v
// a Replay when it was used before: through another queue, or before a
// restart (the ledger was seeded from the table). A fresh one also goes
// into the table's set spent before it opens or closes anything, so that
// the next daemon refuses it too; if that fails (a full set) the sequence
// is still refused from memory, and the open or close goes on.
func (s *shard) spend(v *knock.Verdict, now time.Time) {
	u := s.users[v.User]
	fresh, key, ttl := s.spent.Use(u, v, now)
	if !fresh {
		return
	}
	if s.spentSaved != nil {
		s.spentSaved()
	}
	if err := s.rules.Spend(key, ttl); err != nil {
		s.log.Error("could not keep the used one-time sequence in the table: a restart in its period forgets it", withUser(u, s.k.Src, "err", err)...)
	}
}

func (s *shard) open(src netip.Addr, u knock.User) {
	s.openPorts(src, u, u.Grants(s.guard), s.ttl, "knock")
}

func (s *shard) close(src netip.Addr, u knock.User) {
	s.closePorts(src, u, u.Grants(s.guard), "knock")
}

// openPorts opens ports for src, for ttl, as user u asked by a knock or
// an SPA packet (via).
func (s *shard) openPorts(src netip.Addr, u knock.User, ports []uint16, ttl time.Duration, via string) {
	if err := s.rules.Allow(src, ports, u.Name, ttl); err != nil {
		s.log.Error("open failed", withUser(u, src, "via", via, "err", err)...)
		return
	}
	s.m.opens.Add(1)
	s.log.Info("open", withUser(u, src, "timeout", ttlString(ttl), "ports", portList(ports), "via", via)...)
	s.hooks.emit(hookEvent{Kind: "open", Source: src, User: u.Name, Ports: ports, Detail: spaDetail(via)})
}

// closePorts closes ports for src, as user u asked (via).
func (s *shard) closePorts(src netip.Addr, u knock.User, ports []uint16, via string) {
	if err := s.rules.Revoke(src, ports); err != nil {
		s.log.Error("close failed", withUser(u, src, "via", via, "err", err)...)
		return
	}
	s.m.closes.Add(1)
	s.log.Info("close", withUser(u, src, "ports", portList(ports), "via", via)...)
	s.hooks.emit(hookEvent{Kind: "close", Source: src, User: u.Name, Ports: ports, Detail: spaDetail(via)})
}

// spaDetail is a hook's NFQKNOCK_DETAIL of an open or close: "spa" for
// one by an SPA packet, empty for a knock.
func spaDetail(via string) string {
	if via == "spa" {
		return via
	}
	return ""
}

// replay logs a one-time sequence knocked again in its period: by the
// client that used it (a retry), or by someone who saw it on the wire.
func (s *shard) replay(src netip.Addr, u knock.User, kind knock.Action) {
	s.m.replayed()
	s.log.Warn("replay", withUser(u, src, "sequence", kind.String(), "effect", "none: a one-time sequence works once")...)
	s.hooks.emit(hookEvent{Kind: "replay", Source: src, User: u.Name, Detail: kind.String()})
}

// withUser returns the attributes of a log line about user u: the user's
// name after the source, when the users come from an access file.
func withUser(u knock.User, src netip.Addr, rest ...any) []any {
	attrs := []any{"source", src}
	if u.Name != "" {
		attrs = append(attrs, "user", u.Name)
	}
	return append(attrs, rest...)
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

// shardWait bounds how long a reload waits for a queue reader to take
// the new users: a reader that stopped runs nothing.
const shardWait = 10 * time.Second

// setUsers gives the shard's tracker new users (SIGHUP) and computes their
// sequences, on the reader goroutine, and waits until that is done.
func (s *shard) setUsers(users []knock.User, now time.Time) error {
	errc := make(chan error, 1)
	s.do(func() {
		err := s.tracker.SetUsers(users)
		if err == nil {
			s.users = users
			s.tracker.Prepare(now)
			if s.spa != nil {
				s.spa.setUsers(users)
			}
		}
		errc <- err
	})
	select {
	case err := <-errc:
		return err
	case <-time.After(shardWait):
		return errors.New("the queue reader did not take the new users within " + shardWait.String())
	}
}

func ttlString(d time.Duration) string {
	if d == 0 {
		return "until closed"
	}
	return d.String()
}
