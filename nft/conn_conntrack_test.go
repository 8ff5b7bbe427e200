package nft

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/nftables/userdata"
)

func TestConntrackInUse(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, content string // content "-": no file (nf_conntrack not loaded)
		want          bool
		err           bool
	}{
		{"not loaded", "-", false, false},
		{"nothing tracked", "0\n", false, false},
		{"tracking", "17\n", true, false},
		{"garbage", "x\n", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name)
			if tt.content != "-" {
				if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := conntrackInUse(path)
			if got != tt.want || (err != nil) != tt.err {
				t.Errorf("conntrackInUse = %v, %v; want %v, error %v", got, err, tt.want, tt.err)
			}
		})
	}
}

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
