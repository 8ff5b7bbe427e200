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
	None   Action = iota // nothing
	Open                 // the source knocked a valid open sequence: allow it
	Close                // the source knocked a valid close sequence: revoke it
	Replay               // the source knocked a one-time sequence already used in its period: warn
)

// String returns "none", "open", "close" or "replay".
func (a Action) String() string {
	switch a {
	case None:
		return "none"
	case Open:
		return "open"
	case Close:
		return "close"
	case Replay:
		return "replay"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// Verdict is what a knock completed.
type Verdict struct {
	// Action is what the caller must do.
	Action Action
	// Kind is the kind of the sequence recognised, Open or Close (for
	// Replay, the kind of the sequence replayed); None with Action None.
	Kind Action
	// User is the index of the sequence's user in the tracker's users
	// (TrackerConfig.Users or SetUsers; 0 for the user made from Params).
	// It is 0 with Action None.
	User int
	// Seq names the sequence among those of its user and kind.
	Seq SeqID
	// (At most four fields: the compiler returns the Verdict in
	// registers; a fifth costs the caller of Knock some 5 ns.)
}

// SeqID names one of the sequences of a user and kind: with the user and
// the kind, it identifies the sequence, for example for the Ledger, which
// detects replays across several trackers.
type SeqID struct {
	// Period is the start of the sequence's period (see PeriodStart).
	Period int64
	// Nonce is the nonce of a one-time sequence; 0 for a C-compatible one.
	Nonce uint32
}

// TrackerConfig configures a Tracker.
type TrackerConfig struct {
	Params Params
	// Users are the users whose sequences the tracker recognises (at most
	// MaxUsers, each with non-empty secrets). nil means one user made from
	// Params.OpenSecret and Params.CloseSecret, with the empty name; with
	// Users, the secrets of Params are not used.
	Users []User
	// OneTime accepts only one-time sequences (OneTimeSequence), nonces
	// 0..OneTimeNonces-1, each once per period: a sequence seen again in
	// its period, from any source, gives Replay. The C-compatible
	// sequences are not accepted.
	OneTime bool
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

	// nonces replaces OneTimeNonces, for tests (a power of two).
	nonces int
}

// Tracker keeps the last knocks of each source and recognises the open and
// close sequences of its users.
//
// Every knock costs O(1), whatever the number of users and nonces, and
// allocates nothing: sources live in a slab allocated by NewTracker, found
// through an open-addressing hash index and kept in least-recently-seen
// order by an intrusive list; the sequences of the periods before, holding
// and after now are in hash tables keyed by a fingerprint of their ports
// (see catalog), computed once per period. A knock that completes a
// window of n ports costs a bitmap test of its port, and when that port
// ends some sequence, a hash of the window and a probe of one table (two
// within Grace of a rotation); a fingerprint hit costs one digest to
// verify.
//
// Memory and rotation: a period's table holds users x 2 x nonces
// sequences (nonces = 1, or OneTimeNonces in one-time mode) in 8-byte
// slots at a load of at most 1/2, plus bitmaps of 8 KiB, and the tracker
// keeps three tables. A rotation computes one digest per sequence of the
// tables it lacks: the next period's at a regular rotation, all three on
// the first knock, after SetUsers or a jump of the clock. It runs on the
// knock that crosses the period's end. Measured on an AMD EPYC (md5;
// sha512 takes twice as long):
//
//	users  mode      digests per period  rotation (next / all three)  tables
//	1      C         2                   2.6 us / 3.5 us              33 KB
//	1      one-time  2,048               0.35 ms / 1.1 ms             132 KB
//	64     C         128                 23 us / 65 us                40 KB
//	64     one-time  131,072             28 ms / 82 ms                6.4 MB
//	256    one-time  524,288             about 4 times 64 users'      25 MB
//
// The sources take 2 MB per 65,536 tracked (DefaultMaxSources: 4.2 MB in
// all with one user).
//
// A Tracker is not safe for concurrent use.
type Tracker struct {
	admit   bool
	oneTime bool
	lead    time.Duration // how long a sequence can take to knock (Params.Lead)
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

	// The sequences of the current period and of its neighbours, valid
	// while fromNs <= now < untilNs.
	fromNs, untilNs int64
	cat             catalog
	// With admit: the first ports a knock may begin a sequence with
	// (sorted by port), and a bitmap of their ports.
	firsts    []firstWindow
	firstBits [1024]uint64
	buf       []byte
}

// NewTracker validates cfg and allocates all the memory the tracker will
// ever use.
func NewTracker(cfg TrackerConfig) (*Tracker, error) {
	users := cfg.Users
	if users == nil {
		if err := cfg.Params.Validate(); err != nil {
			return nil, fmt.Errorf("knock tracker: %w", err)
		}
		users = []User{{OpenSecret: cfg.Params.OpenSecret, CloseSecret: cfg.Params.CloseSecret}}
	} else {
		if err := cfg.Params.validateSequences(); err != nil {
			return nil, fmt.Errorf("knock tracker: %w", err)
		}
		if err := checkUsers(users); err != nil {
			return nil, fmt.Errorf("knock tracker: %w", err)
		}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxSources == 0 {
		cfg.MaxSources = DefaultMaxSources
	}
	if cfg.nonces == 0 {
		cfg.nonces = OneTimeNonces
	}
	if cfg.Timeout < 0 {
		return nil, errors.New("knock tracker: timeout must be positive")
	}
	if cfg.MaxSources < 1 || cfg.MaxSources > MaxSourcesLimit {
		return nil, fmt.Errorf("knock tracker: max sources %d: must be 1..%d", cfg.MaxSources, MaxSourcesLimit)
	}
	if cfg.nonces > OneTimeNonces || cfg.nonces&(cfg.nonces-1) != 0 {
		return nil, fmt.Errorf("knock tracker: %d nonces", cfg.nonces)
	}
	n := cfg.Params.Digest.SeqLen()
	size := 8
	for size < 2*cfg.MaxSources {
		size <<= 1
	}
	idxBits := uint8(max(bits.Len(uint(cfg.MaxSources-1)), 1))
	t := &Tracker{
		admit:    cfg.Admit,
		oneTime:  cfg.OneTime,
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
		// fromNs == untilNs: the first knock computes the sequences.
	}
	t.cat.init(cfg.Params, users, cfg.OneTime, cfg.nonces)
	t.allocFirsts()
	t.commit()
	return t, nil
}

// commit writes every page of the tables sized by MaxSources, so that they
// are resident from the start. Fresh memory is otherwise mapped in page by
// page as sources hash into it: the daemon's size grew for minutes under a
// flood of new sources (make soak: +4 MiB at the default 65,536), where an
// admin reads its size once after start and sets a memory limit by it.
func (t *Tracker) commit() {
	clear(t.ents[:cap(t.ents)])
	clear(t.links)
	clear(t.ports)
	clear(t.slots)
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
// When the last n knocks of the source (n = the sequence length) equal an
// open sequence of a user for the current period, or for the neighbouring
// period within Grace of a rotation, Knock returns Open and the user; for
// a close sequence, Close. When they equal both an open and a close
// sequence (a tiny range), it alternates: Close after an Open of the
// source, else Open. In one-time mode a sequence already used in its
// period gives Replay instead. The window of the source then starts
// afresh. The IPv6 zone of the address is ignored. now must lie between
// the years 1678 and 2262.
func (t *Tracker) Knock(k *Knock, now time.Time) Verdict {
	if !t.params.Range.Contains(k.DstPort) || !k.Src.IsValid() {
		return Verdict{}
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
			return Verdict{}
		}
		t.insert(h, slot, hi, lo, v4, k, ns)
		return Verdict{} // a sequence has at least 8 ports
	}
	t.touch(idx)
	e := &t.ents[idx]
	if e.sport == k.SrcPort && e.seq == k.Seq && ns-e.last <= t.timeout {
		return Verdict{} // retransmission (after a longer gap the window starts afresh anyway)
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
	if count < n || !bitSet(t.cat.last[:], uint32(k.DstPort)) {
		return Verdict{} // the common case: no sequence ends with this port
	}
	return t.match(e, ring, pos, ns)
}

// match looks the window of entry e up (ring, the oldest port at pos) in
// the tables of the periods accepted at ns and acts on what it finds.
func (t *Tracker) match(e *entry, ring []uint16, pos int, ns int64) Verdict {
	var w [maxSeqLen]uint16 // the window, oldest first
	s := w[:len(ring)]
	copy(s, ring[pos:])
	copy(s[len(ring)-pos:], ring[:pos])
	c := &t.cat
	h := c.fingerprint(s)
	var found [2]uint32 // index + 1 of the open and close sequence found
	var from [2]int8    // their tables
	tables := [3]int8{c.role[roleCur], -1, -1}
	if ns-t.fromNs < t.grace {
		tables[1] = c.role[rolePrev]
	}
	if t.untilNs-ns < t.grace {
		tables[2] = c.role[roleNext]
	}
	for _, i := range tables {
		if i < 0 || found[0] != 0 && found[1] != 0 {
			continue
		}
		before := found
		c.lookup(&c.tables[i], h, s, &found)
		for k := range found {
			if found[k] != before[k] {
				from[k] = i
			}
		}
	}
	kind := kindOpen
	switch {
	case found[kindOpen] == 0 && found[kindClose] == 0:
		return Verdict{}
	case found[kindOpen] == 0, found[kindClose] != 0 && e.meta&metaOpened != 0:
		kind = kindClose // both: alternate
	}
	pt := &c.tables[from[kind]]
	i := found[kind] - 1
	v := Verdict{Action: Open, Kind: Open, User: int(i >> (c.nonceBits + 1)), Seq: SeqID{Period: pt.label, Nonce: i & (c.nonces - 1)}}
	if kind == kindClose {
		v.Action, v.Kind = Close, Close
	}
	e.meta &^= metaCount // the window starts afresh
	if t.oneTime {
		if bitSet(pt.used, i) {
			v.Action = Replay
			return v
		}
		setBit(pt.used, i)
	}
	if kind == kindOpen {
		e.meta |= metaOpened
	} else {
		e.meta &^= metaOpened
	}
	return v
}

// rotate makes the catalog that of the period holding now and of its two
// neighbours, and with Admit computes the first ports a knock may begin a
// sequence with. It runs once per period and does not allocate.
func (t *Tracker) rotate(now time.Time) {
	p := &t.params
	label, from, until := p.window(now)
	prev, _, _ := p.window(time.Unix(from-1, 0))
	next, _, _ := p.window(time.Unix(until, 0))
	t.fromNs, t.untilNs = secToNs(from), secToNs(until)
	t.cat.setPeriods([3]int64{prev, label, next})
	if t.admit {
		t.setFirsts(from, until)
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
