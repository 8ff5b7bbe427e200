package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// holdLimit is how long after its SYN the socket of a knock that timed out
// may be kept open to learn of an ICMP error (see hold): well below the
// kernel's first SYN retransmission (1s), so that a knock stays one SYN.
const holdLimit = 800 * time.Millisecond

// knocker sends knocks to one address.
type knocker struct {
	addr    netip.Addr
	host    string        // HOST as given, for the messages
	gap     time.Duration // pause between two knocks
	timeout time.Duration // how long one connect attempt may wait
	trace   io.Writer     // -v: where the steps are told; nil: quiet
}

// knocker returns the knocker of o for addr, which tells its steps on
// stderr with -v.
func (o *options) knocker(addr netip.Addr, stderr io.Writer) *knocker {
	k := &knocker{addr: addr, host: o.host, gap: o.gap, timeout: o.knockTimeout}
	if o.verbose {
		k.trace = stderr
	}
	return k
}

// outcome is what one knock saw.
type outcome int

const (
	outRefused   outcome = iota // a reset: the usual answer of the daemon's host
	outConnected                // something listens on the port
	outTimedOut                 // no answer within the knock timeout
)

func (o outcome) String() string {
	return [...]string{"refused", "connected", "timed out"}[o]
}

// knockStats sums up a sequence knocked.
type knockStats struct {
	answered, timedOut int           // knocks refused or connected; not answered
	took               time.Duration // from the first SYN to the end
}

// name returns how the messages name the host: HOST, and its address when
// HOST is a name ("knock server.example.org (192.0.2.1)").
func (k *knocker) name() string {
	if a, err := netip.ParseAddr(k.host); (err == nil && a.Unmap() == k.addr) || k.host == "" {
		return k.addr.String()
	}
	return k.host + " (" + k.addr.String() + ")"
}

// tracef tells a step with -v.
func (k *knocker) tracef(format string, args ...any) {
	if k.trace != nil {
		fmt.Fprintf(k.trace, "nfqknock: "+format+"\n", args...)
	}
}

// knock knocks ports in order, with k.gap between two knocks. It stops at
// the first knock that could not be sent or that an ICMP error answered,
// or when ctx ends. what names the sequence for -v (open, close).
//
// A router that reports the host unreachable answers a knock's SYN with an
// ICMP error, which often arrives after the knock timeout. So on Linux the
// socket of a knock that timed out is kept, silent, until holdLimit after
// its SYN (see hold): an error that arrives meanwhile fails the knock. When
// no knock of the sequence was answered, knock waits for such an error
// until holdLimit after the first SYN; a knock answered by a reset, the
// daemon's host's usual answer, shows that the host is reached, and then
// knock does not wait.
func (k *knocker) knock(ctx context.Context, what string, ports []uint16) (knockStats, error) {
	var st knockStats
	h := newHold()
	defer h.close()
	k.tracef("%s: %d knocks at %s, gap %v, knock timeout %v", what, len(ports), k.addr, k.gap, k.timeout)
	start := time.Now()
	fail := func(err error) (knockStats, error) {
		st.took = time.Since(start)
		return st, fmt.Errorf("knock %s: %w", k.name(), err)
	}
	for i, port := range ports {
		if i > 0 && k.gap > 0 {
			t := time.NewTimer(k.gap)
			select {
			case <-ctx.Done():
				t.Stop()
				return fail(context.Cause(ctx))
			case <-t.C:
			}
		}
		if i == 0 {
			start = time.Now() // the times are the send times after the first SYN's
		}
		at := time.Since(start).Round(time.Microsecond)
		out, err := k.one(ctx, port, h)
		if err == nil {
			err = h.check(0)
		}
		if err != nil {
			k.tracef("knock %d/%d port %d at +%v: %v", i+1, len(ports), port, at, err)
			return fail(err)
		}
		k.tracef("knock %d/%d port %d at +%v: %v", i+1, len(ports), port, at, out)
		if out == outTimedOut {
			st.timedOut++
		} else {
			st.answered++
		}
	}
	if wait := time.Until(start.Add(holdLimit)); st.answered == 0 && h.holding() && wait > 0 {
		k.tracef("%s: no knock answered: waiting up to %v for an ICMP error", what, wait.Round(time.Millisecond))
		if err := h.check(wait); err != nil {
			k.tracef("%s: %v", what, err)
			return fail(err)
		}
	}
	st.took = time.Since(start)
	k.tracef("%s: %d knocks in %v: %d answered, %d timed out", what, len(ports), st.took.Round(time.Microsecond), st.answered, st.timedOut)
	return st, nil
}

// one sends one knock: a TCP connect attempt to port, abandoned after
// k.timeout. Closing a socket whose SYN is unanswered sends nothing, and the
// timeout is below the kernel's first SYN retransmission (1s), so a knock is
// exactly one SYN. An attempt that times out, is refused (the usual answer
// of the daemon's host) or even connects counts as sent; any other error
// means the SYN could not leave or was answered by an ICMP error. h may
// keep the socket of an attempt that timed out.
//
// The errors name neither the host nor the port: the caller names the
// host, and the ports are the period's sequence, which an error that ends
// up in a log must not show.
func (k *knocker) one(ctx context.Context, port uint16, h *hold) (outcome, error) {
	ap := netip.AddrPortFrom(k.addr, port)
	d := net.Dialer{Timeout: k.timeout, Control: h.control}
	sent := time.Now()
	c, err := d.DialContext(ctx, "tcp", ap.String())
	if err == nil {
		h.release(false, sent)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // reset: leave no TIME_WAIT behind
		}
		_ = c.Close()
		return outConnected, nil
	}
	var ne net.Error
	out := outRefused
	if !refused(err) {
		out = outTimedOut
	}
	h.release(out == outTimedOut && errors.As(err, &ne) && ne.Timeout(), sent)
	if c := context.Cause(ctx); c != nil {
		return 0, c
	}
	if out == outRefused || (errors.As(err, &ne) && ne.Timeout()) {
		return out, nil
	}
	return 0, dialReason(err)
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
