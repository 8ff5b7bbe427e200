package knock

import "math/bits"

// The sources of a Tracker: a slab of entries allocated by NewTracker, an
// open-addressing index keyed by a keyed hash of the address, and a list in
// least-recently-seen order.

// entry is one tracked source: 32 bytes (two to a cache line) and no
// pointers, so the garbage collector does not scan the slab.
type entry struct {
	hi, lo uint64 // the address, as 16 bytes (IPv4 mapped)
	last   int64  // Unix nanoseconds of the last knock
	seq    uint32 // TCP sequence number of the last knock
	sport  uint16 // source port of the last knock
	pos    uint8  // next position to write in the ring of ports
	meta   uint8  // knocks in the window (low 6 bits) | metaV4 | metaOpened
}

// link is the place of an entry in the least-recently-seen list, kept
// apart from the entries: an update touches the links of the neighbours
// only, and these are small.
type link struct{ prev, next int32 }

const (
	metaCount  = 0x3f
	metaV4     = 0x40 // the address is IPv4
	metaOpened = 0x80 // the last sequence recognised was an open one

	slotUsed = 1 << 31
	distBits = 4
	distFar  = 1<<distBits - 1
)

// hash mixes an address with the tracker's random keys, so that sources
// chosen by an attacker do not collide more than random ones.
func (t *Tracker) hash(hi, lo uint64) uint64 {
	h, l := bits.Mul64(hi^t.k0, lo^t.k1)
	h, l = bits.Mul64(h^l, 0x9e3779b97f4a7c15^t.k0)
	return h ^ l
}

// tagOf is the tag bits of a slot for hash h.
func (t *Tracker) tagOf(h uint64) uint32 {
	return uint32(h>>(64-31+t.tagShift)) << t.tagShift
}

// slotOf is the slot of entry idx, hashed to h, placed dist slots after
// its home.
func (t *Tracker) slotOf(h uint64, idx, dist uint32) uint32 {
	return slotUsed | t.tagOf(h) | min(dist, distFar)<<t.idxBits | idx
}

// find returns the index of the entry of the address, or -1 and the empty
// slot where it would be inserted.
func (t *Tracker) find(h, hi, lo uint64, v4 uint8) (int32, uint32) {
	tag := t.tagOf(h)
	i := uint32(h) & t.mask
	for {
		s := t.slots[i]
		if s == 0 {
			return -1, i
		}
		if s&t.tagMask == tag {
			e := &t.ents[s&t.idxMask]
			if e.lo == lo && e.hi == hi && e.meta&metaV4 == v4 {
				return int32(s & t.idxMask), i
			}
		}
		i = (i + 1) & t.mask
	}
}

// insert adds a source seen for the first time, evicting the least recently
// seen when the tracker is full.
func (t *Tracker) insert(h uint64, slot uint32, hi, lo uint64, v4 uint8, k *Knock, ns int64) {
	var idx int32
	if len(t.ents) < t.max {
		idx = int32(len(t.ents))
		t.ents = t.ents[:idx+1]
	} else {
		idx = t.tail
		old := &t.ents[idx]
		t.unindex(t.hash(old.hi, old.lo), uint32(idx))
		t.unlink(idx)
		// Removing shifted the index: find the free slot again.
		_, slot = t.find(h, hi, lo, v4)
	}
	t.slots[slot] = t.slotOf(h, uint32(idx), (slot-uint32(h))&t.mask)
	t.ents[idx] = entry{hi: hi, lo: lo, last: ns, sport: k.SrcPort, seq: k.Seq, pos: 1, meta: v4 | 1}
	t.ports[int(idx)*t.n] = k.DstPort
	t.pushFront(idx)
}

// unindex removes the slot that points at entry idx, shifting back the
// entries that follow it in their probe sequence (no tombstones).
func (t *Tracker) unindex(h uint64, idx uint32) {
	i := uint32(h) & t.mask
	for t.slots[i]&t.idxMask != idx || t.slots[i] == 0 {
		i = (i + 1) & t.mask
	}
	distMask := uint32(distFar) << t.idxBits
	for j := i; ; {
		j = (j + 1) & t.mask
		s := t.slots[j]
		if s == 0 {
			break
		}
		d := (s & distMask) >> t.idxBits
		if d == distFar {
			e := &t.ents[s&t.idxMask]
			d = (j - uint32(t.hash(e.hi, e.lo))) & t.mask
		}
		// Move the entry at j to the hole at i unless its home lies
		// cyclically in (i, j].
		if gap := (j - i) & t.mask; d >= gap {
			t.slots[i] = s&^distMask | min(d-gap, distFar)<<t.idxBits
			i = j
		}
	}
	t.slots[i] = 0
}

func (t *Tracker) unlink(i int32) {
	l := &t.links[i]
	if l.prev >= 0 {
		t.links[l.prev].next = l.next
	} else {
		t.head = l.next
	}
	if l.next >= 0 {
		t.links[l.next].prev = l.prev
	} else {
		t.tail = l.prev
	}
	l.prev, l.next = -1, -1
}

func (t *Tracker) pushFront(i int32) {
	l := &t.links[i]
	l.prev, l.next = -1, t.head
	if t.head >= 0 {
		t.links[t.head].prev = i
	} else {
		t.tail = i
	}
	t.head = i
}

// touch makes entry i the most recently seen.
func (t *Tracker) touch(i int32) {
	if t.head != i {
		t.unlink(i)
		t.pushFront(i)
	}
}
