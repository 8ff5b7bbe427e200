package nft

import (
	"bytes"
	"encoding/binary"
	"strings"
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
				want = append(want, &expr.Counter{})
				if v == Native {
					want = append(want, tt.native)
				} else {
					info := xt.Unknown(tt.compatInfo)
					want = append(want, &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &info})
				}
				r := rs.Rules[0]
				if r.Chain != rs.KnockChain || r.Table != rs.Table {
					t.Errorf("knock rule is in chain %q, want %q", r.Chain.Name, rs.KnockChain.Name)
				}
				if diff := cmp.Diff(want, r.Exprs); diff != "" {
					t.Errorf("knock rule expressions (-want +got):\n%s", diff)
				}
				wantNote := "nfqknockd knock"
				if v == Compat {
					wantNote = tt.compatNote
				}
				if got, _ := userdata.GetString(r.UserData, userdata.TypeComment); got != wantNote {
					t.Errorf("knock rule comment %q, want %q", got, wantNote)
				}
				if !IsOurRule(r) {
					t.Errorf("IsOurRule(knock rule) = false")
				}
			})
		}
	}
}

func TestBuildGuardRules(t *testing.T) {
	for _, v := range []QueueVariant{Native, Compat} {
		rs, err := Build(Spec{Start: 1, End: 65535, Guard: []uint16{443, 22, 22}, QueueNum: 100}, v)
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		tail := func(nfproto byte, off, n uint32, set *nftables.Set) []expr.Any {
			return []expr.Any{
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Lookup{SourceRegister: 1, SetName: "guard", SetID: rs.GuardSet.ID},
				&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
				&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID, Invert: true},
				&expr.Counter{},
				&expr.Verdict{Kind: expr.VerdictDrop},
			}
		}
		want := [][]expr.Any{
			append(bareSYNWant(), tail(unix.NFPROTO_IPV4, 12, 4, rs.Allow4)...),
			append(bareSYNWant(), tail(unix.NFPROTO_IPV6, 8, 16, rs.Allow6)...),
		}
		if len(rs.Rules) != 3 {
			t.Fatalf("%d rules, want 3", len(rs.Rules))
		}
		for i, r := range rs.Rules[1:] {
			if r.Chain != rs.GuardChain {
				t.Errorf("%s: guard rule %d in chain %q", v, i, r.Chain.Name)
			}
			if diff := cmp.Diff(want[i], r.Exprs); diff != "" {
				t.Errorf("%s: guard rule %d (-want +got):\n%s", v, i, diff)
			}
			if !IsOurRule(r) {
				t.Errorf("%s: guard rule %d has no nfqknockd comment", v, i)
			}
		}
		var ports [][]byte
		for _, e := range rs.GuardElements {
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
		set        *nftables.Set
		name       string
		key        nftables.SetDatatype
		hasTimeout bool
	}{
		{rs.GuardSet, "guard", nftables.TypeInetService, false},
		{rs.Allow4, "allow4", nftables.TypeIPAddr, true},
		{rs.Allow6, "allow6", nftables.TypeIP6Addr, true},
	}
	ids := map[uint32]bool{}
	for _, s := range sets {
		if s.set.Name != s.name || s.set.KeyType != s.key || s.set.HasTimeout != s.hasTimeout || s.set.Table != rs.Table {
			t.Errorf("set %q: key %s, timeout %v; want %q, %s, %v", s.set.Name, s.set.KeyType.Name, s.set.HasTimeout, s.name, s.key.Name, s.hasTimeout)
		}
		if s.set.ID == 0 || ids[s.set.ID] {
			t.Errorf("set %q: ID %d is zero or not unique", s.set.Name, s.set.ID)
		}
		ids[s.set.ID] = true
	}
	chains := []struct {
		c    *nftables.Chain
		name string
		prio nftables.ChainPriority
	}{{rs.KnockChain, "knock", -10}, {rs.GuardChain, "guard", -5}}
	for _, c := range chains {
		if c.c.Name != c.name || c.c.Type != nftables.ChainTypeFilter || *c.c.Hooknum != *nftables.ChainHookInput ||
			*c.c.Priority != c.prio || *c.c.Policy != nftables.ChainPolicyAccept {
			t.Errorf("chain %q: type %s hook %d priority %d policy %d; want %q filter input %d accept",
				c.c.Name, c.c.Type, *c.c.Hooknum, *c.c.Priority, *c.c.Policy, c.name, c.prio)
		}
	}
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

func TestSpecErrors(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{"zero start", Spec{Start: 0, End: 10}, "knock range 0-10"},
		{"start after end", Spec{Start: 11, End: 10}, "knock range 11-10"},
		{"queues past 65535", Spec{Start: 1, End: 2, QueueNum: 65535, QueueTotal: 2}, "queues 65535-65536"},
		{"guard port 0", Spec{Start: 1, End: 2, Guard: []uint16{0, 22}}, "guard port 0"},
		{"bad table", Spec{Table: "a b", Start: 1, End: 2}, `table name "a b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build(tt.spec, Native)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Build error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestValidTableName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"nfqknock", true},
		{"_x", true},
		{"knock-2.v6_a", true},
		{strings.Repeat("a", 255), true},
		{strings.Repeat("a", 256), false},
		{"", false},
		{"1abc", false},
		{"-abc", false},
		{"a b", false},
		{"a;b", false},
		{"a\"b", false},
		{"tablé", false},
	}
	for _, tt := range tests {
		if err := ValidTableName(tt.name); (err == nil) != tt.ok {
			t.Errorf("ValidTableName(%.30q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestQueueVariantString(t *testing.T) {
	for v, want := range map[QueueVariant]string{
		Native:          "native queue",
		Compat:          "xtables NFQUEUE (nft_compat)",
		QueueVariant(7): "QueueVariant(7)",
	} {
		if got := v.String(); got != want {
			t.Errorf("QueueVariant(%d).String() = %q, want %q", int(v), got, want)
		}
	}
}

func littleEndian() bool {
	return binary.NativeEndian.Uint16([]byte{1, 0}) == 1
}
