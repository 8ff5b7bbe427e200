package fragsyn

import (
	"encoding/binary"
	"net/netip"
)

// match reports whether the IP packet b (as read from the receiver, starting
// at the IP header) answers the probe pk of p, and how.
func (p Probe) match(b []byte, pk packets) (Reply, bool) {
	if p.Src.Is4() {
		return p.match4(b, pk)
	}
	return p.match6(b, pk)
}

// match4 is match for IPv4.
func (p Probe) match4(b []byte, pk packets) (Reply, bool) {
	if len(b) < 20 || b[0]>>4 != 4 {
		return Reply{}, false
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 || len(b) < ihl || binary.BigEndian.Uint16(b[6:])&0x3fff != 0 {
		return Reply{}, false // bad header, or a fragment: answers are never fragmented
	}
	src, dst := netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
	if dst != p.Src {
		return Reply{}, false
	}
	switch b[9] {
	case 6: // TCP
		if src != p.Dst {
			return Reply{}, false
		}
		return p.matchTCP(b[ihl:], pk.seq)
	case 1: // ICMP: destination unreachable, time exceeded, parameter problem
		icmp := b[ihl:]
		if len(icmp) < 8+20 || (icmp[0] != 3 && icmp[0] != 11 && icmp[0] != 12) {
			return Reply{}, false
		}
		q := icmp[8:] // the quoted header of the probe
		if q[0]>>4 != 4 || netip.AddrFrom4([4]byte(q[12:16])) != p.Src ||
			netip.AddrFrom4([4]byte(q[16:20])) != p.Dst || binary.BigEndian.Uint16(q[4:]) != uint16(pk.id) {
			return Reply{}, false
		}
		return Reply{Kind: ICMP, ICMPType: icmp[0], ICMPCode: icmp[1]}, true
	}
	return Reply{}, false
}

// match6 is match for IPv6. Answers carry no extension headers.
func (p Probe) match6(b []byte, pk packets) (Reply, bool) {
	if len(b) < 40 || b[0]>>4 != 6 {
		return Reply{}, false
	}
	src, dst := netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
	if dst != p.Src {
		return Reply{}, false
	}
	switch b[6] {
	case 6: // TCP
		if src != p.Dst {
			return Reply{}, false
		}
		return p.matchTCP(b[40:], pk.seq)
	case 58: // ICMPv6 errors: types 1 to 4
		icmp := b[40:]
		if len(icmp) < 8+40 || icmp[0] < 1 || icmp[0] > 4 {
			return Reply{}, false
		}
		q := icmp[8:] // the quoted probe
		if q[0]>>4 != 6 || netip.AddrFrom16([16]byte(q[8:24])) != p.Src || netip.AddrFrom16([16]byte(q[24:40])) != p.Dst {
			return Reply{}, false
		}
		switch {
		case q[6] == 44 && len(q) >= 48: // Fragment header: its identification
			if binary.BigEndian.Uint32(q[44:]) != pk.id {
				return Reply{}, false
			}
		case q[6] == 6 && len(q) >= 48: // TCP: ports and sequence number
			if binary.BigEndian.Uint16(q[40:]) != p.SrcPort || binary.BigEndian.Uint16(q[42:]) != p.DstPort ||
				binary.BigEndian.Uint32(q[44:]) != pk.seq {
				return Reply{}, false
			}
		default:
			return Reply{}, false
		}
		return Reply{Kind: ICMP, ICMPType: icmp[0], ICMPCode: icmp[1]}, true
	}
	return Reply{}, false
}

// matchTCP reports whether the TCP segment t (from Dst) is a SYN-ACK or an
// RST from Dst:DstPort to Src:SrcPort that acknowledges the SYN with sequence
// number seq.
func (p Probe) matchTCP(t []byte, seq uint32) (Reply, bool) {
	if len(t) < 20 || binary.BigEndian.Uint16(t[0:]) != p.DstPort || binary.BigEndian.Uint16(t[2:]) != p.SrcPort ||
		binary.BigEndian.Uint32(t[8:]) != seq+1 {
		return Reply{}, false
	}
	switch f := t[13]; {
	case f&flagRST != 0:
		return Reply{Kind: Rst}, true
	case f&(flagSYN|flagACK|flagFIN) == flagSYN|flagACK:
		return Reply{Kind: SynAck}, true
	}
	return Reply{}, false
}
