package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/nfqknockd/nfqknockd/nft"
)

// allowValue collects the prefixes of --allow from repeated flags and comma
// lists.
type allowValue struct{ p *[]netip.Prefix }

func (v *allowValue) Set(s string) error {
	prefixes, err := parseAllow(s)
	if err != nil {
		return err
	}
	*v.p = append(*v.p, prefixes...)
	return nil
}

func (v *allowValue) String() string {
	s := make([]string, len(*v.p))
	for i, p := range *v.p {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
func (v *allowValue) Type() string { return "prefixes" }

// parseAllow parses one prefix or a comma list of them (parsePrefix). In a
// list, the error names the element, as knock.ParsePorts does.
func parseAllow(s string) ([]netip.Prefix, error) {
	if !strings.Contains(s, ",") {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, err
		}
		return []netip.Prefix{p}, nil
	}
	var out []netip.Prefix
	for elem := range strings.SplitSeq(s, ",") {
		p, err := parsePrefix(elem)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", elem, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// errNotPrefix is the error of a text that is neither an address nor a
// prefix.
var errNotPrefix = errors.New("not an address or CIDR prefix: want for example 10.8.0.0/16, fd00:8::/48 or 192.0.2.7")

// parsePrefix parses an IPv4 or IPv6 prefix in CIDR notation, or a bare
// address, which means /32 or /128. It refuses what an admin most likely
// did not mean: a zone, what nft.CheckAllow refuses (an IPv4-mapped IPv6
// prefix, a /0, a prefix that reaches the last address), and host bits
// after the prefix length (10.1.2.3/8 is probably a typo: the error shows
// both readings). The reasons show no text of s but what netip formats.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "%") {
		return netip.Prefix{}, errors.New("an address with a zone (%...) cannot be allowed: give it without the zone")
	}
	addrText, bitsText, hasBits := strings.Cut(s, "/")
	var p netip.Prefix
	if !hasBits {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, errNotPrefix
		}
		p = netip.PrefixFrom(a, a.BitLen())
	} else {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			a, aerr := netip.ParseAddr(addrText)
			if aerr != nil || bitsText == "" {
				return netip.Prefix{}, errNotPrefix
			}
			if a.Is4() {
				return netip.Prefix{}, errors.New("the prefix length of an IPv4 address must be 0..32")
			}
			return netip.Prefix{}, errors.New("the prefix length of an IPv6 address must be 0..128")
		}
	}
	if err := nft.CheckAllow(p); err != nil {
		return netip.Prefix{}, err
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("host bits are set after /%d: give %s for the network, or %s for the one address",
			p.Bits(), m, p.Addr())
	}
	return p, nil
}
