package nft

// Set elements in the kernel: transactions of element messages, and set
// dumps (the messages are built in elems.go).

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
)

// elems sends one transaction of ops, each on the elements keys of each of
// sets (a set of the main table and its twin in the backup), on the
// writing socket, and waits for the kernel's answer to each message. It
// writes the messages itself because nftables.Conn cannot set NLM_F_EXCL on
// an element. A lost answer (ENOBUFS) sends the transaction again, up to
// maxAttempts times: an exclusive add that went through the first time then
// says EEXIST, which Allow handles. The caller holds c.mu.
func (c *Conn) elems(sets []*nftables.Set, keys [][]byte, ops ...elemOp) error {
	err := c.elemsOnce(sets, keys, ops...)
	if len(sets) > 1 && IsNotFound(err) && !c.backupThere() {
		// The backup table was removed by another program and Watch has
		// not put it back yet: write the main table alone. The record
		// the caller updates is what the repair puts in the backup.
		err = c.elemsOnce(sets[:1], keys, ops...)
	}
	return err
}

// backupThere reports whether the backup table exists (an error reading it
// counts as there: the caller's error stands). The caller holds c.mu.
func (c *Conn) backupThere() bool {
	_, err := c.readTable(BackupTable(c.table))
	return !IsNotFound(err)
}

// elemsOnce sends the transaction of elems. The caller holds c.mu.
func (c *Conn) elemsOnce(sets []*nftables.Set, keys [][]byte, ops ...elemOp) error {
	msgs := make([]netlink.Message, 0, len(ops)*len(sets))
	for _, op := range ops {
		for _, set := range sets {
			for chunk := range slices.Chunk(keys, maxElemsPerMsg) {
				m, err := elemMessage(set, chunk, op)
				if err != nil {
					return err
				}
				msgs = append(msgs, m)
			}
		}
	}
	return c.sendRetry(msgs)
}

// maxDumps bounds how many times readSet dumps one set.
const maxDumps = 8

// readSet returns the elements of set name in table t. An absent table or
// set gives an error for which IsNotFound is true.
//
// One dump of a large set is not to be trusted: the kernel sends a hash set
// in several messages, each time skipping as many elements as it already
// sent, and a resize of the hash table in between (right after many
// elements were added) reorders it, so that a dump repeats some elements
// and misses others (measured: 18,003 different ones among 20,000). So
// readSet dumps again, a little later each time, until a dump without
// repeats holds the same addresses as the dump before it. If that never
// happens within maxDumps, it returns every address any dump held, with the
// newest copy of each: a source that expired meanwhile is carried a moment
// longer rather than an allowed one lost.
func (c *Conn) readSet(t *nftables.Table, name string) ([]nftables.SetElement, error) {
	nc, err := c.newConn()
	if err != nil {
		return nil, err
	}
	// GetSetByName keeps the errno (ENOENT for a missing table or set);
	// GetSetElements does not, so it only runs on a set that exists.
	set, err := nc.GetSetByName(t, name)
	if err != nil {
		return nil, fmt.Errorf("get set %s: %w", name, err)
	}
	all := map[string]nftables.SetElement{}
	var prev map[string]bool // the addresses of the last dump without repeats
	for i := range maxDumps {
		if i > 0 {
			time.Sleep(time.Duration(i) * 5 * time.Millisecond)
		}
		elems, err := getSetElements(nc, set)
		if err != nil {
			return nil, fmt.Errorf("get elements of set %s: %w", name, err)
		}
		var out []nftables.SetElement
		keys := make(map[string]bool, len(elems))
		repeats := false
		for _, e := range elems {
			if e.IntervalEnd {
				continue
			}
			k := string(e.Key)
			repeats = repeats || keys[k]
			keys[k] = true
			all[k] = e
			out = append(out, e)
		}
		switch {
		case repeats:
			prev = nil
		case prev != nil && maps.Equal(keys, prev):
			return out, nil
		default:
			prev = keys
		}
	}
	out := make([]nftables.SetElement, 0, len(all))
	for _, e := range all {
		out = append(out, e)
	}
	return out, nil
}

// getSetElements is nc.GetSetElements, which panics on an element whose
// userdata is malformed (google/nftables v0.3.0 userdata.Get slices past
// the end): an element someone else wrote into our set must not stop the
// daemon, so the panic becomes an error.
func getSetElements(nc *nftables.Conn, set *nftables.Set) (elems []nftables.SetElement, err error) {
	defer func() {
		if r := recover(); r != nil {
			elems, err = nil, fmt.Errorf("malformed element: %v", r)
		}
	}()
	return nc.GetSetElements(set)
}
