package nft

// The Conn's record of what it opened, and the elements the allow sets
// carry across a restart or a repair, read from the kernel (carryOver, in
// record.go, shapes them).

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/google/nftables"
)

// record notes that o was opened for user for ttl (0: until closed).
func (c *Conn) record(o opening, user string, ttl time.Duration) {
	var until time.Time
	if ttl > 0 {
		until = c.now().Add(ttl)
	}
	c.opened[o] = openRecord{until: until, user: user}
}

// carried returns the elements to put back in allow4 and allow6: those of
// the tables named (the main table and the backup, those that exist; the
// first one's copy of an element wins) and the Conn's record, each with its
// remaining life and its user. The elements of an older version's set,
// keyed by address alone, become one element per port of guard.
func (c *Conn) carried(tables []string, guard []uint16) ([2][]nftables.SetElement, error) {
	var out [2][]nftables.SetElement
	seen := map[opening]bool{}
	for _, table := range tables {
		t := &nftables.Table{Name: table, Family: nftables.TableFamilyINet}
		for i, name := range []string{SetAllow4, SetAllow6} {
			elems, err := c.readSet(t, name)
			if err != nil && !IsNotFound(err) {
				return out, fmt.Errorf("apply table inet %s: read the opened sources to keep: %w", table, err)
			}
			for _, e := range carryOver(elems, guard) {
				a, port, _ := parseAllowKey(e.Key)
				o := opening{a, port}
				if seen[o] {
					continue
				}
				seen[o] = true
				out[i] = append(out[i], e)
				if _, ok := c.opened[o]; !ok {
					c.record(o, e.Comment, e.Timeout)
				}
			}
		}
	}
	now := c.now()
	for o, r := range c.opened {
		if seen[o] {
			continue
		}
		e := nftables.SetElement{Key: allowKey(o.addr, o.port), Comment: r.user}
		if !r.until.IsZero() {
			left := r.until.Sub(now)
			if left < time.Millisecond {
				delete(c.opened, o)
				continue
			}
			e.Timeout = left
		}
		i := 0
		if o.addr.Is6() {
			i = 1
		}
		out[i] = append(out[i], e)
	}
	return out, nil
}

// OpenedSources counts the sources with at least one opening that has not
// expired, IPv4 and IPv6, from the Conn's own record: no kernel dump, so it
// costs the opens nothing. Where the kernel keeps others off the table
// (flags owner) the record is what the kernel holds; elsewhere it is what
// Watch puts back.
func (c *Conn) OpenedSources() (v4, v6 int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	seen := make(map[netip.Addr]bool, len(c.opened))
	for o, r := range c.opened {
		if seen[o.addr] || !r.until.IsZero() && !r.until.After(now) {
			continue
		}
		seen[o.addr] = true
		if o.addr.Is4() {
			v4++
		} else {
			v6++
		}
	}
	return v4, v6
}

// Opened lists the opened sources from the Conn's own record, one element
// per source and port, sorted, with their life left and their user (no
// Timeout): no kernel dump, so it holds the Conn's lock only for the copy
// and never delays the opens. Where the kernel keeps others off the table
// (flags owner) the record is what the kernel holds.
func (c *Conn) Opened() []Element {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	out := make([]Element, 0, len(c.opened))
	for o, r := range c.opened {
		e := Element{Addr: o.addr, Port: o.port, User: r.user}
		if !r.until.IsZero() {
			if !r.until.After(now) {
				continue
			}
			e.Expires = r.until.Sub(now)
		}
		out = append(out, e)
	}
	SortElements(out)
	return out
}
