package nft

// What the Conn records of an opening, and carryOver, which shapes the
// elements the allow sets carry across a restart or a repair, with their
// remaining life (the record kept and the old tables read: conn_record.go).

import (
	"bytes"
	"cmp"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
)

// opening is one element of allow4 or allow6 in the Conn's record.
type opening struct {
	addr netip.Addr
	port uint16
}

// openRecord is what the Conn remembers of an opening: when it expires
// (zero: never) and its user.
type openRecord struct {
	until time.Time
	user  string
}

// carryOver turns elements read from allow4 or allow6 into elements to add
// again: an element with a timeout gets its remaining life as its new
// timeout; one that has (nearly) expired is dropped, never turned into one
// without timeout. An element keyed by address alone (an older version's
// set) becomes one element per port of guard, without user; an element of
// another shape is dropped.
func carryOver(elems []nftables.SetElement, guard []uint16) []nftables.SetElement {
	var out []nftables.SetElement
	for _, e := range elems {
		a, port, ok := parseAllowKey(e.Key)
		if !ok {
			continue
		}
		n := nftables.SetElement{Comment: e.Comment}
		if e.Timeout != 0 {
			if e.Expires < time.Millisecond {
				continue
			}
			n.Timeout = e.Expires
		}
		if port != 0 {
			n.Key = allowKey(a, port)
			if err := checkUser(n.Comment); err != nil {
				n.Comment = "" // not ours: an element's comment is a user name
			}
			out = append(out, n)
			continue
		}
		n.Comment = ""
		for _, p := range guard {
			n.Key = allowKey(a, p)
			out = append(out, n)
		}
	}
	return out
}

// liveElements returns the elements of record (a key and until when it
// lives) that have at least a millisecond of life left, with that life as
// their timeout, in key order, the key encoded by key; it deletes the
// others from record.
func liveElements[K comparable](record map[K]time.Time, now time.Time, key func(K) []byte) []nftables.SetElement {
	var out []nftables.SetElement
	for k, until := range record {
		left := until.Sub(now)
		if left < time.Millisecond {
			delete(record, k)
			continue
		}
		out = append(out, nftables.SetElement{Key: key(k), Timeout: left})
	}
	slices.SortFunc(out, func(a, b nftables.SetElement) int { return bytes.Compare(a.Key, b.Key) })
	return out
}

// SortElements sorts els by source, then port.
func SortElements(els []Element) {
	slices.SortFunc(els, func(x, y Element) int {
		if c := x.Addr.Compare(y.Addr); c != 0 {
			return c
		}
		return cmp.Compare(x.Port, y.Port)
	})
}
