package spa

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"
)

// FuzzOpen opens pkt as it is, and plain (when it is 64 bytes) sealed as
// user 0's plaintext of the current period, which reaches the plaintext
// checks that random packets never pass. Open must never panic, and a
// packet it accepts must be what Seal makes of its message and nonce.
func FuzzOpen(f *testing.F) {
	for i, m := range []Message{
		{Time: t0, Action: Open},
		{Time: t0.Add(-window), Action: Close, Ports: []uint16{22}},
		{Time: t0.Add(window), Action: Open, Ports: []uint16{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, Duration: time.Hour},
		{Time: t0, Action: Open, Address: netip.MustParseAddr("192.0.2.1"), Duration: time.Second},
		{Time: t0, Action: Close, Address: netip.MustParseAddr("2001:db8::1"), Ports: []uint16{65535}},
	} {
		var pt [plainLen]byte
		if err := encode(&pt, &m); err != nil {
			f.Fatal(err)
		}
		f.Add(seal(f, i%len(keys), nonceOf(byte(i)), &m), pt[:])
	}
	f.Add(make([]byte, PacketLen), make([]byte, plainLen))
	o := NewOpener(keys, period, window)
	m := Message{Ports: make([]uint16, 0, MaxPorts)}
	f.Fuzz(func(t *testing.T, pkt, plain []byte) {
		check := func(pkt []byte) {
			u, d, err := o.Open(pkt, t0, &m)
			if err != nil {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("Open: %v is not an *Error", err)
				}
				return
			}
			nonce := [NonceLen]byte(pkt[headerLen:nonceEnd])
			again, err := Seal(nil, keys[u], period, nonce, &m)
			if err != nil {
				t.Fatalf("Seal of an accepted message %+v: %v", m, err)
			}
			if !bytes.Equal(again, pkt) {
				t.Fatalf("accepted %x, sealed again %x", pkt, again)
			}
			if d != NonceDigest(nonce) {
				t.Fatalf("digest %x", d)
			}
		}
		check(pkt)
		if len(plain) == plainLen && len(pkt) >= NonceLen {
			check(forge(0, [NonceLen]byte(pkt[:NonceLen]), [plainLen]byte(plain), PeriodOf(t0, period)))
		}
	})
}
