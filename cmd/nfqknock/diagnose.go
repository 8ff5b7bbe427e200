package main

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/nfqknockd/nfqknockd/cmd/internal/cli"
)

// diagnose finds the likely causes when the knock st did not open the
// port, whose connect timed out after it.
//
//   - No knock answered: the daemon's host answers a knock with a reset, as
//     any closed port, so the knocks did not reach it: a firewall on the way
//     drops them, most likely an egress firewall on this side.
//   - The knocks answered: they reached the host. doctor then knocks the
//     open sequences of the periods around this client's clock; when one
//     opens, the clocks differ by about that many periods.
//   - Otherwise the sequences differ from the daemon's: the secrets, or a
//     range, digest or period that is not the daemon's. A client cannot
//     tell which: the secrets come first, unless the range was left at its
//     default, then the digest and period left at theirs, then those given.
func (d *doctorRun) diagnose(ctx context.Context, st knockStats) {
	if st.answered == 0 {
		d.cause = append(d.cause,
			"no knock was answered, while the daemon's host answers each knock with a reset as any closed port: a firewall drops the knocks, most likely an egress firewall on this side (a network that lets only some ports out; try another network)",
			"a firewall in front of the server (a security group, a router) that does not let the knock range in",
			"the host is down")
		return
	}
	d.step("", "the knocks were answered: they reached the host")
	if skew, ok := d.searchClock(ctx); ok {
		d.skew = skew
		ahead := "ahead of"
		if skew > 0 {
			ahead = "behind"
		}
		d.cause = append(d.cause, fmt.Sprintf("clock: this client's clock is about %s %s the server's: the sequence of this clock %s opened (the daemon accepts the neighbouring period's sequence only within its --grace of a change): set both clocks right (NTP; compare date -u on both)",
			cli.ShortDuration(abs(skew)), ahead, signed(skew)))
		d.closeAndCheck(ctx)
		return
	}
	// The range first when left at its default: a daemon behind a firewall
	// is run with a range of its own (README: upstream firewalls), while
	// its digest and period usually keep theirs.
	var first, defaults, given []string
	for _, name := range []string{"range", "digest", "period"} {
		s := d.settingCause(name)
		switch {
		case d.o.from[name] != "default":
			given = append(given, s)
		case name == "range":
			first = append(first, s)
		default:
			defaults = append(defaults, s)
		}
	}
	d.cause = append(d.cause, first...)
	d.cause = append(d.cause, "the secrets differ from the daemon's (open from "+d.o.from["open"]+")")
	d.cause = append(d.cause, defaults...)
	d.cause = append(d.cause, given...)
	d.cause = append(d.cause,
		fmt.Sprintf("clock: the clocks differ by more than %d periods (compare date -u on both)", skewPeriods),
		"nfqknock show "+d.o.host+" here and nfqknockd -s on the server print the sequences of the same settings: different OPEN: lines mean the settings or secrets differ, equal ones a clock or a knock lost on the way")
}

// settingCause words a likely cause about a sequence setting.
func (d *doctorRun) settingCause(name string) string {
	p := d.o.params
	value := map[string]string{
		"range":  fmt.Sprintf("%d-%d", p.Range.Start, p.Range.End),
		"digest": p.Digest.String(),
		"period": cli.ShortDuration(p.Period),
	}[name]
	flag := map[string]string{"range": "-a/-b/--range", "digest": "-d", "period": "--period"}[name]
	if d.o.from[name] == "default" {
		return fmt.Sprintf("%s: this client knocks with the default %s: the daemon's %s must be the same (give it with --%s or in the config)", name, value, flag, name)
	}
	return fmt.Sprintf("%s: %s (%s) differs from the daemon's %s", name, value, d.o.from[name], flag)
}

// searchClock knocks the open sequences of the periods around this client's
// clock, nearest first, until one opens the port, and returns its offset.
func (d *doctorRun) searchClock(ctx context.Context) (time.Duration, bool) {
	period := d.o.params.Period
	for i := 1; i <= skewPeriods; i++ {
		for _, skew := range []time.Duration{-time.Duration(i) * period, time.Duration(i) * period} {
			if ctx.Err() != nil {
				return 0, false
			}
			_, opened, err := d.knockAndDial(ctx, skew, min(skewTimeout, d.o.connectTimeout), "clock "+signed(skew))
			if err != nil {
				return 0, false
			}
			if opened {
				return skew, true
			}
		}
	}
	return 0, false
}

// unreachable adds the cause of a network error of the connect or the
// knock: the host or its network cannot be reached.
func (d *doctorRun) unreachable(err error) {
	var reason string
	switch {
	case errors.Is(err, syscall.ENETUNREACH):
		reason = "no route to its network from here (check this host's routes and connection)"
	case errors.Is(err, syscall.EHOSTUNREACH):
		reason = "a router reports it unreachable, or it does not answer on its link (down?)"
	case errors.Is(err, syscall.EPERM):
		d.cause = append(d.cause, "an egress firewall on this host refuses the connection (operation not permitted comes from the local firewall)")
		return
	case errors.Is(err, syscall.EACCES):
		reason = "a router's firewall refuses it (ICMP administratively prohibited)"
	default:
		reason = dialReason(err).Error()
	}
	d.cause = append(d.cause, fmt.Sprintf("the host is unreachable: %s: %s", d.o.host, reason))
}

// signed prints an offset with its sign: +2h, -1h.
func signed(d time.Duration) string {
	if d < 0 {
		return "-" + cli.ShortDuration(-d)
	}
	return "+" + cli.ShortDuration(d)
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
