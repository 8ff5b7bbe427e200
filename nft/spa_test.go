package nft

// Tests of the SPA objects of the ruleset (spa.go), without a kernel; the
// listing on a kernel is TestApplyGolden's ruleset-spa.nft.

import (
	"testing"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
)

// TestBuildSPA: without --spa no SPA object exists; with it the set spa
// holds the ports, the knock chain jumps to chain spa for UDP to them, the
// guard drops them right after loopback, and chain spa drops a key id not
// of now, bounds each source's rate, then queues; --spa-only leaves out the
// knock rule.
func TestBuildSPA(t *testing.T) {
	base := Spec{Start: 1, End: 65535, Guard: []uint16{22}, QueueNum: 100}
	tests := []struct {
		name      string
		spa       []uint16
		only      bool
		wantSPA   bool
		wantKnock bool
		wantPorts int // elements of set spa
	}{
		{"off", nil, false, false, true, 0},
		{"on", []uint16{62201, 443, 443}, false, true, true, 2},
		{"only", []uint16{62201}, true, true, false, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			s.SPA, s.SPAOnly = tc.spa, tc.only
			rs, err := Build(s, Native)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{SetSPA, SetSPARate4, SetSPARate6} {
				if got := rs.Set(name) != nil; got != tc.wantSPA {
					t.Errorf("set %s present: %v, want %v", name, got, tc.wantSPA)
				}
			}
			knock := rulesOf(rs, ChainKnock)
			jumps := map[string]bool{}
			for _, r := range knock {
				if v, ok := r.Exprs[len(r.Exprs)-1].(*expr.Verdict); ok && v.Kind == expr.VerdictJump {
					jumps[v.Chain] = true
				}
			}
			if jumps[ChainKnocks] != tc.wantKnock || jumps[ChainSPA] != tc.wantSPA {
				t.Errorf("knock chain jumps to %v; want knocks %v, spa %v", jumps, tc.wantKnock, tc.wantSPA)
			}
			if !tc.wantSPA {
				if len(rulesOf(rs, ChainSPA)) != 0 {
					t.Error("rules in chain spa without --spa")
				}
				return
			}
			for i, el := range rs.Elements {
				if rs.Sets[i].Name == SetSPA && len(el) != tc.wantPorts {
					t.Errorf("set spa holds %d ports", len(el))
				}
			}
			guard := rulesOf(rs, ChainGuard)
			if c, _ := userdata.GetString(guard[1].UserData, userdata.TypeComment); c != CommentSPADrop {
				t.Errorf("guard's second rule is %q, want the SPA drop", c)
			}
			if v := guard[1].Exprs[len(guard[1].Exprs)-1].(*expr.Verdict); v.Kind != expr.VerdictDrop {
				t.Errorf("guard's SPA rule ends in %v, want drop", v.Kind)
			}
			spaRules := rulesOf(rs, ChainSPA)
			if len(spaRules) != 4 {
				t.Fatalf("%d rules in chain spa, want 4", len(spaRules))
			}
			key := spaRules[0].Exprs
			if p, ok := key[0].(*expr.Payload); !ok || p.Base != expr.PayloadBaseTransportHeader || p.Offset != 9 || p.Len != 8 {
				t.Errorf("the key id rule loads %v, want the 8 bytes after the UDP header and the version", key[0])
			}
			if l, ok := key[1].(*expr.Lookup); !ok || l.SetName != SetSPAKeys || !l.Invert {
				t.Errorf("the key id rule's lookup %v, want != @spakeys", key[1])
			}
			if v, ok := key[len(key)-1].(*expr.Verdict); !ok || v.Kind != expr.VerdictDrop {
				t.Errorf("the key id rule does not drop: %v", key)
			}
			for _, r := range spaRules[1:3] {
				d, ok := r.Exprs[3].(*expr.Dynset)
				if !ok || len(d.Exprs) != 1 {
					t.Fatalf("rate rule %v", r.Exprs)
				}
				if l := d.Exprs[0].(*expr.Limit); l.Rate != SPARate || l.Burst != SPABurst || !l.Over {
					t.Errorf("rate limit %+v, want over %d/s burst %d", l, SPARate, SPABurst)
				}
			}
			if _, ok := spaRules[3].Exprs[1].(*expr.Queue); !ok {
				t.Errorf("chain spa's last rule does not queue: %v", spaRules[3].Exprs)
			}
		})
	}
	if _, err := Build(Spec{Start: 1, End: 2, SPAOnly: true}, Native); err == nil {
		t.Error("SPAOnly without SPA ports built")
	}
	if _, err := Build(Spec{Start: 1, End: 2, SPA: []uint16{0}}, Native); err == nil {
		t.Error("SPA port 0 built")
	}
}
