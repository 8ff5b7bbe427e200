//go:build !windows

package main

import (
	"context"
	"io"
	"net"
	"net/netip"
)

// dialUDP returns a UDP socket connected to to, which the SPA copies are
// written to.
func dialUDP(ctx context.Context, to netip.AddrPort) (io.WriteCloser, error) {
	var d net.Dialer
	return d.DialContext(ctx, "udp", to.String())
}
