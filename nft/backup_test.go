package nft

import (
	"testing"

	"github.com/google/nftables/userdata"
)

// TestConntrackRuleInBackup: the rule for new connections' non-SYN packets
// is in the guard chain of the main table and of the backup table (which
// keeps Build's guard chains), and in neither without Spec.Conntrack.
func TestConntrackRuleInBackup(t *testing.T) {
	for _, ct := range []bool{false, true} {
		s := Spec{Start: 1, End: 65535, Guard: []uint16{22}, Conntrack: ct}
		main, err := Build(s, Native)
		if err != nil {
			t.Fatal(err)
		}
		backup, err := BuildBackup(s)
		if err != nil {
			t.Fatal(err)
		}
		for name, rs := range map[string]*Ruleset{"main": main, "backup": backup} {
			n := 0
			for _, r := range rulesOf(rs, ChainGuard) {
				if c, _ := userdata.GetString(r.UserData, userdata.TypeComment); c == CommentNew {
					n++
				}
			}
			if want := map[bool]int{false: 0, true: 1}[ct]; n != want {
				t.Errorf("Conntrack %v: %s table: %d rules %q in chain guard, want %d", ct, name, n, CommentNew, want)
			}
		}
	}
}
