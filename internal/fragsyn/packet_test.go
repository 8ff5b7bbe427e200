package fragsyn

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// TestPackets checks the wire form of probes without a kernel: IPv4 header
// checksums and fragment fields, the IPv6 Fragment header, fragments that
// put together give the whole segment, and a TCP checksum over it that
// verifies.
func TestPackets(t *testing.T) {
	for _, pr := range []Probe{
		{Src: netip.MustParseAddr("10.200.0.2"), Dst: netip.MustParseAddr("10.200.0.1"), SrcPort: 40001, DstPort: 2222},
		{Src: netip.MustParseAddr("fd00:200::2"), Dst: netip.MustParseAddr("fd00:200::1"), SrcPort: 40001, DstPort: 2222},
	} {
		v4 := pr.Src.Is4()
		whole := pr.build(false)
		if len(whole.pkts) != 1 {
			t.Fatalf("%v whole: %d packets", pr.Dst, len(whole.pkts))
		}
		hl := 40
		if v4 {
			hl = 20
			if w := whole.pkts[0]; binary.BigEndian.Uint16(w[6:]) != 0 || fold(sum16(w[:20])) != 0xffff {
				t.Errorf("whole IPv4 packet: flags/offset %#x, header sum %#x", binary.BigEndian.Uint16(w[6:]), fold(sum16(w[:20])))
			}
		} else if whole.pkts[0][6] != 6 {
			t.Errorf("whole IPv6 packet: next header %d, want 6", whole.pkts[0][6])
		}
		seg := whole.pkts[0][hl:]
		pseudo := sum16(pr.Src.AsSlice()) + sum16(pr.Dst.AsSlice()) + 6 + SegmentLen
		if len(seg) != SegmentLen || fold(pseudo+sum16(seg)) != 0xffff || seg[13] != flagSYN {
			t.Errorf("%v: segment % x: bad length, checksum or flags", pr.Dst, seg)
		}
		for _, first := range []int{8, 16, 24} {
			pr.FirstTCPBytes = first
			pk := pr.build(true)
			var got []byte
			for i, b := range pk.pkts {
				var off int
				var more bool
				if v4 {
					fo := binary.BigEndian.Uint16(b[6:])
					off, more = int(fo&0x1fff)*8, fo&0x2000 != 0
					if fo&0x4000 != 0 || uint32(binary.BigEndian.Uint16(b[4:])) != pk.id || fold(sum16(b[:20])) != 0xffff ||
						int(binary.BigEndian.Uint16(b[2:])) != len(b) {
						t.Errorf("IPv4 fragment %d of split %d: bad header % x", i, first, b[:20])
					}
					got = append(got, b[20:]...)
				} else {
					fo := binary.BigEndian.Uint16(b[42:])
					off, more = int(fo>>3)*8, fo&1 != 0
					if b[6] != 44 || b[40] != 6 || binary.BigEndian.Uint32(b[44:]) != pk.id ||
						int(binary.BigEndian.Uint16(b[4:])) != len(b)-40 {
						t.Errorf("IPv6 fragment %d of split %d: bad headers % x", i, first, b[:48])
					}
					got = append(got, b[48:]...)
				}
				if want := i * first; off != want || more != (i == 0) {
					t.Errorf("fragment %d of split %d: offset %d more %v, want %d %v", i, first, off, more, want, i == 0)
				}
			}
			if len(got) != SegmentLen || fold(pseudo+sum16(got)) != 0xffff ||
				!bytes.Equal(got[:4], whole.pkts[0][hl:hl+4]) {
				t.Errorf("%v split %d: reassembled segment % x is not a SYN of the probe", pr.Dst, first, got)
			}
		}
	}
}
