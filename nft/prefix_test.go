package nft

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
)

// TestNormalizeAllow: the --allow ranges sorted, IPv4 first, without
// duplicates and without a prefix inside another; the argument unchanged.
func TestNormalizeAllow(t *testing.T) {
	p := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	tests := []struct {
		in   []netip.Prefix
		want string
	}{
		{nil, "[]"},
		{p("fd00:8::/48", "10.8.0.0/16", "192.0.2.7/32"), "[10.8.0.0/16 192.0.2.7/32 fd00:8::/48]"},
		{p("10.8.0.0/16", "10.8.0.0/16", "10.8.0.0/16"), "[10.8.0.0/16]"},
		// Inside another: dropped, whatever the order.
		{p("10.8.1.0/24", "10.8.0.0/16", "10.8.255.255/32", "10.9.0.0/16"), "[10.8.0.0/16 10.9.0.0/16]"},
		{p("10.0.0.0/8", "10.8.0.0/16", "11.0.0.0/8"), "[10.0.0.0/8 11.0.0.0/8]"},
		{p("fd00:8:1::/64", "fd00::/8", "fe80::/10"), "[fd00::/8 fe80::/10]"},
		// Adjacent, not inside: both stay.
		{p("10.8.0.0/16", "10.9.0.0/16", "10.8.0.0/15"), "[10.8.0.0/15]"},
		{p("10.8.0.0/16", "10.9.0.0/16"), "[10.8.0.0/16 10.9.0.0/16]"},
		// The same bits in both families are different prefixes.
		{p("::a08:0/112", "10.8.0.0/16"), "[10.8.0.0/16 ::a08:0/112]"},
		// Host bits (Spec takes them): masked, then compared.
		{p("10.8.1.2/16", "10.8.0.0/16", "fd00:8::1/48"), "[10.8.0.0/16 fd00:8::/48]"},
	}
	for _, tt := range tests {
		in := fmt.Sprint(tt.in)
		got, err := NormalizeAllow(tt.in)
		if err != nil || fmt.Sprint(got) != tt.want {
			t.Errorf("NormalizeAllow(%s) = %v, %v; want %s", in, got, err, tt.want)
		}
		if fmt.Sprint(tt.in) != in {
			t.Errorf("NormalizeAllow changed its argument %s to %v", in, tt.in)
		}
	}
}

// TestCheckAllow: the reasons a prefix cannot be an --allow range, as the
// daemon prints them after "--allow PREFIX: ".
func TestCheckAllow(t *testing.T) {
	for _, tt := range []struct{ in, err string }{
		{"10.8.0.0/16", ""},
		{"fd00:8::1/128", ""},
		{"10.1.2.3/8", ""},    // host bits: Spec masks them, the daemon's flag refuses them
		{"::ffff:0:0/95", ""}, // ::fffe:0:0/95 once masked: not IPv4-mapped
		{"::ffff:10.1.2.3/120", "an IPv4-mapped IPv6 prefix never matches: the kernel sees IPv4 sources as IPv4; give 10.1.2.0/24"},
		{"::ffff:192.0.2.7/128", "an IPv4-mapped IPv6 prefix never matches: the kernel sees IPv4 sources as IPv4; give 192.0.2.7"},
		{"::ffff:0:0/96", "an IPv4-mapped IPv6 prefix never matches: the kernel sees IPv4 sources as IPv4"},
		{"10.1.2.3/0", "a /0 prefix is every source: it would switch the guard off for everyone"},
		{"::/0", "a /0 prefix is every source: it would switch the guard off for everyone"},
		{"240.0.0.0/4", "reaches the last address 255.255.255.255, which the kernel's interval set cannot end after; no source sends from there (reserved or multicast)"},
		{"ff00::/8", "reaches the last address ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff, which the kernel's interval set cannot end after; no source sends from there (reserved or multicast)"},
	} {
		err := CheckAllow(netip.MustParsePrefix(tt.in))
		if (err == nil) != (tt.err == "") || err != nil && err.Error() != tt.err {
			t.Errorf("CheckAllow(%s) = %v, want %q", tt.in, err, tt.err)
		}
	}
	if err := CheckAllow(netip.Prefix{}); err == nil || err.Error() != "not a prefix" {
		t.Errorf("CheckAllow of the zero Prefix = %v", err)
	}
}

func TestIntervalElements(t *testing.T) {
	p := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, x := range s {
			out = append(out, netip.MustParsePrefix(x))
		}
		return out
	}
	key := func(e []nftables.SetElement) []string {
		var out []string
		for _, x := range e {
			a, _ := netip.AddrFromSlice(x.Key)
			s := a.String()
			if x.IntervalEnd {
				s = "<" + s
			}
			out = append(out, s)
		}
		return out
	}
	tests := []struct {
		name   string
		in     []netip.Prefix
		w4, w6 []string
	}{
		{"one v4", p("10.8.0.0/16"), []string{"10.8.0.0", "<10.9.0.0"}, nil},
		{"host v6", p("fd00::1/128"), nil, []string{"fd00::1", "<fd00::2"}},
		{"nested merged", p("10.0.0.0/8", "10.1.0.0/16"), []string{"10.0.0.0", "<11.0.0.0"}, nil},
		{"adjacent merged", p("10.0.0.0/9", "10.128.0.0/9"), []string{"10.0.0.0", "<11.0.0.0"}, nil},
		{"apart", p("10.0.0.0/24", "10.0.2.0/24", "fd00::/64"), []string{"10.0.0.0", "<10.0.1.0", "10.0.2.0", "<10.0.3.0"}, []string{"fd00::", "<fd00:0:0:1::"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Spec{Start: 1, End: 2, Guard: []uint16{22}, Allow: tt.in}.normalize()
			if err != nil {
				t.Fatal(err)
			}
			e4, e6 := intervalElements(s.Allow)
			if diff := cmp.Diff(tt.w4, key(e4)); diff != "" {
				t.Errorf("static4 (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.w6, key(e6)); diff != "" {
				t.Errorf("static6 (-want +got):\n%s", diff)
			}
		})
	}
}
