package fragsyn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"golang.org/x/sys/unix"
)

// run validates p, builds its packets, and exchanges them inside p.NS.
func (p Probe) run(wait time.Duration, fragmented bool) (Reply, error) {
	if err := p.validate(wait, fragmented); err != nil {
		return Reply{}, fmt.Errorf("fragsyn probe: %w", err)
	}
	if p.SrcPort == 0 {
		p.SrcPort = 32768 + binary.BigEndian.Uint16(random(2))%(61000-32768)
	}
	pk := p.build(fragmented)
	var r Reply
	err := netns.Do(p.NS, func() (err error) {
		r, err = p.exchange(pk, wait)
		return err
	})
	if err != nil {
		return Reply{}, fmt.Errorf("fragsyn probe %v:%d -> %v:%d in %s: %w", p.Src, p.SrcPort, p.Dst, p.DstPort, p.NS, err)
	}
	return r, nil
}

// htons converts a 16-bit value to network byte order, for AF_PACKET
// protocol numbers.
func htons(v uint16) uint16 { return v<<8 | v>>8 }

// exchange sends pk and waits for its answer, in the namespace of the calling
// thread (netns.Do has locked it there).
//
// The receiver is an AF_PACKET socket (SOCK_DGRAM, so reads start at the IP
// header) of the probe's family on every interface of the namespace, opened
// before the first packet leaves so no answer can be missed. It sees what
// the client kernel sees, whatever the client's own stack does with it (it
// answers the SYN-ACK with an RST, having no socket).
//
// The sender is a raw socket of protocol IPPROTO_RAW, which implies
// IP_HDRINCL / IPV6_HDRINCL: the kernel sends the headers written here as
// they are (it fills in only the IPv4 header checksum and total length),
// but routes them and resolves the neighbour (ARP or IPv6 neighbour
// discovery) itself, queueing the packets until it has. So no MAC address is
// needed, and no warm-up packet.
func (p Probe) exchange(pk packets, wait time.Duration) (Reply, error) {
	v6 := p.Src.Is6()
	ethP, fam := unix.ETH_P_IP, unix.AF_INET
	if v6 {
		ethP, fam = unix.ETH_P_IPV6, unix.AF_INET6
	}
	rfd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(uint16(ethP))))
	if err != nil {
		return Reply{}, fmt.Errorf("receiver socket (AF_PACKET): %w", err)
	}
	defer unix.Close(rfd)
	sfd, err := unix.Socket(fam, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return Reply{}, fmt.Errorf("sender socket (raw): %w", err)
	}
	defer unix.Close(sfd)
	var sa unix.Sockaddr
	if v6 {
		if err := unix.SetsockoptInt(sfd, unix.IPPROTO_IPV6, unix.IPV6_HDRINCL, 1); err != nil {
			return Reply{}, fmt.Errorf("sender socket: set IPV6_HDRINCL: %w", err)
		}
		sa = &unix.SockaddrInet6{Addr: p.Dst.As16()}
	} else {
		if err := unix.SetsockoptInt(sfd, unix.IPPROTO_IP, unix.IP_HDRINCL, 1); err != nil {
			return Reply{}, fmt.Errorf("sender socket: set IP_HDRINCL: %w", err)
		}
		sa = &unix.SockaddrInet4{Addr: p.Dst.As4()}
	}
	for i, b := range pk.pkts {
		if err := unix.Sendto(sfd, b, 0, sa); err != nil {
			return Reply{}, fmt.Errorf("send packet %d of %d (%d bytes): %w", i+1, len(pk.pkts), len(b), err)
		}
	}
	return p.await(rfd, pk, time.Now().Add(wait))
}

// await reads the receiver rfd until an answer to pk arrives or the deadline
// passes (then the answer is Nothing).
func (p Probe) await(rfd int, pk packets, deadline time.Time) (Reply, error) {
	buf := make([]byte, 2048)
	fds := []unix.PollFd{{Fd: int32(rfd), Events: unix.POLLIN}}
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return Reply{}, nil
		}
		ms := int((left + time.Millisecond - 1) / time.Millisecond)
		if _, err := unix.Poll(fds, ms); err != nil && !errors.Is(err, unix.EINTR) {
			return Reply{}, fmt.Errorf("poll receiver: %w", err)
		}
		for {
			n, from, err := unix.Recvfrom(rfd, buf, unix.MSG_DONTWAIT)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				break
			}
			if err != nil {
				return Reply{}, fmt.Errorf("read receiver: %w", err)
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue // our own probe, or the client's RST
			}
			if r, ok := p.match(buf[:n], pk); ok {
				return r, nil
			}
		}
	}
}
