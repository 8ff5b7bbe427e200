package main

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/nfqknockd/nfqknockd/cmd/internal/cli"
	"github.com/nfqknockd/nfqknockd/knock"
	"github.com/nfqknockd/nfqknockd/spa"
)

// defaultSPAPort is the UDP port of a bare --spa: fwknop's.
const defaultSPAPort = 62201

// maxSPADuration is the longest open an SPA packet can ask: its field
// counts whole seconds in 32 bits.
const maxSPADuration = math.MaxUint32 * time.Second

// spaFlagNames are the flags that ask something of an SPA packet: valid
// only with --spa.
var spaFlagNames = []string{"spa-ports", "spa-duration", "spa-address"}

// spaOptions are what the SPA flags say: where to send the packet and
// what it asks.
type spaOptions struct {
	port     uint16        // UDP port of the daemon's --spa; 0: knock sequences
	ports    []uint16      // --spa-ports; none: the user's ports
	duration time.Duration // --spa-duration; 0: the daemon's --open-timeout
	address  netip.Addr    // --spa-address; invalid: the packet's source
}

// spaPortValue is --spa[=PORT]: bare, the default port; "no" turns off SPA
// that the config set, "yes" is the bare form (for the config).
type spaPortValue struct {
	p   *uint16
	Raw string
}

// Set parses a port, yes or no.
func (v *spaPortValue) Set(s string) error {
	switch strings.ToLower(s) {
	case "yes", "true", "on":
		*v.p = defaultSPAPort
	case "no", "false", "off":
		*v.p = 0
	default:
		p, err := knock.ParsePort(s)
		if err != nil {
			return errors.New(err.Error() + " (or no value: port " + strconv.Itoa(defaultSPAPort) + ")")
		}
		*v.p = p
	}
	v.Raw = s
	return nil
}

// String returns "": no default in the help.
func (v *spaPortValue) String() string { return "" }

// Type returns "port".
func (v *spaPortValue) Type() string { return "port" }

// spaPortsValue is --spa-ports: a comma list of 1 to spa.MaxPorts ports,
// duplicates dropped. A second flag replaces the first.
type spaPortsValue struct {
	p   *[]uint16
	Raw string
}

// Set parses a comma list of ports.
func (v *spaPortsValue) Set(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("no port: give a comma list such as 22 or 22,443")
	}
	var ports []uint16
	for _, f := range strings.Split(s, ",") {
		p, err := knock.ParsePort(strings.TrimSpace(f))
		if err != nil {
			return fmt.Errorf("%s: %w", style.Quote(f), err)
		}
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	if len(ports) > spa.MaxPorts {
		return fmt.Errorf("%d ports: an SPA packet asks at most %d", len(ports), spa.MaxPorts)
	}
	*v.p, v.Raw = ports, s
	return nil
}

// String returns "": the default, the user's ports, is in the help text.
func (v *spaPortsValue) String() string { return "" }

// Type returns "ports".
func (v *spaPortsValue) Type() string { return "ports" }

// addressValue is --spa-address: an IPv4 or IPv6 address, neither
// IPv4-mapped, unspecified nor with a zone.
type addressValue struct {
	a   *netip.Addr
	Raw string
}

// Set parses an address.
func (v *addressValue) Set(s string) error {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return errors.New("not an IP address: use for example 198.51.100.7 or 2001:db8::7")
	case a.Zone() != "":
		return errors.New("has a zone: give a global address")
	case a.Is4In6():
		return fmt.Errorf("IPv4-mapped: give the IPv4 address %s", a.Unmap())
	case a.IsUnspecified():
		return errors.New("unspecified: give the address to open")
	}
	*v.a, v.Raw = a, s
	return nil
}

// String returns "": the default, the packet's source, is in the help.
func (v *addressValue) String() string { return "" }

// Type returns "address".
func (v *addressValue) Type() string { return "address" }

// spaDurationValue is --spa-duration, whose default, the daemon's
// --open-timeout, is in the help text.
type spaDurationValue struct{ *cli.DurationValue }

// String returns "": no default in the help.
func (v *spaDurationValue) String() string { return "" }

// spaFlags defines --spa and the flags of what an SPA packet asks on fs,
// bound to s; the duration's value comes back for its messages.
func spaFlags(fs *pflag.FlagSet, s *spaOptions) *spaDurationValue {
	d := &spaDurationValue{&cli.DurationValue{D: &s.duration, Min: time.Second, Max: maxSPADuration, Whole: true, Hint: "30s, 10m or 2h", Short: true}}
	fs.VarPF(&spaPortValue{p: &s.port}, "spa", "", "open, close and proxy: send one single-packet authorization (SPA) to UDP `PORT` of HOST, for a daemon run with --spa, instead of knocking; bare --spa: port "+strconv.Itoa(defaultSPAPort)+"; --spa=no: knock, whatever the config says").NoOptDefVal = strconv.Itoa(defaultSPAPort)
	fs.Var(&spaPortsValue{p: &s.ports}, "spa-ports", "with --spa: ask to open only `PORTS`, a comma list of at most "+strconv.Itoa(spa.MaxPorts)+" of your ports (default: all your ports)")
	fs.Var(d, "spa-duration", "with --spa: ask to open for `DURATION`, whole seconds, at most the daemon's --open-timeout (default: the daemon's --open-timeout)")
	fs.Var(&addressValue{a: &s.address}, "spa-address", "with --spa: ask to open `ADDRESS` instead of the packet's source, such as your NAT's public address (the daemon's access file must allow it: spa-address = yes)")
	return d
}

// checkSPA refuses the SPA flags where they mean nothing: each flag of
// what a packet asks without --spa, and --spa or one of them on the
// command line of show and doctor, which are about knock sequences (they
// ignore the config's spa keys).
func (o *options) checkSPA(fs *pflag.FlagSet) error {
	if o.cmd == "show" || o.cmd == "doctor" {
		for _, name := range append([]string{"spa"}, spaFlagNames...) {
			if _, fromConfig := o.origin[name]; fs.Changed(name) && !fromConfig {
				return cli.Usagef("--%s: %s is about knock sequences, not SPA", name, o.cmd)
			}
		}
		o.spa = spaOptions{}
		return nil
	}
	if o.spa.port != 0 {
		return nil
	}
	for _, name := range spaFlagNames {
		if fs.Changed(name) {
			return o.badValue(name, rawValue(fs.Lookup(name).Value), "only meaningful with --spa")
		}
	}
	return nil
}

// rawValue returns the text that set v, one of the SPA flags' values.
func rawValue(v pflag.Value) string {
	switch v := v.(type) {
	case *spaPortsValue:
		return v.Raw
	case *addressValue:
		return v.Raw
	case *spaDurationValue:
		return v.Raw
	}
	return v.String()
}
