package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/nfqknockd/nfqknockd/cmd/internal/cli"
	"github.com/nfqknockd/nfqknockd/knock"
)

// show returns the OPEN: and CLOSE: lines at o.at (now when unset), exactly
// as `nfqknockd -s` prints them; with --one-time, the one-time sequences of
// a fresh random nonce each.
func (o *options) show() (string, error) {
	at := o.at
	if at.IsZero() {
		at = time.Now()
	}
	open, err := o.openSequence(at)
	if err != nil {
		return "", err
	}
	close, err := o.closeSequence(at)
	if err != nil {
		return "", err
	}
	return knock.FormatSequences(open, close), nil
}

// openSequence returns the open sequence at t: with --one-time, the one-time
// sequence of a fresh nonce.
func (o *options) openSequence(t time.Time) ([]uint16, error) {
	return o.sequence(false, o.params.OpenSecret, t)
}

// closeSequence returns the close sequence at t: with --one-time, the
// one-time sequence of a fresh nonce.
func (o *options) closeSequence(t time.Time) ([]uint16, error) {
	return o.sequence(true, o.params.CloseSecret, t)
}

// sequence returns the sequence of secret at t, a one-time one with
// --one-time.
func (o *options) sequence(close bool, secret string, t time.Time) ([]uint16, error) {
	p := o.params
	ps := p.PeriodStart(t)
	if !o.oneTime {
		return knock.Sequence(p.Digest, secret, ps, p.Range), nil
	}
	n, err := o.nonces.draw(close, ps)
	if err != nil {
		return nil, err
	}
	return knock.OneTimeSequence(p.Digest, secret, ps, n, p.Range), nil
}

// resolve looks host up once and returns its first address of family ("ip",
// "ip4" or "ip6"). An address literal is taken as it is, zone included
// ("fe80::1%eth0"). A name that does not exist, or has no address of the
// family, is bad input; a resolver that cannot be reached is a network
// failure.
func resolve(ctx context.Context, host, family string) (netip.Addr, error) {
	want := map[string]string{"ip": "IP", "ip4": "IPv4", "ip6": "IPv6"}[family]
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		if family != "ip" && (family == "ip4") != a.Is4() {
			return netip.Addr{}, cli.Usagef("HOST %s: not an %s address", style.Quote(host), want)
		}
		return a, nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, family, host)
	if err != nil {
		if c := context.Cause(ctx); c != nil {
			return netip.Addr{}, fmt.Errorf("resolve %s: %w", host, c)
		}
		var de *net.DNSError
		if errors.As(err, &de) && (de.IsTimeout || de.IsTemporary) && !de.IsNotFound {
			return netip.Addr{}, fmt.Errorf("resolve %s: %w", host, err)
		}
		if errors.As(err, new(*net.AddrError)) {
			return netip.Addr{}, cli.Usagef("HOST %s: unknown host (no %s address)", style.Quote(host), want)
		}
		return netip.Addr{}, cli.Usagef("HOST %s: unknown host (%v)", style.Quote(host), lookupReason(err))
	}
	for _, a := range addrs {
		a = a.Unmap()
		if family == "ip" || (family == "ip4") == a.Is4() {
			return a, nil
		}
	}
	return netip.Addr{}, cli.Usagef("HOST %s: unknown host (no %s address)", style.Quote(host), want)
}

// lookupReason returns the reason of a failed lookup without the repeated
// host name.
func lookupReason(err error) string {
	var de *net.DNSError
	if errors.As(err, &de) {
		return de.Err
	}
	var ae *net.AddrError
	if errors.As(err, &ae) {
		return ae.Err
	}
	return err.Error()
}

// knocker sends knocks to one address.
type knocker struct {
	addr    netip.Addr
	gap     time.Duration // pause between two knocks
	timeout time.Duration // how long one connect attempt may wait
}

// knocker returns the knocker of o for addr.
func (o *options) knocker(addr netip.Addr) *knocker {
	return &knocker{addr: addr, gap: o.gap, timeout: o.knockTimeout}
}

// knock knocks ports in order, with k.gap between two knocks. It stops at
// the first knock that could not be sent, or when ctx ends.
func (k *knocker) knock(ctx context.Context, ports []uint16) error {
	for i, port := range ports {
		if i > 0 && k.gap > 0 {
			t := time.NewTimer(k.gap)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("knock %s: %w", k.addr, context.Cause(ctx))
			case <-t.C:
			}
		}
		if err := k.one(ctx, port); err != nil {
			return err
		}
	}
	return nil
}

// one sends one knock: a TCP connect attempt to port, abandoned after
// k.timeout. Closing a socket whose SYN is unanswered sends nothing, and the
// timeout is below the kernel's first SYN retransmission (1s), so a knock is
// exactly one SYN. An attempt that times out, is refused (the usual answer
// of the daemon's host) or even connects counts as sent; any other error
// means the SYN could not leave or was answered by an ICMP error.
func (k *knocker) one(ctx context.Context, port uint16) error {
	ap := netip.AddrPortFrom(k.addr, port)
	d := net.Dialer{Timeout: k.timeout}
	c, err := d.DialContext(ctx, "tcp", ap.String())
	if err == nil {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // reset: leave no TIME_WAIT behind
		}
		_ = c.Close()
		return nil
	}
	// The errors name the host, never the port: the ports are the
	// period's sequence, and an error may end up in a log.
	if c := context.Cause(ctx); c != nil {
		return fmt.Errorf("knock %s: %w", k.addr, c)
	}
	var ne net.Error
	if refused(err) || (errors.As(err, &ne) && ne.Timeout()) {
		return nil
	}
	return fmt.Errorf("knock %s: %w", k.addr, dialReason(err))
}

// dialReason strips a *net.OpError down to its cause ("connect: network is
// unreachable", "i/o timeout"), since the message already names the address.
func dialReason(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}
