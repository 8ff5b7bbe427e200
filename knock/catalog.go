package knock

import (
	"math/bits"
	"math/rand/v2"
	"slices"
	"strconv"
)

// catalog holds every sequence a Tracker accepts around now, for all its
// users: for each of the periods before, holding and after now, one table
// of the users' open and close sequences (the C-compatible one each, or in
// one-time mode the nonces one-time sequences each).
//
// A table is an open-addressing hash table (linear probing, load at most
// 1/2) keyed by a keyed 64-bit hash of a sequence's n ports, the
// fingerprint. A slot is 8 bytes: the fingerprint's top 32 bits, and the
// sequence's index + 1 (0: empty), which packs user, kind and nonce as
// ((user*2 + kind) << nonceBits) | nonce; the table's period is the
// period slot. The table holds no copy of the sequences: a fingerprint hit
// is verified by computing that one sequence again (one digest). Equal
// sequences of one kind in one period (tiny ranges) are kept once, with the
// lowest user and nonce.
//
// The three tables are physical slots labelled with their period start:
// a rotation to the next period keeps the two tables it still needs, with
// the one-time sequences they have seen used, and rebuilds the third.
type catalog struct {
	d         Digest
	r         Range
	n         int
	oneTime   bool
	nonces    uint32 // per secret and period: 1, or in one-time mode OneTimeNonces
	nonceBits uint8  // log2(nonces)
	users     []User
	k0, k1    uint64 // fingerprint keys

	tables [3]periodTable
	role   [3]int8      // the tables of the periods before, holding and after now
	last   [1024]uint64 // bitmap: the last ports of the three tables' sequences
	buf    []byte       // digest input
	tmp    [maxSeqLen]uint16
}

// periodTable is the catalog of one period.
type periodTable struct {
	label int64 // period start
	held  bool  // label is set: used holds what was used in that period
	built bool  // slots, last and first hold the sequences of the users
	mask  uint32
	slots []uint64     // fingerprint>>32 << 32 | index+1; 0: empty
	first []uint16     // port 0 of the C-compatible sequence of each (user, kind)
	used  []uint64     // one-time mode: bit index is set once the sequence was used
	last  [1024]uint64 // bitmap of the last ports of the sequences
}

// Kinds of sequence, the kind bit of an index.
const (
	kindOpen  = 0
	kindClose = 1
)

// Roles of the tables.
const (
	rolePrev = iota
	roleCur
	roleNext
)

// init allocates the catalog for users.
func (c *catalog) init(p Params, users []User, oneTime bool, nonces int) {
	c.d, c.r, c.n, c.oneTime, c.nonces = p.Digest, p.Range, p.Digest.SeqLen(), oneTime, 1
	c.k0, c.k1 = rand.Uint64(), rand.Uint64()
	if oneTime {
		c.nonces = uint32(nonces)
		c.nonceBits = uint8(bits.TrailingZeros32(c.nonces))
	}
	c.setUsers(users)
}

// setUsers replaces the users; it allocates tables for them when their
// size changes. The tables keep their labels and, in one-time mode, the
// used bits of the sequences of every user whose secret stays; they are
// rebuilt at the next rotation.
func (c *catalog) setUsers(users []User) {
	old := c.users
	c.users = slices.Clone(users)
	seqs := len(users) * 2 * int(c.nonces) // per table
	size := 8
	for size < 2*seqs {
		size <<= 1
	}
	need := 0
	for _, u := range users {
		need = max(need, len(u.OpenSecret), len(u.CloseSecret))
	}
	if need += 48; cap(c.buf) < need {
		c.buf = make([]byte, 0, need)
	}
	for i := range c.tables {
		pt := &c.tables[i]
		pt.built = false
		if len(pt.slots) != size {
			pt.slots, pt.mask = make([]uint64, size), uint32(size-1)
		}
		if len(pt.first) != 2*len(users) {
			pt.first = make([]uint16, 2*len(users))
		}
		if c.oneTime {
			pt.used = c.remapUsed(pt.used, old, users)
		}
	}
}

// remapUsed returns the used bits of a table for users, carried over from
// the bits of old users by secret: a user whose secret stays keeps that
// secret's used sequences.
func (c *catalog) remapUsed(used []uint64, old, users []User) []uint64 {
	out := make([]uint64, (len(users)*2*int(c.nonces)+63)/64)
	for nu, u := range users {
		for nk, secret := range [2]string{u.OpenSecret, u.CloseSecret} {
			for ou, o := range old {
				for ok, s := range [2]string{o.OpenSecret, o.CloseSecret} {
					if s != secret {
						continue
					}
					from, to := uint32(ou*2+ok)<<c.nonceBits, uint32(nu*2+nk)<<c.nonceBits
					for j := range c.nonces {
						if bitSet(used, from+j) {
							setBit(out, to+j)
						}
					}
				}
			}
		}
	}
	return out
}

// memory returns the bytes the catalog holds.
func (c *catalog) memory() int {
	b := len(c.last)*8 + cap(c.buf)
	for i := range c.tables {
		pt := &c.tables[i]
		b += len(pt.slots)*8 + len(pt.first)*2 + len(pt.used)*8 + len(pt.last)*8
	}
	return b
}

// setPeriods makes the tables those of the periods starting at need
// (before, holding and after now), keeping the tables it has.
func (c *catalog) setPeriods(need [3]int64) {
	for r, label := range need {
		i := c.find(label)
		if i < 0 {
			// A table whose period is not needed: there is one, as the
			// labels needed are at most three and label is not held.
			for i = range c.tables {
				if pt := &c.tables[i]; !pt.held || !slices.Contains(need[:], pt.label) {
					break
				}
			}
			pt := &c.tables[i]
			pt.label, pt.held, pt.built = label, true, false
			clear(pt.used)
		}
		if !c.tables[i].built {
			c.build(&c.tables[i])
		}
		c.role[r] = int8(i)
	}
	clear(c.last[:])
	for _, i := range c.role {
		for j, w := range c.tables[i].last {
			c.last[j] |= w
		}
	}
}

// find returns the table holding the period starting at label, or -1.
func (c *catalog) find(label int64) int {
	for i := range c.tables {
		if pt := &c.tables[i]; pt.held && pt.label == label {
			return i
		}
	}
	return -1
}

// build computes the sequences of the table's period for every user.
func (c *catalog) build(pt *periodTable) {
	clear(pt.slots)
	clear(pt.last[:])
	var seq [maxSeqLen]uint16
	s := seq[:c.n]
	for u := range c.users {
		for kind, secret := range [2]string{c.users[u].OpenSecret, c.users[u].CloseSecret} {
			sequenceInto(s, &c.buf, c.d, secret, pt.label, c.r)
			pt.first[2*u+kind] = s[0]
			base := uint32(2*u+kind) << c.nonceBits
			if !c.oneTime {
				c.insert(pt, s, base)
				continue
			}
			for nonce := range c.nonces {
				c.oneTimeInto(s, pt, secret, base|nonce)
				c.insert(pt, s, base|nonce)
			}
		}
	}
	pt.built = true
}

// oneTimeInto writes the one-time sequence idx of the table's period into
// s, with secret the secret of its user and kind (see OneTimeSequence).
func (c *catalog) oneTimeInto(s []uint16, pt *periodTable, secret string, idx uint32) {
	b := append(c.buf[:0], secret...)
	b = strconv.AppendInt(b, pt.label, 10)
	b = append(b, '/')
	b = strconv.AppendUint(b, uint64(idx&(c.nonces-1)), 10)
	c.buf = b
	portsInto(s, c.d, b, c.r)
	s[0] = pt.first[idx>>c.nonceBits]
}

// insert adds sequence s, index idx, to the table, unless the table holds
// an equal sequence of the same kind.
func (c *catalog) insert(pt *periodTable, s []uint16, idx uint32) {
	setBit(pt.last[:], uint32(s[c.n-1]))
	h := c.fingerprint(s)
	tag := h >> 32
	for i := uint32(h) & pt.mask; ; i = (i + 1) & pt.mask {
		slot := pt.slots[i]
		if slot == 0 {
			pt.slots[i] = tag<<32 | uint64(idx+1)
			return
		}
		if slot>>32 == tag && c.kind(uint32(slot)-1) == c.kind(idx) && c.is(pt, uint32(slot)-1, s) {
			return
		}
	}
}

// lookup looks for the sequence s, fingerprint h, in the table, and sets
// found[kind] to the index + 1 of the sequence of each kind it finds,
// unless found[kind] is already set.
func (c *catalog) lookup(pt *periodTable, h uint64, s []uint16, found *[2]uint32) {
	tag := h >> 32
	for i := uint32(h) & pt.mask; ; i = (i + 1) & pt.mask {
		slot := pt.slots[i]
		if slot == 0 {
			return
		}
		if slot>>32 != tag {
			continue
		}
		idx := uint32(slot) - 1
		if k := c.kind(idx); found[k] == 0 && c.is(pt, idx, s) {
			found[k] = idx + 1
		}
	}
}

// is reports whether s is the sequence idx of the table, by computing it.
func (c *catalog) is(pt *periodTable, idx uint32, s []uint16) bool {
	u := c.users[idx>>(c.nonceBits+1)]
	secret := u.OpenSecret
	if c.kind(idx) == kindClose {
		secret = u.CloseSecret
	}
	t := c.tmp[:c.n]
	if c.oneTime {
		c.oneTimeInto(t, pt, secret, idx)
	} else {
		sequenceInto(t, &c.buf, c.d, secret, pt.label, c.r)
	}
	return slices.Equal(t, s)
}

func (c *catalog) kind(idx uint32) uint32 { return idx >> c.nonceBits & 1 }

// fingerprint is a hash of the n ports of s keyed with the catalog's
// random keys: whoever knocks cannot choose sequences that collide.
func (c *catalog) fingerprint(s []uint16) uint64 {
	h := c.k0
	for i := 0; i+3 < len(s); i += 4 {
		w := uint64(s[i]) | uint64(s[i+1])<<16 | uint64(s[i+2])<<32 | uint64(s[i+3])<<48
		hi, lo := bits.Mul64(h^w, c.k1)
		h = hi ^ lo
	}
	hi, lo := bits.Mul64(h^c.k0, 0x9e3779b97f4a7c15)
	return hi ^ lo
}

func setBit(b []uint64, i uint32)      { b[i/64] |= 1 << (i % 64) }
func bitSet(b []uint64, i uint32) bool { return b[i/64]&(1<<(i%64)) != 0 }
