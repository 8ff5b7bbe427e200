package queue

import "encoding/binary"

// Netlink and nfnetlink_queue constants (linux/netlink.h,
// linux/netfilter/nfnetlink.h, linux/netfilter/nfnetlink_queue.h).
const (
	nlmsgHdrLen = 16 // struct nlmsghdr
	nfgenLen    = 4  // struct nfgenmsg
	nlaHdrLen   = 4  // struct nlattr

	nlmsgError   = 0x2 // NLMSG_ERROR
	nlmFRequest  = 0x1 // NLM_F_REQUEST
	nlaTypeMask  = 0x3fff
	subsysQueue  = 0x3                // NFNL_SUBSYS_QUEUE
	msgPacket    = subsysQueue<<8 | 0 // NFQNL_MSG_PACKET
	msgConfig    = subsysQueue<<8 | 2 // NFQNL_MSG_CONFIG
	msgVerdictBt = subsysQueue<<8 | 3 // NFQNL_MSG_VERDICT_BATCH

	nfqaPacketHdr  = 1  // NFQA_PACKET_HDR: struct nfqnl_msg_packet_hdr
	nfqaVerdictHdr = 2  // NFQA_VERDICT_HDR: struct nfqnl_msg_verdict_hdr
	nfqaPayload    = 10 // NFQA_PAYLOAD

	nfAccept = 1 // NF_ACCEPT

	// verdictLen is the size of one NFQNL_MSG_VERDICT_BATCH message:
	// nlmsghdr, nfgenmsg, and the NFQA_VERDICT_HDR attribute.
	verdictLen = nlmsgHdrLen + nfgenLen + nlaHdrLen + 8
)

// align rounds n up to the 4-byte alignment of netlink messages and
// attributes.
func align(n int) int { return (n + 3) &^ 3 }

// walkResult sums up what walk found in one or more datagrams.
type walkResult struct {
	maxID     uint32 // highest packet id seen (in serial number arithmetic)
	haveID    bool   // maxID is valid
	received  uint64 // queued-packet messages that carried a packet id
	handled   uint64 // of those, packets that parsed and went to handle
	parseErrs uint64 // of those, packets without payload or that Parse refused
	malformed uint64 // messages or attributes that do not hold together
	nlErrs    uint64 // NLMSG_ERROR messages with an error code (refused verdicts)
	errno     uint32 // the last such error code (positive)
}

// seeID records a packet id. Ids grow by one per queued packet and wrap
// around; the kernel compares them the same way (nfq_id_after).
func (r *walkResult) seeID(id uint32) {
	if !r.haveID || int32(id-r.maxID) > 0 {
		r.maxID = id
	}
	r.haveID = true
}

// walkBatch walks every datagram of a batch, in order.
func walkBatch(dgrams [][]byte, p *Packet, handle func(*Packet), r *walkResult) {
	for _, b := range dgrams {
		walk(b, p, handle, r)
	}
}

// walk reads the netlink messages of one datagram b as the kernel sends them
// on a queue socket. For each queued packet it records the packet id, parses
// the payload into p and, when that succeeds, calls handle(p). Error messages
// (the kernel's answers to verdicts it refused) are counted. It never reads
// outside b and never allocates; anything that does not hold together is
// counted as malformed and ends the walk of b.
//
// handle may be nil: then the packets are only counted, not parsed.
func walk(b []byte, p *Packet, handle func(*Packet), r *walkResult) {
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			r.malformed++
			return
		}
		n := int(binary.NativeEndian.Uint32(b[0:4]))
		if n < nlmsgHdrLen || n > len(b) {
			r.malformed++
			return
		}
		body := b[nlmsgHdrLen:n]
		switch binary.NativeEndian.Uint16(b[4:6]) {
		case msgPacket:
			walkPacket(body, p, handle, r)
		case nlmsgError:
			if len(body) < 4 {
				r.malformed++
			} else if code := int32(binary.NativeEndian.Uint32(body[0:4])); code != 0 {
				r.nlErrs++
				r.errno = uint32(-code)
			}
		}
		// Other types (NLMSG_NOOP, NLMSG_DONE, acks) need nothing.
		if n = align(n); n >= len(b) {
			return
		}
		b = b[n:]
	}
}

// walkPacket reads the body of one NFQNL_MSG_PACKET message: a nfgenmsg,
// then attributes.
func walkPacket(body []byte, p *Packet, handle func(*Packet), r *walkResult) {
	if len(body) < nfgenLen {
		r.malformed++
		return
	}
	var (
		id              uint32
		haveID, havePay bool
		payload, attrs  []byte
		attrsOK         = true
	)
	attrs = body[nfgenLen:]
	for len(attrs) > 0 {
		if len(attrs) < nlaHdrLen {
			attrsOK = false
			break
		}
		n := int(binary.NativeEndian.Uint16(attrs[0:2]))
		if n < nlaHdrLen || n > len(attrs) {
			attrsOK = false
			break
		}
		data := attrs[nlaHdrLen:n]
		switch binary.NativeEndian.Uint16(attrs[2:4]) & nlaTypeMask {
		case nfqaPacketHdr:
			// struct nfqnl_msg_packet_hdr { __be32 packet_id; __be16
			// hw_protocol; __u8 hook; }
			if len(data) >= 4 {
				id, haveID = binary.BigEndian.Uint32(data[0:4]), true
			}
		case nfqaPayload:
			payload, havePay = data, true
		}
		if n = align(n); n >= len(attrs) {
			break
		}
		attrs = attrs[n:]
	}
	if !attrsOK {
		r.malformed++
	}
	if !haveID {
		// Without an id the packet cannot be named in a verdict; the
		// batch verdict of a later, higher id still covers it.
		if attrsOK {
			r.malformed++
		}
		return
	}
	r.received++
	r.seeID(id)
	if handle == nil {
		return
	}
	if !havePay || !attrsOK || Parse(payload, p) != nil {
		r.parseErrs++
		return
	}
	r.handled++
	handle(p)
}

// putVerdict writes into b one NFQNL_MSG_VERDICT_BATCH message that accepts
// every packet of queue num up to and including id.
func putVerdict(b *[verdictLen]byte, num uint16, id uint32) {
	// struct nlmsghdr
	binary.NativeEndian.PutUint32(b[0:4], verdictLen)
	binary.NativeEndian.PutUint16(b[4:6], msgVerdictBt)
	binary.NativeEndian.PutUint16(b[6:8], nlmFRequest)
	binary.NativeEndian.PutUint32(b[8:12], 0)  // sequence
	binary.NativeEndian.PutUint32(b[12:16], 0) // port id: the kernel
	// struct nfgenmsg { __u8 nfgen_family; __u8 version; __be16 res_id; }
	b[16], b[17] = 0, 0 // AF_UNSPEC, NFNETLINK_V0
	binary.BigEndian.PutUint16(b[18:20], num)
	// NFQA_VERDICT_HDR: struct nfqnl_msg_verdict_hdr { __be32 verdict; __be32 id; }
	binary.NativeEndian.PutUint16(b[20:22], nlaHdrLen+8)
	binary.NativeEndian.PutUint16(b[22:24], nfqaVerdictHdr)
	binary.BigEndian.PutUint32(b[24:28], nfAccept)
	binary.BigEndian.PutUint32(b[28:32], id)
}
