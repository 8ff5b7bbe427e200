package knock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"time"
)

// Defaults of TrackerConfig.
const (
	// DefaultTimeout is the longest gap between two knocks of one sequence.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxSources is how many sources are tracked at most.
	DefaultMaxSources = 65536
	// MaxSourcesLimit is the largest MaxSources a Tracker accepts.
	MaxSourcesLimit = 1 << 24
)

// Knock is one bare TCP SYN, as far as the tracker cares.
type Knock struct {
	Src              netip.Addr
	SrcPort, DstPort uint16
	Seq              uint32 // TCP sequence number: a retransmission repeats it
}

// Action is what the caller must do after a knock.
type Action uint8

// The actions of a knock.
const (
	None  Action = iota // nothing
	Open                // the source knocked a valid open sequence: allow it
	Close               // the source knocked a valid close sequence: revoke it
)

// String returns "none", "open" or "close".
func (a Action) String() string {
	switch a {
	case None:
		return "none"
	case Open:
		return "open"
	case Close:
		return "close"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// TrackerConfig configures a Tracker.
type TrackerConfig struct {
	Params Params
	// Timeout is the longest gap between two knocks of one sequence; a
	// longer gap starts the window afresh. Zero means DefaultTimeout.
	Timeout time.Duration
	// Admit, when set, tracks a source only from its first knock to the
	// first port of a sequence valid at that instant (FirstPorts): the
	// kernel filter queues a source only from then on, and a spoofed flood
	// that never hits a first port cannot evict a knocking client. The
	// sequences recognised are the same: a sequence starts at its first
	// port.
	Admit bool
	// MaxSources bounds the number of sources tracked (1..MaxSourcesLimit);
	// the least recently seen is forgotten first. Zero means
	// DefaultMaxSources. All memory is allocated up front.
	MaxSources int
}

// Tracker keeps the last knocks of each source and recognises the open and
// close sequences.
//
// Every call costs O(1) and allocates nothing: sources live in a slab
// allocated by NewTracker, found through an open-addressing hash index and
// kept in least-recently-seen order by an intrusive list. The sequences are
// computed once per period, not per knock. A Tracker is not safe for
// concurrent use.
type Tracker struct {
	admit   bool
	lead    time.Duration // how long a sequence can take to knock (Params.Lead)
	firsts  []firstWindow // with admit: the first ports a knock may begin a sequence with
	params  Params
	n       int   // sequence length
	timeout int64 // nanoseconds
	grace   int64 // nanoseconds

	// Sources.
	ents  []entry  // slab, len = used
	links []link   // LRU list: links[i] belongs to ents[i]
	ports []uint16 // ring of the last n knocked ports of ents[i] at [i*n, i*n+n)
	slots []uint32 // hash index: 0 = empty, else slotUsed | tag | distance | entry index
	mask  uint32   // len(slots) - 1
	// Layout of a slot: the entry's index in the low idxBits bits, then
	// distBits bits of its distance from its home slot (distFar: further,
	// or not known), then a tag of the hash's top bits up to bit 30. Moving
	// entries back after a removal needs their home slots: the distance
	// gives it without touching the entry. A probe touches an entry only
	// when the tag matches.
	idxBits  uint8
	tagShift uint8
	idxMask  uint32
	tagMask  uint32
	k0       uint64 // hash keys
	k1       uint64
	max      int
	head     int32 // most recently seen, -1 if none
	tail     int32 // least recently seen, -1 if none

	// Sequences of the current period and of its neighbours, valid while
	// fromNs <= now < untilNs. seqs holds, n ports each: previous open,
	// previous close, current open, current close, next open, next close.
	fromNs, untilNs int64
	seqs            []uint16
	buf             []byte
}

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

const (
	seqPrevOpen = iota
	seqPrevClose
	seqCurOpen
	seqCurClose
	seqNextOpen
	seqNextClose
	numSeqs
)

// NewTracker validates cfg and allocates all the memory the tracker will
// ever use.
func NewTracker(cfg TrackerConfig) (*Tracker, error) {
	if err := cfg.Params.Validate(); err != nil {
		return nil, fmt.Errorf("knock tracker: %w", err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxSources == 0 {
		cfg.MaxSources = DefaultMaxSources
	}
	if cfg.Timeout < 0 {
		return nil, errors.New("knock tracker: timeout must be positive")
	}
	if cfg.MaxSources < 1 || cfg.MaxSources > MaxSourcesLimit {
		return nil, fmt.Errorf("knock tracker: max sources %d: must be 1..%d", cfg.MaxSources, MaxSourcesLimit)
	}
	n := cfg.Params.Digest.SeqLen()
	size := 8
	for size < 2*cfg.MaxSources {
		size <<= 1
	}
	idxBits := uint8(max(bits.Len(uint(cfg.MaxSources-1)), 1))
	t := &Tracker{
		admit:    cfg.Admit,
		lead:     cfg.Params.Lead(cfg.Timeout),
		params:   cfg.Params,
		n:        n,
		timeout:  int64(cfg.Timeout),
		grace:    int64(cfg.Params.Grace),
		ents:     make([]entry, 0, cfg.MaxSources),
		links:    make([]link, cfg.MaxSources),
		ports:    make([]uint16, cfg.MaxSources*n),
		slots:    make([]uint32, size),
		mask:     uint32(size - 1),
		idxBits:  idxBits,
		idxMask:  1<<idxBits - 1,
		tagShift: idxBits + distBits,
		tagMask:  (slotUsed - 1) &^ (1<<(idxBits+distBits) - 1),
		k0:       rand.Uint64(),
		k1:       rand.Uint64(),
		max:      cfg.MaxSources,
		head:     -1,
		tail:     -1,
		seqs:     make([]uint16, numSeqs*n),
		buf:      make([]byte, 0, max(len(cfg.Params.OpenSecret), len(cfg.Params.CloseSecret))+24),
		// fromNs == untilNs: the first knock computes the sequences.
	}
	return t, nil
}

// Len returns the number of sources tracked.
func (t *Tracker) Len() int { return len(t.ents) }

// Each calls fn for every tracked source, the most recently seen first, with
// the time of its last knock and the number of knocks in its current window.
// fn must not call the tracker.
func (t *Tracker) Each(fn func(src netip.Addr, last time.Time, knocks int)) {
	for i := t.head; i >= 0; i = t.links[i].next {
		e := &t.ents[i]
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], e.hi)
		binary.BigEndian.PutUint64(b[8:], e.lo)
		a := netip.AddrFrom16(b)
		if e.meta&metaV4 != 0 {
			a = a.Unmap()
		}
		fn(a, time.Unix(0, e.last), int(e.meta&metaCount))
	}
}

// Knock records one knock seen at now and returns what the caller must do.
//
// Knocks to ports outside the range and SYN retransmissions (the source
// port and sequence number of the source's previous knock) are ignored.
// When the last n knocks of the source (n = the sequence length) equal the
// open sequence of the current period, or of the neighbouring period within
// Grace of a rotation, Knock returns Open; for a close sequence, Close. The
// window of the source then starts afresh. The IPv6 zone of the address is
// ignored. now must lie between the years 1678 and 2262.
func (t *Tracker) Knock(k *Knock, now time.Time) Action {
	if !t.params.Range.Contains(k.DstPort) || !k.Src.IsValid() {
		return None
	}
	ns := now.UnixNano()
	if ns < t.fromNs || ns >= t.untilNs {
		t.rotate(now)
	}
	a16 := k.Src.As16()
	hi := binary.BigEndian.Uint64(a16[:8])
	lo := binary.BigEndian.Uint64(a16[8:])
	var v4 uint8
	if k.Src.Is4() {
		v4 = metaV4
	}
	h := t.hash(hi, lo)
	idx, slot := t.find(h, hi, lo, v4)
	if idx < 0 {
		if t.admit && !t.isFirst(k.DstPort, ns) {
			return None
		}
		t.insert(h, slot, hi, lo, v4, k, ns)
		return None // a sequence has at least 8 ports
	}
	t.touch(idx)
	e := &t.ents[idx]
	if e.sport == k.SrcPort && e.seq == k.Seq && ns-e.last <= t.timeout {
		return None // retransmission (after a longer gap the window starts afresh anyway)
	}
	count := int(e.meta & metaCount)
	if ns-e.last > t.timeout {
		count = 0
	}
	e.last, e.sport, e.seq = ns, k.SrcPort, k.Seq
	n := t.n
	ring := t.ports[int(idx)*n : int(idx)*n+n]
	pos := int(e.pos)
	ring[pos] = k.DstPort
	if pos++; pos == n {
		pos = 0
	}
	e.pos = uint8(pos)
	if count < n {
		count++
	}
	e.meta = e.meta&^metaCount | uint8(count)
	if count < n {
		return None
	}
	prevOK := ns-t.fromNs < t.grace
	nextOK := t.untilNs-ns < t.grace
	p := k.DstPort
	open := t.match(seqCurOpen, ring, pos, p) ||
		prevOK && t.match(seqPrevOpen, ring, pos, p) ||
		nextOK && t.match(seqNextOpen, ring, pos, p)
	close := t.match(seqCurClose, ring, pos, p) ||
		prevOK && t.match(seqPrevClose, ring, pos, p) ||
		nextOK && t.match(seqNextClose, ring, pos, p)
	if open && close {
		// Both sequences are the same (a tiny range): alternate.
		open = e.meta&metaOpened == 0
		close = !open
	}
	switch {
	case open:
		e.meta = e.meta&^metaCount | metaOpened
		return Open
	case close:
		e.meta = e.meta &^ (metaCount | metaOpened)
		return Close
	}
	return None
}

// isFirst reports whether a knock at ns to port may begin a sequence that
// is accepted when it ends: port is the first port of the sequence of a
// period whose acceptance begins at most lead after ns and has not ended.
// t.firsts covers every such period of the window [fromNs, untilNs).
func (t *Tracker) isFirst(port uint16, ns int64) bool {
	for _, w := range t.firsts {
		if w.port == port && ns > w.from && ns < w.until {
			return true
		}
	}
	return false
}

// match reports whether the ring, oldest port at pos and newest port
// newest, equals sequence s.
func (t *Tracker) match(s int, ring []uint16, pos int, newest uint16) bool {
	n := t.n
	seq := t.seqs[s*n : s*n+n]
	if seq[n-1] != newest {
		return false // the common case
	}
	k := n - pos
	for i := range k {
		if ring[pos+i] != seq[i] {
			return false
		}
	}
	for i := range pos {
		if ring[i] != seq[k+i] {
			return false
		}
	}
	return true
}

// rotate computes the sequences of the period holding now and of its two
// neighbours, and with Admit the first ports a knock may begin a sequence
// with. It runs once per period; without Admit it does not allocate.
func (t *Tracker) rotate(now time.Time) {
	p := &t.params
	label, from, until := p.window(now)
	prev, _, _ := p.window(time.Unix(from-1, 0))
	next, _, _ := p.window(time.Unix(until, 0))
	t.fromNs, t.untilNs = secToNs(from), secToNs(until)
	n := t.n
	for i, ps := range [3]int64{prev, label, next} {
		sequenceInto(t.seqs[(2*i)*n:(2*i+1)*n], &t.buf, p.Digest, p.OpenSecret, ps, p.Range)
		sequenceInto(t.seqs[(2*i+1)*n:(2*i+2)*n], &t.buf, p.Digest, p.CloseSecret, ps, p.Range)
	}
	if t.admit {
		t.firsts = t.firsts[:0]
		p.firstWindows(time.Unix(from, 0), time.Unix(until, 0), t.lead, func(w firstWindow) {
			t.firsts = append(t.firsts, w)
		})
	}
}

func secToNs(s int64) int64 {
	switch {
	case s > math.MaxInt64/1_000_000_000:
		return math.MaxInt64
	case s < math.MinInt64/1_000_000_000:
		return math.MinInt64
	}
	return s * 1_000_000_000
}

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
