package spa

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestBitFlips flips every bit of a valid packet: none is accepted.
func TestBitFlips(t *testing.T) {
	pkt := seal(t, 1, nonceOf(2), &Message{Time: t0, Action: Open, Ports: []uint16{22, 443}, Address: netip.MustParseAddr("2001:db8::5")})
	o := NewOpener(keys, period, window)
	for i := range PacketLen * 8 {
		b := slices.Clone(pkt)
		b[i/8] ^= 1 << (i % 8)
		_, _, err := o.Open(b, t0, &Message{})
		var want error
		switch {
		case i/8 == 0:
			want = ErrVersion
		case i/8 < headerLen:
			want = ErrKeyID
		default:
			want = ErrDecrypt
		}
		if !errors.Is(err, want) {
			t.Errorf("bit %d: %v, want %v", i, err, want)
		}
	}
}

func TestOpenAllocs(t *testing.T) {
	o := NewOpener(keys, period, window)
	valid := seal(t, 2, nonceOf(1), &Message{Time: t0, Action: Open, Ports: []uint16{1, 2, 3}})
	unknown := slices.Clone(valid)
	unknown[3] ^= 0x40
	random := slices.Clone(valid)
	for i := range random {
		random[i] = byte(i * 151)
	}
	random[0] = Version
	bad := slices.Clone(valid)
	bad[50] ^= 1
	m := Message{Ports: make([]uint16, 0, MaxPorts)}
	for name, pkt := range map[string][]byte{"valid": valid, "unknown key id": unknown, "random": random, "decrypt": bad, "short": valid[:5]} {
		if n := testing.AllocsPerRun(100, func() { o.Open(pkt, t0, &m) }); n != 0 {
			t.Errorf("%s: %v allocs per Open", name, n)
		}
	}
	if _, _, err := o.Open(valid, t0, &m); err != nil {
		t.Fatal(err)
	}
}

// benchOpen benchmarks Open of pkt, which gives want.
func benchOpen(b *testing.B, pkt []byte, want error) {
	o := NewOpener(keys, period, window)
	m := Message{Ports: make([]uint16, 0, MaxPorts)}
	if _, _, err := o.Open(pkt, t0, &m); !errors.Is(err, want) || (want == nil) != (err == nil) {
		b.Fatalf("Open: %v, want %v", err, want)
	}
	b.ReportAllocs()
	for b.Loop() {
		o.Open(pkt, t0, &m)
	}
}

func BenchmarkOpenRandom(b *testing.B) {
	pkt := make([]byte, PacketLen)
	for i := range pkt {
		pkt[i] = byte(i*151 + 7)
	}
	benchOpen(b, pkt, ErrVersion)
}

func BenchmarkOpenUnknownKeyID(b *testing.B) {
	pkt := seal(b, 0, nonceOf(1), &Message{Time: t0, Action: Open})
	pkt[2] ^= 0xff
	benchOpen(b, pkt, ErrKeyID)
}

func BenchmarkOpenValid(b *testing.B) {
	benchOpen(b, seal(b, 1, nonceOf(1), &Message{Time: t0, Action: Open, Ports: []uint16{22, 80, 443}, Address: netip.MustParseAddr("2001:db8::9")}), nil)
}

// TestKeyIDsCover: the ids KeyIDs gives for [from, to] are every id an Opener
// prepares at any second of it, and no period more than needed.
func TestKeyIDsCover(t *testing.T) {
	for _, p := range []time.Duration{10 * time.Second, time.Hour} {
		from := time.Unix(1762261200-45, 0) // 45 s before an hour starts
		to := from.Add(90 * time.Second)
		ids := KeyIDs(keys, p, window, from, to)
		have := map[[KeyIDLen]byte]bool{}
		for _, id := range ids {
			have[id] = true
		}
		o := NewOpener(keys, p, window)
		for at := from; !at.After(to); at = at.Add(time.Second) {
			o.Prepare(at)
			for _, e := range o.ids {
				if !have[e.id] {
					t.Fatalf("period %v: at %v the Opener accepts a key id of period %d that KeyIDs lacks", p, at.Sub(from), e.period)
				}
			}
		}
		reach := window + o.margin()
		n := PeriodOf(to.Add(reach), p) - PeriodOf(from.Add(-reach), p) + 1
		if len(ids) != int(n)*len(keys) {
			t.Errorf("period %v: %d ids, want %d", p, len(ids), n*int64(len(keys)))
		}
	}
}
