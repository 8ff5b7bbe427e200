package main

// Single-packet authorization (--spa): a shard's handling of a queued UDP
// packet to an SPA port. The kernel has rate-bound it per source and drops
// it after the verdict (nft.addSPA); here it opens, closes or is refused.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nfqknockd/nfqknockd/knock"
	"github.com/nfqknockd/nfqknockd/nft"
	"github.com/nfqknockd/nfqknockd/queue"
	"github.com/nfqknockd/nfqknockd/spa"
)

// Why an SPA packet opened nothing: the packet's own faults (spa's
// errors), then the daemon's refusals.
const (
	spaLength = iota
	spaVersion
	spaKeyID
	spaDecrypt
	spaMessage
	spaTooOld
	spaFuture
	spaReplay  // its nonce was seen before
	spaPorts   // ports the user may not open
	spaAddress // an address named without spa-address = yes
	spaSource  // an IPv4-mapped IPv6 source
	numSPAReasons
)

// spaReasons name the refusals in logs and metrics.
var spaReasons = [numSPAReasons]string{
	spaLength: "length", spaVersion: "version", spaKeyID: "key_id", spaDecrypt: "decrypt",
	spaMessage: "message", spaTooOld: "too_old", spaFuture: "future", spaReplay: "replay",
	spaPorts: "ports", spaAddress: "address", spaSource: "source",
}

// spaErrors map spa's errors to their reasons.
var spaErrors = [...]struct {
	err    error
	reason int
}{
	{spa.ErrLength, spaLength}, {spa.ErrVersion, spaVersion}, {spa.ErrKeyID, spaKeyID},
	{spa.ErrDecrypt, spaDecrypt}, {spa.ErrMessage, spaMessage}, {spa.ErrTooOld, spaTooOld},
	{spa.ErrFuture, spaFuture},
}

// spaCounts are the daemon's SPA counters, which every shard adds to, and
// the times each reason was last logged: a refusal is logged at most once
// a second per reason, with the number refused since the last line.
type spaCounts struct {
	opens, closes atomic.Uint64
	refused       [numSPAReasons]atomic.Uint64
	lastLog       [numSPAReasons]atomic.Int64 // Unix nanoseconds
	unlogged      [numSPAReasons]atomic.Uint64
}

// refuse counts a refusal and reports whether to log it, and how many of
// its reason went unlogged before it.
func (c *spaCounts) refuse(reason int, now time.Time) (log bool, more uint64) {
	c.refused[reason].Add(1)
	last := c.lastLog[reason].Load()
	if now.UnixNano()-last < int64(time.Second) || !c.lastLog[reason].CompareAndSwap(last, now.UnixNano()) {
		c.unlogged[reason].Add(1)
		return false, 0
	}
	return true, c.unlogged[reason].Swap(0)
}

// spaSample is what the metrics file shows of spaCounts.
type spaSample struct {
	opens, closes uint64
	refused       [numSPAReasons]uint64
}

// sample reads the counters.
func (c *spaCounts) sample() *spaSample {
	s := &spaSample{opens: c.opens.Load(), closes: c.closes.Load()}
	for i := range s.refused {
		s.refused[i] = c.refused[i].Load()
	}
	return s
}

// byResult returns the sample for nfqknockd status: open, close, and
// refused_REASON for each reason.
func (s *spaSample) byResult() map[string]uint64 {
	m := map[string]uint64{"open": s.opens, "close": s.closes}
	for r, n := range s.refused {
		m["refused_"+spaReasons[r]] = n
	}
	return m
}

// spaPacketsLine renders byResult's map for a reader: open and close
// first, then the refusals that happened, in the order of spaReasons.
func spaPacketsLine(m map[string]uint64) string {
	line := fmt.Sprintf("open %d, close %d", m["open"], m["close"])
	for _, r := range spaReasons {
		if n := m["refused_"+r]; n > 0 {
			line += fmt.Sprintf(", refused %s %d", r, n)
		}
	}
	return line
}

// spaGate is a shard's SPA: the users' keys, and the packets it opened
// lately, to tell the client's copies of a packet from a replay.
type spaGate struct {
	opener         *spa.Opener
	period, window time.Duration
	counts         *spaCounts
	msg            spa.Message
	recent         [16]recentSPA
	next           int
}

// recentSPA is a packet that opened or closed: its nonce's digest, its
// source, and when.
type recentSPA struct {
	digest [16]byte
	src    netip.Addr
	at     time.Time
}

// spaCopyWindow is how long after a packet a copy of it from the same
// source counts as the client's resend, not logged as a replay (the
// client sends each packet three times, milliseconds apart).
const spaCopyWindow = 2 * time.Second

// newSPAGate returns the SPA gate of users, or nil when SPA is off.
func newSPAGate(c *config, users []knock.User, counts *spaCounts) *spaGate {
	if len(c.SPA.Ports) == 0 {
		return nil
	}
	g := &spaGate{period: c.Params.Period, window: c.SPA.Window, counts: counts}
	g.setUsers(users)
	return g
}

// setUsers gives the gate the keys of users (at start, and at a reload).
func (g *spaGate) setUsers(users []knock.User) {
	keys := make([]*spa.Key, len(users))
	for i, u := range users {
		keys[i] = spa.NewKey(u.OpenSecret)
	}
	g.opener = spa.NewOpener(keys, g.period, g.window)
}

// isCopy reports whether a packet of digest from src was opened within
// spaCopyWindow before now, and else remembers nothing.
func (g *spaGate) isCopy(digest [16]byte, src netip.Addr, now time.Time) bool {
	for _, r := range g.recent {
		if r.digest == digest && r.src == src && now.Sub(r.at) < spaCopyWindow {
			return true
		}
	}
	return false
}

// remember keeps a packet that was fresh, for isCopy.
func (g *spaGate) remember(digest [16]byte, src netip.Addr, now time.Time) {
	g.recent[g.next] = recentSPA{digest: digest, src: src, at: now}
	g.next = (g.next + 1) % len(g.recent)
}

// handleSPA decides an SPA packet: refused (counted, logged at most once
// a second per reason), or an open or close of the user whose key it
// carries, for the ports and time it asks within what the user may.
func (s *shard) handleSPA(p *queue.Packet) {
	if s.spa == nil {
		return
	}
	now := s.now()
	u, m, digest, ok := s.openSPA(p, now)
	if !ok {
		return
	}
	target, ports, ttl, ok := s.grantSPA(p.Src, u, m)
	if !ok || !s.spendSPA(digest, p.Src, &u, m, now) {
		return
	}
	if m.Action == spa.Close {
		s.closePorts(target, u, ports, "spa")
		s.spa.counts.closes.Add(1)
		return
	}
	s.openPorts(target, u, ports, ttl, "spa")
	s.spa.counts.opens.Add(1)
}

// openSPA checks and decrypts the packet: its user, its message (the
// gate's, valid until the next packet) and its nonce's digest, or a
// refusal.
func (s *shard) openSPA(p *queue.Packet, now time.Time) (knock.User, *spa.Message, [16]byte, bool) {
	g := s.spa
	if p.Src.Is4In6() {
		s.refuseSPA(spaSource, p.Src, nil)
		return knock.User{}, nil, [16]byte{}, false
	}
	user, digest, err := g.opener.Open(p.Payload, now, &g.msg)
	if err != nil {
		s.refuseSPA(reasonOf(err), p.Src, nil, "skew", skew(err, &g.msg, now))
		return knock.User{}, nil, digest, false
	}
	return s.users[user], &g.msg, digest, true
}

// grantSPA decides what m of user u, from src, opens or closes: the
// address (src, or the one m names when u may), the ports (those m asks
// when all are u's, else u's) and the time (what m asks, at most
// --open-timeout), or a refusal.
func (s *shard) grantSPA(src netip.Addr, u knock.User, m *spa.Message) (netip.Addr, []uint16, time.Duration, bool) {
	target := src
	if m.Address.IsValid() {
		if !u.SPAAddress {
			s.refuseSPA(spaAddress, src, &u, "address", m.Address)
			return target, nil, 0, false
		}
		target = m.Address
	}
	ports := u.Grants(s.guard)
	if len(m.Ports) > 0 {
		for _, want := range m.Ports {
			if !slices.Contains(ports, want) {
				s.refuseSPA(spaPorts, src, &u, "ports", portList(m.Ports))
				return target, nil, 0, false
			}
		}
		ports = slices.Compact(slices.Sorted(slices.Values(m.Ports)))
	}
	ttl := s.ttl
	if m.Duration > 0 && (ttl == 0 || m.Duration < ttl) {
		ttl = m.Duration
	}
	return target, ports, ttl, true
}

// spendSPA marks the packet's nonce used, in the ledger the shards share
// and the table's set spent (and soon the state file), and reports
// whether it was fresh. A packet seen before is a replay: counted, and
// logged unless it is the client's own copy of a packet just taken.
func (s *shard) spendSPA(digest [16]byte, src netip.Addr, u *knock.User, m *spa.Message, now time.Time) bool {
	until := m.Time.Add(s.spa.window + time.Second)
	fresh, ttl := s.spent.Spend(digest, until, now)
	if !fresh {
		if s.spa.isCopy(digest, src, now) {
			s.spa.counts.refused[spaReplay].Add(1)
			return false
		}
		s.refuseSPA(spaReplay, src, u, "action", m.Action.String())
		s.hooks.emit(hookEvent{Kind: "replay", Source: src, User: u.Name, Detail: "spa " + m.Action.String()})
		return false
	}
	s.spa.remember(digest, src, now)
	if s.spentSaved != nil {
		s.spentSaved()
	}
	if err := s.rules.Spend(digest, ttl); err != nil {
		s.log.Error("could not keep the used SPA packet in the table: a restart within its window forgets it", withUser(*u, src, "err", err)...)
	}
	return true
}

// refuseSPA counts an SPA packet from src that opened nothing, and logs
// it at most once a second per reason (u: its user, when known). The log
// never shows the packet.
func (s *shard) refuseSPA(reason int, src netip.Addr, u *knock.User, attrs ...any) {
	log, more := s.spa.counts.refuse(reason, s.now())
	if !log {
		return
	}
	line := []any{"source", src}
	if u != nil && u.Name != "" {
		line = append(line, "user", u.Name)
	}
	line = append(line, "reason", spaReasons[reason])
	for i := 0; i+1 < len(attrs); i += 2 {
		if attrs[i+1] != nil {
			line = append(line, attrs[i], attrs[i+1])
		}
	}
	if more > 0 {
		line = append(line, "not_logged_since", more)
	}
	s.log.Warn("spa refused", line...)
}

// reasonOf returns the reason of an error of spa.Opener.Open.
func reasonOf(err error) int {
	for _, e := range spaErrors {
		if errors.Is(err, e.err) {
			return e.reason
		}
	}
	return spaMessage
}

// skew is, for a packet refused for its time, how far its clock is from
// ours ("+300s": ahead), to tell a client's wrong clock; nil otherwise.
func skew(err error, m *spa.Message, now time.Time) any {
	if !errors.Is(err, spa.ErrTooOld) && !errors.Is(err, spa.ErrFuture) {
		return nil
	}
	return fmt.Sprintf("%+ds", int64(m.Time.Sub(now).Round(time.Second)/time.Second))
}

// spaKeysEvery is how often the daemon renews the SPA key ids the kernel
// lets through (set spakeys): each time for twice as long ahead.
func spaKeysEvery(period time.Duration) time.Duration {
	return max(time.Second, min(30*time.Second, period/4))
}

// spaKeyIDs returns the key ids of the users in force that a shard's
// Opener may meet from now until two renewals later.
func (d *service) spaKeyIDs(now time.Time) []nft.SPAKeyID {
	users := d.secrets().users
	keys := make([]*spa.Key, len(users))
	for i, u := range users {
		keys[i] = spa.NewKey(u.OpenSecret)
	}
	p := d.cfg.Params.Period
	ids := spa.KeyIDs(keys, p, d.cfg.SPA.Window, now, now.Add(2*spaKeysEvery(p)))
	out := make([]nft.SPAKeyID, len(ids))
	for i, id := range ids {
		out[i] = nft.SPAKeyID(id)
	}
	return out
}

// renewSPAKeys gives the kernel the key ids of now (at each renewal, and
// after a reload changed the users).
func (d *service) renewSPAKeys() error {
	return d.rules.SetSPAKeys(d.spaKeyIDs(time.Now()))
}

// keepSPAKeys renews the SPA key ids every spaKeysEvery until ctx is done;
// a failed renewal is logged and tried again a second later.
func (d *service) keepSPAKeys(ctx context.Context) {
	every := spaKeysEvery(d.cfg.Params.Period)
	renewUntilDone(ctx, every, func() time.Duration {
		if err := d.renewSPAKeys(); err != nil {
			d.log.Error("renew the SPA key ids of the kernel filter: SPA packets of a new period are dropped until it works", "err", err)
			return retryRenewal
		}
		return every
	})
}
