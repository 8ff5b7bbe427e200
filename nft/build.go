package nft

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// Rule comments. Every rule we add carries one in its UserData (nft shows it
// as `comment "..."`), so our rules are recognizable as ours by people and by
// code (IsOurRule).
const (
	commentPrefix = "nfqknockd "
	CommentKnock  = commentPrefix + "knock"
	CommentGuard4 = commentPrefix + "guard ipv4"
	CommentGuard6 = commentPrefix + "guard ipv6"
)

// Set IDs inside one transaction. The rules refer to the sets by name and by
// these IDs; fixed values keep the builders pure and their output
// comparable. They only need to be unique inside one batch.
const (
	guardSetID  = 1
	allow4SetID = 2
	allow6SetID = 3
)

// Ruleset is every object of our table, as Build makes it from a Spec and
// Apply adds it to a batch, in this order: Table, the sets (GuardSet with
// GuardElements, Allow4, Allow6), KnockChain, GuardChain, Rules.
type Ruleset struct {
	Table                    *nftables.Table
	GuardSet, Allow4, Allow6 *nftables.Set
	GuardElements            []nftables.SetElement
	KnockChain, GuardChain   *nftables.Chain
	Rules                    []*nftables.Rule // the knock rule, then the guard rules (IPv4, IPv6)
}

// Build makes the ruleset of s with queue variant v. It talks to no kernel.
// `nft list table inet nfqknock` shows it so (Compat; nft 1.0.6 prints
// nothing for the xtables target in an inet table, hence the comment; with
// Native the statement reads "queue ... 100 ... bypass" and the comment is
// just "nfqknockd knock"):
//
//	table inet nfqknock {
//		set guard {
//			type inet_service
//			elements = { 22 }
//		}
//		set allow4 {
//			type ipv4_addr
//			flags timeout
//		}
//		set allow6 {
//			type ipv6_addr
//			flags timeout
//		}
//		chain knock {
//			type filter hook input priority filter - 10; policy accept;
//			tcp flags syn / fin,syn,rst,ack tcp dport 1-65535 counter packets 0 bytes 0  comment "nfqknockd knock: queue num 100 bypass (xt NFQUEUE)"
//		}
//		chain guard {
//			type filter hook input priority filter - 5; policy accept;
//			tcp flags syn / fin,syn,rst,ack tcp dport @guard ip saddr != @allow4 counter packets 0 bytes 0 drop comment "nfqknockd guard ipv4"
//			tcp flags syn / fin,syn,rst,ack tcp dport @guard ip6 saddr != @allow6 counter packets 0 bytes 0 drop comment "nfqknockd guard ipv6"
//		}
//	}
func Build(s Spec, v QueueVariant) (*Ruleset, error) {
	s, err := s.normalize()
	if err != nil {
		return nil, err
	}
	t := &nftables.Table{Name: s.Table, Family: nftables.TableFamilyINet}
	rs := &Ruleset{
		Table:    t,
		GuardSet: &nftables.Set{Table: t, ID: guardSetID, Name: SetGuard, KeyType: nftables.TypeInetService, KeyByteOrder: binaryutil.BigEndian},
		Allow4:   &nftables.Set{Table: t, ID: allow4SetID, Name: SetAllow4, KeyType: nftables.TypeIPAddr, KeyByteOrder: binaryutil.BigEndian, HasTimeout: true},
		Allow6:   &nftables.Set{Table: t, ID: allow6SetID, Name: SetAllow6, KeyType: nftables.TypeIP6Addr, KeyByteOrder: binaryutil.BigEndian, HasTimeout: true},
	}
	for _, p := range s.Guard {
		rs.GuardElements = append(rs.GuardElements, nftables.SetElement{Key: binary.BigEndian.AppendUint16(nil, p)})
	}
	accept := nftables.ChainPolicyAccept
	rs.KnockChain = &nftables.Chain{
		Name: ChainKnock, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityRef(KnockPriority), Policy: &accept,
	}
	rs.GuardChain = &nftables.Chain{
		Name: ChainGuard, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityRef(GuardPriority), Policy: &accept,
	}
	rs.Rules = []*nftables.Rule{
		{Table: t, Chain: rs.KnockChain, Exprs: knockExprs(s, v), UserData: comment(knockComment(s, v))},
		{Table: t, Chain: rs.GuardChain, Exprs: guardExprs(rs.GuardSet, unix.NFPROTO_IPV4, rs.Allow4), UserData: comment(CommentGuard4)},
		{Table: t, Chain: rs.GuardChain, Exprs: guardExprs(rs.GuardSet, unix.NFPROTO_IPV6, rs.Allow6), UserData: comment(CommentGuard6)},
	}
	return rs, nil
}

// knockComment is the comment of the knock rule. `nft list` cannot print
// the xtables NFQUEUE target in an inet table (nft 1.0.6 shows nothing where
// the statement is, and says "XT target NFQUEUE not found" on stderr), so for
// Compat the comment says what the rule does.
func knockComment(s Spec, v QueueVariant) string {
	if v != Compat {
		return CommentKnock
	}
	q := fmt.Sprint(s.QueueNum)
	if s.QueueTotal > 1 {
		q = fmt.Sprintf("%d-%d", s.QueueNum, int(s.QueueNum)+int(s.QueueTotal)-1)
	}
	return fmt.Sprintf("%s: queue num %s bypass (xt NFQUEUE)", CommentKnock, q)
}

// comment encodes c as the rule comment nft prints.
func comment(c string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, c)
}

// IsOurRule reports whether r carries one of the comments Build gives.
func IsOurRule(r *nftables.Rule) bool {
	c, ok := userdata.GetString(r.UserData, userdata.TypeComment)
	return ok && strings.HasPrefix(c, commentPrefix)
}

// bareSYN matches a TCP segment with SYN set and FIN, RST and ACK clear:
// `tcp flags & (fin|syn|rst|ack) == syn`, with its `meta l4proto tcp`
// dependency first, as nft encodes it.
func bareSYN() []expr.Any {
	const (
		fin, syn, rst, ack = 0x01, 0x02, 0x04, 0x10
	)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{fin | syn | rst | ack}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{syn}},
	}
}

// tcpDport loads the TCP destination port into register 1.
func tcpDport() expr.Any {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
}

// knockExprs is the knock rule: `tcp flags & (fin|syn|rst|ack) == syn
// tcp dport Start-End counter queue num N[-M] bypass`.
func knockExprs(s Spec, v QueueVariant) []expr.Any {
	e := append(bareSYN(), tcpDport())
	if s.Start == s.End {
		e = append(e, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, s.Start)})
	} else {
		// Two compares, as nft itself encodes `tcp dport a-b`.
		e = append(e,
			&expr.Cmp{Op: expr.CmpOpGte, Register: 1, Data: binary.BigEndian.AppendUint16(nil, s.Start)},
			&expr.Cmp{Op: expr.CmpOpLte, Register: 1, Data: binary.BigEndian.AppendUint16(nil, s.End)},
		)
	}
	return append(e, &expr.Counter{}, queueExpr(s.QueueNum, s.QueueTotal, v))
}

// queueExpr hands the packet to queues num..num+total-1, and lets it pass
// (bypass) when no program listens on the queue. With total > 1 the kernel
// picks the queue by a hash of the addresses (not by CPU: no fanout flag),
// so the knocks of one source stay in order on one queue.
func queueExpr(num, total uint16, v QueueVariant) expr.Any {
	if v == Compat {
		return &expr.Target{Name: "NFQUEUE", Rev: 3, Info: compatQueueInfo(num, total)}
	}
	return &expr.Queue{Num: num, Total: total, Flag: expr.QueueFlagBypass}
}

// Flags of struct xt_NFQ_info_v3 (linux/netfilter/xt_NFQUEUE.h).
const (
	nfqFlagBypass = 0x01
)

// compatQueueInfo is struct xt_NFQ_info_v3 { __u16 queuenum; __u16
// queues_total; __u16 flags; } in host byte order, padded to 8 bytes
// (XT_ALIGN), the size nft_compat checks.
func compatQueueInfo(num, total uint16) *xt.Unknown {
	b := make([]byte, 8)
	binary.NativeEndian.PutUint16(b[0:], num)
	binary.NativeEndian.PutUint16(b[2:], total)
	binary.NativeEndian.PutUint16(b[4:], nfqFlagBypass)
	u := xt.Unknown(b)
	return &u
}

// guardExprs is a guard rule: `tcp flags & (fin|syn|rst|ack) == syn
// tcp dport @guard ip saddr != @allow4 counter drop` (ip6 and allow6 for
// nfproto IPv6).
func guardExprs(guard *nftables.Set, nfproto byte, allow *nftables.Set) []expr.Any {
	saddr := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}
	if nfproto == unix.NFPROTO_IPV6 {
		saddr = &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16}
	}
	return append(bareSYN(),
		tcpDport(),
		&expr.Lookup{SourceRegister: 1, SetName: guard.Name, SetID: guard.ID},
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
		saddr,
		&expr.Lookup{SourceRegister: 1, SetName: allow.Name, SetID: allow.ID, Invert: true},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	)
}
