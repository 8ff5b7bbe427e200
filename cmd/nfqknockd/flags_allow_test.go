package main

import (
	"fmt"
	"net/netip"
	"testing"
)

func TestParseAllow(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"10.8.0.0/16", "[10.8.0.0/16]", ""},
		{"192.0.2.7", "[192.0.2.7/32]", ""},
		{"192.0.2.7/32", "[192.0.2.7/32]", ""},
		{"2001:db8::1", "[2001:db8::1/128]", ""},
		{"FD00:8::/48", "[fd00:8::/48]", ""},
		{"0.0.0.0/1", "[0.0.0.0/1]", ""},
		{"::ffff:0:0/95", "", "host bits are set after /95: give ::fffe:0:0/95 for the network, or ::ffff:0.0.0.0 for the one address"},
		{"::/64", "[::/64]", ""},
		{"10.8.0.0/16,fd00:8::/48,10.8.0.0/16", "[10.8.0.0/16 fd00:8::/48 10.8.0.0/16]", ""},
		{"10.8.0.0/16,x", "", `"x": not an address or CIDR prefix: want for example 10.8.0.0/16, fd00:8::/48 or 192.0.2.7`},
		{" 10.8.0.0/16", "", "not an address or CIDR prefix: want for example 10.8.0.0/16, fd00:8::/48 or 192.0.2.7"},
		{"10.8.0.0/016", "", "the prefix length of an IPv4 address must be 0..32"},
		{"010.8.0.0/16", "", "not an address or CIDR prefix: want for example 10.8.0.0/16, fd00:8::/48 or 192.0.2.7"},
		{"::ffff:10.1.2.3/120", "", "an IPv4-mapped IPv6 prefix never matches: the kernel sees IPv4 sources as IPv4; give 10.1.2.0/24"},
		{"10.0.0.1/31", "", "host bits are set after /31: give 10.0.0.0/31 for the network, or 10.0.0.1 for the one address"},
	}
	for _, tt := range tests {
		v := &allowValue{p: new([]netip.Prefix)}
		err := v.Set(tt.in)
		switch {
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("Set(%q) = %v, want the error %q", tt.in, err, tt.err)
		case tt.err == "" && err != nil:
			t.Errorf("Set(%q): %v", tt.in, err)
		case tt.err == "" && fmt.Sprint(*v.p) != tt.want:
			t.Errorf("Set(%q): %v, want %s", tt.in, *v.p, tt.want)
		}
	}
	v := &allowValue{p: new([]netip.Prefix)}
	if v.String() != "" || v.Type() != "prefixes" {
		t.Errorf("empty: String %q, Type %q", v.String(), v.Type())
	}
	v.Set("10.8.0.0/16,fd00:8::/48")
	v.Set("192.0.2.7")
	if got, want := v.String(), "10.8.0.0/16,fd00:8::/48,192.0.2.7/32"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
