package syngen

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
)

// parsedUDP is what the test parser reads out of a UDP frame.
type parsedUDP struct {
	src, dst     netip.Addr
	sport, dport uint16
	payload      []byte
}

// parseUDPFrame parses an Ethernet + IPv4/IPv6 + UDP frame and verifies
// every checksum and length independently of the builder (checksum is the
// plain RFC 1071 sum of packet_test.go).
func parseUDPFrame(t *testing.T, f []byte) parsedUDP {
	t.Helper()
	var p parsedUDP
	if got := net.HardwareAddr(f[0:6]).String(); got != testDstMAC.String() {
		t.Errorf("destination MAC %s, want %s", got, testDstMAC)
	}
	var udp, pseudo []byte
	switch et := binary.BigEndian.Uint16(f[12:]); et {
	case 0x0800:
		ip := f[ethLen:]
		if ip[0] != 0x45 {
			t.Fatalf("IPv4 version/IHL %#x", ip[0])
		}
		if c := checksum(ip[:20]); c != 0 {
			t.Errorf("IPv4 header checksum wrong (residue %#x)", c)
		}
		if tl := int(binary.BigEndian.Uint16(ip[2:])); tl != len(ip) {
			t.Errorf("IPv4 total length %d, frame has %d", tl, len(ip))
		}
		if ip[9] != 17 || ip[8] == 0 {
			t.Errorf("protocol %d ttl %d, want UDP", ip[9], ip[8])
		}
		p.src = netip.AddrFrom4([4]byte(ip[12:16]))
		p.dst = netip.AddrFrom4([4]byte(ip[16:20]))
		udp = ip[20:]
		pseudo = make([]byte, 12)
		copy(pseudo, ip[12:20])
		pseudo[9] = 17
		binary.BigEndian.PutUint16(pseudo[10:], uint16(len(udp)))
	case 0x86dd:
		ip := f[ethLen:]
		if pl := int(binary.BigEndian.Uint16(ip[4:])); pl != len(ip)-40 {
			t.Errorf("IPv6 payload length %d, frame has %d", pl, len(ip)-40)
		}
		if ip[6] != 17 || ip[7] == 0 {
			t.Errorf("next header %d hop limit %d, want UDP", ip[6], ip[7])
		}
		p.src = netip.AddrFrom16([16]byte(ip[8:24]))
		p.dst = netip.AddrFrom16([16]byte(ip[24:40]))
		udp = ip[40:]
		pseudo = make([]byte, 40)
		copy(pseudo, ip[8:40])
		binary.BigEndian.PutUint32(pseudo[32:], uint32(len(udp)))
		pseudo[39] = 17
	default:
		t.Fatalf("ethertype %#x", et)
	}
	if l := int(binary.BigEndian.Uint16(udp[4:])); l != len(udp) {
		t.Errorf("UDP length %d, segment %d", l, len(udp))
	}
	if binary.BigEndian.Uint16(udp[6:]) == 0 {
		t.Errorf("UDP checksum 0 (none)")
	} else if c := checksum(pseudo, udp); c != 0 {
		t.Errorf("UDP checksum wrong (residue %#x)", c)
	}
	p.sport = binary.BigEndian.Uint16(udp[0:])
	p.dport = binary.BigEndian.Uint16(udp[2:])
	p.payload = udp[8:]
	return p
}

// spaTemplate is a 113-byte payload like an SPA packet's: version 1, then
// recognisable bytes.
func spaTemplate() []byte {
	b := make([]byte, 113)
	for i := range b {
		b[i] = byte(0xa0 + i)
	}
	b[0] = 1
	return b
}

// TestUDPFrames: UDP datagrams carry the template with only the varied span
// changed (and different in every datagram), with valid IPv4 and UDP
// checksums, in both families, for spans at odd and even offsets.
func TestUDPFrames(t *testing.T) {
	tmpl := spaTemplate()
	tests := []struct {
		name    string
		cfg     Config
		sources []netip.Addr
	}{
		{"v4 SPA key id", Config{Dst: netip.MustParseAddr("10.200.0.1"), Sources: 3, Payload: tmpl, Vary: Span{1, 8}, DstPorts: Ports{62201, 62201}},
			addrs("10.64.0.1", "10.64.0.2", "10.64.0.3")},
		{"v6 SPA key id", Config{Dst: netip.MustParseAddr("fd00:200::1"), Sources: 2, Payload: tmpl, Vary: Span{1, 8}, DstPorts: Ports{62201, 62201}},
			addrs("fd00:64::1", "fd00:64::2")},
		{"v4 whole payload varied, odd length", Config{Dst: netip.MustParseAddr("10.200.0.1"), Payload: tmpl[:51], Vary: Span{0, 51}, DstPorts: Ports{9, 9}},
			addrs("10.64.0.1")},
		{"v6 even offset, odd length span", Config{Dst: netip.MustParseAddr("fd00:200::1"), Src: netip.MustParseAddr("fd00:64::ffff:ffff:ffff:ffff"),
			Sources: 2, Payload: tmpl, Vary: Span{10, 13}, DstPorts: Ports{62201, 62201}}, addrs("fd00:64::ffff:ffff:ffff:ffff", "fd00:64:0:1::")},
		{"v4 nothing varied", Config{Dst: netip.MustParseAddr("10.200.0.1"), Payload: tmpl, DstPorts: Ports{62201, 62201}}, addrs("10.64.0.1")},
		{"v6 empty payload", Config{Dst: netip.MustParseAddr("fd00:200::1"), DstPorts: Ports{7, 7}}, addrs("fd00:64::1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.UDP = true
			c, err := tt.cfg.validated()
			if err != nil {
				t.Fatal(err)
			}
			b := newBuilder(c, testSrcMAC, testDstMAC)
			bufs := [2][]byte{make([]byte, b.size), make([]byte, b.size)}
			b.init(bufs[0])
			b.init(bufs[1])
			seen := map[string]bool{}
			v := c.Vary
			for i := 0; i < 50; i++ {
				f := bufs[i%2]
				b.next(f)
				p := parseUDPFrame(t, f)
				if want := tt.sources[i%len(tt.sources)]; p.src != want || p.dst != c.Dst {
					t.Errorf("datagram %d: %v -> %v, want %v -> %v", i, p.src, p.dst, want, c.Dst)
				}
				if p.dport != c.DstPorts.First || p.sport < 1024 {
					t.Errorf("datagram %d: ports %d -> %d", i, p.sport, p.dport)
				}
				if len(p.payload) != len(c.Payload) {
					t.Fatalf("datagram %d: payload of %d bytes, want %d", i, len(p.payload), len(c.Payload))
				}
				if !bytes.Equal(p.payload[:v.Off], c.Payload[:v.Off]) || !bytes.Equal(p.payload[v.Off+v.Len:], c.Payload[v.Off+v.Len:]) {
					t.Errorf("datagram %d: bytes outside the span %v changed", i, v)
				}
				if v.Len > 0 {
					key := string(p.payload[v.Off : v.Off+v.Len])
					if seen[key] {
						t.Errorf("datagram %d: varied span %x repeats", i, key)
					}
					seen[key] = true
				}
			}
		})
	}
}

// TestUDPManyChecksums checks the incremental UDP checksums against the
// plain computation over many datagrams, in both families.
func TestUDPManyChecksums(t *testing.T) {
	for _, dst := range []string{"10.200.0.1", "fd00:200::1"} {
		checkManyFrames(t, Config{Dst: netip.MustParseAddr(dst), Sources: 70000, UDP: true, Payload: spaTemplate(), Vary: Span{1, 8},
			DstPorts: Ports{1, 65535}, RandomPorts: true}, 97, func(t *testing.T, f []byte) { parseUDPFrame(t, f) })
	}
}

// TestUDPNextAllocs: the UDP path allocates nothing per datagram.
func TestUDPNextAllocs(t *testing.T) {
	for _, dst := range []string{"10.200.0.1", "fd00:200::1"} {
		c, err := Config{Dst: netip.MustParseAddr(dst), Sources: 1000, UDP: true, Payload: spaTemplate(), Vary: Span{1, 8}}.validated()
		if err != nil {
			t.Fatal(err)
		}
		b := newBuilder(c, testSrcMAC, testDstMAC)
		f := make([]byte, b.size)
		b.init(f)
		if n := testing.AllocsPerRun(1000, func() { b.next(f) }); n != 0 {
			t.Errorf("%s: next allocates %v times per datagram, want 0", dst, n)
		}
	}
}

// TestValidateUDP: the UDP fields are checked, and the test-network rule
// holds for UDP as for SYNs.
func TestValidateUDP(t *testing.T) {
	dst4 := netip.MustParseAddr("10.200.0.1")
	p := spaTemplate()
	tests := []struct {
		name string
		cfg  Config
		want string // "" for ok, else part of the error
	}{
		{"SPA span", Config{Dst: dst4, UDP: true, Payload: p, Vary: Span{1, 8}}, ""},
		{"span to the end", Config{Dst: dst4, UDP: true, Payload: p, Vary: Span{0, len(p)}}, ""},
		{"span past the end", Config{Dst: dst4, UDP: true, Payload: p, Vary: Span{110, 4}}, "outside"},
		{"negative span", Config{Dst: dst4, UDP: true, Payload: p, Vary: Span{-1, 2}}, "outside"},
		{"payload too long", Config{Dst: dst4, UDP: true, Payload: make([]byte, MaxPayload+1)}, "at most"},
		{"MSS with UDP", Config{Dst: dst4, UDP: true, MSS: 1460}, "MSS"},
		{"payload without UDP", Config{Dst: dst4, Payload: p}, "without UDP"},
		{"span without UDP", Config{Dst: dst4, Vary: Span{0, 1}}, "without UDP"},
		{"public destination", Config{Dst: netip.MustParseAddr("8.8.8.8"), UDP: true, Payload: p}, "outside the test network"},
		{"public source", Config{Dst: dst4, Src: netip.MustParseAddr("1.2.3.4"), UDP: true, Payload: p}, "outside the test network"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate: %v, want an error with %q", err, tt.want)
			}
		})
	}
}
