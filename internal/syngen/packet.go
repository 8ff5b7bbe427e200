package syngen

import (
	"encoding/binary"
	"net"
)

// Frame layout.
const (
	ethLen    = 14
	ip4Len    = 20
	ip6Len    = 40
	tcpLen    = 20
	udpLen    = 8
	mssLen    = 4
	tcpWindow = 64240
	ttl       = 64
)

// builder writes the frames of one run, one after another, into buffers that
// were initialised once from its template: only the fields that change
// (IPv4 id, source address, ports, sequence number or varied payload span,
// checksums) are written per packet, and the checksums come from
// precomputed sums of the rest.
type builder struct {
	v6    bool
	udp   bool
	ipOff int // offset of the IP header
	l4Off int // offset of the TCP or UDP header
	size  int // frame length
	tmpl  []byte

	ipConst uint32 // IPv4 header sum without id, checksum and source
	l4Const uint32 // pseudo-header + TCP/UDP sum without source, ports, sequence, varied span

	varyOff, varyEnd int    // the varied span of a UDP payload, in the frame
	varyOdd          bool   // varyOff is at an odd offset of the UDP header (a word's low byte)
	vrng             uint64 // splitmix64 state of the varied span

	src4          uint32 // first source (IPv4)
	srcHi, srcLo  uint64 // first source (IPv6)
	nsrc, srcIdx  uint32
	portFirst     uint32
	span, portIdx uint32
	random        bool   // ports drawn from rng instead of cycled
	rng           uint64 // splitmix64 state
	fixedSport    uint16
	sport         uint32
	n             uint64 // packets written so far
}

// newBuilder prepares the frames of c (already validated) between two MACs.
func newBuilder(c Config, srcMAC, dstMAC net.HardwareAddr) *builder {
	b := &builder{v6: c.Family() == 6, ipOff: ethLen, nsrc: uint32(c.Sources),
		portFirst: uint32(c.DstPorts.First), span: uint32(c.DstPorts.Last) - uint32(c.DstPorts.First) + 1,
		fixedSport: c.SrcPort, random: c.RandomPorts, rng: c.Seed}
	if b.rng == 0 {
		b.rng = 0x6a09e667f3bcc908
	}
	tl := tcpLen
	proto := byte(6) // TCP
	if c.MSS != 0 {
		tl += mssLen
	}
	if c.UDP {
		b.udp, tl, proto = true, udpLen+len(c.Payload), 17
		b.vrng = b.rng ^ 0xbb67ae8584caa73b // apart from the ports' sequence
	}
	ipl := ip4Len
	if b.v6 {
		ipl = ip6Len
	}
	b.l4Off = ethLen + ipl
	b.size = b.l4Off + tl
	f := make([]byte, b.size)
	b.tmpl = f
	copy(f[0:6], dstMAC)
	copy(f[6:12], srcMAC)
	ip := f[ethLen:b.l4Off]
	l4 := f[b.l4Off:]
	dst := c.Dst.AsSlice()
	if b.v6 {
		binary.BigEndian.PutUint16(f[12:], 0x86dd)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(tl))
		ip[6] = proto // next header
		ip[7] = ttl
		copy(ip[24:40], dst)
		s := c.Src.As16()
		b.srcHi = binary.BigEndian.Uint64(s[:8])
		b.srcLo = binary.BigEndian.Uint64(s[8:])
	} else {
		binary.BigEndian.PutUint16(f[12:], 0x0800)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(ip4Len+tl))
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		ip[8] = ttl
		ip[9] = proto
		copy(ip[16:20], dst)
		s := c.Src.As4()
		b.src4 = binary.BigEndian.Uint32(s[:])
		// Everything but id (4:6), checksum (10:12) and source (12:16), which are zero here.
		b.ipConst = sum16(ip)
	}
	if b.udp {
		binary.BigEndian.PutUint16(l4[4:], uint16(tl))
		pay := l4[udpLen:]
		copy(pay, c.Payload)
		// The varied span is zero in the template: its bytes are added
		// per packet.
		clear(pay[c.Vary.Off : c.Vary.Off+c.Vary.Len])
		b.varyOff = b.l4Off + udpLen + c.Vary.Off
		b.varyEnd = b.varyOff + c.Vary.Len
		b.varyOdd = (udpLen+c.Vary.Off)%2 == 1
	} else {
		l4[12] = byte(tl/4) << 4
		l4[13] = 0x02 // SYN
		binary.BigEndian.PutUint16(l4[14:], tcpWindow)
		if c.MSS != 0 {
			l4[20], l4[21] = 2, 4
			binary.BigEndian.PutUint16(l4[22:], c.MSS)
		}
	}
	// Pseudo-header without the source; the TCP or UDP header has zero
	// ports, sequence, varied span and checksum here.
	pseudo := sum16(dst) + uint32(proto) + uint32(tl)
	b.l4Const = pseudo + sum16(l4)
	return b
}

// init copies the template into buf (once per buffer).
func (b *builder) init(buf []byte) { copy(buf, b.tmpl) }

// next writes the fields of the next packet into buf, which init prepared.
func (b *builder) next(buf []byte) {
	ip := buf[b.ipOff:b.l4Off]
	l4 := buf[b.l4Off:b.size]
	idx := b.srcIdx
	if b.srcIdx++; b.srcIdx == b.nsrc {
		b.srcIdx = 0
	}
	var dport uint16
	if b.random {
		// splitmix64, then the high 32 bits scaled to the span (Lemire):
		// uniform to within span/2^32.
		b.rng += 0x9e3779b97f4a7c15
		z := b.rng
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		z ^= z >> 31
		dport = uint16(b.portFirst + uint32((z>>32)*uint64(b.span)>>32))
	} else {
		dport = uint16(b.portFirst + b.portIdx)
		if b.portIdx++; b.portIdx == b.span {
			b.portIdx = 0
		}
	}
	sport := b.fixedSport
	if sport == 0 {
		sport = uint16(1024 + b.sport)
		if b.sport++; b.sport == 65536-1024 {
			b.sport = 0
		}
	}
	b.n++

	var srcSum uint32
	if b.v6 {
		lo := b.srcLo + uint64(idx)
		hi := b.srcHi
		if lo < b.srcLo {
			hi++
		}
		binary.BigEndian.PutUint64(ip[8:], hi)
		binary.BigEndian.PutUint64(ip[16:], lo)
		srcSum = sum64(hi) + sum64(lo)
	} else {
		s := b.src4 + idx
		binary.BigEndian.PutUint32(ip[12:], s)
		srcSum = s>>16 + s&0xffff
		id := uint16(b.n)
		binary.BigEndian.PutUint16(ip[4:], id)
		binary.BigEndian.PutUint16(ip[10:], ^fold(b.ipConst+uint32(id)+srcSum))
	}
	binary.BigEndian.PutUint16(l4[0:], sport)
	binary.BigEndian.PutUint16(l4[2:], dport)
	s := b.l4Const + srcSum + uint32(sport) + uint32(dport)
	if b.udp {
		s += b.vary(buf)
		c := ^fold(s)
		if c == 0 {
			c = 0xffff // zero means "no checksum" in UDP (and is invalid in IPv6)
		}
		binary.BigEndian.PutUint16(l4[6:], c)
		return
	}
	seq := uint32((b.n - 1) * 2654435761) // Fibonacci hashing: scattered, never repeats soon
	binary.BigEndian.PutUint32(l4[4:], seq)
	s += seq>>16 + seq&0xffff
	binary.BigEndian.PutUint16(l4[16:], ^fold(s))
}

// vary writes the next bytes of the payload sequence into the varied span
// of buf and returns their part of the checksum sum.
func (b *builder) vary(buf []byte) uint32 {
	var s uint32
	var z uint64
	odd := b.varyOdd
	for i, k := b.varyOff, 0; i < b.varyEnd; i, k = i+1, k+1 {
		if k%8 == 0 {
			// splitmix64
			b.vrng += 0x9e3779b97f4a7c15
			z = b.vrng
			z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
			z = (z ^ z>>27) * 0x94d049bb133111eb
			z ^= z >> 31
		}
		v := byte(z)
		z >>= 8
		buf[i] = v
		if odd {
			s += uint32(v)
		} else {
			s += uint32(v) << 8
		}
		odd = !odd
	}
	return s
}

// sum16 returns the one's-complement style sum (unfolded) of the big-endian
// 16-bit words of p (an odd last byte is padded with zero).
func sum16(p []byte) uint32 {
	var s uint32
	for len(p) >= 2 {
		s += uint32(p[0])<<8 | uint32(p[1])
		p = p[2:]
	}
	if len(p) == 1 {
		s += uint32(p[0]) << 8
	}
	return s
}

// sum64 returns the sum of the four 16-bit words of v.
func sum64(v uint64) uint32 {
	return uint32(v>>48) + uint32(v>>32&0xffff) + uint32(v>>16&0xffff) + uint32(v&0xffff)
}

// fold folds a 32-bit sum into 16 bits with end-around carry.
func fold(s uint32) uint16 {
	s = s>>16 + s&0xffff
	s = s>>16 + s&0xffff
	return uint16(s)
}
