package knock

import (
	"strings"
	"testing"
)

// TestRangeWarningThresholds: the narrowest range without a warning is
// end-start 32, 6, 4 and 3 for md5, sha256, sha384 and sha512
// ((end-start)^N >= 2^40).
func TestRangeWarningThresholds(t *testing.T) {
	for d, min := range map[Digest]uint16{MD5: 32, SHA256: 6, SHA384: 4, SHA512: 3} {
		for width := uint16(1); width <= 40; width++ {
			r := Range{Start: 1000, End: 1000 + width}
			if got := RangeWarning(r, d) != ""; got != (width < min) {
				t.Errorf("%v, end-start %d: warning %v, want %v", d, width, got, width < min)
			}
		}
		if w := RangeWarning(FullRange, d); w != "" {
			t.Errorf("%v, full range: %q", d, w)
		}
	}
}

// TestTeamWarning: a range wide enough for one pair of secrets warns when
// many users and one-time nonces make many open sequences valid at once.
func TestTeamWarning(t *testing.T) {
	for _, tc := range []struct {
		rng     string
		users   int // 1: the one user without an access file
		oneTime bool
		want    string
	}{
		{"1-65535", 64, true, ""},
		{"1000-1032", 1, true, "1024 open sequences are valid at once"}, // 32^8 = 2^40 over 1024 nonces: warned
		{"1000-1032", 1, false, ""},
		{"1000-1032", 64, false, "64 open sequences are valid at once, so a sweep hits one in about 32^8 / 64 = 17179869184 knocks"},
		{"1000-1032", 64, true, "65536 open sequences are valid at once, so a sweep hits one in about 32^8 / 65536 = 16777216 knocks"},
	} {
		r, err := ParseRange(tc.rng)
		if err != nil {
			t.Fatal(err)
		}
		got := TeamWarning(r, DefaultParams().Digest, tc.users, tc.oneTime)
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s, %d users, one-time %v: %q, want %q", tc.rng, tc.users, tc.oneTime, got, tc.want)
		}
	}
}
