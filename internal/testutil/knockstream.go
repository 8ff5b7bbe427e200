//go:build linux

package testutil

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfqknockd/nfqknockd/internal/netns"
)

// The test networks: a SYN is only ever built from and to these (the
// addresses of netns pairs and syngen's spoofed sources lie in them).
var (
	synNet4 = netip.MustParsePrefix("10.0.0.0/8")
	synNet6 = netip.MustParsePrefix("fd00::/8")
)

// SYN is one bare TCP SYN, every field of it chosen: a knock as the
// tracker sees it (source, ports, sequence number), and whether it carries
// options as a TCP stack's SYN does. Two SYNs with the same source, source
// port and sequence number are a retransmission.
type SYN struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Seq              uint32
	// MSS, when non-zero, adds an MSS option (TCP header of 24 bytes);
	// zero sends a SYN without options (20 bytes).
	MSS uint16
}

// String describes the SYN for logs: addresses, ports, sequence number.
func (s SYN) String() string {
	opt := "no options"
	if s.MSS != 0 {
		opt = fmt.Sprintf("mss %d", s.MSS)
	}
	return fmt.Sprintf("%s -> %s sport %d seq %d, %s",
		netip.AddrPortFrom(s.Src, s.SrcPort), netip.AddrPortFrom(s.Dst, s.DstPort), s.SrcPort, s.Seq, opt)
}

// check refuses a SYN that would leave the test networks, or mixes families.
func (s SYN) check() error {
	in := func(a netip.Addr) bool {
		return a.Zone() == "" && (a.Is4() && synNet4.Contains(a) || a.Is6() && !a.Is4In6() && synNet6.Contains(a))
	}
	switch {
	case !s.Src.IsValid() || !s.Dst.IsValid():
		return errors.New("syn: source and destination must be set")
	case s.Src.Is4() != s.Dst.Is4():
		return fmt.Errorf("syn %v -> %v: different families", s.Src, s.Dst)
	case !in(s.Src) || !in(s.Dst):
		return fmt.Errorf("syn %v -> %v: outside the test networks %v and %v", s.Src, s.Dst, synNet4, synNet6)
	}
	return nil
}

// Packet returns the SYN as an IP packet (an IPv4 header with DF, or an
// IPv6 header, then TCP), checksums computed.
func (s SYN) Packet() ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	tl := 20
	if s.MSS != 0 {
		tl += 4
	}
	tcp := make([]byte, tl)
	binary.BigEndian.PutUint16(tcp[0:], s.SrcPort)
	binary.BigEndian.PutUint16(tcp[2:], s.DstPort)
	binary.BigEndian.PutUint32(tcp[4:], s.Seq)
	tcp[12] = byte(tl/4) << 4
	tcp[13] = 0x02 // SYN
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	if s.MSS != 0 {
		tcp[20], tcp[21] = 2, 4
		binary.BigEndian.PutUint16(tcp[22:], s.MSS)
	}
	src, dst := s.Src.AsSlice(), s.Dst.AsSlice()
	pseudo := sum16(src) + sum16(dst) + 6 + uint32(tl)
	binary.BigEndian.PutUint16(tcp[16:], ^fold16(pseudo+sum16(tcp)))
	if s.Src.Is4() {
		ip := make([]byte, 20, 20+tl)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+tl))
		binary.BigEndian.PutUint16(ip[4:], uint16(s.Seq)) // any id
		binary.BigEndian.PutUint16(ip[6:], 0x4000)        // DF
		ip[8] = 64
		ip[9] = 6 // TCP
		copy(ip[12:16], src)
		copy(ip[16:20], dst)
		binary.BigEndian.PutUint16(ip[10:], ^fold16(sum16(ip)))
		return append(ip, tcp...), nil
	}
	ip := make([]byte, 40, 40+tl)
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(tl))
	ip[6] = 6 // next header: TCP
	ip[7] = 64
	copy(ip[8:24], src)
	copy(ip[24:40], dst)
	return append(ip, tcp...), nil
}

func sum16(p []byte) uint32 {
	var s uint32
	for ; len(p) >= 2; p = p[2:] {
		s += uint32(p[0])<<8 | uint32(p[1])
	}
	if len(p) == 1 {
		s += uint32(p[0]) << 8
	}
	return s
}

func fold16(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// SYNSender sends SYNs through raw IP sockets (IPPROTO_RAW, the header
// ours) opened inside a network namespace: any source address of the test
// networks, each SYN exactly as given, one sendto each. The kernel of that
// namespace routes every packet.
type SYNSender struct{ fd4, fd6 int }

// NewSYNSender opens the raw sockets of a sender inside namespace ns.
func NewSYNSender(ns string) (*SYNSender, error) {
	s := &SYNSender{fd4: -1, fd6: -1}
	err := netns.Do(ns, func() error {
		var err error
		if s.fd4, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW); err != nil {
			return fmt.Errorf("raw IPv4 socket: %w", err)
		}
		if s.fd6, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW); err != nil {
			return fmt.Errorf("raw IPv6 socket: %w", err)
		}
		if err := unix.SetsockoptInt(s.fd6, unix.IPPROTO_IPV6, unix.IPV6_HDRINCL, 1); err != nil {
			return fmt.Errorf("IPV6_HDRINCL: %w", err)
		}
		return nil
	})
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Send sends one SYN.
func (s *SYNSender) Send(syn SYN) error {
	pkt, err := syn.Packet()
	if err != nil {
		return err
	}
	if syn.Dst.Is4() {
		err = unix.Sendto(s.fd4, pkt, 0, &unix.SockaddrInet4{Addr: syn.Dst.As4()})
	} else {
		err = unix.Sendto(s.fd6, pkt, 0, &unix.SockaddrInet6{Addr: syn.Dst.As16()})
	}
	if err != nil {
		return fmt.Errorf("send %v: %w", syn, err)
	}
	return nil
}

// Close closes the sockets.
func (s *SYNSender) Close() error {
	var errs []error
	for _, fd := range []*int{&s.fd4, &s.fd6} {
		if *fd >= 0 {
			errs = append(errs, unix.Close(*fd))
			*fd = -1
		}
	}
	return errors.Join(errs...)
}

// TimedSYN is a SYN and an instant: when to send it, or when it was sent.
type TimedSYN struct {
	SYN
	At time.Time
}

// SendStream sends every SYN of stream at its instant, in the order of the
// instants (a SYN whose instant has passed goes at once), and returns the
// stream as sent: the same SYNs in that order, each with the instant its
// sendto returned. It stops at the first error or when ctx is done, and
// then returns what was sent so far with the error.
func (s *SYNSender) SendStream(ctx context.Context, stream []TimedSYN) ([]TimedSYN, error) {
	plan := append([]TimedSYN(nil), stream...)
	sort.SliceStable(plan, func(i, j int) bool { return plan[i].At.Before(plan[j].At) })
	sent := make([]TimedSYN, 0, len(plan))
	for _, p := range plan {
		if d := time.Until(p.At); d > 0 {
			select {
			case <-ctx.Done():
				return sent, ctx.Err()
			case <-time.After(d):
			}
		}
		if err := s.Send(p.SYN); err != nil {
			return sent, err
		}
		sent = append(sent, TimedSYN{SYN: p.SYN, At: time.Now()})
	}
	return sent, nil
}
