// Package queue reads knock and SPA packets from an NFQUEUE and answers
// them.
//
// It has two halves. Parse decodes the IPv4 or IPv6 header chain of a queued
// packet down to the TCP header, or the UDP header and its data, into a
// Packet the caller owns, without allocating. Queue binds one queue number on a netfilter netlink socket,
// reads the queued packets in batches with recvmmsg(2), hands each parsed
// packet to a callback, and then accepts the whole batch with one
// NFQNL_MSG_VERDICT_BATCH message.
//
// Every verdict is "accept": the decision to let a source in lives in the
// kernel's sets, not in the verdict (see docs/design.md, "Base chains: hooks
// and priorities"), so a slow or absent reader never opens anything.
//
// Several queues (--queues N, a rule "queue num B-B+N-1" without nft's
// fanout flag: see docs/design.md, "The queue rule") are read by
// opening N Queues with Num = B+i and running each in its own goroutine; the
// kernel hashes a source address to one queue, so one source is always seen
// by the same reader, in order.
package queue

import (
	"encoding/binary"
	"errors"
	"math"
	"net/netip"
)

// Sentinel errors of Parse. Callers compare with errors.Is; Parse returns them
// unwrapped, so == works too.
var (
	// ErrTruncated means the bytes end before the headers Parse needs. With
	// the queue's copy range of 256 bytes this happens only to IPv6 packets
	// with long extension header chains, or to corrupt input.
	ErrTruncated = errors.New("packet truncated")
	// ErrProtocol means the packet carries another transport protocol
	// than TCP and UDP (ICMP, an IPv6 "no next header", an extension header
	// Parse does not walk, ...).
	ErrProtocol = errors.New("neither TCP nor UDP")
	// ErrFragment means a fragment that is not the first one (non-zero
	// offset), a first fragment too short to hold the TCP header, or any
	// fragment of UDP (an SPA packet is never fragmented).
	ErrFragment = errors.New("fragment without TCP header")
	// ErrBadHeader means a header field contradicts the packet: an IPv4
	// header length below 20 bytes, a total or payload length shorter than
	// the headers, a TCP data offset below 5, a UDP length below 8 or beyond
	// the packet, too many extension headers.
	ErrBadHeader = errors.New("bad packet header")
	// ErrVersion means the IP version nibble is neither 4 nor 6.
	ErrVersion = errors.New("unknown IP version")
)

// TCP header flag bits, as in the Flags field of Packet.
const (
	FlagFIN = 0x01
	FlagSYN = 0x02
	FlagRST = 0x04
	FlagPSH = 0x08
	FlagACK = 0x10
	FlagURG = 0x20
	FlagECE = 0x40
	FlagCWR = 0x80
)

// MaxExtHeaders is the number of IPv6 extension headers Parse walks before it
// gives up with ErrBadHeader. Real packets carry at most a handful.
const MaxExtHeaders = 8

// Packet is what a knock needs from a TCP segment, or an SPA packet from
// a UDP datagram. Parse fills it in.
type Packet struct {
	// Proto is ProtoTCP or ProtoUDP.
	Proto uint8
	// Src is the source address: a 4-byte address for IPv4 packets, a
	// 16-byte one for IPv6 packets (an IPv4-mapped IPv6 source stays in its
	// IPv6 form).
	Src netip.Addr
	// SrcPort and DstPort are the TCP or UDP ports.
	SrcPort, DstPort uint16
	// Seq is the TCP sequence number (UDP: 0).
	Seq uint32
	// Flags is the TCP flags byte (FlagFIN ... FlagCWR; UDP: 0).
	Flags uint8
	// Payload is the UDP data (TCP: nil). It points into the bytes given
	// to Parse: valid until the queue reads its next batch.
	Payload []byte
}

// Transport protocols of Packet.Proto.
const (
	ProtoTCP = 6
	ProtoUDP = 17
)

// BareSYN reports whether the segment opens a connection: SYN set, and ACK,
// RST and FIN clear (ECN and PSH/URG bits are ignored).
func (p *Packet) BareSYN() bool {
	return p.Flags&(FlagSYN|FlagACK|FlagRST|FlagFIN) == FlagSYN
}

// IPv4 and IPv6 protocol numbers Parse knows.
const (
	protoHopByHop = 0
	protoTCP      = ProtoTCP
	protoUDP      = ProtoUDP
	protoRouting  = 43
	protoFragment = 44
	protoDestOpts = 60
)

// Parse decodes the IP packet b (starting at the IP header, as NFQUEUE
// delivers it) into p. It accepts IPv4 with options and IPv6 with hop-by-hop,
// routing, destination options and fragment (offset 0 only) extension
// headers, followed by TCP or UDP. b may be shorter than the packet's total
// length (the queue copies CopyRange bytes), but it must hold the whole TCP
// header, or the whole UDP datagram.
//
// Parse does not allocate. On error it returns one of the sentinel errors
// above and leaves p zero.
func Parse(b []byte, p *Packet) error {
	*p = Packet{}
	var err error
	switch {
	case len(b) == 0:
		err = ErrTruncated
	case b[0]>>4 == 4:
		err = parse4(b, p)
	case b[0]>>4 == 6:
		err = parse6(b, p)
	default:
		err = ErrVersion
	}
	if err != nil {
		*p = Packet{}
	}
	return err
}

// parse4 decodes an IPv4 packet.
func parse4(b []byte, p *Packet) error {
	if len(b) < 20 {
		return ErrTruncated
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 {
		return ErrBadHeader
	}
	if len(b) < ihl {
		return ErrTruncated
	}
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if total < ihl {
		return ErrBadHeader
	}
	frag := binary.BigEndian.Uint16(b[6:8])
	if frag&0x1fff != 0 {
		return ErrFragment
	}
	more := frag&0x2000 != 0
	if err := transport(b, b[9], ihl, total, more, p); err != nil {
		return err
	}
	p.Src = netip.AddrFrom4([4]byte(b[12:16]))
	return nil
}

// parse6 decodes an IPv6 packet, walking its extension headers.
func parse6(b []byte, p *Packet) error {
	if len(b) < 40 {
		return ErrTruncated
	}
	// end is where the packet ends by its own account. A payload length of
	// 0 announces a jumbogram (or a BIG TCP packet) whose length is in a
	// hop-by-hop option: then only the bytes present limit the headers.
	end := 40 + int(binary.BigEndian.Uint16(b[4:6]))
	if end == 40 {
		end = math.MaxInt
	}
	next, off, more := b[6], 40, false
	for i := 0; ; i++ {
		if next == protoTCP || next == protoUDP {
			break
		}
		if i == MaxExtHeaders {
			return ErrBadHeader
		}
		switch next {
		case protoHopByHop, protoRouting, protoDestOpts:
			if next == protoHopByHop && i != 0 {
				return ErrBadHeader // RFC 8200: only right after the IPv6 header
			}
			if err := fits(b, off+2, end); err != nil {
				return err
			}
			n := (int(b[off+1]) + 1) * 8
			if err := fits(b, off+n, end); err != nil {
				return err
			}
			next, off = b[off], off+n
		case protoFragment:
			if err := fits(b, off+8, end); err != nil {
				return err
			}
			fo := binary.BigEndian.Uint16(b[off+2 : off+4])
			if fo&^7 != 0 {
				return ErrFragment
			}
			more = more || fo&1 != 0
			next, off = b[off], off+8
		default:
			return ErrProtocol
		}
	}
	if err := transport(b, next, off, end, more, p); err != nil {
		return err
	}
	p.Src = netip.AddrFrom16([16]byte(b[8:24]))
	return nil
}

// fits checks that n bytes are both announced by the packet (end) and present
// in b.
func fits(b []byte, n, end int) error {
	if n > end {
		return ErrBadHeader
	}
	if n > len(b) {
		return ErrTruncated
	}
	return nil
}

// transport decodes the TCP or UDP header of protocol proto at b[off:].
func transport(b []byte, proto byte, off, end int, more bool, p *Packet) error {
	switch proto {
	case protoTCP:
		p.Proto = ProtoTCP
		return tcp(b, off, end, more, p)
	case protoUDP:
		p.Proto = ProtoUDP
		return udp(b, off, end, more, p)
	}
	return ErrProtocol
}

// udp decodes the UDP datagram at b[off:], whose data must be all in b. A
// fragment of UDP is refused: the checksum and the length cover the whole
// datagram, which a first fragment does not hold.
func udp(b []byte, off, end int, more bool, p *Packet) error {
	if more {
		return ErrFragment
	}
	if off+8 > end {
		return ErrBadHeader
	}
	if off+8 > len(b) {
		return ErrTruncated
	}
	n := int(binary.BigEndian.Uint16(b[off+4 : off+6]))
	if n < 8 || off+n > end {
		return ErrBadHeader
	}
	if off+n > len(b) {
		return ErrTruncated
	}
	p.SrcPort = binary.BigEndian.Uint16(b[off : off+2])
	p.DstPort = binary.BigEndian.Uint16(b[off+2 : off+4])
	p.Payload = b[off+8 : off+n : off+n]
	return nil
}

// tcp decodes the TCP header at b[off:]. end is the end of the packet by its
// IP header; more tells that the packet is a first fragment, in which case a
// TCP header cut by end is a fragment, not a bad header.
func tcp(b []byte, off, end int, more bool, p *Packet) error {
	bad := ErrBadHeader
	if more {
		bad = ErrFragment
	}
	if off+20 > end {
		return bad
	}
	if off+20 > len(b) {
		return ErrTruncated
	}
	doff := int(b[off+12]>>4) * 4
	if doff < 20 {
		return ErrBadHeader
	}
	if off+doff > end {
		return bad
	}
	if off+doff > len(b) {
		return ErrTruncated
	}
	p.SrcPort = binary.BigEndian.Uint16(b[off : off+2])
	p.DstPort = binary.BigEndian.Uint16(b[off+2 : off+4])
	p.Seq = binary.BigEndian.Uint32(b[off+4 : off+8])
	p.Flags = b[off+13]
	return nil
}
