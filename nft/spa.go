package nft

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Names of the objects of single-packet authorization (Spec.SPA): they
// exist only when the daemon listens for SPA packets.
const (
	SetSPA      = "spa"      // inet_service: the UDP ports of --spa
	SetSPAKeys  = "spakeys"  // ipv4_addr . ipv4_addr (8 opaque bytes): the key ids the daemon accepts now (Conn.SetSPAKeys)
	SetSPARate4 = "sparate4" // ipv4_addr, dynamic: each source's rate of SPA packets
	SetSPARate6 = "sparate6" // ipv6_addr, dynamic
	ChainSPA    = "spa"      // UDP to an SPA port of this host: rate-bound per source, queued
)

// Rule comments of single-packet authorization.
const (
	CommentSPAQueue = commentPrefix + "spa"
	CommentSPADrop  = commentPrefix + "spa: a UDP packet to an SPA port is never delivered"
	CommentSPARate  = commentPrefix + "spa: a source over the rate"
	CommentSPAKey   = commentPrefix + "spa: not a key id of now"
)

// Limits of SPA packets per source: a source that sends more than SPARate
// a second to the SPA ports, beyond a burst of SPABurst, has the excess
// dropped in the kernel, never queued. The client sends each packet three
// times, a few milliseconds apart.
const (
	SPARate  = 10
	SPABurst = 20
)

// Set IDs of the SPA sets, after the others (build.go).
const (
	spaSetID = spill6SetID + 1 + iota
	spaRate4SetID
	spaRate6SetID
	spaKeysSetID
)

// SPAKeyID is the key id of an SPA packet (spa.KeyIDLen bytes, after its
// version byte): what the set spakeys holds.
type SPAKeyID [8]byte

// spaKeyOffset is where the key id starts in a UDP datagram: after the
// UDP header and the packet's version byte.
const spaKeyOffset = 8 + 1

// spaKeyType is the type of the set spakeys: 8 bytes, which nft has no
// integer type of, so two IPv4 addresses' worth (nft lists a key id as
// "a.b.c.d . e.f.g.h"; the set's comment says what it holds).
var spaKeyType = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeIPAddr)

// spaKeysSet returns the set spakeys of table t.
func spaKeysSet(t *nftables.Table) *nftables.Set {
	return &nftables.Set{Table: t, ID: spaKeysSetID, Name: SetSPAKeys, KeyType: spaKeyType, KeyByteOrder: binaryutil.BigEndian,
		Comment: "SPA key ids (8 bytes) accepted now"}
}

// spaObjects are the SPA objects of a ruleset.
type spaObjects struct {
	ports, rate4, rate6, keys *nftables.Set
	chain                     *nftables.Chain
}

// addSPA adds to rs, when s asks for SPA, the set spa with its ports, the
// rate sets, the chain spa and its rules, and returns the rules for the
// chains knock and guard (nil without SPA):
//
//	knock:  meta l4proto udp udp dport @spa fib daddr type local jump spa
//	guard:  meta l4proto udp udp dport @spa fib daddr type local counter drop
//	spa:    @th,72,64 != @spakeys counter drop
//	        ip saddr update @sparate4 { ip saddr limit rate over 10/second burst 20 packets } counter drop
//	        ip6 saddr update @sparate6 { ip6 saddr limit rate over 10/second burst 20 packets } counter drop
//	        counter queue ... bypass
//
// The daemon's verdict is accept, as for knocks; the guard chain, after
// it, drops every SPA packet, so none reaches a socket, whether the daemon
// read it, was absent (bypass), or its queue was full (fail-open), and the
// port looks filtered. A packet whose key id the daemon does not accept now
// (the set spakeys, which it renews as the periods pass) never leaves the
// kernel: a flood of random payloads costs the daemon nothing. One of a
// valid key id (replayed, or sniffed) is rate-bound per source; when a rate
// set is full (many spoofed sources) its update fails and ends the rule,
// and the packet is queued: the daemon refuses it as a replay or as failing
// authentication.
func addSPA(rs *Ruleset, s Spec, v QueueVariant) (knock, guard []*nftables.Rule) {
	if len(s.SPA) == 0 {
		return nil, nil
	}
	t := rs.Table
	o := spaObjects{
		ports: &nftables.Set{Table: t, ID: spaSetID, Name: SetSPA, KeyType: nftables.TypeInetService, KeyByteOrder: binaryutil.BigEndian},
		rate4: &nftables.Set{Table: t, ID: spaRate4SetID, Name: SetSPARate4, KeyType: nftables.TypeIPAddr, KeyByteOrder: binaryutil.BigEndian,
			Dynamic: true, HasTimeout: true, Timeout: FloodTimeout, Size: knockingSize},
		rate6: &nftables.Set{Table: t, ID: spaRate6SetID, Name: SetSPARate6, KeyType: nftables.TypeIP6Addr, KeyByteOrder: binaryutil.BigEndian,
			Dynamic: true, HasTimeout: true, Timeout: FloodTimeout, Size: knockingSize},
		keys:  spaKeysSet(t),
		chain: &nftables.Chain{Name: ChainSPA, Table: t},
	}
	var ports []nftables.SetElement
	for _, p := range s.SPA {
		ports = append(ports, nftables.SetElement{Key: binary.BigEndian.AppendUint16(nil, p)})
	}
	rs.Sets = append(rs.Sets, o.ports, o.rate4, o.rate6, o.keys)
	rs.Elements = append(rs.Elements, ports, nil, nil, spaKeyElements(s.SPAKeys))
	rs.Chains = append(rs.Chains, o.chain)
	rs.Rules = append(rs.Rules, o.rules(s, v)...)
	knock = []*nftables.Rule{{Table: t, Exprs: concat(o.match(), []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: ChainSPA}})}}
	guard = []*nftables.Rule{{Table: t, UserData: comment(CommentSPADrop),
		Exprs: concat(o.match(), []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}})}}
	return knock, guard
}

// match is `meta l4proto udp udp dport @spa fib daddr type local`.
func (o spaObjects) match() []expr.Any {
	return concat([]expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		lookup(o.ports),
	}, localDest())
}

// rules are the rules of chain spa: the per-source bound, then the queue.
func (o spaObjects) rules(s Spec, v QueueVariant) []*nftables.Rule {
	out := []*nftables.Rule{{Table: o.chain.Table, Chain: o.chain, UserData: comment(CommentSPAKey), Exprs: []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: spaKeyOffset, Len: 8},
		&expr.Lookup{SourceRegister: 1, SetName: o.keys.Name, SetID: o.keys.ID, Invert: true},
		&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop},
	}}}
	for _, fam := range []struct {
		nfproto byte
		rate    *nftables.Set
	}{{unix.NFPROTO_IPV4, o.rate4}, {unix.NFPROTO_IPV6, o.rate6}} {
		over := dynset(unix.NFT_DYNSET_OP_UPDATE, fam.rate)
		over.Exprs = []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: SPARate, Over: true, Unit: expr.LimitTimeSecond, Burst: SPABurst}}
		out = append(out, &nftables.Rule{Table: o.chain.Table, Chain: o.chain, UserData: comment(CommentSPARate),
			Exprs: concat(source(fam.nfproto), []expr.Any{over, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}})})
	}
	out = append(out, &nftables.Rule{Table: o.chain.Table, Chain: o.chain, UserData: comment(spaComment(s, v)),
		Exprs: []expr.Any{&expr.Counter{}, queueExpr(s.QueueNum, s.QueueTotal, v)}})
	return out
}

// spaComment is the comment of the SPA queue rule: as knockComment, it
// says the queue where nft cannot print the compat target.
func spaComment(s Spec, v QueueVariant) string {
	k := knockComment(s, v)
	if k == CommentKnock {
		return CommentSPAQueue
	}
	return CommentSPAQueue + k[len(CommentKnock):]
}

// checkSPA checks the SPA ports of s.
func checkSPA(ports []uint16) error {
	for _, p := range ports {
		if p == 0 {
			return fmt.Errorf("SPA port 0: ports are 1..65535")
		}
	}
	return nil
}

// spaKeyElements returns the elements of spakeys for ids.
func spaKeyElements(ids []SPAKeyID) []nftables.SetElement {
	out := make([]nftables.SetElement, len(ids))
	for i, id := range ids {
		out[i] = nftables.SetElement{Key: id[:]}
	}
	return out
}
