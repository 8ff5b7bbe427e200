package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/nfqknockd/nfqknockd/cmd/internal/cli"
)

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
