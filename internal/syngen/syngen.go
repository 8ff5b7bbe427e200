// Package syngen is the project's SYN generator for tests and benchmarks: it
// writes TCP SYNs with spoofed sources from inside a client network namespace
// straight onto its veth link (AF_PACKET, full Ethernet frames, batched with
// sendmmsg and past the qdisc), at a given rate or as fast as one core can.
// With Config.UDP it writes UDP datagrams instead, each carrying a payload
// template whose Config.Vary span is changed per packet (random payloads).
//
// It only ever sends inside the test network: every source and every
// destination must lie in 10.0.0.0/8 or fd00::/8, and Validate refuses
// anything else. Spoofed sources come from SpoofNet4 (10.64.0.0/10) or
// SpoofNet6 (fd00:64::/32); the server namespace routes those back to the
// client's veth address (see AddSpoofRoutes), where the replies die because
// no local address matches them.
//
// Packets are built in place in preallocated buffers, with the IPv4 and TCP
// checksums (TCP or UDP) computed incrementally from a precomputed sum of the
// fields that never change: the send loop allocates nothing.
package syngen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// MaxDuration is the hard cap on one Send, whatever Config.Duration says.
const MaxDuration = 60 * time.Second

// Address ranges. Only TestNet4/TestNet6 may ever be sent to or from; the
// SpoofNet ranges (inside them) are where cycled sources come from.
var (
	TestNet4  = netip.MustParsePrefix("10.0.0.0/8")
	TestNet6  = netip.MustParsePrefix("fd00::/8")
	SpoofNet4 = netip.MustParsePrefix("10.64.0.0/10")
	SpoofNet6 = netip.MustParsePrefix("fd00:64::/32")
)

// ReplySink returns a ruleset (for nft -f), a table inet named table, that
// drops in the flooding side's namespace the server's replies to the
// spoofed sources as they arrive.
func ReplySink(table string) string {
	return fmt.Sprintf(`table inet %s {
	chain replies {
		type filter hook prerouting priority raw; policy accept;
		ip daddr %s drop
		ip6 daddr %s drop
	}
}
`, table, SpoofNet4, SpoofNet6)
}

// ErrOutsideTestNet is returned (wrapped) by Validate for an address outside
// TestNet4/TestNet6.
var ErrOutsideTestNet = errors.New("address outside the test network (10.0.0.0/8, fd00::/8)")

// Ports is an inclusive range of TCP or UDP ports.
type Ports struct{ First, Last uint16 }

// Span is a part of a UDP payload: Len bytes from offset Off.
type Span struct{ Off, Len int }

// MaxPayload is the largest UDP payload (it fits a 1500-byte link in IPv6).
const MaxPayload = 1400

// Config says what to send.
type Config struct {
	// Dst is the destination address; its family (4 or 6) is the family
	// of every packet. It must be in TestNet4 or TestNet6.
	Dst netip.Addr
	// DstPorts are cycled in order, First..Last (or drawn at random from
	// them, see RandomPorts). Zero means 10000-60000.
	DstPorts Ports
	// RandomPorts draws each packet's destination port uniformly at random
	// from DstPorts (a fast pseudo-random sequence started from Seed)
	// instead of cycling through them in order.
	RandomPorts bool
	// Seed starts the sequence of RandomPorts; 0 means a fixed default.
	Seed uint64
	// MSS, when non-zero, adds an MSS option with this value (a SYN as a
	// real stack sends it); zero sends bare SYNs (20-byte TCP header).
	MSS uint16
	// Src is the first source address. Invalid (zero) means the first
	// address after the network address of SpoofNet4 or SpoofNet6.
	Src netip.Addr
	// Sources is how many consecutive addresses from Src are cycled
	// (Src, Src+1, ..., Src+Sources-1, Src, ...). 0 or 1 means Src only.
	Sources int
	// SrcPort, when non-zero, is the source port of every packet;
	// otherwise source ports cycle through 1024-65535.
	SrcPort uint16
	// Rate is in SYN/s; 0 sends as fast as possible.
	Rate int
	// Duration bounds the run; 0 or more than MaxDuration means MaxDuration.
	Duration time.Duration
	// Count, when non-zero, stops the run after that many packets were sent.
	Count uint64
	// Iface is the interface to send on; empty means "veth0".
	Iface string
	// DstMAC is the next hop's MAC address; nil means: resolve it with an
	// ARP/NDP probe and the kernel's neighbour table.
	DstMAC net.HardwareAddr
	// Batch is the number of packets per sendmmsg; 0 means 64.
	Batch int
	// UDP sends UDP datagrams carrying Payload instead of TCP SYNs (MSS
	// must be 0). Rate, Count and Result count datagrams then.
	UDP bool
	// Payload is the template of every datagram's payload (UDP only; at
	// most MaxPayload bytes, may be empty).
	Payload []byte
	// Vary is the span of Payload rewritten per datagram with bytes of a
	// fast pseudo-random sequence (splitmix64, its own, started from Seed):
	// the payloads differ while the bytes outside it stay as given (for SPA,
	// Span{1, 8}: the key id changes, the version byte 0 does not). Len 0:
	// every datagram carries Payload unchanged.
	Vary Span
	// RawIP sends through an IPPROTO_RAW socket (IP_HDRINCL, IPV6_HDRINCL)
	// instead of AF_PACKET: the kernel routes every packet and resolves the
	// next hop itself (DstMAC is unused; Dst is resolved on Iface before the
	// first packet). Slower per packet.
	RawIP bool
}

// Result is what one Send did.
type Result struct {
	Sent    uint64        // packets the kernel took
	Dropped uint64        // packets refused with ENOBUFS (device backlog full)
	Elapsed time.Duration // from the first to the return of the last send
}

// Rate returns Sent per second of Elapsed.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Elapsed.Seconds()
}

// Family returns 4 or 6 (the family of Dst), or 0 when Dst is invalid.
func (c *Config) Family() int {
	switch {
	case c.Dst.Is4():
		return 4
	case c.Dst.Is6() && !c.Dst.Is4In6():
		return 6
	}
	return 0
}

// withDefaults returns c with its zero fields filled in.
func (c Config) withDefaults() Config {
	if c.DstPorts == (Ports{}) {
		c.DstPorts = Ports{10000, 60000}
	}
	if !c.Src.IsValid() {
		if c.Family() == 6 {
			c.Src = SpoofNet6.Addr().Next()
		} else {
			c.Src = SpoofNet4.Addr().Next()
		}
	}
	if c.Sources <= 0 {
		c.Sources = 1
	}
	if c.Duration <= 0 || c.Duration > MaxDuration {
		c.Duration = MaxDuration
	}
	if c.Iface == "" {
		c.Iface = "veth0"
	}
	if c.Batch <= 0 {
		c.Batch = 64
	}
	return c
}

// Validate checks c (after filling in the defaults): the family, the ports,
// and that the destination and every source lie in the test network.
func (c Config) Validate() error {
	_, err := c.validated()
	return err
}

// validated returns c with defaults filled in, or why it is unusable.
func (c Config) validated() (Config, error) {
	c = c.withDefaults()
	if !c.Dst.IsValid() {
		return c, errors.New("no destination address")
	}
	if err := checkTestNet(c.Dst); err != nil {
		return c, fmt.Errorf("destination: %w", err)
	}
	if c.Family() == 0 {
		return c, fmt.Errorf("destination %v: not an IPv4 or IPv6 address", c.Dst)
	}
	if c.DstPorts.First == 0 || c.DstPorts.First > c.DstPorts.Last {
		return c, fmt.Errorf("destination ports %d-%d: want 1 <= first <= last", c.DstPorts.First, c.DstPorts.Last)
	}
	if c.Rate < 0 {
		return c, fmt.Errorf("rate %d: negative", c.Rate)
	}
	if c.Sources > 1<<24 {
		return c, fmt.Errorf("%d sources: at most %d", c.Sources, 1<<24)
	}
	if c.Batch > 1024 {
		return c, fmt.Errorf("batch %d: at most 1024", c.Batch)
	}
	if err := c.checkUDP(); err != nil {
		return c, err
	}
	if c.DstMAC != nil && len(c.DstMAC) != 6 {
		return c, fmt.Errorf("destination MAC %v: not an Ethernet address", c.DstMAC)
	}
	if c.Src.Is4() != c.Dst.Is4() {
		return c, fmt.Errorf("source %v and destination %v: different families", c.Src, c.Dst)
	}
	if err := checkTestNet(c.Src); err != nil {
		return c, fmt.Errorf("source: %w", err)
	}
	last, ok := addN(c.Src, uint64(c.Sources-1))
	if !ok {
		return c, fmt.Errorf("%d sources from %v: %w", c.Sources, c.Src, ErrOutsideTestNet)
	}
	// The test networks are contiguous: first and last inside means all inside.
	if err := checkTestNet(last); err != nil {
		return c, fmt.Errorf("last source (%d from %v): %w", c.Sources, c.Src, err)
	}
	return c, nil
}

// checkUDP checks the UDP fields: a payload and a span only with UDP, the
// span inside the payload, no MSS.
func (c Config) checkUDP() error {
	if !c.UDP {
		if c.Payload != nil || c.Vary != (Span{}) {
			return errors.New("a payload or a varied span without UDP")
		}
		return nil
	}
	if c.MSS != 0 {
		return fmt.Errorf("MSS %d with UDP", c.MSS)
	}
	if len(c.Payload) > MaxPayload {
		return fmt.Errorf("payload of %d bytes: at most %d", len(c.Payload), MaxPayload)
	}
	if c.Vary.Off < 0 || c.Vary.Len < 0 || c.Vary.Off+c.Vary.Len > len(c.Payload) {
		return fmt.Errorf("varied span %d+%d: outside the %d-byte payload", c.Vary.Off, c.Vary.Len, len(c.Payload))
	}
	return nil
}

// checkTestNet refuses any address outside TestNet4 and TestNet6.
func checkTestNet(a netip.Addr) error {
	if a.Zone() != "" {
		return fmt.Errorf("%v: zoned address: %w", a, ErrOutsideTestNet)
	}
	if a.Is4() && TestNet4.Contains(a) || a.Is6() && !a.Is4In6() && TestNet6.Contains(a) {
		return nil
	}
	return fmt.Errorf("%v: %w", a, ErrOutsideTestNet)
}

// addN returns a+n, and false when that wraps past the end of the family.
func addN(a netip.Addr, n uint64) (netip.Addr, bool) {
	if a.Is4() {
		b := a.As4()
		v := uint64(binary.BigEndian.Uint32(b[:])) + n
		if v > 0xffffffff {
			return netip.Addr{}, false
		}
		binary.BigEndian.PutUint32(b[:], uint32(v))
		return netip.AddrFrom4(b), true
	}
	b := a.As16()
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	nlo := lo + n
	if nlo < lo {
		if hi == ^uint64(0) {
			return netip.Addr{}, false
		}
		hi++
	}
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], nlo)
	return netip.AddrFrom16(b), true
}
