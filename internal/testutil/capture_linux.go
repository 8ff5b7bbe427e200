package testutil

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nfqknockd/nfqknockd/internal/netns"
)

// Capture records the bare TCP SYNs and the UDP datagrams that arrive in a
// network namespace, as a sniffer on the server's link would see them: a
// packet socket (AF_PACKET, SOCK_DGRAM, every protocol) bound inside the
// namespace.
type Capture struct {
	fd        int
	stop      atomic.Bool
	mu        sync.Mutex
	syns      []SYN
	datagrams []Datagram
	done      chan struct{}
}

// Datagram is a captured UDP datagram.
type Datagram struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Payload          []byte
}

// NewCapture starts capturing in namespace ns, on every interface but
// loopback, until Close.
func NewCapture(ns string) (*Capture, error) {
	c := &Capture{fd: -1, done: make(chan struct{})}
	err := netns.Do(ns, func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		c.fd = fd
		// A blocked recvfrom is not woken by a close from another
		// thread: read wakes up every 100 ms to see whether to stop.
		tv := unix.Timeval{Usec: 100_000}
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			return fmt.Errorf("packet socket: SO_RCVTIMEO: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	go c.read()
	return c, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// read records packets until the socket is closed.
func (c *Capture) read() {
	defer close(c.done)
	buf := make([]byte, 65536)
	for !c.stop.Load() {
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
				continue
			}
			return
		}
		sll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || sll.Pkttype == unix.PACKET_OUTGOING || sll.Hatype == unix.ARPHRD_LOOPBACK {
			continue
		}
		if d, ok := parseUDP(buf[:n]); ok {
			c.mu.Lock()
			c.datagrams = append(c.datagrams, d)
			c.mu.Unlock()
			continue
		}
		syn, ok := parseSYN(buf[:n])
		if !ok {
			continue
		}
		c.mu.Lock()
		c.syns = append(c.syns, syn)
		c.mu.Unlock()
	}
}

// transport returns the addresses and the transport header and data of
// the IP packet b if it carries protocol proto: IPv4 (with options, not a
// fragment) or IPv6 (the transport right after the fixed header, as the
// tests send it), at least min bytes of it.
func transport(b []byte, proto byte, min int) (src, dst netip.Addr, l4 []byte, ok bool) {
	switch {
	case len(b) >= 20 && b[0]>>4 == 4:
		ihl := int(b[0]&0x0f) * 4
		if b[9] != proto || ihl < 20 || len(b) < ihl+min || binary.BigEndian.Uint16(b[6:8])&0x3fff != 0 {
			return src, dst, nil, false
		}
		return netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20])), b[ihl:], true
	case len(b) >= 40+min && b[0]>>4 == 6 && b[6] == proto:
		return netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40])), b[40:], true
	}
	return src, dst, nil, false
}

// parseSYN returns the bare TCP SYN in the IP packet b (see transport). It
// does not import package queue, whose tests import this package.
func parseSYN(b []byte) (SYN, bool) {
	var s SYN
	var tcp []byte
	var ok bool
	if s.Src, s.Dst, tcp, ok = transport(b, unix.IPPROTO_TCP, 20); !ok {
		return SYN{}, false
	}
	const syn, ack, rst, fin = 0x02, 0x10, 0x04, 0x01
	if tcp[13]&(syn|ack|rst|fin) != syn {
		return SYN{}, false
	}
	s.SrcPort, s.DstPort = binary.BigEndian.Uint16(tcp[0:2]), binary.BigEndian.Uint16(tcp[2:4])
	s.Seq = binary.BigEndian.Uint32(tcp[4:8])
	return s, true
}

// parseUDP returns the UDP datagram in the IP packet b (see transport),
// its payload copied.
func parseUDP(b []byte) (Datagram, bool) {
	var d Datagram
	var udp []byte
	var ok bool
	if d.Src, d.Dst, udp, ok = transport(b, unix.IPPROTO_UDP, 8); !ok {
		return Datagram{}, false
	}
	n := int(binary.BigEndian.Uint16(udp[4:6]))
	if n < 8 || n > len(udp) {
		return Datagram{}, false
	}
	d.SrcPort, d.DstPort = binary.BigEndian.Uint16(udp[0:2]), binary.BigEndian.Uint16(udp[2:4])
	d.Payload = append([]byte(nil), udp[8:n]...)
	return d, true
}

// UDPFrom returns the UDP datagrams captured so far from src, in the
// order they arrived.
func (c *Capture) UDPFrom(src netip.Addr) []Datagram {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Datagram
	for _, d := range c.datagrams {
		if d.Src == src {
			out = append(out, d)
		}
	}
	return out
}

// From returns the SYNs captured so far from src, in the order they
// arrived.
func (c *Capture) From(src netip.Addr) []SYN {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []SYN
	for _, s := range c.syns {
		if s.Src == src {
			out = append(out, s)
		}
	}
	return out
}

// StartCapture is NewCapture for a test: it fails the test on an error,
// and closes the capture when the test ends.
func StartCapture(t testing.TB, ns string) *Capture {
	t.Helper()
	c, err := NewCapture(ns)
	if err != nil {
		t.Fatalf("capture in %s: %v", ns, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Knocks returns the destination ports of syns, the SYNs captured from
// one source, in order: one per connect attempt. A second SYN of one attempt (same ports and
// sequence number: the kernel may give connects to different ports the same
// source port) is a retransmission by the kernel, which the daemon ignores
// and the client avoids by abandoning each attempt long before the kernel's
// 1s timer. It is left out; the test fails when there are two or more. One
// is tolerated: only one attempt is in flight at a time, so a stall of a
// whole second of the test process on a loaded machine can let the kernel
// retransmit one, while a client that waits past 1s has every dropped knock
// retransmitted.
func Knocks(t testing.TB, syns []SYN) []uint16 {
	t.Helper()
	var ports, again []uint16
	seen := map[SYN]bool{}
	for _, s := range syns {
		if seen[s] {
			again = append(again, s.DstPort)
			continue
		}
		seen[s] = true
		ports = append(ports, s.DstPort)
	}
	switch {
	case len(again) > 1:
		t.Errorf("the kernel retransmitted the knocks to %v: the client did not abandon them in time", again)
	case len(again) == 1:
		t.Logf("the kernel retransmitted the knock to %d once: a stall of the test process on a loaded machine?", again[0])
	}
	return ports
}

// Reset forgets what was captured so far.
func (c *Capture) Reset() {
	c.mu.Lock()
	c.syns = nil
	c.mu.Unlock()
}

// Close stops the capture.
func (c *Capture) Close() error {
	c.stop.Store(true)
	<-c.done
	return unix.Close(c.fd)
}
