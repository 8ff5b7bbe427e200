package nft

import (
	"net/netip"
	"strings"
	"testing"
)

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
		{"allow /0", Spec{Start: 1, End: 2, Allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}, "a /0 prefix is every source"},
		{"allow mapped", Spec{Start: 1, End: 2, Allow: []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}}, "IPv4-mapped"},
		{"allow to the end", Spec{Start: 1, End: 2, Allow: []netip.Prefix{netip.MustParsePrefix("ff00::/8")}}, "last address"},
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
		{strings.Repeat("a", 248), true}, // room for "_backup"
		{strings.Repeat("a", 249), false},
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
