package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/nfqknockd/nfqknockd/cmd/internal/cli"
)

// Timing of doctor's connect attempts.
const (
	// beforeTimeout bounds the connect before the knock, which a guarded
	// port drops.
	beforeTimeout = 2 * time.Second
	// skewTimeout bounds the connect after each knock of the clock search.
	skewTimeout = time.Second
	// skewPeriods is how many periods before and after this client's the
	// clock search tries.
	skewPeriods = 3
)

// errNotOpened is doctor's failure: the knock did not open PORT. The steps
// printed say why; report prints this line on stderr, exit status 1.
var errNotOpened = errors.New("knocking did not open it")

// dialOutcome is what a connect attempt of doctor saw.
type dialOutcome struct {
	err  error // nil: connected
	took time.Duration
}

func (d dialOutcome) connected() bool { return d.err == nil }

func (d dialOutcome) timedOut() bool {
	var ne net.Error
	return errors.As(d.err, &ne) && ne.Timeout()
}

func (d dialOutcome) refused() bool { return d.err != nil && refused(d.err) }

// String tells what the attempt saw: "connected in 1.2ms", "timed out after
// 2s", "refused", or the error.
func (d dialOutcome) String() string {
	switch {
	case d.connected():
		return "connected in " + d.took.Round(time.Microsecond).String()
	case d.timedOut():
		return "timed out after " + d.took.Round(time.Millisecond).String()
	case d.refused():
		return "refused (a reset)"
	}
	return dialReason(d.err).Error()
}

// doctorRun is one run of doctor: the options, where it prints, and what it
// found.
type doctorRun struct {
	o     *options
	w     io.Writer
	k     *knocker
	ap    netip.AddrPort
	skew  time.Duration // the clock offset with which a knock opened
	cause []string      // the likely causes, most likely first
}

// step prints one step: "name: what".
func (d *doctorRun) step(name, format string, args ...any) {
	if name != "" {
		name += ":"
	}
	fmt.Fprintf(d.w, "%-9s %s\n", name, fmt.Sprintf(format, args...))
}

// doctor checks step by step that knocking opens o.port of o.host: it
// reads the config and secrets as open does (done by parseArgs), resolves
// the host, connects before the knock (a guarded port drops the SYN: a
// timeout), knocks open, connects after (expect success), knocks close,
// and prints on w what it saw (stderr gets the knocks with -v) and, when the knock did not open the port,
// the likely causes in order. It cannot see the server's side: the causes
// are guesses from what a client sees. It returns errNotOpened when the
// knock did not open the port, or an error of the network.
func (o *options) doctor(ctx context.Context, w, stderr io.Writer) error {
	d := &doctorRun{o: o, w: w}
	d.settings()
	addr, err := d.resolve(ctx)
	if err != nil {
		return err
	}
	d.k = o.knocker(addr, stderr)
	d.ap = netip.AddrPortFrom(addr, o.port)
	opened, err := d.check(ctx)
	if err != nil {
		return err
	}
	if !opened {
		d.step("result", "FAILED: knocking did not open %s", d.ap)
		if len(d.cause) > 0 {
			fmt.Fprintln(w, "likely causes, the most likely first:")
			for i, c := range d.cause {
				fmt.Fprintf(w, "  %d. %s\n", i+1, c)
			}
		}
		return fmt.Errorf("doctor %s: %w", d.ap, errNotOpened)
	}
	d.step("result", "OK: knocking opens %s", d.ap)
	return nil
}

// settings prints the settings that make the sequences, and where each
// came from.
func (d *doctorRun) settings() {
	o := d.o
	p := o.params
	d.step("settings", "digest %v (%s), range %d-%d (%s), period %v (%s)%s",
		p.Digest, o.from["digest"], p.Range.Start, p.Range.End, o.from["range"], cli.ShortDuration(p.Period), o.from["period"],
		map[bool]string{true: ", one-time", false: ""}[o.oneTime])
	d.step("secrets", "open from %s, close from %s", o.from["open"], o.from["close"])
	d.step("clock", "%s on this client; the sequences change every %s",
		o.now().UTC().Format(time.RFC3339), cli.ShortDuration(p.Period))
}

// resolve looks the host up in both families and prints what it found;
// it returns the address that open would knock.
func (d *doctorRun) resolve(ctx context.Context) (netip.Addr, error) {
	o := d.o
	var found []string
	for _, fam := range []string{"ip4", "ip6"} {
		if a, err := resolve(ctx, o.host, fam); err == nil {
			found = append(found, fmt.Sprintf("%s %s", map[string]string{"ip4": "IPv4", "ip6": "IPv6"}[fam], a))
		}
	}
	addr, err := resolve(ctx, o.host, o.family)
	if err != nil {
		d.step("resolve", "%s: %v", o.host, err)
		return netip.Addr{}, err
	}
	d.step("resolve", "%s: %s; knocking %s (%s)", o.host, strings.Join(found, ", "), addr, familyName(addr))
	if len(found) == 2 {
		d.step("", "the host has both families: a connection of the other family than the knock's is not opened (-4 or -6 for both)")
	}
	return addr, nil
}

// check runs the steps and reports whether the knock opened the port.
func (d *doctorRun) check(ctx context.Context) (bool, error) {
	before := d.dial(ctx, min(beforeTimeout, d.o.connectTimeout))
	switch {
	case before.timedOut():
		d.step("before", "connect %s: %v: dropped, as nfqknockd's guard drops a port not opened", d.ap, before)
	case before.connected():
		d.step("before", "connect %s: %v: open before any knock", d.ap, before)
		d.cause = append(d.cause, fmt.Sprintf("%s is reachable without a knock: nfqknockd does not guard port %d, or this source is let in by --allow or an open left by an earlier knock (nfqknock close %s)", d.ap, d.ap.Port(), d.o.host))
		return false, nil
	case before.refused():
		d.step("before", "connect %s: %v", d.ap, before)
		d.cause = append(d.cause, fmt.Sprintf("the host answers port %d with a reset: nfqknockd does not guard it (a guarded port drops), and nothing listens on it", d.ap.Port()))
		return false, nil
	case context.Cause(ctx) != nil:
		return false, context.Cause(ctx) // interrupted
	default:
		d.step("before", "connect %s: %v", d.ap, before)
		d.unreachable(before.err)
		return false, nil
	}
	st, opened, err := d.knockAndDial(ctx, 0, d.o.connectTimeout, "open")
	if c := context.Cause(ctx); c != nil {
		return false, c
	}
	if err != nil {
		d.unreachable(err)
		return false, nil
	}
	if !opened {
		d.diagnose(ctx, st)
		return false, context.Cause(ctx)
	}
	d.closeAndCheck(ctx)
	return true, nil
}

// knockAndDial knocks the open sequence of this client's clock shifted by
// skew, then tries to connect for up to total, and prints both.
func (d *doctorRun) knockAndDial(ctx context.Context, skew, total time.Duration, name string) (knockStats, bool, error) {
	at := d.o.now().Add(skew)
	seq, err := d.o.openSequence(at)
	if err != nil {
		return knockStats{}, false, err
	}
	st, err := d.k.knock(ctx, "open", seq)
	if err != nil {
		d.step(name, "open sequence %s: %v", ports(seq), err)
		return st, false, err
	}
	d.step(name, "open sequence %s: %s", ports(seq), describe(st))
	after := d.dialRetry(ctx, total)
	if after.connected() || after.refused() {
		d.step("after", "connect %s: %v: the knock opened it", d.ap, after)
		if after.refused() {
			d.step("", "nothing listens on port %d, though: the reset came from the host", d.ap.Port())
		}
		return st, true, nil
	}
	d.step("after", "connect %s: %v", d.ap, after)
	if !after.timedOut() {
		return st, false, after.err
	}
	return st, false, nil
}

// closeAndCheck knocks close (with the clock offset that opened) and checks
// that the port is dropped again.
func (d *doctorRun) closeAndCheck(ctx context.Context) {
	seq, err := d.o.closeSequence(d.o.now().Add(d.skew))
	if err != nil {
		d.step("close", "%v", err)
		return
	}
	st, err := d.k.knock(ctx, "close", seq)
	if err != nil {
		d.step("close", "close sequence %s: %v", ports(seq), err)
		return
	}
	d.step("close", "close sequence %s: %s", ports(seq), describe(st))
	again := d.dial(ctx, min(beforeTimeout, d.o.connectTimeout))
	if again.timedOut() {
		d.step("closed", "connect %s: %v: dropped again", d.ap, again)
		return
	}
	d.step("closed", "connect %s: %v: not closed (the close secret may differ from the daemon's; the open lasts its --open-timeout)", d.ap, again)
}

// dial makes one connect attempt of up to timeout.
func (d *doctorRun) dial(ctx context.Context, timeout time.Duration) dialOutcome {
	start := time.Now()
	dl := net.Dialer{Timeout: timeout}
	c, err := dl.DialContext(ctx, "tcp", d.ap.String())
	if err == nil {
		c.Close()
	}
	return dialOutcome{err: err, took: time.Since(start)}
}

// dialRetry connects as proxy does, for up to total, without knocking
// again.
func (d *doctorRun) dialRetry(ctx context.Context, total time.Duration) dialOutcome {
	start := time.Now()
	c, err := dialRetry(ctx, d.ap, total, func() error { return nil })
	if err == nil {
		c.Close()
	}
	return dialOutcome{err: err, took: time.Since(start)}
}

// ports returns a sequence as "p1 p2 ...".
func ports(seq []uint16) string {
	return strings.Trim(fmt.Sprint(seq), "[]")
}

// describe tells what the knocks of a sequence saw.
func describe(st knockStats) string {
	return fmt.Sprintf("%d knocks in %v: %d answered (reset), %d timed out",
		st.answered+st.timedOut, st.took.Round(time.Millisecond), st.answered, st.timedOut)
}
