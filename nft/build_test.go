package nft

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/google/nftables/xt"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// bareSYNWant is `tcp flags & (fin|syn|rst|ack) == syn` as nft encodes it
// (read from `nft --debug=netlink`).
func bareSYNWant() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{6}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x17}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x02}},
	}
}

func TestBuildKnockRule(t *testing.T) {
	dport := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
	tests := []struct {
		name       string
		spec       Spec
		portMatch  []expr.Any
		native     *expr.Queue
		compatInfo []byte // little-endian host: num, total, flags, pad
		compatNote string // the comment of the compat rule
	}{
		{
			name: "single queue, range 1-65535",
			spec: Spec{Start: 1, End: 65535, Guard: []uint16{22}, QueueNum: 100},
			portMatch: []expr.Any{
				&expr.Cmp{Op: expr.CmpOpGte, Register: 1, Data: []byte{0x00, 0x01}},
				&expr.Cmp{Op: expr.CmpOpLte, Register: 1, Data: []byte{0xff, 0xff}},
			},
			native:     &expr.Queue{Num: 100, Total: 1, Flag: expr.QueueFlagBypass},
			compatInfo: []byte{100, 0, 1, 0, 1, 0, 0, 0},
			compatNote: "nfqknockd knock: queue num 100 bypass (xt NFQUEUE)",
		},
		{
			name: "4 queues, range 1000-2000",
			spec: Spec{Start: 1000, End: 2000, Guard: []uint16{22}, QueueNum: 100, QueueTotal: 4},
			portMatch: []expr.Any{
				&expr.Cmp{Op: expr.CmpOpGte, Register: 1, Data: []byte{0x03, 0xe8}},
				&expr.Cmp{Op: expr.CmpOpLte, Register: 1, Data: []byte{0x07, 0xd0}},
			},
			// Total > 1 without the fanout flag: the kernel hashes the
			// addresses, one source stays on one queue.
			native:     &expr.Queue{Num: 100, Total: 4, Flag: expr.QueueFlagBypass},
			compatInfo: []byte{100, 0, 4, 0, 1, 0, 0, 0},
			compatNote: "nfqknockd knock: queue num 100-103 bypass (xt NFQUEUE)",
		},
		{
			name: "queue 0x1234, one port",
			spec: Spec{Start: 7000, End: 7000, Guard: []uint16{22}, QueueNum: 0x1234, QueueTotal: 2},
			portMatch: []expr.Any{
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x1b, 0x58}},
			},
			native:     &expr.Queue{Num: 0x1234, Total: 2, Flag: expr.QueueFlagBypass},
			compatInfo: []byte{0x34, 0x12, 2, 0, 1, 0, 0, 0},
			compatNote: "nfqknockd knock: queue num 4660-4661 bypass (xt NFQUEUE)",
		},
	}
	if !littleEndian() {
		t.Skip("the compat info literals are written for a little-endian host")
	}
	for _, tt := range tests {
		for _, v := range []QueueVariant{Native, Compat} {
			t.Run(tt.name+"/"+v.String(), func(t *testing.T) {
				rs, err := Build(tt.spec, v)
				if err != nil {
					t.Fatalf("Build: %v", err)
				}
				want := append(bareSYNWant(), dport)
				want = append(want, tt.portMatch...)
				want = append(want, localDestWant()...)
				want = append(want, &expr.Verdict{Kind: expr.VerdictJump, Chain: ChainKnocks})
				if diff := cmp.Diff(want, rs.Rules[1].Exprs); diff != "" {
					t.Errorf("knock chain rule (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(loopbackWant(), rs.Rules[0].Exprs); diff != "" {
					t.Errorf("first knock chain rule (-want iif lo accept +got):\n%s", diff)
				}
				var q expr.Any = tt.native
				if v == Compat {
					info := xt.Unknown(tt.compatInfo)
					q = &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &info}
				}
				all := tt.spec
				all.QueueAll = true
				ra, err := Build(all, v)
				if err != nil {
					t.Fatal(err)
				}
				knocks := rulesOf(ra, ChainKnocks)
				if len(knocks) != 1 {
					t.Fatalf("QueueAll: %d rules in knocks, want 1", len(knocks))
				}
				r := knocks[0]
				if diff := cmp.Diff([]expr.Any{&expr.Counter{}, q}, r.Exprs); diff != "" {
					t.Errorf("QueueAll: the queue rule (-want +got):\n%s", diff)
				}
				// The filter's queue rules end the same way.
				for _, fr := range rulesOf(rs, ChainKnocks) {
					if IsOurRule(fr) {
						if diff := cmp.Diff([]expr.Any{&expr.Counter{}, q}, fr.Exprs[len(fr.Exprs)-2:]); diff != "" {
							t.Errorf("filter: the queue rule's end (-want +got):\n%s", diff)
						}
					}
				}
				wantNote := "nfqknockd knock"
				if v == Compat {
					wantNote = tt.compatNote
				}
				if got, _ := userdata.GetString(r.UserData, userdata.TypeComment); got != wantNote {
					t.Errorf("knock rule comment %q, want %q", got, wantNote)
				}
				if !IsOurRule(r) {
					t.Errorf("IsOurRule(queue rule) = false")
				}
			})
		}
	}
}

// localDestWant is `fib daddr type local` as nft encodes it.
func localDestWant() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{2, 0, 0, 0}}, // RTN_LOCAL, host order
	}
}

// loopbackWant is `iif "lo" accept`.
func loopbackWant() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIF, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{1, 0, 0, 0}},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
}

func TestBuildGuardRules(t *testing.T) {
	if !littleEndian() {
		t.Skip("the literals are written for a little-endian host")
	}
	for _, tc := range []struct {
		v         QueueVariant
		conntrack bool
	}{{Native, false}, {Compat, false}, {Native, true}} {
		v := tc.v
		rs, err := Build(Spec{Start: 1, End: 65535, Guard: []uint16{443, 22, 22}, QueueNum: 100, Conntrack: tc.conntrack}, v)
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		guard := rs.Set(SetGuard)
		toGuard := append([]expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, SetName: "guard", SetID: guard.ID},
		}, localDestWant()...)
		jump := &expr.Verdict{Kind: expr.VerdictJump, Chain: "guarded"}
		fragment := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 6, Len: 2},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 2, Mask: []byte{0x3f, 0xff}, Xor: []byte{0, 0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x20, 0x00}},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{6}},
		}
		from := func(nfproto byte, off, n uint32, set string) []expr.Any {
			return []expr.Any{
				&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
				&expr.Lookup{SourceRegister: 1, SetName: set, SetID: rs.Set(set).ID},
				&expr.Verdict{Kind: expr.VerdictAccept},
			}
		}
		// `ip saddr . tcp dport @allow4 accept` as nft encodes it (read
		// from `nft --debug=netlink`): the port in reg 9 (NFT_REG32_01)
		// after an IPv4 address, in reg 2 after an IPv6 one.
		opened := func(nfproto byte, off, n, portReg uint32, set string) []expr.Any {
			return []expr.Any{
				&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{6}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
				&expr.Payload{DestRegister: portReg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Lookup{SourceRegister: 1, SetName: set, SetID: rs.Set(set).ID},
				&expr.Verdict{Kind: expr.VerdictAccept},
			}
		}
		want := []struct {
			chain string
			exprs []expr.Any
			ours  bool
		}{
			{"guard", loopbackWant(), false},
			{"guard", append(append(bareSYNWant(), toGuard...), jump), true},
			{"guard", append(append(fragment, toGuard...), jump), true},
		}
		if tc.conntrack {
			// `meta l4proto tcp ct state new`, as nft encodes it.
			ctNew := []expr.Any{
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{6}},
				&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{8, 0, 0, 0}, Xor: []byte{0, 0, 0, 0}},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
			}
			want = append(want, struct {
				chain string
				exprs []expr.Any
				ours  bool
			}{"guard", append(append(ctNew, toGuard...), jump), true})
		}
		want = append(want, []struct {
			chain string
			exprs []expr.Any
			ours  bool
		}{
			{"guarded", opened(unix.NFPROTO_IPV4, 12, 4, 9, "allow4"), false},
			{"guarded", opened(unix.NFPROTO_IPV6, 8, 16, 2, "allow6"), false},
			{"guarded", from(unix.NFPROTO_IPV4, 12, 4, "static4"), false},
			{"guarded", from(unix.NFPROTO_IPV6, 8, 16, "static6"), false},
			{"guarded", []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}}, true},
		}...)
		got := append(rulesOf(rs, ChainGuard), rulesOf(rs, ChainGuarded)...)
		if len(got) != len(want) {
			t.Fatalf("%d rules, want %d", len(got), len(want))
		}
		for i, r := range got {
			if r.Chain.Name != want[i].chain {
				t.Errorf("%s: guard rule %d in chain %q, want %q", v, i, r.Chain.Name, want[i].chain)
			}
			if diff := cmp.Diff(want[i].exprs, r.Exprs); diff != "" {
				t.Errorf("%s: guard rule %d (-want +got):\n%s", v, i, diff)
			}
			if IsOurRule(r) != want[i].ours {
				t.Errorf("%s: guard rule %d: IsOurRule %v", v, i, !want[i].ours)
			}
		}
		var ports [][]byte
		for _, e := range rs.Elements[0] {
			ports = append(ports, e.Key)
		}
		if diff := cmp.Diff([][]byte{{0, 22}, {0x01, 0xbb}}, ports); diff != "" {
			t.Errorf("%s: guard elements, sorted without duplicates (-want +got):\n%s", v, diff)
		}
	}
}

func TestBuildObjects(t *testing.T) {
	rs, err := Build(Spec{Start: 1, End: 2, Guard: []uint16{22}}, Compat)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if rs.Table.Name != DefaultTable || rs.Table.Family != nftables.TableFamilyINet {
		t.Errorf("table %v %q, want inet %q", rs.Table.Family, rs.Table.Name, DefaultTable)
	}
	sets := []struct {
		name       string
		key        nftables.SetDatatype
		hasTimeout bool
		interval   bool
		size       uint32
	}{
		{"guard", nftables.TypeInetService, false, false, 0},
		{"allow4", nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService), true, false, DefaultMaxOpen},
		{"allow6", nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetService), true, false, DefaultMaxOpen},
		{"static4", nftables.TypeIPAddr, false, true, 0},
		{"static6", nftables.TypeIP6Addr, false, true, 0},
		{"first", nftables.TypeInetService, true, false, 0},
		{"knocking4", nftables.TypeIPAddr, true, false, 65536},
		{"knocking6", nftables.TypeIP6Addr, true, false, 65536},
		{"rate4", nftables.TypeIPAddr, true, false, 65536},
		{"rate6", nftables.TypeIP6Addr, true, false, 65536},
		{"flood4", nftables.TypeIPAddr, true, false, 65536},
		{"flood6", nftables.TypeIP6Addr, true, false, 65536},
		{"spent", nftables.TypeIP6Addr, true, false, SpentSize},
		{"spill4", nftables.TypeIPAddr, true, false, 13000},
		{"spill6", nftables.TypeIP6Addr, true, false, 13000},
	}
	if len(rs.Sets) != len(sets) {
		t.Fatalf("%d sets, want %d", len(rs.Sets), len(sets))
	}
	// The keys of allow4 and allow6 are an address and a port, each padded
	// to 4 bytes, as nft makes `type ipv4_addr . inet_service`.
	for name, want := range map[string]uint32{"allow4": 8, "allow6": 20} {
		if got := rs.Set(name).KeyType; got.Bytes != want || got.Name != map[string]string{"allow4": "ipv4_addr", "allow6": "ipv6_addr"}[name]+" . inet_service" {
			t.Errorf("set %s: key %q of %d bytes, want %d", name, got.Name, got.Bytes, want)
		}
	}
	ids := map[uint32]bool{}
	for i, s := range sets {
		got := rs.Sets[i]
		if got.Name != s.name || got.KeyType != s.key || got.HasTimeout != s.hasTimeout || got.Interval != s.interval || got.Size != s.size || got.Table != rs.Table {
			t.Errorf("set %q: key %s, timeout %v, interval %v, size %d; want %q, %s, %v, %v, %d", got.Name, got.KeyType.Name, got.HasTimeout, got.Interval, got.Size, s.name, s.key.Name, s.hasTimeout, s.interval, s.size)
		}
		if got.ID == 0 || ids[got.ID] {
			t.Errorf("set %q: ID %d is zero or not unique", got.Name, got.ID)
		}
		ids[got.ID] = true
	}
	chains := []struct {
		name string
		base bool
		prio nftables.ChainPriority
	}{{"knock", true, -150}, {"guard", true, -145}, {"guarded", false, 0}, {"knocks", false, 0}}
	for i, c := range chains {
		got := rs.Chains[i]
		if got.Name != c.name {
			t.Errorf("chain %d is %q, want %q", i, got.Name, c.name)
		}
		if !c.base {
			if got.Hooknum != nil || got.Type != "" {
				t.Errorf("chain %q: a regular chain has no hook", got.Name)
			}
			continue
		}
		if got.Type != nftables.ChainTypeFilter || *got.Hooknum != *nftables.ChainHookPrerouting ||
			*got.Priority != c.prio || *got.Policy != nftables.ChainPolicyAccept {
			t.Errorf("chain %q: type %s hook %d priority %d policy %d; want filter prerouting %d accept",
				got.Name, got.Type, *got.Hooknum, *got.Priority, *got.Policy, c.prio)
		}
	}
}

// rulesOf returns the rules of chain name, in order.
func rulesOf(rs *Ruleset, name string) []*nftables.Rule {
	var out []*nftables.Rule
	for _, r := range rs.Rules {
		if r.Chain.Name == name {
			out = append(out, r)
		}
	}
	return out
}

// TestCompatTargetBytes checks the netlink encoding of the compat NFQUEUE
// target byte for byte: revision 3, and an 8-byte xt_NFQ_info_v3 in host
// byte order (queuenum, queues_total, flags = NFQ_FLAG_BYPASS, 2 bytes of
// padding). nft_compat refuses any other info size.
func TestCompatTargetBytes(t *testing.T) {
	if !littleEndian() {
		t.Skip("the literal below is written for a little-endian host")
	}
	e := queueExpr(100, 4, Compat)
	b, err := expr.Marshal(unix.NFPROTO_INET, e)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	attrs, err := netlink.UnmarshalAttributes(b)
	if err != nil {
		t.Fatalf("unmarshal expression: %v", err)
	}
	got := map[uint16][]byte{}
	for _, a := range attrs {
		got[a.Type&^unix.NLA_F_NESTED] = a.Data
	}
	if name := string(got[unix.NFTA_EXPR_NAME]); name != "target\x00" {
		t.Fatalf("expression name %q, want target", name)
	}
	data, err := netlink.UnmarshalAttributes(got[unix.NFTA_EXPR_DATA])
	if err != nil {
		t.Fatalf("unmarshal target data: %v", err)
	}
	want := map[uint16][]byte{
		unix.NFTA_TARGET_NAME: []byte("NFQUEUE\x00"),
		unix.NFTA_TARGET_REV:  {0, 0, 0, 3},
		unix.NFTA_TARGET_INFO: {0x64, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00},
	}
	for _, a := range data {
		w, ok := want[a.Type]
		if !ok {
			t.Errorf("unexpected target attribute %d: % x", a.Type, a.Data)
			continue
		}
		if !bytes.Equal(a.Data, w) {
			t.Errorf("target attribute %d = % x, want % x", a.Type, a.Data, w)
		}
		delete(want, a.Type)
	}
	for typ := range want {
		t.Errorf("target attribute %d missing", typ)
	}
}

func littleEndian() bool {
	return binary.NativeEndian.Uint16([]byte{1, 0}) == 1
}
