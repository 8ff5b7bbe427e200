package spa

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"
	"time"
)

// Opener is the daemon's side: the users' keys, the period and the window.
// It keeps the key ids of every user for the periods that a time within
// the window of now falls in, sorted, and checks packets against them
// without allocating.
//
// An Opener is not safe for concurrent use (Open writes its scratch
// space): give each goroutine its own.
type Opener struct {
	keys   []*Key
	period int64 // seconds
	window time.Duration

	ready  bool
	lo, hi int64   // the periods prepared, when ready
	ids    []keyID // sorted by id, then user
	spare  []keyID // the previous ids' storage, for the next Prepare
	pt     [plainLen]byte
}

// keyID is one user's key id of one period.
type keyID struct {
	id     [KeyIDLen]byte
	user   int
	period int64
}

// NewOpener returns an Opener for the users' keys (keys[i] is user i),
// packets sealed with period and times within window of now. It panics
// if period is not a positive whole number of seconds or window is
// negative. Each Prepare computes len(keys) x (2 window / period + 2) key
// ids at most.
func NewOpener(keys []*Key, period, window time.Duration) *Opener {
	if period < time.Second || period%time.Second != 0 {
		panic(fmt.Sprintf("spa: NewOpener: period %v is not a positive whole number of seconds", period))
	}
	if window < 0 {
		panic(fmt.Sprintf("spa: NewOpener: negative window %v", window))
	}
	return &Opener{keys: slices.Clone(keys), period: int64(period / time.Second), window: window}
}

// skewMargin is how far beyond the window Prepare keeps key ids: a packet
// that much older or newer than the window is still found and decrypted,
// so that it fails as ErrTooOld or ErrFuture (a client's clock is off),
// not as an unknown key id. At most 8 periods: the ids are computed for
// every user and period.
const skewMargin = 10 * time.Minute

// margin is skewMargin, at most 8 periods.
func (o *Opener) margin() time.Duration {
	return min(skewMargin, 8*time.Duration(o.period)*time.Second)
}

// Prepare computes the key ids of every period that a time within window
// (and the margin beyond it that tells a wrong clock, skewMargin) of now
// falls in. The daemon calls it at start and whenever the period
// changes; it is cheap to call often: a no-op when the periods are the
// ones prepared, and it computes only the ids of periods it lacks.
func (o *Opener) Prepare(now time.Time) {
	lo := floorDiv(now.Add(-o.window-o.margin()).Unix(), o.period)
	hi := floorDiv(now.Add(o.window+o.margin()).Unix(), o.period)
	if o.ready && lo == o.lo && hi == o.hi {
		return
	}
	next := o.spare[:0]
	for _, e := range o.ids {
		if e.period >= lo && e.period <= hi {
			next = append(next, e)
		}
	}
	for p := lo; p <= hi; p++ {
		if o.ready && p >= o.lo && p <= o.hi {
			continue
		}
		for u, k := range o.keys {
			next = append(next, keyID{id: k.KeyID(p), user: u, period: p})
		}
	}
	slices.SortFunc(next, func(a, b keyID) int {
		if c := bytes.Compare(a.id[:], b.id[:]); c != 0 {
			return c
		}
		if a.user != b.user {
			return a.user - b.user
		}
		return int(a.period - b.period)
	})
	o.spare, o.ids = o.ids, next
	o.lo, o.hi, o.ready = lo, hi, true
}

// lookup returns the first entry of id, if any.
func (o *Opener) lookup(id []byte) (*keyID, bool) {
	i, j := 0, len(o.ids)
	for i < j {
		h := int(uint(i+j) >> 1)
		if bytes.Compare(o.ids[h].id[:], id) < 0 {
			i = h + 1
		} else {
			j = h
		}
	}
	if i < len(o.ids) && bytes.Equal(o.ids[i].id[:], id) {
		return &o.ids[i], true
	}
	return nil, false
}

// Open checks pkt at now and fills m (reusing m.Ports' capacity: give it
// MaxPorts so that Open does not allocate). It returns the user index and
// the nonce's digest (NonceDigest, for the replay memory), or one of
// ErrLength, ErrVersion, ErrKeyID, ErrDecrypt, ErrMessage (wrapped with
// what is wrong; also for a key id of another period than the message's
// time), ErrTooOld and ErrFuture. A time t is in the window when
// |t - now| <= window. After ErrTooOld and ErrFuture, m holds the
// message; after the other errors, m is unspecified.
//
// Open calls Prepare(now) itself, and does not allocate.
func (o *Opener) Open(pkt []byte, now time.Time, m *Message) (user int, digest [16]byte, err error) {
	if len(pkt) != PacketLen {
		return -1, digest, ErrLength
	}
	if pkt[0] != Version {
		return -1, digest, ErrVersion
	}
	o.Prepare(now)
	e, ok := o.lookup(pkt[1:headerLen])
	if !ok {
		return -1, digest, ErrKeyID
	}
	k := o.keys[e.user]
	if _, err := k.aead.Open(o.pt[:0], pkt[headerLen:nonceEnd], pkt[nonceEnd:], pkt[:headerLen]); err != nil {
		return -1, digest, ErrDecrypt
	}
	if err := decode(&o.pt, m); err != nil {
		return -1, digest, err
	}
	switch d := m.Time.Sub(now); {
	case d < -o.window:
		return -1, digest, ErrTooOld
	case d > o.window:
		return -1, digest, ErrFuture
	}
	if floorDiv(m.Time.Unix(), o.period) != e.period {
		return -1, digest, errPeriod
	}
	s := sha256.Sum256(pkt[headerLen:nonceEnd])
	return e.user, [16]byte(s[:16]), nil
}

// KeyIDs returns the key ids of keys (user i's first for each period) for
// every period that an Opener of period and window prepares at some
// instant from from to to: what a kernel filter in front of it must let
// through for that time.
func KeyIDs(keys []*Key, period, window time.Duration, from, to time.Time) [][KeyIDLen]byte {
	o := NewOpener(keys, period, window)
	reach := window + o.margin()
	lo := floorDiv(from.Add(-reach).Unix(), o.period)
	hi := floorDiv(to.Add(reach).Unix(), o.period)
	out := make([][KeyIDLen]byte, 0, int(hi-lo+1)*len(keys))
	for p := lo; p <= hi; p++ {
		for _, k := range keys {
			out = append(out, k.KeyID(p))
		}
	}
	return out
}
