package nft

import (
	"os"
	"path/filepath"
	"testing"
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
