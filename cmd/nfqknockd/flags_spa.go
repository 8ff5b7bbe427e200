package main

import (
	"slices"
	"time"

	"github.com/spf13/pflag"

	"github.com/nfqknockd/nfqknockd/cmd/internal/cli"
)

// Bounds of --spa-window: a packet's time may be this far from the
// daemon's clock, either way.
const (
	defaultSPAWindow = 120 * time.Second // fwknop's default
	maxSPAWindow     = time.Hour
)

// spaConfig is what the flags of single-packet authorization say.
type spaConfig struct {
	// Ports (--spa) are the UDP ports SPA packets are sent to, sorted,
	// without duplicates; none: SPA is off.
	Ports []uint16
	// Only (--spa-only) turns the knock sequences off.
	Only bool
	// Window (--spa-window) is how far a packet's time may be from the
	// daemon's clock.
	Window time.Duration
}

// spaFlags defines --spa, --spa-only and --spa-window on fs, bound to c.
func spaFlags(fs *pflag.FlagSet, c *spaConfig) *cli.DurationValue {
	window := &cli.DurationValue{D: &c.Window, Min: time.Second, Max: maxSPAWindow, Hint: "30s, 2m or 5m"}
	fs.Var(&portsValue{p: &c.Ports}, "spa", "accept single-packet authorization (nfqknock open --spa) on UDP `PORT`s, a comma list such as 62201 or 443,62201: the kernel queues only UDP to them and this host, rate-bound per source, and delivers none of it (default: none)")
	cli.BoolFlag(fs, &c.Only, "spa-only", "", "with --spa: accept SPA packets only, no knock sequence")
	fs.Var(window, "spa-window", "accept an SPA packet whose time is within `DURATION` of this host's clock, either way (1s..1h)")
	return window
}

// checkSPA validates the SPA flags against the others.
func checkSPA(c *config, fs *pflag.FlagSet, window *cli.DurationValue) error {
	s := &c.SPA
	if s.Only && len(s.Ports) == 0 {
		return &cli.UsageError{Msg: "--spa-only: needs --spa PORT: without it nothing would open"}
	}
	if fs.Changed("spa-window") && len(s.Ports) == 0 {
		return style.BadFlag("spa-window", window.Raw, "only meaningful with --spa")
	}
	if s.Only && c.OneTime {
		return &cli.UsageError{Msg: "--spa-only: not with --one-time: --spa-only accepts no knock sequence, one-time or not"}
	}
	slices.Sort(s.Ports)
	s.Ports = slices.Compact(s.Ports)
	return nil
}

// keepsSpent reports whether the daemon keeps used things to refuse them
// again: one-time sequences (--one-time) or SPA packets' nonces (--spa),
// in the ledger, the table's set spent and the state file.
func (c *config) keepsSpent() bool { return c.OneTime || len(c.SPA.Ports) > 0 }

// spentWhat names what the ledger keeps, for the start's log line.
func (c *config) spentWhat() string {
	switch {
	case !c.OneTime:
		return "SPA packets"
	case len(c.SPA.Ports) == 0:
		return "one-time sequences"
	}
	return "one-time sequences and SPA packets"
}

// spaSetting is the start line's spa attribute: the UDP ports, "only"
// when the sequences are off, and the window; "off" without --spa.
func spaSetting(c *config) string {
	if len(c.SPA.Ports) == 0 {
		return "off"
	}
	s := "udp " + portList(c.SPA.Ports) + ", window " + c.SPA.Window.String()
	if c.SPA.Only {
		s += ", only (no knock sequence)"
	}
	return s
}
