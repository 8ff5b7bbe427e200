package main

import (
	"context"
	"io"
	"net/netip"

	"golang.org/x/sys/windows"
)

// dialUDP returns a UDP socket that sends to to. Go's net package sets
// SIO_UDP_CONNRESET on every UDP socket it makes on Windows, which Wine
// refuses (WSAEOPNOTSUPP), so the client makes its own: an unconnected
// socket and sendto, which reports no ICMP error of an earlier copy.
func dialUDP(_ context.Context, to netip.AddrPort) (io.WriteCloser, error) {
	family := windows.AF_INET
	var sa windows.Sockaddr = &windows.SockaddrInet4{Port: int(to.Port()), Addr: to.Addr().As4()}
	if to.Addr().Is6() {
		family = windows.AF_INET6
		sa = &windows.SockaddrInet6{Port: int(to.Port()), Addr: to.Addr().As16()}
	}
	fd, err := windows.Socket(family, windows.SOCK_DGRAM, windows.IPPROTO_UDP)
	if err != nil {
		return nil, err
	}
	return &udpSocket{fd: fd, to: sa}, nil
}

// udpSocket sends each Write as one datagram to its address.
type udpSocket struct {
	fd windows.Handle
	to windows.Sockaddr
}

func (u *udpSocket) Write(b []byte) (int, error) {
	if err := windows.Sendto(u.fd, b, 0, u.to); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (u *udpSocket) Close() error { return windows.Closesocket(u.fd) }
