// Package fragsyn is a test helper that checks whether a TCP SYN split into
// IP fragments gets past a firewall: it sends one SYN from a client network
// namespace, either whole or as two fragments, and reports what came back
// (a SYN-ACK, an RST, an ICMP error or nothing).
//
// A guard that matches "tcp flags ... syn" sees a fragmented SYN whole only
// where the kernel has reassembled it: before the input hook, or at
// prerouting when conntrack's defragmentation is in use. A first fragment
// that carries only the ports (8 bytes of TCP) and not the flags is how a
// SYN slips past a rule that looks at unreassembled fragments.
//
// Every probe is one segment of 32 bytes: the 20-byte TCP header with only
// SYN set plus 12 bytes of options (MSS 1460, NOP, NOP, SACK permitted, NOP,
// window scale 7). Split at FirstTCPBytes, it makes two fragments:
//
//	FirstTCPBytes  8: ports and sequence number only (no flags)
//	FirstTCPBytes 16: up to and including the flags, window and checksum
//	FirstTCPBytes 24: the whole 20-byte header and the MSS option
//
// Probes send only from and to 10.0.0.0/8 and fd00::/8 (TestNet4,
// TestNet6), so that their packets never leave the test namespaces.
package fragsyn

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Address ranges a Probe may use as source or destination.
var (
	TestNet4 = netip.MustParsePrefix("10.0.0.0/8")
	TestNet6 = netip.MustParsePrefix("fd00::/8")
)

// ErrOutsideTestNet is returned (wrapped) for a source or destination outside
// TestNet4 and TestNet6.
var ErrOutsideTestNet = errors.New("address outside the test network (10.0.0.0/8, fd00::/8)")

// SegmentLen is the length of the TCP segment of every probe: a 20-byte
// header and 12 bytes of options, no data.
const SegmentLen = 32

// TCP flags.
const (
	flagFIN = 0x01
	flagSYN = 0x02
	flagRST = 0x04
	flagACK = 0x10
)

// Probe describes one SYN sent from inside namespace NS.
type Probe struct {
	// NS is the network namespace (a name under /run/netns) to send from
	// and listen in, normally the client of a netns.Pair.
	NS string
	// Src and Dst are the source and destination addresses: both IPv4 in
	// 10.0.0.0/8 or both IPv6 in fd00::/8. Replies come back only when Src
	// is an address of NS.
	Src, Dst netip.Addr
	// SrcPort is the TCP source port; 0 picks a random one in 32768-60999.
	// Use a different source port for each probe of the same addresses,
	// so that an answer to an earlier probe is never taken for this one.
	SrcPort uint16
	// DstPort is the TCP destination port (not 0).
	DstPort uint16
	// FirstTCPBytes is how many bytes of the 32-byte TCP segment the first
	// fragment carries: 8, 16 or 24 (fragment offsets count 8-byte units,
	// and the second fragment must carry something). Probes sent whole
	// ignore it.
	FirstTCPBytes int
}

// Kind says what kind of answer a probe got.
type Kind int

// The kinds of answer.
const (
	// Nothing came back within the wait.
	Nothing Kind = iota
	// SynAck is a segment with SYN and ACK (and not RST) from Dst:DstPort
	// to Src:SrcPort acknowledging the probe's SYN: a listener got it.
	SynAck
	// Rst is a segment with RST from Dst:DstPort to Src:SrcPort
	// acknowledging the SYN: it reached a host with no listener there.
	Rst
	// ICMP is an ICMP or ICMPv6 error about the probe (its quoted packet has
	// the probe's addresses and IPv4 identification, IPv6 fragment
	// identification, or TCP ports and sequence number).
	ICMP
)

// Reply is the first conclusive answer to a probe, or Nothing.
type Reply struct {
	Kind Kind
	// ICMPType and ICMPCode are the type and code of an ICMP answer (ICMPv6
	// for IPv6: type 4 code 3 is a parameter problem "first fragment has
	// incomplete IPv6 header chain", RFC 7112).
	ICMPType, ICMPCode uint8
}

// String describes r, for test logs.
func (r Reply) String() string {
	switch r.Kind {
	case Nothing:
		return "nothing"
	case SynAck:
		return "SYN-ACK"
	case Rst:
		return "RST"
	case ICMP:
		return fmt.Sprintf("ICMP error type %d code %d", r.ICMPType, r.ICMPCode)
	}
	return fmt.Sprintf("Kind(%d)", int(r.Kind))
}

// SynAck sends the SYN of p as two fragments (see FirstTCPBytes) and reports
// whether a SYN-ACK for it arrived within wait.
func (p Probe) SynAck(wait time.Duration) (bool, error) {
	r, err := p.Fragmented(wait)
	return r.Kind == SynAck, err
}

// SynAckWhole sends the same SYN as SynAck in one unfragmented packet and
// reports whether a SYN-ACK for it arrived within wait.
func (p Probe) SynAckWhole(wait time.Duration) (bool, error) {
	r, err := p.Whole(wait)
	return r.Kind == SynAck, err
}

// Fragmented sends the SYN of p as two fragments and returns the first
// conclusive answer (SYN-ACK, RST or ICMP error) that arrived within wait,
// or a Reply of Kind Nothing.
func (p Probe) Fragmented(wait time.Duration) (Reply, error) {
	return p.run(wait, true)
}

// Whole sends the SYN of p in one unfragmented packet (FirstTCPBytes is
// ignored) and returns the first conclusive answer within wait, like
// Fragmented.
func (p Probe) Whole(wait time.Duration) (Reply, error) {
	return p.run(wait, false)
}

// checkTestNet refuses any address outside TestNet4 and TestNet6.
func checkTestNet(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return fmt.Errorf("no address: %w", ErrOutsideTestNet)
	case a.Zone() != "":
		return fmt.Errorf("%v: zoned address: %w", a, ErrOutsideTestNet)
	case a.Is4In6():
		return fmt.Errorf("%v: IPv4-mapped IPv6 address: %w", a, ErrOutsideTestNet)
	case a.Is4() && !TestNet4.Contains(a), a.Is6() && !TestNet6.Contains(a):
		return fmt.Errorf("%v: %w", a, ErrOutsideTestNet)
	}
	return nil
}

// validate checks p for a probe (fragmented or not) waiting wait.
func (p Probe) validate(wait time.Duration, fragmented bool) error {
	if p.NS == "" {
		return errors.New("no namespace: a probe must be sent from inside a test namespace")
	}
	if err := checkTestNet(p.Src); err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if err := checkTestNet(p.Dst); err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	if p.Src.Is4() != p.Dst.Is4() {
		return fmt.Errorf("source %v and destination %v: not of the same family", p.Src, p.Dst)
	}
	if p.DstPort == 0 {
		return errors.New("destination port 0")
	}
	if wait <= 0 {
		return fmt.Errorf("wait %v: not positive", wait)
	}
	if fragmented && (p.FirstTCPBytes < 8 || p.FirstTCPBytes%8 != 0 || p.FirstTCPBytes >= SegmentLen) {
		return fmt.Errorf("first fragment of %d TCP bytes: want 8, 16 or 24 (a multiple of 8 below %d)", p.FirstTCPBytes, SegmentLen)
	}
	return nil
}

// packets holds the wire form of one probe.
type packets struct {
	pkts [][]byte // IP packets to send, in order
	seq  uint32   // initial sequence number of the SYN
	id   uint32   // IPv4 identification or IPv6 fragment identification
}

// random returns n random bytes.
func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return b
}

// build makes the IP packets of p (validated, with SrcPort set).
func (p Probe) build(fragmented bool) packets {
	r := random(8)
	pk := packets{seq: binary.BigEndian.Uint32(r[0:4]), id: binary.BigEndian.Uint32(r[4:8])}
	if p.Src.Is4() {
		pk.id = pk.id&0xffff | 1 // never 0: the kernel would choose its own
	}
	seg := p.segment(pk.seq)
	if !fragmented {
		pk.pkts = [][]byte{p.ipPacket(seg, pk.id, -1, false)}
		return pk
	}
	n := p.FirstTCPBytes
	pk.pkts = [][]byte{
		p.ipPacket(seg[:n], pk.id, 0, true),
		p.ipPacket(seg[n:], pk.id, n, false),
	}
	return pk
}

// segment returns the TCP SYN of p with sequence number seq and a checksum
// over the whole segment and the pseudo-header.
func (p Probe) segment(seq uint32) []byte {
	t := make([]byte, SegmentLen)
	binary.BigEndian.PutUint16(t[0:], p.SrcPort)
	binary.BigEndian.PutUint16(t[2:], p.DstPort)
	binary.BigEndian.PutUint32(t[4:], seq)
	t[12] = SegmentLen / 4 << 4
	t[13] = flagSYN
	binary.BigEndian.PutUint16(t[14:], 64240)
	copy(t[20:], []byte{
		2, 4, 0x05, 0xb4, // MSS 1460
		1, 1, 4, 2, // NOP, NOP, SACK permitted
		1, 3, 3, 7, // NOP, window scale 7
	})
	s := sum16(p.Src.AsSlice()) + sum16(p.Dst.AsSlice()) + 6 + SegmentLen + sum16(t)
	binary.BigEndian.PutUint16(t[16:], ^fold(s))
	return t
}

// ipPacket wraps payload in an IPv4 or IPv6 header from p.Src to p.Dst. With
// off < 0 the packet is not a fragment; otherwise it is the fragment at byte
// offset off of the segment, with the more-fragments flag more. id is the
// IPv4 identification or IPv6 fragment identification.
func (p Probe) ipPacket(payload []byte, id uint32, off int, more bool) []byte {
	if p.Src.Is4() {
		b := make([]byte, 20+len(payload))
		b[0] = 0x45
		binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
		binary.BigEndian.PutUint16(b[4:], uint16(id))
		var fo uint16 // DF always clear
		if off > 0 {
			fo = uint16(off / 8)
		}
		if more {
			fo |= 0x2000 // MF
		}
		binary.BigEndian.PutUint16(b[6:], fo)
		b[8] = 64 // TTL
		b[9] = 6  // TCP
		copy(b[12:], p.Src.AsSlice())
		copy(b[16:], p.Dst.AsSlice())
		binary.BigEndian.PutUint16(b[10:], ^fold(sum16(b[:20])))
		copy(b[20:], payload)
		return b
	}
	ext := 0
	if off >= 0 {
		ext = 8 // Fragment header
	}
	b := make([]byte, 40+ext+len(payload))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(ext+len(payload)))
	b[6] = 6 // TCP
	b[7] = 64
	copy(b[8:], p.Src.AsSlice())
	copy(b[24:], p.Dst.AsSlice())
	if off >= 0 {
		b[6] = 44 // Fragment
		b[40] = 6 // its next header: TCP
		fo := uint16(off / 8 << 3)
		if more {
			fo |= 1 // M
		}
		binary.BigEndian.PutUint16(b[42:], fo)
		binary.BigEndian.PutUint32(b[44:], id)
	}
	copy(b[40+ext:], payload)
	return b
}

// sum16 returns the unfolded sum of the big-endian 16-bit words of b (an odd
// last byte is padded with zero). Copied from internal/syngen.
func sum16(b []byte) uint32 {
	var s uint32
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

// fold folds a 32-bit sum into 16 bits with end-around carry.
func fold(s uint32) uint16 {
	s = s>>16 + s&0xffff
	s = s>>16 + s&0xffff
	return uint16(s)
}
