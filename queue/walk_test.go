package queue

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"testing"
)

// nlAttr encodes one netlink attribute, padded.
func nlAttr(typ uint16, data []byte) []byte {
	b := make([]byte, align(nlaHdrLen+len(data)))
	binary.NativeEndian.PutUint16(b[0:2], uint16(nlaHdrLen+len(data)))
	binary.NativeEndian.PutUint16(b[2:4], typ)
	copy(b[nlaHdrLen:], data)
	return b
}

// nlMsg encodes one netlink message with the given type and body.
func nlMsg(typ uint16, body []byte) []byte {
	b := make([]byte, nlmsgHdrLen, nlmsgHdrLen+len(body))
	binary.NativeEndian.PutUint32(b[0:4], uint32(nlmsgHdrLen+len(body)))
	binary.NativeEndian.PutUint16(b[4:6], typ)
	return append(b, body...)
}

// queued encodes an NFQNL_MSG_PACKET message as the kernel sends it: the
// packet header with id, the input interface, the hardware address and the
// payload (when payload is not nil).
func queued(id uint32, payload []byte) []byte {
	body := []byte{2, 0, 0, 100} // nfgenmsg: AF_INET, v0, queue 100
	hdr := make([]byte, 7)
	binary.BigEndian.PutUint32(hdr, id)
	binary.BigEndian.PutUint16(hdr[4:], 0x0800)
	hdr[6] = 1 // NF_INET_LOCAL_IN
	body = append(body, nlAttr(nfqaPacketHdr, hdr)...)
	body = append(body, nlAttr(5, []byte{0, 0, 0, 2})...)                                           // NFQA_IFINDEX_INDEV
	body = append(body, nlAttr(9, []byte{0, 6, 0, 0, 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0, 0})...) // NFQA_HWADDR
	if payload != nil {
		body = append(body, nlAttr(nfqaPayload, payload)...)
	}
	return nlMsg(msgPacket, body)
}

// nlErr encodes an NLMSG_ERROR message carrying code (0 is an ack) and the
// header of the message it answers.
func nlErr(code int32) []byte {
	body := make([]byte, 4, 4+nlmsgHdrLen)
	binary.NativeEndian.PutUint32(body, uint32(code))
	return nlMsg(nlmsgError, append(body, make([]byte, nlmsgHdrLen)...))
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestWalk(t *testing.T) {
	syn, _ := readFixture(t, "ipv4_syn_mss")
	syn6, _ := readFixture(t, "ipv6_ext_chain")
	icmp, _ := readFixture(t, "ipv4_icmp") // neither TCP nor UDP
	wrongAttr := queued(9, syn)
	binary.NativeEndian.PutUint16(wrongAttr[nlmsgHdrLen+nfgenLen+12:], 0xffff) // the length of the attribute after the packet header
	noHdr := nlMsg(msgPacket, cat([]byte{2, 0, 0, 100}, nlAttr(nfqaPayload, syn)))
	flagged := queued(12, syn)
	// NLA_F_NET_BYTEORDER on the payload's type must be ignored.
	binary.NativeEndian.PutUint16(flagged[len(flagged)-len(nlAttr(nfqaPayload, syn))+2:], nfqaPayload|0x4000)
	trailing := cat(queued(13, syn), []byte{1, 2, 3})

	for _, tc := range []struct {
		name   string
		dgrams [][]byte
		want   walkResult
		seqs   []uint32 // Seq of each handled packet
	}{
		{name: "empty", dgrams: [][]byte{{}}},
		{name: "one SYN", dgrams: [][]byte{queued(7, syn)},
			want: walkResult{maxID: 7, haveID: true, received: 1, handled: 1}, seqs: []uint32{0x01020304}},
		{name: "IPv4 and IPv6 in one datagram", dgrams: [][]byte{cat(queued(7, syn), queued(8, syn6))},
			want: walkResult{maxID: 8, haveID: true, received: 2, handled: 2}, seqs: []uint32{0x01020304, 0x99aabbcc}},
		{name: "unparsable packets do not stop the batch", dgrams: [][]byte{queued(1, icmp), queued(2, syn), queued(3, []byte{0x45})},
			want: walkResult{maxID: 3, haveID: true, received: 3, handled: 1, parseErrs: 2}, seqs: []uint32{0x01020304}},
		{name: "no payload", dgrams: [][]byte{queued(4, nil)},
			want: walkResult{maxID: 4, haveID: true, received: 1, parseErrs: 1}},
		{name: "no packet header", dgrams: [][]byte{noHdr, queued(5, syn)},
			want: walkResult{maxID: 5, haveID: true, received: 1, handled: 1, malformed: 1}, seqs: []uint32{0x01020304}},
		{name: "attribute runs past the message", dgrams: [][]byte{wrongAttr},
			want: walkResult{maxID: 9, haveID: true, received: 1, parseErrs: 1, malformed: 1}},
		{name: "attribute type flags ignored", dgrams: [][]byte{flagged},
			want: walkResult{maxID: 12, haveID: true, received: 1, handled: 1}, seqs: []uint32{0x01020304}},
		{name: "message longer than the datagram", dgrams: [][]byte{queued(10, syn)[:40], queued(11, syn)},
			want: walkResult{maxID: 11, haveID: true, received: 1, handled: 1, malformed: 1}, seqs: []uint32{0x01020304}},
		{name: "message length below the header", dgrams: [][]byte{{4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
			want: walkResult{malformed: 1}},
		{name: "trailing bytes", dgrams: [][]byte{trailing},
			want: walkResult{maxID: 13, haveID: true, received: 1, handled: 1, malformed: 1}, seqs: []uint32{0x01020304}},
		{name: "ack is nothing", dgrams: [][]byte{nlErr(0)}},
		{name: "refused verdict", dgrams: [][]byte{nlErr(-2), queued(6, syn), nlErr(-22)},
			want: walkResult{maxID: 6, haveID: true, received: 1, handled: 1, nlErrs: 2, errno: 22}, seqs: []uint32{0x01020304}},
		{name: "short error message", dgrams: [][]byte{nlMsg(nlmsgError, []byte{1, 2})}, want: walkResult{malformed: 1}},
		{name: "other message types", dgrams: [][]byte{cat(nlMsg(1, nil), nlMsg(3, []byte{0, 0, 0, 0}), nlMsg(msgConfig, []byte{1, 2, 3, 4}))}},
		{name: "ids wrap around", dgrams: [][]byte{queued(0xfffffffe, syn), queued(0xffffffff, syn), queued(0, syn), queued(1, syn)},
			want: walkResult{maxID: 1, haveID: true, received: 4, handled: 4}, seqs: []uint32{0x01020304, 0x01020304, 0x01020304, 0x01020304}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				r    walkResult
				p    Packet
				seqs []uint32
			)
			walkBatch(tc.dgrams, &p, func(p *Packet) { seqs = append(seqs, p.Seq) }, &r)
			if r != tc.want {
				t.Errorf("walk = %+v\nwant   %+v", r, tc.want)
			}
			if !slices.Equal(seqs, tc.seqs) {
				t.Errorf("handled packets with seq %x, want %x", seqs, tc.seqs)
			}
		})
	}
}

func TestWalkNilHandle(t *testing.T) {
	syn, _ := readFixture(t, "ipv4_syn_mss")
	var r walkResult
	walk(cat(queued(3, syn), queued(4, []byte{0})), nil, nil, &r)
	if want := (walkResult{maxID: 4, haveID: true, received: 2}); r != want {
		t.Errorf("walk without handle = %+v, want %+v", r, want)
	}
}

func TestPutVerdict(t *testing.T) {
	var b [verdictLen]byte
	putVerdict(&b, 100, 0x01020304)
	want := cat(
		nlHdr(verdictLen, 0x0303, 0x0001), // NFQNL_MSG_VERDICT_BATCH, NLM_F_REQUEST, seq 0, pid 0
		[]byte{0, 0, 0x00, 0x64},          // nfgenmsg: AF_UNSPEC, NFNETLINK_V0, res_id 100 (big endian)
		nlAttrHdr(12, 2),                  // NFQA_VERDICT_HDR
		[]byte{0, 0, 0, 1},                // NF_ACCEPT (big endian)
		[]byte{1, 2, 3, 4},                // id (big endian)
	)
	if !bytes.Equal(b[:], want) {
		t.Errorf("verdict message\n%s\nwant\n%s", hex.Dump(b[:]), hex.Dump(want))
	}
}

func nlHdr(n uint32, typ, flags uint16) []byte {
	b := make([]byte, nlmsgHdrLen)
	binary.NativeEndian.PutUint32(b[0:], n)
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint16(b[6:], flags)
	return b
}

func nlAttrHdr(n, typ uint16) []byte {
	b := make([]byte, nlaHdrLen)
	binary.NativeEndian.PutUint16(b[0:], n)
	binary.NativeEndian.PutUint16(b[2:], typ)
	return b
}

// batch64 is a batch as recvmmsg delivers it under load: 64 datagrams of
// one queued SYN each, alternating IPv4 and IPv6 sources.
func batch64(tb testing.TB) [][]byte {
	syn4, _ := readFixture(tb, "ipv4_syn_linux_options")
	syn6, _ := readFixture(tb, "ipv6_syn")
	d := make([][]byte, batchLen)
	for i := range d {
		pkt := syn4
		if i%2 == 1 {
			pkt = syn6
		}
		d[i] = queued(uint32(1000+i), pkt)
	}
	return d
}

func TestWalkBatchAllocs(t *testing.T) {
	d := batch64(t)
	var (
		p    Packet
		v    [verdictLen]byte
		seen int
	)
	handle := func(p *Packet) {
		if p.BareSYN() {
			seen++
		}
	}
	allocs := testing.AllocsPerRun(100, func() {
		var r walkResult
		walkBatch(d, &p, handle, &r)
		putVerdict(&v, 100, r.maxID)
	})
	if allocs != 0 {
		t.Errorf("walk of a 64-packet batch allocates %v times, want 0", allocs)
	}
	if seen != 101*batchLen {
		t.Errorf("handle saw %d bare SYNs, want %d", seen, 101*batchLen)
	}
}

func BenchmarkWalkBatch(b *testing.B) {
	d := batch64(b)
	var (
		p    Packet
		v    [verdictLen]byte
		sink uint32
	)
	handle := func(p *Packet) { sink += p.Seq }
	b.ReportAllocs()
	for b.Loop() {
		var r walkResult
		walkBatch(d, &p, handle, &r)
		putVerdict(&v, 100, r.maxID)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batchLen), "ns/packet")
	_ = sink
}

func FuzzWalk(f *testing.F) {
	syn, _ := readFixture(f, "ipv4_syn_mss")
	syn6, _ := readFixture(f, "ipv6_ext_chain")
	f.Add(queued(1, syn))
	f.Add(cat(queued(1, syn), queued(2, syn6), nlErr(-2), nlErr(0)))
	f.Add(queued(3, nil))
	f.Add(nlMsg(msgPacket, cat([]byte{2, 0, 0, 100}, nlAttr(nfqaPayload, syn))))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var (
			r       walkResult
			p       Packet
			handled uint64
		)
		walk(b, &p, func(p *Packet) {
			handled++
			if p.Src.Is4() == p.Src.Is6() {
				t.Fatalf("handled packet with source %v", p.Src)
			}
		}, &r)
		if handled != r.handled || r.handled+r.parseErrs != r.received {
			t.Fatalf("handle called %d times, result %+v", handled, r)
		}
		if r.haveID != (r.received > 0) {
			t.Fatalf("result %+v: haveID without packets or the reverse", r)
		}
		if uint64(len(b)) < (r.received+r.nlErrs)*nlmsgHdrLen {
			t.Fatalf("result %+v from %d bytes", r, len(b))
		}
	})
}
