// Package spa builds and checks single-packet authorization (SPA) packets:
// one UDP payload of PacketLen bytes that asks the daemon to open (or
// close) ports for an address, encrypted and authenticated with a key
// derived from the user's open secret.
//
// A packet is
//
//	[0]      version (1)
//	[1:9]    key id: HMAC-SHA256(id key, int64 BE period)[:8]
//	[9:33]   nonce (24 random bytes)
//	[33:113] XChaCha20-Poly1305(encryption key, nonce, plaintext,
//	         additional data = packet[0:9]): 64 bytes of plaintext, 16 of tag
//
// and its plaintext
//
//	[0:8]    time, Unix seconds, int64 BE
//	[8]      action (1 open, 2 close)
//	[9]      address family (0 none: the packet's source; 4; 6)
//	[10:26]  address (IPv4 in [10:14], the rest zero)
//	[26:30]  duration, seconds, uint32 BE (0: the daemon's default)
//	[30]     port count n (0..16; 0: the user's ports)
//	[31:63]  16 ports, uint16 BE (slots >= n zero, the others nonzero)
//	[63]     zero
//
// The key id names the user and the period without a trial decryption:
// the daemon knows the ids of every user for the periods around now
// (Opener.Prepare), and an unknown id costs it one lookup.
//
// The package does no I/O and starts no goroutines: the caller passes the
// clock and the randomness (the nonce) in.
package spa

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// The packet's format.
const (
	Version   = 1   // the format's version, packet[0]
	PacketLen = 113 // 1 version + 8 key id + 24 nonce + 64 plaintext + 16 tag
	KeyIDLen  = 8   // bytes of key id
	NonceLen  = 24  // bytes of nonce (XChaCha20-Poly1305's)
	MaxPorts  = 16  // ports a packet names at most
)

// Offsets in the packet and the plaintext.
const (
	headerLen = 1 + KeyIDLen         // the additional data: version and key id
	nonceEnd  = headerLen + NonceLen // 33: where the ciphertext starts
	plainLen  = 64

	offAction   = 8
	offFamily   = 9
	offAddr     = 10
	offDuration = 26
	offCount    = 30
	offPorts    = 31
	offPad      = 63
)

// salt is HKDF's salt, which names the scheme and its version.
const salt = "nfqknock spa v1"

// Action is what a packet asks for.
type Action uint8

// The actions.
const (
	Open  Action = 1 // open the ports for the address
	Close Action = 2 // close them
)

// String returns "open" or "close" (or "action(N)" for another value).
func (a Action) String() string {
	switch a {
	case Open:
		return "open"
	case Close:
		return "close"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// Message is what a packet asks for (the plaintext).
type Message struct {
	Time     time.Time     // whole seconds (Unix): Seal drops the fraction
	Action   Action        // Open or Close
	Ports    []uint16      // empty: the user's ports; at most MaxPorts, none 0
	Duration time.Duration // 0: the daemon's --open-timeout; whole seconds, at most math.MaxUint32 s
	Address  netip.Addr    // invalid (zero): open the packet's source; else this address (4 or 16 bytes; an IPv4-mapped one is refused)
}

// Key is one user's SPA keys, derived from the user's open secret: the
// encryption key (with its AEAD, made once) and the key of its key ids.
// A Key is safe for concurrent use.
type Key struct {
	enc, id [32]byte
	aead    cipher.AEAD
}

// NewKey derives the keys of secret:
//
//	prk = HKDF-Extract(SHA-256, salt "nfqknock spa v1", secret)
//	enc = HKDF-Expand(prk, "encrypt", 32)
//	id  = HKDF-Expand(prk, "key id", 32)
func NewKey(secret string) *Key {
	prk, err := hkdf.Extract(sha256.New, []byte(secret), []byte(salt))
	if err != nil {
		panic(fmt.Sprintf("spa: hkdf extract: %v", err))
	}
	k := &Key{}
	for _, x := range []struct {
		info string
		out  *[32]byte
	}{{"encrypt", &k.enc}, {"key id", &k.id}} {
		b, err := hkdf.Expand(sha256.New, prk, x.info, 32)
		if err != nil {
			panic(fmt.Sprintf("spa: hkdf expand %q: %v", x.info, err))
		}
		copy(x.out[:], b)
	}
	k.aead, err = chacha20poly1305.NewX(k.enc[:])
	if err != nil {
		panic(fmt.Sprintf("spa: xchacha20poly1305: %v", err)) // the key is 32 bytes
	}
	return k
}

// KeyID returns the key id of the period (a PeriodOf value):
// HMAC-SHA256(id key, int64 big-endian period), cut to KeyIDLen bytes.
func (k *Key) KeyID(period int64) [KeyIDLen]byte {
	m := hmac.New(sha256.New, k.id[:])
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(period))
	m.Write(b[:])
	var sum [sha256.Size]byte
	return [KeyIDLen]byte(m.Sum(sum[:0]))
}

// PeriodOf returns the period that t falls in: floor(t.Unix() / period),
// period in whole seconds (times before 1970 floor too). It panics if
// period is under a second.
func PeriodOf(t time.Time, period time.Duration) int64 {
	return floorDiv(t.Unix(), periodSeconds(period))
}

// periodSeconds returns period in seconds, panicking if it is under one.
func periodSeconds(period time.Duration) int64 {
	ps := int64(period / time.Second)
	if ps <= 0 {
		panic(fmt.Sprintf("spa: period %v is under a second", period))
	}
	return ps
}

// floorDiv returns floor(a / b) for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// NonceDigest names a nonce for the replay memory: the first 16 bytes of
// SHA-256(nonce). Opener.Open returns it for every packet it accepts.
func NonceDigest(nonce [NonceLen]byte) [16]byte {
	s := sha256.Sum256(nonce[:])
	return [16]byte(s[:16])
}

// Seal appends to dst the packet for m, with the key id of
// PeriodOf(m.Time, period), encrypted with k and nonce, and returns the
// extended buffer. The nonce must never repeat for a key: draw it from
// crypto/rand. Seal fails (leaving dst alone) for a period under a second
// or not whole seconds, or an invalid message: an unknown action, more
// than MaxPorts ports or a port 0, a negative duration, one over
// math.MaxUint32 seconds or not whole seconds, an IPv4-mapped IPv6,
// unspecified or zoned address.
func Seal(dst []byte, k *Key, period time.Duration, nonce [NonceLen]byte, m *Message) ([]byte, error) {
	if period < time.Second || period%time.Second != 0 {
		return dst, fmt.Errorf("spa: seal: period %v is not a positive whole number of seconds", period)
	}
	var pt [plainLen]byte
	if err := encode(&pt, m); err != nil {
		return dst, fmt.Errorf("spa: seal: %w", err)
	}
	var hdr [headerLen]byte
	hdr[0] = Version
	id := k.KeyID(PeriodOf(m.Time, period))
	copy(hdr[1:], id[:])
	dst = append(dst, hdr[:]...)
	dst = append(dst, nonce[:]...)
	return k.aead.Seal(dst, nonce[:], pt[:], hdr[:]), nil
}

// encode writes the plaintext of m into pt, or says why m is invalid (an
// error wrapping ErrMessage).
func encode(pt *[plainLen]byte, m *Message) error {
	if m.Action != Open && m.Action != Close {
		return fmt.Errorf("%w: unknown action %d", ErrMessage, uint8(m.Action))
	}
	if len(m.Ports) > MaxPorts {
		return fmt.Errorf("%w: %d ports, at most %d", ErrMessage, len(m.Ports), MaxPorts)
	}
	d := m.Duration
	if d < 0 || d%time.Second != 0 || d/time.Second > math.MaxUint32 {
		return fmt.Errorf("%w: duration %v is not whole seconds in [0, %d s]", ErrMessage, d, uint32(math.MaxUint32))
	}
	binary.BigEndian.PutUint64(pt[0:8], uint64(m.Time.Unix()))
	pt[offAction] = byte(m.Action)
	a := m.Address
	switch {
	case !a.IsValid():
	case a.Zone() != "":
		return fmt.Errorf("%w: address %v has a zone", ErrMessage, a)
	case a.Is4In6():
		return fmt.Errorf("%w: address %v is IPv4-mapped", ErrMessage, a)
	case a.IsUnspecified():
		return fmt.Errorf("%w: address %v is unspecified", ErrMessage, a)
	case a.Is4():
		pt[offFamily] = 4
		b := a.As4()
		copy(pt[offAddr:], b[:])
	default:
		pt[offFamily] = 6
		b := a.As16()
		copy(pt[offAddr:], b[:])
	}
	binary.BigEndian.PutUint32(pt[offDuration:], uint32(d/time.Second))
	pt[offCount] = byte(len(m.Ports))
	for i, p := range m.Ports {
		if p == 0 {
			return fmt.Errorf("%w: port %d is 0", ErrMessage, i)
		}
		binary.BigEndian.PutUint16(pt[offPorts+2*i:], p)
	}
	return nil
}

// Plaintext errors of decode: each wraps ErrMessage, made once so that
// Open does not allocate.
var (
	errAction  = fmt.Errorf("%w: unknown action", ErrMessage)
	errFamily  = fmt.Errorf("%w: unknown address family", ErrMessage)
	errAddress = fmt.Errorf("%w: IPv4-mapped or unspecified address", ErrMessage)
	errPadding = fmt.Errorf("%w: nonzero padding", ErrMessage)
	errCount   = fmt.Errorf("%w: more than 16 ports", ErrMessage)
	errPort    = fmt.Errorf("%w: port 0", ErrMessage)
	errPeriod  = fmt.Errorf("%w: key id of another period than the time's", ErrMessage)
)

// decode fills m from the plaintext pt, reusing m.Ports' capacity, or
// returns an error wrapping ErrMessage for any plaintext that encode does
// not write.
func decode(pt *[plainLen]byte, m *Message) error {
	a := Action(pt[offAction])
	if a != Open && a != Close {
		return errAction
	}
	var addr netip.Addr
	switch pt[offFamily] {
	case 0:
		if !allZero(pt[offAddr:offDuration]) {
			return errPadding
		}
	case 4:
		if !allZero(pt[offAddr+4 : offDuration]) {
			return errPadding
		}
		addr = netip.AddrFrom4([4]byte(pt[offAddr : offAddr+4]))
	case 6:
		addr = netip.AddrFrom16([16]byte(pt[offAddr:offDuration]))
		if addr.Is4In6() {
			return errAddress
		}
	default:
		return errFamily
	}
	if addr.IsValid() && addr.IsUnspecified() {
		return errAddress
	}
	n := int(pt[offCount])
	if n > MaxPorts {
		return errCount
	}
	if !allZero(pt[offPorts+2*n:]) {
		return errPadding
	}
	ports := m.Ports[:0]
	for i := range n {
		p := binary.BigEndian.Uint16(pt[offPorts+2*i:])
		if p == 0 {
			return errPort
		}
		ports = append(ports, p)
	}
	*m = Message{
		Time:     time.Unix(int64(binary.BigEndian.Uint64(pt[0:8])), 0),
		Action:   a,
		Ports:    ports,
		Duration: time.Duration(binary.BigEndian.Uint32(pt[offDuration:])) * time.Second,
		Address:  addr,
	}
	return nil
}

// allZero reports whether b holds only zeros.
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
