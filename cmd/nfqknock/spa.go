package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/nfqknockd/nfqknockd/spa"
)

// An SPA packet is sent spaCopies times, spaGap apart: UDP may lose one,
// and the daemon takes the first that arrives and ignores the others as
// copies.
const (
	spaCopies = 3
	spaGap    = 5 * time.Millisecond
)

// spaSender sends SPA packets to one address: the open, close and proxy
// of --spa.
type spaSender struct {
	to    netip.AddrPort
	host  string // HOST as given, for the messages
	key   *spa.Key
	opts  spaOptions
	o     *options  // period and clock
	rand  io.Reader // the nonces: crypto/rand
	trace io.Writer // -v: where the steps are told; nil: quiet
}

// spaSender returns the sender of o for addr, which tells its steps on
// stderr with -v. The key comes from the open secret, as the daemon's.
func (o *options) spaSender(addr netip.Addr, stderr io.Writer) *spaSender {
	s := &spaSender{to: netip.AddrPortFrom(addr, o.spa.port), host: o.host, key: spa.NewKey(o.params.OpenSecret),
		opts: o.spa, o: o, rand: rand.Reader}
	if o.verbose {
		s.trace = stderr
	}
	return s
}

// tracef tells a step with -v.
func (s *spaSender) tracef(format string, args ...any) {
	if s.trace != nil {
		fmt.Fprintf(s.trace, "nfqknock: "+format+"\n", args...)
	}
}

// name returns how the messages name the host, as the knocker's do.
func (s *spaSender) name() string {
	return (&knocker{addr: s.to.Addr(), host: s.host}).name()
}

// packet returns a sealed packet of action at the client's time now, with
// a fresh random nonce, asking what the flags ask.
func (s *spaSender) packet(action spa.Action, now time.Time) ([]byte, error) {
	var nonce [spa.NonceLen]byte
	if _, err := io.ReadFull(s.rand, nonce[:]); err != nil {
		return nil, fmt.Errorf("spa: random nonce: %w", err)
	}
	m := spa.Message{Time: now, Action: action, Ports: s.opts.ports, Duration: s.opts.duration, Address: s.opts.address}
	return spa.Seal(make([]byte, 0, spa.PacketLen), s.key, s.o.params.Period, nonce, &m)
}

// send sends one SPA packet of action to the host, spaCopies times,
// spaGap apart, from one connected UDP socket. It fails at the first copy
// that could not leave, or when ctx ends; an ICMP port unreachable (no
// daemon at the port, or a firewall that rejects) is no failure, as a
// knock's reset is none: SPA gets no answer either way.
func (s *spaSender) send(ctx context.Context, action spa.Action) error {
	fail := func(err error) error { return fmt.Errorf("spa %s %s: %w", action, s.name(), err) }
	pkt, err := s.packet(action, s.o.now())
	if err != nil {
		return fail(err)
	}
	s.tracef("spa %s: one %d-byte packet to %s, UDP port %d: %s", action, len(pkt), s.to.Addr(), s.to.Port(), s.asks(action))
	c, err := dialUDP(ctx, s.to)
	if err != nil {
		return fail(dialReason(err))
	}
	defer c.Close()
	start := time.Now()
	for i := range spaCopies {
		if i > 0 {
			t := time.NewTimer(spaGap)
			select {
			case <-ctx.Done():
				t.Stop()
				return fail(context.Cause(ctx))
			case <-t.C:
			}
		}
		at := time.Since(start).Round(time.Microsecond)
		note := ""
		_, err := c.Write(pkt)
		if refused(err) {
			// The error of an earlier copy, which this write reported
			// instead of sending: send it again.
			note = fmt.Sprintf(" (an ICMP port unreachable answered an earlier copy: no daemon at UDP port %d?)", s.to.Port())
			_, err = c.Write(pkt)
		}
		if err != nil && !refused(err) {
			s.tracef("spa copy %d/%d at +%v: %v", i+1, spaCopies, at, dialReason(err))
			return fail(dialReason(err))
		}
		s.tracef("spa copy %d/%d at +%v: sent%s", i+1, spaCopies, at, note)
	}
	s.tracef("spa %s: %d copies in %v, gap %v", action, spaCopies, time.Since(start).Round(time.Microsecond), spaGap)
	return nil
}

// asks says what a packet of action asks, for -v: its ports, duration
// (open) and address, or the daemon's defaults.
func (s *spaSender) asks(action spa.Action) string {
	ports := "the user's ports"
	if len(s.opts.ports) > 0 {
		var list []string
		for _, p := range s.opts.ports {
			list = append(list, fmt.Sprint(p))
		}
		ports = "ports " + strings.Join(list, ",")
	}
	dur := "the daemon's --open-timeout"
	if s.opts.duration > 0 {
		dur = s.opts.duration.String()
	}
	addr := "the packet's source"
	if s.opts.address.IsValid() {
		addr = s.opts.address.String()
	}
	if action == spa.Close {
		return fmt.Sprintf("asks to close %s of %s", ports, addr)
	}
	return fmt.Sprintf("asks to open %s to %s for %s", ports, addr, dur)
}

// execSPA runs open, close or proxy with SPA packets sent by s.
func (o *options) execSPA(ctx context.Context, s *spaSender, stdin io.Reader, stdout io.Writer) error {
	switch o.cmd {
	case "open":
		return s.send(ctx, spa.Open)
	case "close":
		return s.send(ctx, spa.Close)
	}
	// proxy: a new packet, with a new nonce, for each open; the close also
	// follows a SIGHUP (ssh's end of its ProxyCommand), so not ctx.
	return o.carry(ctx, gate{
		addr:   s.to.Addr(),
		open:   func() error { return s.send(ctx, spa.Open) },
		close:  func() error { return s.send(context.Background(), spa.Close) },
		tracef: s.tracef,
	}, stdin, stdout)
}
