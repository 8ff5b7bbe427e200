package knock

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// t0 is 2025-11-04 11:00:00 UTC, a rotation of the hourly period.
var t0 = time.Unix(1762257600, 0)

func testParams() Params {
	p := DefaultParams()
	p.OpenSecret, p.CloseSecret = "123", "321"
	return p
}

func newTestTracker(t testing.TB, p Params, maxSources int) *Tracker {
	t.Helper()
	tr, err := NewTracker(TrackerConfig{Params: p, Timeout: 10 * time.Second, MaxSources: maxSources})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// knocker sends knocks from one source with fresh source ports and
// sequence numbers, as a client that connects port after port.
type knocker struct {
	tr    *Tracker
	src   netip.Addr
	sport uint16
	seq   uint32
}

func (k *knocker) knock(port uint16, now time.Time) Action {
	k.sport++
	k.seq += 7919
	return k.tr.Knock(&Knock{Src: k.src, SrcPort: k.sport, DstPort: port, Seq: k.seq}, now).Action
}

// knockAll knocks ports at now and returns the action of each knock.
func (k *knocker) knockAll(ports []uint16, now time.Time) []Action {
	out := make([]Action, len(ports))
	for i, p := range ports {
		out[i] = k.knock(p, now)
	}
	return out
}

// onlyLast returns the actions expected when only the last knock acts.
func onlyLast(n int, a Action) []Action {
	out := make([]Action, n)
	out[n-1] = a
	return out
}

var (
	src4  = netip.MustParseAddr("192.0.2.1")
	src4b = netip.MustParseAddr("192.0.2.2")
	src6  = netip.MustParseAddr("2001:db8::1")
)

func TestTrackerOpenClose(t *testing.T) {
	for _, d := range []Digest{MD5, SHA256, SHA384, SHA512} {
		for _, src := range []netip.Addr{src4, src6} {
			t.Run(fmt.Sprintf("%v/%v", d, src), func(t *testing.T) {
				p := testParams()
				p.Digest = d
				tr := newTestTracker(t, p, 16)
				now := t0.Add(30 * time.Minute)
				open, close := p.Sequences(now)
				k := &knocker{tr: tr, src: src}
				n := d.SeqLen()
				if got := k.knockAll(open, now); !slices.Equal(got, onlyLast(n, Open)) {
					t.Fatalf("open: %v", got)
				}
				if got := k.knockAll(close, now); !slices.Equal(got, onlyLast(n, Close)) {
					t.Fatalf("close: %v", got)
				}
				// Noise before the sequence does not matter: only the last n count.
				noise := []uint16{1, 2, 3, open[0], open[1]}
				if got := k.knockAll(append(noise, open...), now); !slices.Equal(got, onlyLast(len(noise)+n, Open)) {
					t.Fatalf("open after noise: %v", got)
				}
				if tr.Len() != 1 {
					t.Fatalf("Len = %d", tr.Len())
				}
			})
		}
	}
}

func TestTrackerWindow(t *testing.T) {
	p := testParams()
	now := t0.Add(10 * time.Minute)
	open, close := p.Sequences(now)
	n := len(open)
	tests := []struct {
		name string
		// run knocks and returns the action of the last knock.
		run  func(k *knocker) Action
		want Action
	}{
		{"plain", func(k *knocker) Action { return last(k.knockAll(open, now)) }, Open},
		{"gap of exactly the timeout", func(k *knocker) Action {
			k.knockAll(open[:4], now)
			return last(k.knockAll(open[4:], now.Add(10*time.Second)))
		}, Open},
		{"gap above the timeout", func(k *knocker) Action {
			k.knockAll(open[:4], now)
			return last(k.knockAll(open[4:], now.Add(10*time.Second+1)))
		}, None},
		{"gap above the timeout, then the whole sequence", func(k *knocker) Action {
			k.knockAll(open[:4], now)
			return last(k.knockAll(open, now.Add(time.Minute)))
		}, Open},
		{"slow but steady", func(k *knocker) Action {
			var a Action
			for i, port := range open {
				a = k.knock(port, now.Add(time.Duration(i)*9*time.Second))
			}
			return a
		}, Open},
		{"retransmission ignored", func(k *knocker) Action {
			k.knockAll(open[:3], now)
			// The same SYN again: same source port and sequence number.
			k.tr.Knock(&Knock{Src: k.src, SrcPort: k.sport, DstPort: open[2], Seq: k.seq}, now.Add(time.Second))
			return last(k.knockAll(open[3:], now))
		}, Open},
		{"a new SYN to the same port counts", func(k *knocker) Action {
			k.knockAll(open[:3], now)
			k.knock(open[2], now)
			return last(k.knockAll(open[3:], now))
		}, None},
		{"same source port, new sequence number counts", func(k *knocker) Action {
			k.knockAll(open[:3], now)
			k.tr.Knock(&Knock{Src: k.src, SrcPort: k.sport, DstPort: open[2], Seq: k.seq + 1}, now)
			k.seq++
			return last(k.knockAll(open[3:], now))
		}, None},
		{"after open the window restarts", func(k *knocker) Action {
			k.knockAll(open, now)
			return last(k.knockAll(open[1:], now))
		}, None},
		{"close sequence", func(k *knocker) Action { return last(k.knockAll(close, now)) }, Close},
		{"reversed", func(k *knocker) Action {
			r := slices.Clone(open)
			slices.Reverse(r)
			return last(k.knockAll(r, now))
		}, None},
		{"one port short", func(k *knocker) Action { return last(k.knockAll(open[:n-1], now)) }, None},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTestTracker(t, p, 4)
			k := &knocker{tr: tr, src: src4}
			if got := tt.run(k); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func last(a []Action) Action { return a[len(a)-1] }

func TestTrackerOutOfRange(t *testing.T) {
	p := testParams()
	p.Range = Range{1000, 2000}
	tr := newTestTracker(t, p, 4)
	now := t0.Add(time.Minute * 5)
	open, _ := p.Sequences(now)
	k := &knocker{tr: tr, src: src4}
	for _, port := range []uint16{1, 999, 2001, 65535} {
		if a := k.knock(port, now); a != None || tr.Len() != 0 {
			t.Fatalf("knock to %d: %v, Len %d", port, a, tr.Len())
		}
	}
	// Out-of-range knocks in the middle of a sequence do not break it.
	k.knockAll(open[:4], now)
	k.knock(80, now)
	if a := last(k.knockAll(open[4:], now)); a != Open {
		t.Fatalf("got %v", a)
	}
	// The range end is a knock (the kernel queues it), though no sequence uses it.
	k.knockAll(open[:4], now)
	k.knock(2000, now)
	if a := last(k.knockAll(open[4:], now)); a != None {
		t.Fatalf("got %v", a)
	}
	// An invalid address is ignored.
	if a := tr.Knock(&Knock{DstPort: 1500}, now).Action; a != None || tr.Len() != 1 {
		t.Fatalf("zero address: %v, Len %d", a, tr.Len())
	}
}

func TestTrackerGrace(t *testing.T) {
	p := testParams()
	prevOpen, prevClose := p.Sequences(t0.Add(-time.Second))
	curOpen, curClose := p.Sequences(t0)
	rot2 := t0.Add(time.Hour)
	nextOpen, _ := p.Sequences(rot2)
	tests := []struct {
		name string
		at   time.Time
		seq  []uint16
		want Action
	}{
		{"prev just after rotation", t0, prevOpen, Open},
		{"prev close just after rotation", t0.Add(time.Second), prevClose, Close},
		{"prev at grace-1ns", t0.Add(time.Minute - 1), prevOpen, Open},
		{"prev at grace", t0.Add(time.Minute), prevOpen, None},
		{"cur at grace", t0.Add(time.Minute), curOpen, Open},
		{"cur close mid-period", t0.Add(30 * time.Minute), curClose, Close},
		{"prev mid-period", t0.Add(30 * time.Minute), prevOpen, None},
		{"next mid-period", t0.Add(30 * time.Minute), nextOpen, None},
		{"next at rotation-grace", rot2.Add(-time.Minute), nextOpen, None},
		{"next at rotation-grace+1ns", rot2.Add(-time.Minute + 1), nextOpen, Open},
		{"next 1ns before rotation", rot2.Add(-1), nextOpen, Open},
		{"cur 1ns before rotation", rot2.Add(-1), curOpen, Open},
		{"cur after rotation (now prev)", rot2.Add(30 * time.Second), curOpen, Open},
		{"prev of prev after rotation", rot2.Add(30 * time.Second), prevOpen, None},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTestTracker(t, p, 4)
			// Prime the tracker at another time, so the cache must rotate.
			(&knocker{tr: tr, src: src4b}).knock(1, t0.Add(-5*time.Hour))
			k := &knocker{tr: tr, src: src4}
			if got := last(k.knockAll(tt.seq, tt.at)); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestTrackerAcrossRotation knocks a sequence read at 10:59:59 that ends at
// 11:00:02, and a clock that jumps backwards.
func TestTrackerAcrossRotation(t *testing.T) {
	p := testParams()
	tr := newTestTracker(t, p, 4)
	open, _ := p.Sequences(t0.Add(-time.Second))
	k := &knocker{tr: tr, src: src4}
	var got Action
	for i, port := range open {
		got = k.knock(port, t0.Add(time.Duration(i-4)*time.Second/2))
	}
	if got != Open {
		t.Fatalf("got %v", got)
	}
	// Back in time by a day: the sequences of that day apply.
	day := t0.Add(-24 * time.Hour)
	old, _ := p.Sequences(day)
	if got := last(k.knockAll(old, day)); got != Open {
		t.Fatalf("after the clock went back: %v", got)
	}
}

func TestTrackerTinyRange(t *testing.T) {
	// In a range of one port, the open and close sequences are equal: the
	// tracker alternates.
	p := testParams()
	p.Range = Range{1000, 1001}
	tr := newTestTracker(t, p, 4)
	open, close := p.Sequences(t0)
	if !slices.Equal(open, close) {
		t.Fatal("sequences differ")
	}
	k := &knocker{tr: tr, src: src4}
	for _, want := range []Action{Open, Close, Open} {
		if got := last(k.knockAll(open, t0)); got != want {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestTrackerEviction(t *testing.T) {
	p := testParams()
	tr := newTestTracker(t, p, 3)
	now := t0.Add(time.Minute * 10)
	a := netip.MustParseAddr("10.0.0.1")
	b := netip.MustParseAddr("10.0.0.2")
	c := netip.MustParseAddr("::ffff:10.0.0.1") // not the same source as a
	d := netip.MustParseAddr("fe80::1%eth0")
	seen := func() []string {
		var out []string
		tr.Each(func(src netip.Addr, last time.Time, knocks int) {
			out = append(out, fmt.Sprintf("%v/%d/%d", src, last.Sub(now)/time.Second, knocks))
		})
		return out
	}
	knock := func(src netip.Addr, sec int) {
		tr.Knock(&Knock{Src: src, SrcPort: uint16(sec), DstPort: 5000, Seq: uint32(sec)}, now.Add(time.Duration(sec)*time.Second))
	}
	knock(a, 0)
	knock(b, 1)
	knock(a, 2)
	knock(c, 3)
	if got, want := seen(), []string{"::ffff:10.0.0.1/3/1", "10.0.0.1/2/2", "10.0.0.2/1/1"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	knock(d, 4) // evicts b, the least recently seen
	if got, want := seen(), []string{"fe80::1/4/1", "::ffff:10.0.0.1/3/1", "10.0.0.1/2/2"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	knock(b, 30) // evicts a; b starts afresh
	knock(d, 31)
	if got, want := seen(), []string{"fe80::1/31/1", "10.0.0.2/30/1", "::ffff:10.0.0.1/3/1"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v (the gap of 27s restarts d's window)", got, want)
	}
	if tr.Len() != 3 {
		t.Fatalf("Len = %d", tr.Len())
	}
}

func TestNewTrackerErrors(t *testing.T) {
	good := testParams()
	bad := good
	bad.OpenSecret = ""
	tests := []TrackerConfig{
		{Params: bad},
		{Params: good, Timeout: -1},
		{Params: good, MaxSources: -1},
		{Params: good, MaxSources: MaxSourcesLimit + 1},
	}
	for _, cfg := range tests {
		if _, err := NewTracker(cfg); err == nil {
			t.Errorf("NewTracker(%+v) succeeded", cfg)
		}
	}
	tr, err := NewTracker(TrackerConfig{Params: good})
	if err != nil {
		t.Fatal(err)
	}
	if tr.max != DefaultMaxSources || tr.timeout != int64(DefaultTimeout) {
		t.Errorf("defaults: max %d, timeout %v", tr.max, time.Duration(tr.timeout))
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[Action]string{None: "none", Open: "open", Close: "close", 7: "Action(7)"} {
		if a.String() != want {
			t.Errorf("%d: %q", a, a.String())
		}
	}
}

// TestTrackerAllocs checks that knocks allocate nothing: for known sources,
// for new sources that evict old ones, and across rotations.
func TestTrackerAllocs(t *testing.T) {
	p := testParams()
	p.Digest = SHA512
	tr := newTestTracker(t, p, 64)
	addrs := make([]netip.Addr, 256)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
	}
	now := t0
	var i int
	allocs := testing.AllocsPerRun(10000, func() {
		i++
		if i%1000 == 0 {
			now = now.Add(time.Hour) // rotate
		}
		k := Knock{Src: addrs[i%len(addrs)], SrcPort: uint16(i), DstPort: uint16(i*7919) | 1, Seq: uint32(i)}
		tr.Knock(&k, now)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per knock", allocs)
	}
}

// TestTrackerManySources fills a large tracker, evicts half of it, and
// checks that every source is found again (the index survives deletions).
func TestTrackerManySources(t *testing.T) {
	tr := newTestTracker(t, testParams(), 5000)
	addr := func(i int) netip.Addr {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0xd, 0xb8, 12: byte(i >> 24), 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
	}
	now := t0.Add(time.Minute)
	for i := range 7500 {
		tr.Knock(&Knock{Src: addr(i), DstPort: 5, SrcPort: 1, Seq: 1}, now)
	}
	if tr.Len() != 5000 {
		t.Fatalf("Len = %d", tr.Len())
	}
	for i := range 7500 {
		hi, lo := hiLo(addr(i))
		idx, _ := tr.find(tr.hash(hi, lo), hi, lo, 0)
		if (idx >= 0) != (i >= 2500) {
			t.Fatalf("source %d: found %v", i, idx >= 0)
		}
	}
}

func hiLo(a netip.Addr) (uint64, uint64) {
	b := a.As16()
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
			uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7]),
		uint64(b[8])<<56 | uint64(b[9])<<48 | uint64(b[10])<<40 | uint64(b[11])<<32 |
			uint64(b[12])<<24 | uint64(b[13])<<16 | uint64(b[14])<<8 | uint64(b[15])
}

// checkIndex verifies the hash index against the slab: every entry has
// exactly one slot, reached from its home without crossing an empty slot,
// and the slot records its distance from home (distFar from distFar on).
func checkIndex(t *testing.T, tr *Tracker) {
	t.Helper()
	seen := make([]bool, len(tr.ents))
	for i, s := range tr.slots {
		if s == 0 {
			continue
		}
		idx := s & tr.idxMask
		if int(idx) >= len(tr.ents) || seen[idx] {
			t.Fatalf("slot %d: entry %d out of range or indexed twice", i, idx)
		}
		seen[idx] = true
		e := &tr.ents[idx]
		h := tr.hash(e.hi, e.lo)
		home := uint32(h) & tr.mask
		dist := (uint32(i) - home) & tr.mask
		for j := home; j != uint32(i); j = (j + 1) & tr.mask {
			if tr.slots[j] == 0 {
				t.Fatalf("slot %d: empty slot %d between it and its home %d", i, j, home)
			}
		}
		if got, want := s, tr.slotOf(h, idx, dist); got != want {
			t.Fatalf("slot %d: %#x, want %#x (distance %d)", i, got, want, dist)
		}
	}
	for idx, ok := range seen {
		if !ok {
			t.Fatalf("entry %d has no slot", idx)
		}
	}
}

// TestTrackerIndexClusters fills the index with long runs of sources that
// share a home slot, so that distances pass distFar, and evicts through
// them: the index stays consistent and finds exactly the sources kept.
func TestTrackerIndexClusters(t *testing.T) {
	const maxSources = 48
	tr := newTestTracker(t, testParams(), maxSources)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }
	home := func(a netip.Addr) uint32 {
		hi, lo := hiLo(netip.AddrFrom16(a.As16()))
		return uint32(tr.hash(hi, lo)) & tr.mask
	}
	// Sources homed on slot 5 or 6 (long runs), then some anywhere.
	var srcs []netip.Addr
	for i := 0; len(srcs) < 120; i++ {
		if h := home(addr(i)); h == 5 || h == 6 || i%97 == 0 {
			srcs = append(srcs, addr(i))
		}
	}
	now := t0.Add(time.Minute)
	far := false
	for n, src := range srcs {
		tr.Knock(&Knock{Src: src, DstPort: 5, SrcPort: 1, Seq: uint32(n)}, now)
		checkIndex(t, tr)
		for _, s := range tr.slots {
			far = far || s != 0 && (s>>tr.idxBits)&distFar == distFar
		}
	}
	if !far {
		t.Fatal("no slot reached distFar: the test does not exercise it")
	}
	for n, src := range srcs {
		hi, lo := hiLo(netip.AddrFrom16(src.As16()))
		idx, _ := tr.find(tr.hash(hi, lo), hi, lo, metaV4)
		if want := n >= len(srcs)-maxSources; (idx >= 0) != want {
			t.Fatalf("source %d (%v): found %v, want %v", n, src, idx >= 0, want)
		}
	}
}
