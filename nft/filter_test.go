package nft

// Tests of the kernel filter's sets and rules (filter.go), without a kernel.

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TestBuildFilterRules checks the kernel filter's rules for IPv4 (IPv6 is
// the same with ip6 saddr and the *6 sets) and the timeouts of its sets.
func TestBuildFilterRules(t *testing.T) {
	rs, err := Build(Spec{Start: 1, End: 65535, Guard: []uint16{22}, QueueNum: 100, KnockTimeout: 12 * time.Second}, Native)
	if err != nil {
		t.Fatal(err)
	}
	id := func(name string) uint32 { return rs.Set(name).ID }
	src4 := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
	}
	look := func(name string) *expr.Lookup { return &expr.Lookup{SourceRegister: 1, SetName: name, SetID: id(name)} }
	dyn := func(op uint32, name string) *expr.Dynset {
		return &expr.Dynset{SrcRegKey: 1, SetName: name, SetID: id(name), Operation: op}
	}
	over := dyn(unix.NFT_DYNSET_OP_UPDATE, "rate4")
	over.Exprs = []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: 250, Over: true, Unit: expr.LimitTimeSecond, Burst: 64}}
	spillOver := dyn(unix.NFT_DYNSET_OP_UPDATE, "rate4")
	spillOver.Exprs = over.Exprs
	accept := &expr.Verdict{Kind: expr.VerdictAccept}
	want := [][]expr.Any{
		append(append([]expr.Any{}, src4...), look("flood4"), accept),
		append(append([]expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}, look("first")}, src4...),
			dyn(unix.NFT_DYNSET_OP_UPDATE, "knocking4")),
		append(append([]expr.Any{}, src4...), look("knocking4"), over, dyn(unix.NFT_DYNSET_OP_ADD, "flood4"), accept),
		append(append([]expr.Any{}, src4...), look("knocking4"), dyn(unix.NFT_DYNSET_OP_UPDATE, "knocking4"), &expr.Counter{},
			&expr.Queue{Num: 100, Total: 1, Flag: expr.QueueFlagBypass}),
		// The spill: a source that a full knocking4 did not take is
		// queued from its first-port SYN on, through spill4, whose
		// sources are rate-bounded as knocking ones; the first-port SYN
		// at a bounded rate, adding its source (never renewed).
		append(append([]expr.Any{}, src4...), look("spill4"), spillOver, dyn(unix.NFT_DYNSET_OP_ADD, "flood4"), accept),
		append(append([]expr.Any{}, src4...), look("spill4"), &expr.Counter{},
			&expr.Queue{Num: 100, Total: 1, Flag: expr.QueueFlagBypass}),
		append(append([]expr.Any{}, src4[:2]...), &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			look("first"), &expr.Limit{Type: expr.LimitTypePkts, Rate: 1000, Unit: expr.LimitTimeSecond, Burst: 1000},
			src4[2], dyn(unix.NFT_DYNSET_OP_ADD, "spill4"), &expr.Counter{},
			&expr.Queue{Num: 100, Total: 1, Flag: expr.QueueFlagBypass}),
	}
	knocks := rulesOf(rs, ChainKnocks)
	if len(knocks) != 14 {
		t.Fatalf("%d rules in knocks, want 14", len(knocks))
	}
	for i, w := range want {
		if diff := cmp.Diff(w, knocks[i].Exprs); diff != "" {
			t.Errorf("rule %d (-want +got):\n%s", i, diff)
		}
	}
	for name, timeout := range map[string]time.Duration{"knocking4": 12 * time.Second, "knocking6": 12 * time.Second,
		"rate4": 10 * time.Second, "flood6": 10 * time.Second, "spill4": 12 * time.Second, "spill6": 12 * time.Second} {
		if s := rs.Set(name); !s.Dynamic || !s.HasTimeout || s.Timeout != timeout {
			t.Errorf("set %s: dynamic %v, timeout %v %v; want dynamic, %v", name, s.Dynamic, s.HasTimeout, s.Timeout, timeout)
		}
	}
}
