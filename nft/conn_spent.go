package nft

// The set spent in the kernel: used one-time sequences kept and read back
// (the set and its keys are in spent.go).

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Spend adds key to the set spent for ttl: the daemon's used one-time
// sequences live in its table, which outlives the daemon on a restart, an
// upgrade or a crash, so the next daemon refuses them too (Spent). One
// exclusive add, as Allow's first transaction; a key already there is no
// error (its sequence has the same end of life). A full set gives ENFILE.
// The Conn keeps the key in its record, so that Apply (a repair) puts it
// back with its remaining life.
func (c *Conn) Spend(key [16]byte, ttl time.Duration) error {
	if ttl < time.Millisecond {
		return nil // no longer acceptable: nothing to remember
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	set := spentSet(&nftables.Table{Name: c.table, Family: nftables.TableFamilyINet})
	err := c.elems(c.withBackup(set), [][]byte{key[:]}, elemOp{typ: unix.NFT_MSG_NEWSETELEM, excl: true, timeout: ttl})
	if err != nil && !errors.Is(err, unix.EEXIST) {
		hint := ""
		if errors.Is(err, unix.ENFILE) {
			hint = " (the set is full)"
		}
		return fmt.Errorf("add a used one-time sequence to %s of table inet %s: %w%s", SetSpent, c.table, err, hint)
	}
	if len(c.spent) >= SpentSize {
		c.spentElements() // forget the expired ones
	}
	c.recordSpent(key, ttl)
	return nil
}

// Spent returns the elements of the set spent as the kernel holds them,
// in key order: the used one-time sequences, each with its remaining life.
// A table without the set (made by an older version) holds none; an absent
// table gives an error for which IsNotFound is true.
func (c *Conn) Spent() ([]SpentKey, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out, err := c.readSpent(c.table)
	if err != nil {
		return nil, fmt.Errorf("list the used one-time sequences of table inet %s: %w", c.table, err)
	}
	return out, nil
}

// readSpent reads the set spent of table name; a missing set (not the
// table) holds none. The caller holds c.mu.
func (c *Conn) readSpent(name string) ([]SpentKey, error) {
	t := &nftables.Table{Name: name, Family: nftables.TableFamilyINet}
	elems, err := c.readSet(t, SetSpent)
	if IsNotFound(err) {
		if _, terr := c.readTable(name); terr != nil {
			return nil, terr
		}
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]SpentKey, 0, len(elems))
	for _, e := range elems {
		if len(e.Key) != 16 || e.Timeout == 0 || e.Expires < time.Millisecond {
			continue // not ours, or (nearly) expired
		}
		out = append(out, SpentKey{Key: [16]byte(e.Key), Expires: e.Expires})
	}
	slices.SortFunc(out, func(a, b SpentKey) int { return bytes.Compare(a.Key[:], b.Key[:]) })
	return out, nil
}

// adoptSpent merges the set spent of an existing table into the Conn's
// record, before Apply replaces the table with the record's elements. The
// caller holds c.mu.
func (c *Conn) adoptSpent(name string) error {
	keys, err := c.readSpent(name)
	if err != nil {
		return fmt.Errorf("apply table inet %s: read the used one-time sequences to keep: %w", name, err)
	}
	for _, k := range keys {
		c.recordSpent(k.Key, k.Expires)
	}
	return nil
}

// recordSpent notes key in the Conn's record until ttl from now (a later
// end of life wins). The caller holds c.mu.
func (c *Conn) recordSpent(key [16]byte, ttl time.Duration) {
	until := c.now().Add(ttl)
	if u, ok := c.spent[key]; !ok || u.Before(until) {
		c.spent[key] = until
	}
}

// spentElements returns the recorded keys that have life left, as elements
// of the set spent with their remaining time, in key order; it forgets
// the others. The caller holds c.mu.
func (c *Conn) spentElements() []nftables.SetElement {
	return liveElements(c.spent, c.now(), func(key [16]byte) []byte { return bytes.Clone(key[:]) })
}
