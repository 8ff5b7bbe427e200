package nft

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
)

// The --allow ranges: which prefixes static4 and static6 can hold, in
// which form, and as which interval elements (intervalElements, for
// Build). Spec.normalize and the daemon's flag parsing both go through
// here.

// CheckAllow returns why p cannot be an --allow range, or nil: an
// IPv4-mapped IPv6 prefix (the kernel sees IPv4 sources as IPv4: it would
// never match; the error gives the IPv4 prefix to use), a /0 (every
// source: the guard would be off for everyone), and a prefix that reaches
// the last address (an interval set's range ends at the address after
// its last). Host bits after the prefix length are not refused: Spec
// masks them. The reasons show no text but what netip formats. A
// netip.Prefix holds no zone (PrefixFrom drops it, ParsePrefix refuses
// it): text with a zone is the parser's to refuse.
func CheckAllow(p netip.Prefix) error {
	if !p.IsValid() {
		return errors.New("not a prefix")
	}
	p = p.Masked()
	a, bits := p.Addr(), p.Bits()
	if a.Is4In6() {
		msg := "an IPv4-mapped IPv6 prefix never matches: the kernel sees IPv4 sources as IPv4"
		if bits > 96 {
			v4 := netip.PrefixFrom(a.Unmap(), bits-96).Masked()
			msg += "; give " + showPrefix(v4)
		}
		return errors.New(msg)
	}
	if bits == 0 {
		return errors.New("a /0 prefix is every source: it would switch the guard off for everyone")
	}
	if last := LastAddr(p); !last.Next().IsValid() {
		return fmt.Errorf("reaches the last address %s, which the kernel's interval set cannot end after; no source sends from there (reserved or multicast)", last)
	}
	return nil
}

// showPrefix formats p, a single address without its length.
func showPrefix(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// NormalizeAllow returns the --allow ranges ps as static4 and static6 take
// them: masked, sorted (IPv4 first, then by address and length), without
// duplicates and without a prefix that another one holds (the kernel's
// interval sets refuse overlapping elements); or an error naming the
// first prefix that CheckAllow refuses. ps is not changed; none gives nil.
func NormalizeAllow(ps []netip.Prefix) ([]netip.Prefix, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	a := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		if err := CheckAllow(p); err != nil {
			return nil, fmt.Errorf("allow %s: %w", p, err)
		}
		a = append(a, p.Masked())
	}
	slices.SortFunc(a, func(x, y netip.Prefix) int {
		if c := x.Addr().Compare(y.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(x.Bits(), y.Bits())
	})
	out := a[:1]
	for _, p := range a[1:] {
		// Sorted so: a prefix that holds p is the last one kept.
		if last := out[len(out)-1]; last.Bits() <= p.Bits() && last.Contains(p.Addr()) {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// intervalElements turns prefixes (masked, sorted, IPv4 and IPv6 apart, see
// Spec.normalize) into the elements of the interval sets static4 and
// static6: a start element and an end element (the address after the last,
// flagged IntervalEnd) per range. Overlapping or adjacent prefixes are
// merged first: the kernel refuses overlapping intervals.
func intervalElements(prefixes []netip.Prefix) (e4, e6 []nftables.SetElement) {
	type span struct{ from, to netip.Addr } // to is the first address after
	var spans []span
	for _, p := range prefixes {
		from := p.Masked().Addr()
		last := LastAddr(p)
		to := last.Next() // normalize refused prefixes that end at the last address
		if n := len(spans); n > 0 && spans[n-1].from.Is4() == from.Is4() && spans[n-1].to.Compare(from) >= 0 {
			if spans[n-1].to.Less(to) {
				spans[n-1].to = to
			}
			continue
		}
		spans = append(spans, span{from, to})
	}
	for _, s := range spans {
		pair := []nftables.SetElement{{Key: s.from.AsSlice()}, {Key: s.to.AsSlice(), IntervalEnd: true}}
		if s.from.Is4() {
			e4 = append(e4, pair...)
		} else {
			e6 = append(e6, pair...)
		}
	}
	return e4, e6
}

// LastAddr returns the last address of prefix p (--allow checks that one
// follows it: an interval set's range ends at the address after its last).
func LastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
