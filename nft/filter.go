package nft

import (
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// CommentQueue is the comment of the rules that queue knocks.
const CommentQueue = commentPrefix + "knock"

// filter is the sets of the kernel filter in front of the queue.
type filter struct {
	first, knocking4, knocking6, rate4, rate6, flood4, flood6, spill4, spill6 *nftables.Set
}

// filterSets returns the sets of the kernel filter of table t.
func filterSets(t *nftables.Table, s Spec) filter {
	dyn := func(id uint32, name string, key nftables.SetDatatype, timeout uint64) *nftables.Set {
		return &nftables.Set{Table: t, ID: id, Name: name, KeyType: key, KeyByteOrder: binaryutil.BigEndian,
			Dynamic: true, HasTimeout: true, Timeout: msDuration(timeout), Size: knockingSize}
	}
	kt := uint64(s.KnockTimeout.Milliseconds())
	ft := uint64(FloodTimeout.Milliseconds())
	return filter{
		first:     &nftables.Set{Table: t, ID: firstSetID, Name: SetFirst, KeyType: nftables.TypeInetService, KeyByteOrder: binaryutil.BigEndian, HasTimeout: true},
		knocking4: dyn(knocking4SetID, SetKnocking4, nftables.TypeIPAddr, kt),
		knocking6: dyn(knocking6SetID, SetKnocking6, nftables.TypeIP6Addr, kt),
		rate4:     dyn(rate4SetID, SetRate4, nftables.TypeIPAddr, ft),
		rate6:     dyn(rate6SetID, SetRate6, nftables.TypeIP6Addr, ft),
		flood4:    dyn(flood4SetID, SetFlood4, nftables.TypeIPAddr, ft),
		flood6:    dyn(flood6SetID, SetFlood6, nftables.TypeIP6Addr, ft),
		spill4:    spill(dyn(spill4SetID, SetSpill4, nftables.TypeIPAddr, kt), s.KnockTimeout),
		spill6:    spill(dyn(spill6SetID, SetSpill6, nftables.TypeIP6Addr, kt), s.KnockTimeout),
	}
}

// spill sizes set, a spill set whose elements live timeout from their
// add: it can never be full (see rules), as at most OverflowRate sources a
// second beyond OverflowBurst join it.
func spill(set *nftables.Set, timeout time.Duration) *nftables.Set {
	secs := uint64((timeout + time.Second - 1) / time.Second)
	set.Size = uint32(min(OverflowRate*secs+OverflowBurst, spillSizeMax))
	return set
}

// spillSizeMax bounds the size of spill4 and spill6 (a knock timeout of
// more than 18 minutes would ask for more).
const spillSizeMax = 1 << 20

// rules are the rules of chain knocks, which the knock chain jumps to for
// every new connection to the knock range and this host. With QueueAll,
// one: `counter queue`. Else, for IPv4 (and the same for IPv6):
//
//	ip saddr @flood4 accept
//	tcp dport @first update @knocking4 { ip saddr }
//	ip saddr @knocking4 update @rate4 { ip saddr limit rate over 250/second burst 64 packets } add @flood4 { ip saddr } accept
//	ip saddr @knocking4 update @knocking4 { ip saddr } counter queue ... bypass
//	ip saddr @spill4 update @rate4 { ip saddr limit rate over 250/second burst 64 packets } add @flood4 { ip saddr } accept
//	ip saddr @spill4 counter queue ... bypass
//	meta nfproto ipv4 th dport @first limit rate 1000/second burst 1000 packets add @spill4 { ip saddr } counter queue ... bypass
//
// A source reaches the daemon from its knock to a first port on, for
// KnockTimeout after its last knock, and only while it knocks no faster
// than FloodRate. Every other SYN never leaves the kernel.
//
// The spill: knocking4 holds knockingSize sources; when it is full the
// kernel adds nobody (the update of the second rule fails and ends that
// rule), so a flood of first-port SYNs from many sources (spoofed, or the
// addresses of one IPv6 /64) would keep every new knocker out. A SYN to a
// first port that gets past the fourth rule is from a source the full set
// did not take (nft's dynset has no "on failure" branch: the failed add
// shows as the source's absence after it). The last rule queues it, at
// most OverflowRate per second and family beyond a burst of OverflowBurst
// (the excess passes unseen, as a knock the daemon never sees), and adds
// its source to spill4, whose sources are then queued as knocking ones
// (the two rules before it), for KnockTimeout from that first knock: a
// spilled source's timeout is never renewed, so spill4, sized for
// OverflowRate sources a second over KnockTimeout, is never full. The
// daemon's tracker, bounded, decides who knocks. A flood that goes on
// shares the limit with a knocker's first knock only: the rest of its
// sequence is queued through spill4.
func (f filter) rules(c *nftables.Chain, s Spec, v QueueVariant) []*nftables.Rule {
	queue := []expr.Any{&expr.Counter{}, queueExpr(s.QueueNum, s.QueueTotal, v)}
	note := comment(knockComment(s, v))
	if s.QueueAll {
		return []*nftables.Rule{{Table: c.Table, Chain: c, Exprs: queue, UserData: note}}
	}
	var out []*nftables.Rule
	add := func(ud []byte, e ...expr.Any) {
		out = append(out, &nftables.Rule{Table: c.Table, Chain: c, Exprs: e, UserData: ud})
	}
	accept := &expr.Verdict{Kind: expr.VerdictAccept}
	for _, fam := range []struct {
		nfproto                      byte
		knocking, rate, flood, spill *nftables.Set
	}{
		{unix.NFPROTO_IPV4, f.knocking4, f.rate4, f.flood4, f.spill4},
		{unix.NFPROTO_IPV6, f.knocking6, f.rate6, f.flood6, f.spill6},
	} {
		saddr := source(fam.nfproto)
		add(nil, concat(saddr, []expr.Any{lookup(fam.flood), accept})...)
		add(nil, concat([]expr.Any{tcpDport(), lookup(f.first)}, saddr, []expr.Any{dynset(unix.NFT_DYNSET_OP_UPDATE, fam.knocking)})...)
		over := dynset(unix.NFT_DYNSET_OP_UPDATE, fam.rate)
		over.Exprs = []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: FloodRate, Over: true, Unit: expr.LimitTimeSecond, Burst: FloodBurst}}
		add(nil, concat(saddr, []expr.Any{lookup(fam.knocking), over, dynset(unix.NFT_DYNSET_OP_ADD, fam.flood), accept})...)
		add(note, concat(saddr, []expr.Any{lookup(fam.knocking), dynset(unix.NFT_DYNSET_OP_UPDATE, fam.knocking)}, queue)...)
		over = dynset(unix.NFT_DYNSET_OP_UPDATE, fam.rate)
		over.Exprs = []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: FloodRate, Over: true, Unit: expr.LimitTimeSecond, Burst: FloodBurst}}
		add(nil, concat(saddr, []expr.Any{lookup(fam.spill), over, dynset(unix.NFT_DYNSET_OP_ADD, fam.flood), accept})...)
		add(note, concat(saddr, []expr.Any{lookup(fam.spill)}, queue)...)
		limit := &expr.Limit{Type: expr.LimitTypePkts, Rate: OverflowRate, Unit: expr.LimitTimeSecond, Burst: OverflowBurst}
		add(note, concat(saddr[:2], []expr.Any{tcpDport(), lookup(f.first), limit, saddr[2], dynset(unix.NFT_DYNSET_OP_ADD, fam.spill)}, queue)...)
	}
	return out
}

// source is `meta nfproto ipv4` (ipv6) and the source address in register 1.
func source(nfproto byte) []expr.Any {
	saddr := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}
	if nfproto == unix.NFPROTO_IPV6 {
		saddr = &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16}
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
		saddr,
	}
}

// lookup matches register 1 in set.
func lookup(set *nftables.Set) *expr.Lookup {
	return &expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID}
}

// dynset adds the source in register 1 to set, or (update) refreshes its
// timeout; the set's own timeout applies.
func dynset(op uint32, set *nftables.Set) *expr.Dynset {
	return &expr.Dynset{SrcRegKey: 1, SetName: set.Name, SetID: set.ID, Operation: op}
}

// msDuration is ms milliseconds.
func msDuration(ms uint64) time.Duration { return time.Duration(ms) * time.Millisecond }
