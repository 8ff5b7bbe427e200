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
	commentPrefix   = "nfqknockd "
	CommentKnock    = commentPrefix + "knock"
	CommentGuard    = commentPrefix + "guard: a new connection to a guarded port of this host"
	CommentFragment = commentPrefix + "guard: an IPv4 first fragment of TCP to a guarded port"
	CommentDrop     = commentPrefix + "guard: not opened, not --allow"
	CommentNew      = commentPrefix + "guard: a packet of a new connection that is no SYN (conntrack)"
)

// Set IDs inside one transaction. The rules refer to the sets by name and by
// these IDs; fixed values keep the builders pure and their output
// comparable. They only need to be unique inside one batch.
const (
	guardSetID = iota + 1
	allow4SetID
	allow6SetID
	static4SetID
	static6SetID
	firstSetID
	knocking4SetID
	knocking6SetID
	rate4SetID
	rate6SetID
	flood4SetID
	flood6SetID
	spentSetID
	spill4SetID
	spill6SetID
)

// Ruleset is every object of our table but the table itself (which Conn
// writes by hand, see tableMessage), as Build makes it from a Spec and Apply
// adds it to a batch in this order: Sets with their Elements, Chains, Rules.
type Ruleset struct {
	Table *nftables.Table
	// Sets are guard, allow4, allow6, static4, static6, then first,
	// knocking4, knocking6, rate4, rate6, flood4, flood6, spent, spill4
	// and spill6, then with SPA spa, sparate4, sparate6 and spakeys;
	// Elements[i] are the elements Sets[i] starts with (the opened sources,
	// first ports and used one-time sequences are added by Apply).
	Sets     []*nftables.Set
	Elements [][]nftables.SetElement
	// Chains are knock, guard (base chains), guarded and knocks (regular
	// chains), and with SPA spa (regular).
	Chains []*nftables.Chain
	// Rules in the order they are added.
	Rules []*nftables.Rule
}

// Set returns the set called name, or nil.
func (rs *Ruleset) Set(name string) *nftables.Set {
	for _, s := range rs.Sets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Build makes the ruleset of s with queue variant v. It talks to no kernel.
// `nft list table inet nfqknock` shows it so (testdata/nft/ruleset.nft has
// the whole listing):
//
//	chain knock {
//		type filter hook prerouting priority mangle; policy accept;
//		iif "lo" accept
//		tcp flags syn / fin,syn,rst,ack tcp dport 1-65535 fib daddr type local jump knocks
//	}
//	chain guard {
//		type filter hook prerouting priority mangle + 5; policy accept;
//		iif "lo" accept
//		tcp flags syn / fin,syn,rst,ack tcp dport @guard fib daddr type local jump guarded
//		ip frag-off & 0x3fff == 0x2000 meta l4proto tcp tcp dport @guard fib daddr type local jump guarded
//		meta l4proto tcp ct state new tcp dport @guard fib daddr type local jump guarded  (Spec.Conntrack only)
//	}
//	chain guarded {
//		ip saddr . tcp dport @allow4 accept
//		ip6 saddr . tcp dport @allow6 accept
//		ip saddr @static4 accept
//		ip6 saddr @static6 accept
//		counter drop
//	}
//	chain knocks {
//		(the kernel filter, see filter.rules; with QueueAll: counter queue ... bypass)
//	}
//
// allow4 and allow6 hold (source, port) pairs: an opened source reaches the
// guarded ports it was opened for, and no other. Both guard rules load the
// TCP destination port before they jump to guarded, so every packet there
// has one: an IPv4 first fragment too, as its 8 bytes of TCP or more hold
// the ports (the kernel's reassembly discards a first fragment of fewer
// than 8 bytes). A packet whose port could not be read matches no allow
// rule and meets the drop: the guard fails closed.
//
// Both base chains hook prerouting before DNAT (priority dstnat, -100), and
// only for packets to an address of this host (fib daddr type local): a
// port published by DNAT (Docker, a router's port forward) is guarded by the
// port the client used, and packets routed through the host are never
// touched.
func Build(s Spec, v QueueVariant) (*Ruleset, error) {
	s, err := s.normalize()
	if err != nil {
		return nil, err
	}
	t := &nftables.Table{Name: s.Table, Family: nftables.TableFamilyINet}
	guard := &nftables.Set{Table: t, ID: guardSetID, Name: SetGuard, KeyType: nftables.TypeInetService, KeyByteOrder: binaryutil.BigEndian}
	allow4 := allowSet(t, true)
	allow4.ID, allow4.Size = allow4SetID, s.MaxOpen
	allow6 := allowSet(t, false)
	allow6.ID, allow6.Size = allow6SetID, s.MaxOpen
	static4 := &nftables.Set{Table: t, ID: static4SetID, Name: SetStatic4, KeyType: nftables.TypeIPAddr, KeyByteOrder: binaryutil.BigEndian, Interval: true}
	static6 := &nftables.Set{Table: t, ID: static6SetID, Name: SetStatic6, KeyType: nftables.TypeIP6Addr, KeyByteOrder: binaryutil.BigEndian, Interval: true}
	var guardElems []nftables.SetElement
	for _, p := range s.Guard {
		guardElems = append(guardElems, nftables.SetElement{Key: binary.BigEndian.AppendUint16(nil, p)})
	}
	e4, e6 := intervalElements(s.Allow)
	rs := &Ruleset{
		Table:    t,
		Sets:     []*nftables.Set{guard, allow4, allow6, static4, static6},
		Elements: [][]nftables.SetElement{guardElems, nil, nil, e4, e6},
	}
	f := filterSets(t, s)
	rs.Sets = append(rs.Sets, f.first, f.knocking4, f.knocking6, f.rate4, f.rate6, f.flood4, f.flood6)
	rs.Elements = append(rs.Elements, nil, nil, nil, nil, nil, nil, nil)
	spent := spentSet(t)
	spent.ID = spentSetID
	rs.Sets = append(rs.Sets, spent, f.spill4, f.spill6)
	rs.Elements = append(rs.Elements, nil, nil, nil)
	accept := nftables.ChainPolicyAccept
	knock := &nftables.Chain{
		Name: ChainKnock, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(KnockPriority), Policy: &accept,
	}
	guardChain := &nftables.Chain{
		Name: ChainGuard, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(GuardPriority), Policy: &accept,
	}
	guarded := &nftables.Chain{Name: ChainGuarded, Table: t}
	knocks := &nftables.Chain{Name: ChainKnocks, Table: t}
	rs.Chains = []*nftables.Chain{knock, guardChain, guarded, knocks}
	rule := func(c *nftables.Chain, note string, e ...expr.Any) *nftables.Rule {
		r := &nftables.Rule{Table: t, Chain: c, Exprs: e}
		if note != "" {
			r.UserData = comment(note)
		}
		return r
	}
	jump := &expr.Verdict{Kind: expr.VerdictJump, Chain: ChainGuarded}
	spaKnock, spaGuard := addSPA(rs, s, v)
	rs.Rules = append(rs.Rules, rule(knock, "", loopback()...))
	rs.Rules = append(rs.Rules, inChain(knock, spaKnock)...)
	if !s.SPAOnly {
		rs.Rules = append(rs.Rules, rule(knock, "", append(knockMatch(s), &expr.Verdict{Kind: expr.VerdictJump, Chain: ChainKnocks})...))
	}
	rs.Rules = append(rs.Rules, rule(guardChain, "", loopback()...))
	rs.Rules = append(rs.Rules, inChain(guardChain, spaGuard)...)
	rs.Rules = append(rs.Rules,
		rule(guardChain, CommentGuard, concat(bareSYN(), toGuard(guard), []expr.Any{jump})...),
		rule(guardChain, CommentFragment, concat(firstFragment4(), toGuard(guard), []expr.Any{jump})...),
	)
	if s.Conntrack {
		rs.Rules = append(rs.Rules, rule(guardChain, CommentNew, concat(ctNewTCP(), toGuard(guard), []expr.Any{jump})...))
	}
	rs.Rules = append(rs.Rules,
		rule(guarded, "", acceptOpened(unix.NFPROTO_IPV4, allow4)...),
		rule(guarded, "", acceptOpened(unix.NFPROTO_IPV6, allow6)...),
		rule(guarded, "", acceptFrom(unix.NFPROTO_IPV4, static4)...),
		rule(guarded, "", acceptFrom(unix.NFPROTO_IPV6, static6)...),
		rule(guarded, CommentDrop, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}),
	)
	rs.Rules = append(rs.Rules, f.rules(knocks, s, v)...)
	return rs, nil
}

// inChain sets the chain of rules and returns them.
func inChain(c *nftables.Chain, rules []*nftables.Rule) []*nftables.Rule {
	for _, r := range rules {
		r.Chain = c
	}
	return rules
}

func concat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// knockComment is the comment of the knock rule. `nft list` cannot print
// the xtables NFQUEUE target in an inet table unless iptables' libxtables
// is installed (nft 1.0.6 without it shows nothing where the statement is,
// and says "XT target NFQUEUE not found" on stderr), so for Compat the
// comment says what the rule does.
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

// comment encodes c as the comment nft prints for a rule or a table.
func comment(c string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, c)
}

// IsOurRule reports whether r carries one of the comments Build gives.
func IsOurRule(r *nftables.Rule) bool {
	c, ok := userdata.GetString(r.UserData, userdata.TypeComment)
	return ok && strings.HasPrefix(c, commentPrefix)
}

// loopback is `iif "lo" accept`: the host's own connections are never
// queued nor guarded (lo is interface 1 in every network namespace).
func loopback() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIF, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, 1)},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
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

// firstFragment4 matches the first fragment of a fragmented IPv4 TCP
// segment: `ip frag-off & 0x3fff == 0x2000 meta l4proto tcp` (more
// fragments, offset 0). Without conntrack the kernel reassembles IPv4 only
// after prerouting, and a first fragment that holds just the ports (8
// bytes of TCP) hides its flags from bareSYN: so any first fragment to a
// guarded port goes through the guard. (IPv6: the kernel itself drops a
// first fragment without the whole TCP header, RFC 7112.)
func firstFragment4() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 6, Len: 2},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 2, Mask: []byte{0x3f, 0xff}, Xor: []byte{0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x20, 0x00}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
	}
}

// ctNewTCP matches a TCP packet that conntrack takes for the first of a
// connection it does not know: `meta l4proto tcp ct state new`. After
// bareSYN's rule only packets that are no bare SYN get there: an ACK with
// a guessed SYN cookie (tcp_syncookies), or any segment conntrack picks up
// in mid-stream (nf_conntrack_tcp_loose, the default), such as one of a
// connection established before conntrack was loaded or after `conntrack
// -F`. Conntrack runs at priority -200, before the guard chain, so the
// state is known there.
func ctNewTCP() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, ctStateNew), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// ctStateNew is NF_CT_STATE_BIT(IP_CT_NEW), the bit of `ct state new`.
const ctStateNew = 1 << (2 + 1)

// toGuard is `tcp dport @guard fib daddr type local`: a guarded port of an
// address of this host, before any DNAT.
func toGuard(guard *nftables.Set) []expr.Any {
	return append([]expr.Any{
		tcpDport(),
		&expr.Lookup{SourceRegister: 1, SetName: guard.Name, SetID: guard.ID},
	}, localDest()...)
}

// localDest is `fib daddr type local`.
func localDest() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)},
	}
}

// tcpDport loads the TCP destination port into register 1.
func tcpDport() expr.Any {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
}

// knockMatch is `tcp flags & (fin|syn|rst|ack) == syn tcp dport
// Start-End fib daddr type local`: a new connection to a port of the knock
// range and an address of this host.
func knockMatch(s Spec) []expr.Any {
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
	return append(e, localDest()...)
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

// acceptOpened is `ip saddr . tcp dport @allow4 accept` (ip6 saddr and
// allow6 for nfproto IPv6), as nft encodes it: the address in register 1,
// the port in the 32-bit register after it (NFT_REG32_01 after the 4 bytes
// of an IPv4 address, NFT_REG_2 after the 16 of an IPv6 one), each field
// of the concatenation padded to 4 bytes. The payload expression zeroes
// the register's 2 bytes of padding, as allowKey does.
func acceptOpened(nfproto byte, set *nftables.Set) []expr.Any {
	src, portReg := source(nfproto), uint32(unix.NFT_REG32_01)
	if nfproto == unix.NFPROTO_IPV6 {
		portReg = unix.NFT_REG_2
	}
	return []expr.Any{
		src[0], src[1], // meta nfproto
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		src[2], // the source address
		&expr.Payload{DestRegister: portReg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		lookup(set),
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
}

// acceptFrom is `ip saddr @set accept` (ip6 for nfproto IPv6).
func acceptFrom(nfproto byte, set *nftables.Set) []expr.Any {
	return append(source(nfproto), lookup(set), &expr.Verdict{Kind: expr.VerdictAccept})
}
