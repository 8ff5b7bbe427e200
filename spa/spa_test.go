package spa

import (
	"bytes"
	"errors"
	"math"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// The test users' secrets, their keys, and the period and window of the
// tests.
var (
	secrets = []string{"helloworld123", "géheim☃秘密", "third"}
	keys    = func() []*Key {
		ks := make([]*Key, len(secrets))
		for i, s := range secrets {
			ks[i] = NewKey(s)
		}
		return ks
	}()
	t0 = time.Unix(1762257600+1800, 0) // the middle of an hour
)

const (
	period = time.Hour
	window = 30 * time.Second
)

// nonceOf returns a nonce filled with b.
func nonceOf(b byte) (n [NonceLen]byte) {
	for i := range n {
		n[i] = b + byte(i)
	}
	return n
}

// seal seals m for user u, failing the test on an error.
func seal(t testing.TB, u int, nonce [NonceLen]byte, m *Message) []byte {
	t.Helper()
	pkt, err := Seal(nil, keys[u], period, nonce, m)
	if err != nil {
		t.Fatalf("Seal(%+v): %v", m, err)
	}
	return pkt
}

// sameMessage reports whether a and b are the same message (times
// compared as instants, nil and empty ports alike).
func sameMessage(a, b *Message) bool {
	return a.Time.Equal(b.Time) && a.Action == b.Action && slices.Equal(a.Ports, b.Ports) &&
		a.Duration == b.Duration && a.Address == b.Address
}

func TestRoundTrip(t *testing.T) {
	ports16 := make([]uint16, MaxPorts)
	for i := range ports16 {
		ports16[i] = uint16(65535 - i)
	}
	for _, tc := range []struct {
		name string
		user int
		m    Message
	}{
		{"defaults", 0, Message{Time: t0, Action: Open}},
		{"close", 1, Message{Time: t0, Action: Close}},
		{"one port", 2, Message{Time: t0, Action: Open, Ports: []uint16{22}}},
		{"16 ports", 0, Message{Time: t0, Action: Open, Ports: ports16}},
		{"duration", 0, Message{Time: t0, Action: Open, Duration: 90 * time.Second}},
		{"max duration", 0, Message{Time: t0, Action: Open, Duration: math.MaxUint32 * time.Second}},
		{"ipv4", 1, Message{Time: t0, Action: Open, Ports: []uint16{1, 2}, Address: netip.MustParseAddr("192.0.2.7")}},
		{"ipv6", 1, Message{Time: t0, Action: Close, Address: netip.MustParseAddr("2001:db8::1")}},
		{"window start", 0, Message{Time: t0.Add(-window), Action: Open}},
		{"window end", 0, Message{Time: t0.Add(window), Action: Open}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkt := seal(t, tc.user, nonceOf(7), &tc.m)
			if len(pkt) != PacketLen || pkt[0] != Version {
				t.Fatalf("packet of %d bytes, version %d", len(pkt), pkt[0])
			}
			o := NewOpener(keys, period, window)
			m := Message{Ports: make([]uint16, 3, MaxPorts)}
			u, d, err := o.Open(pkt, t0, &m)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if u != tc.user || d != NonceDigest(nonceOf(7)) {
				t.Errorf("Open: user %d, digest %x", u, d)
			}
			if !sameMessage(&m, &tc.m) {
				t.Errorf("Open: %+v, want %+v", m, tc.m)
			}
			// Seal appends.
			if got, _ := Seal([]byte("x"), keys[tc.user], period, nonceOf(7), &tc.m); !bytes.Equal(got[1:], pkt) || got[0] != 'x' {
				t.Errorf("Seal does not append")
			}
		})
	}
}

func TestSealErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		period time.Duration
		m      Message
		want   string
	}{
		{"action 0", period, Message{Time: t0}, "unknown action"},
		{"action 3", period, Message{Time: t0, Action: 3}, "unknown action"},
		{"17 ports", period, Message{Time: t0, Action: Open, Ports: make([]uint16, 17)}, "17 ports"},
		{"port 0", period, Message{Time: t0, Action: Open, Ports: []uint16{5, 0}}, "port 1 is 0"},
		{"negative duration", period, Message{Time: t0, Action: Open, Duration: -time.Second}, "duration"},
		{"fractional duration", period, Message{Time: t0, Action: Open, Duration: 1500 * time.Millisecond}, "duration"},
		{"long duration", period, Message{Time: t0, Action: Open, Duration: (math.MaxUint32 + 1) * time.Second}, "duration"},
		{"mapped", period, Message{Time: t0, Action: Open, Address: netip.MustParseAddr("::ffff:192.0.2.1")}, "IPv4-mapped"},
		{"unspecified 4", period, Message{Time: t0, Action: Open, Address: netip.IPv4Unspecified()}, "unspecified"},
		{"unspecified 6", period, Message{Time: t0, Action: Open, Address: netip.IPv6Unspecified()}, "unspecified"},
		{"zone", period, Message{Time: t0, Action: Open, Address: netip.MustParseAddr("fe80::1%eth0")}, "zone"},
		{"period 0", 0, Message{Time: t0, Action: Open}, "period"},
		{"period fraction", 1500 * time.Millisecond, Message{Time: t0, Action: Open}, "period"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := Seal(dst, keys[0], tc.period, nonceOf(1), &tc.m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Seal: %v, want an error with %q", err, tc.want)
			}
			if !strings.HasPrefix(tc.name, "period") && !errors.Is(err, ErrMessage) {
				t.Errorf("Seal: %v is not ErrMessage", err)
			}
			if string(got) != "keep" {
				t.Errorf("Seal changed dst: %q", got)
			}
		})
	}
}

// forge seals the plaintext pt as user u's packet for the period of t0,
// bypassing encode: how a holder of the key could write any plaintext.
func forge(u int, nonce [NonceLen]byte, pt [plainLen]byte, p int64) []byte {
	id := keys[u].KeyID(p)
	hdr := append([]byte{Version}, id[:]...)
	pkt := append(slices.Clone(hdr), nonce[:]...)
	return keys[u].aead.Seal(pkt, nonce[:], pt[:], hdr)
}

func TestOpenErrors(t *testing.T) {
	valid := seal(t, 0, nonceOf(3), &Message{Time: t0, Action: Open, Ports: []uint16{22}})
	var good [plainLen]byte
	if err := encode(&good, &Message{Time: t0, Action: Open, Ports: []uint16{22, 80}, Address: netip.MustParseAddr("192.0.2.1")}); err != nil {
		t.Fatal(err)
	}
	p0 := PeriodOf(t0, period)
	with := func(f func(pt *[plainLen]byte)) []byte {
		pt := good
		f(&pt)
		return forge(0, nonceOf(4), pt, p0)
	}
	flip := func(i int) []byte {
		b := slices.Clone(valid)
		b[i] ^= 1
		return b
	}
	other := NewKey("not a user")
	stranger, _ := Seal(nil, other, period, nonceOf(5), &Message{Time: t0, Action: Open})
	for _, tc := range []struct {
		name string
		pkt  []byte
		now  time.Time
		want error
	}{
		{"valid", valid, t0, nil},
		{"valid forged", with(func(*[plainLen]byte) {}), t0, nil},
		{"empty", nil, t0, ErrLength},
		{"short", valid[:PacketLen-1], t0, ErrLength},
		{"long", append(slices.Clone(valid), 0), t0, ErrLength},
		{"version 0", func() []byte { b := slices.Clone(valid); b[0] = 0; return b }(), t0, ErrVersion},
		{"version 2", func() []byte { b := slices.Clone(valid); b[0] = 2; return b }(), t0, ErrVersion},
		{"key id", flip(1), t0, ErrKeyID},
		{"stranger", stranger, t0, ErrKeyID},
		{"other period", valid, t0.Add(2 * period), ErrKeyID},
		{"nonce", flip(9), t0, ErrDecrypt},
		{"ciphertext", flip(40), t0, ErrDecrypt},
		{"tag", flip(PacketLen - 1), t0, ErrDecrypt},
		{"too old", valid, t0.Add(window + time.Second), ErrTooOld},
		{"future", valid, t0.Add(-window - time.Second), ErrFuture},
		{"action 0", with(func(pt *[plainLen]byte) { pt[offAction] = 0 }), t0, ErrMessage},
		{"action 3", with(func(pt *[plainLen]byte) { pt[offAction] = 3 }), t0, ErrMessage},
		{"family 5", with(func(pt *[plainLen]byte) { pt[offFamily] = 5 }), t0, ErrMessage},
		{"family 0 with address", with(func(pt *[plainLen]byte) { pt[offFamily] = 0 }), t0, ErrMessage},
		{"ipv4 padding", with(func(pt *[plainLen]byte) { pt[offAddr+4] = 1 }), t0, ErrMessage},
		{"ipv4 unspecified", with(func(pt *[plainLen]byte) { copy(pt[offAddr:], []byte{0, 0, 0, 0}) }), t0, ErrMessage},
		{"ipv6 unspecified", with(func(pt *[plainLen]byte) { pt[offFamily] = 6; clear(pt[offAddr:offDuration]) }), t0, ErrMessage},
		{"ipv6 mapped", with(func(pt *[plainLen]byte) {
			pt[offFamily] = 6
			a := netip.MustParseAddr("::ffff:192.0.2.1").As16()
			copy(pt[offAddr:], a[:])
		}), t0, ErrMessage},
		{"17 ports", with(func(pt *[plainLen]byte) { pt[offCount] = 17 }), t0, ErrMessage},
		{"255 ports", with(func(pt *[plainLen]byte) { pt[offCount] = 255 }), t0, ErrMessage},
		{"port 0", with(func(pt *[plainLen]byte) { pt[offCount] = 3 }), t0, ErrMessage},
		{"port after count", with(func(pt *[plainLen]byte) { pt[offPorts+2*5+1] = 1 }), t0, ErrMessage},
		{"last byte", with(func(pt *[plainLen]byte) { pt[offPad] = 1 }), t0, ErrMessage},
		{"period of the key id", func() []byte {
			var pt [plainLen]byte
			at := time.Unix(1762261200, 0) // a period start
			encode(&pt, &Message{Time: at, Action: Open})
			return forge(0, nonceOf(4), pt, PeriodOf(at, period)-1)
		}(), time.Unix(1762261200, 0), ErrMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := NewOpener(keys, period, window)
			var m Message
			u, _, err := o.Open(tc.pkt, tc.now, &m)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Open: %v, want %v", err, tc.want)
			}
			if err == nil && u != 0 || err != nil && u != -1 {
				t.Errorf("Open: user %d", u)
			}
			var e *Error
			if err != nil && (!errors.As(err, &e) || e.Reason() == "") {
				t.Errorf("Open: %v has no reason", err)
			}
		})
	}
}

func TestWindowEdges(t *testing.T) {
	m := Message{Time: t0, Action: Open}
	pkt := seal(t, 1, nonceOf(9), &m)
	for _, tc := range []struct {
		name string
		now  time.Time
		want error
	}{
		{"now", t0, nil},
		{"now = time + window", t0.Add(window), nil},
		{"now = time - window", t0.Add(-window), nil},
		{"a nanosecond late", t0.Add(window + 1), ErrTooOld},
		{"a nanosecond early", t0.Add(-window - 1), ErrFuture},
		{"now fraction, within", t0.Add(window).Add(-time.Nanosecond), nil},
		{"a second late", t0.Add(window + time.Second), ErrTooOld},
		{"a second early", t0.Add(-window - time.Second), ErrFuture},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got Message
			_, _, err := NewOpener(keys, period, window).Open(pkt, tc.now, &got)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Open at %v: %v, want %v", tc.now.Sub(t0), err, tc.want)
			}
			if (err == nil || errors.Is(err, ErrTooOld) || errors.Is(err, ErrFuture)) && !sameMessage(&got, &m) {
				t.Errorf("m = %+v", got)
			}
		})
	}
	// A zero window accepts the time itself only.
	o := NewOpener(keys, period, 0)
	if _, _, err := o.Open(pkt, t0, &Message{}); err != nil {
		t.Errorf("zero window: %v", err)
	}
	if _, _, err := o.Open(pkt, t0.Add(time.Nanosecond), &Message{}); !errors.Is(err, ErrTooOld) {
		t.Errorf("zero window, a nanosecond later: %v", err)
	}
}

// TestPeriodBoundary: a packet sealed at the last second of a period opens
// in the next one within the window, and one sealed at the first second of
// the next opens just before it; one Opener follows now across the
// boundary.
func TestPeriodBoundary(t *testing.T) {
	start := time.Unix(1762261200, 0) // 12:00, a period start
	last := start.Add(-time.Second)
	o := NewOpener(keys, period, window)
	for _, tc := range []struct {
		name     string
		sealedAt time.Time
		now      time.Time
		want     error
	}{
		{"last second, now the same", last, last, nil},
		{"last second, opened in the next", last, start.Add(window - time.Second), nil},
		{"last second, too late", last, start.Add(window), ErrTooOld},
		{"last second, beyond the margin", last, start.Add(window + skewMargin), ErrKeyID},
		{"first second, opened before", start, last, nil},
		{"first second, opened window before", start, start.Add(-window), nil},
		{"first second, too early", start, start.Add(-window - time.Second), ErrFuture},
		{"first second, beyond the margin", start, start.Add(-window - skewMargin - 2*time.Second), ErrKeyID},
		{"far future period", start.Add(period), start, ErrKeyID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkt := seal(t, 2, nonceOf(1), &Message{Time: tc.sealedAt, Action: Open})
			_, _, err := o.Open(pkt, tc.now, &Message{})
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Open: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestPrepare(t *testing.T) {
	o := NewOpener(keys, period, window)
	o.Prepare(t0)
	if len(o.ids) != len(keys) { // the middle of an hour: one period
		t.Errorf("%d ids at t0", len(o.ids))
	}
	start := time.Unix(1762261200, 0)
	o.Prepare(start) // two periods
	if len(o.ids) != 2*len(keys) || o.lo != PeriodOf(start, period)-1 || o.hi != o.lo+1 {
		t.Errorf("%d ids, periods %d..%d at a boundary", len(o.ids), o.lo, o.hi)
	}
	o.Prepare(start.Add(window + skewMargin + time.Second))
	if len(o.ids) != len(keys) || o.lo != PeriodOf(start, period) {
		t.Errorf("%d ids, periods %d..%d after it", len(o.ids), o.lo, o.hi)
	}
	for _, e := range o.ids {
		if e.id != keys[e.user].KeyID(e.period) {
			t.Errorf("wrong id %x of user %d period %d", e.id, e.user, e.period)
		}
	}
	// A short period: the ids of every period of the window and the
	// margin, which is 8 periods then.
	o = NewOpener(keys, 10*time.Second, window)
	o.Prepare(t0)
	reach := window + 80*time.Second
	n := PeriodOf(t0.Add(reach), 10*time.Second) - PeriodOf(t0.Add(-reach), 10*time.Second) + 1
	if len(o.ids) != int(n)*len(keys) {
		t.Errorf("%d ids for 10 s periods", len(o.ids))
	}
	// No users: every key id is unknown.
	if _, _, err := NewOpener(nil, period, window).Open(make([]byte, PacketLen), t0, &Message{}); !errors.Is(err, ErrVersion) {
		t.Errorf("no users, version 0: %v", err)
	}
	pkt := seal(t, 0, nonceOf(1), &Message{Time: t0, Action: Open})
	if _, _, err := NewOpener(nil, period, window).Open(pkt, t0, &Message{}); !errors.Is(err, ErrKeyID) {
		t.Errorf("no users: %v", err)
	}
}

func TestKeyIDs(t *testing.T) {
	seen := map[[KeyIDLen]byte]string{}
	for i, s := range append(slices.Clone(secrets), "", "helloworld124") {
		k := NewKey(s)
		for _, p := range []int64{math.MinInt64, -1, 0, 1, 489516, 489517, math.MaxInt64} {
			id := k.KeyID(p)
			if prev, ok := seen[id]; ok {
				t.Errorf("secret %d period %d: id %x also of %s", i, p, id, prev)
			}
			seen[id] = s
			if id != k.KeyID(p) {
				t.Errorf("KeyID is not a function")
			}
		}
	}
	if NewKey("x").enc == NewKey("x").id || NewKey("x").enc != NewKey("x").enc {
		t.Errorf("keys")
	}
}

func TestPeriodOf(t *testing.T) {
	for _, tc := range []struct {
		t      time.Time
		period time.Duration
		want   int64
	}{
		{time.Unix(0, 0), time.Hour, 0},
		{time.Unix(3599, 999999999), time.Hour, 0},
		{time.Unix(3600, 0), time.Hour, 1},
		{time.Unix(-1, 0), time.Hour, -1},
		{time.Unix(-1, 999999999), time.Hour, -1},
		{time.Unix(-3600, 0), time.Hour, -1},
		{time.Unix(-3601, 0), time.Hour, -2},
		{time.Unix(1762257600, 0), time.Hour, 489516},
		{time.Unix(1762257600, 0), time.Second, 1762257600},
		{time.Unix(1762257600, 0), 90 * time.Second, 19580640},
	} {
		if got := PeriodOf(tc.t, tc.period); got != tc.want {
			t.Errorf("PeriodOf(%d, %v) = %d, want %d", tc.t.Unix(), tc.period, got, tc.want)
		}
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[Action]string{Open: "open", Close: "close", 0: "action(0)", 9: "action(9)"} {
		if got := a.String(); got != want {
			t.Errorf("%d: %q", a, got)
		}
	}
}
