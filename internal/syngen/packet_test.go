package syngen

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
)

var (
	testSrcMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
	testDstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
)

// parsed is what the test parser reads out of a frame.
type parsed struct {
	src, dst     netip.Addr
	sport, dport uint16
	seq          uint32
	flags        uint8
	mss          uint16 // 0 when absent
	tcpLen       int
}

// checksum is RFC 1071 computed the plain way, over whole byte slices, with
// no precomputed parts: the sum of a valid header including its checksum
// field is 0xffff, so checksum(...) == 0.
func checksum(parts ...[]byte) uint16 {
	var s uint64
	for _, p := range parts {
		for i := 0; i+1 < len(p); i += 2 {
			s += uint64(binary.BigEndian.Uint16(p[i:]))
		}
		if len(p)%2 == 1 {
			s += uint64(p[len(p)-1]) << 8
		}
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// parseFrame parses an Ethernet + IPv4/IPv6 + TCP frame and verifies every
// checksum and length independently of the builder.
func parseFrame(t *testing.T, f []byte) parsed {
	t.Helper()
	var p parsed
	if len(f) < ethLen {
		t.Fatalf("frame of %d bytes", len(f))
	}
	if got := net.HardwareAddr(f[0:6]).String(); got != testDstMAC.String() {
		t.Errorf("destination MAC %s, want %s", got, testDstMAC)
	}
	if got := net.HardwareAddr(f[6:12]).String(); got != testSrcMAC.String() {
		t.Errorf("source MAC %s, want %s", got, testSrcMAC)
	}
	var tcp, pseudo []byte
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
		if ip[9] != 6 || ip[8] == 0 {
			t.Errorf("protocol %d ttl %d", ip[9], ip[8])
		}
		if binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
			t.Errorf("fragment bits %#x", binary.BigEndian.Uint16(ip[6:]))
		}
		p.src = netip.AddrFrom4([4]byte(ip[12:16]))
		p.dst = netip.AddrFrom4([4]byte(ip[16:20]))
		tcp = ip[20:]
		pseudo = make([]byte, 12)
		copy(pseudo, ip[12:20])
		pseudo[9] = 6
		binary.BigEndian.PutUint16(pseudo[10:], uint16(len(tcp)))
	case 0x86dd:
		ip := f[ethLen:]
		if ip[0]>>4 != 6 {
			t.Fatalf("IPv6 version %d", ip[0]>>4)
		}
		if pl := int(binary.BigEndian.Uint16(ip[4:])); pl != len(ip)-40 {
			t.Errorf("IPv6 payload length %d, frame has %d", pl, len(ip)-40)
		}
		if ip[6] != 6 || ip[7] == 0 {
			t.Errorf("next header %d hop limit %d", ip[6], ip[7])
		}
		p.src = netip.AddrFrom16([16]byte(ip[8:24]))
		p.dst = netip.AddrFrom16([16]byte(ip[24:40]))
		tcp = ip[40:]
		pseudo = make([]byte, 40)
		copy(pseudo, ip[8:40])
		binary.BigEndian.PutUint32(pseudo[32:], uint32(len(tcp)))
		pseudo[39] = 6
	default:
		t.Fatalf("ethertype %#x", et)
	}
	if c := checksum(pseudo, tcp); c != 0 {
		t.Errorf("TCP checksum wrong (residue %#x)", c)
	}
	off := int(tcp[12]>>4) * 4
	if off < 20 || off > len(tcp) {
		t.Fatalf("TCP data offset %d, segment %d", off, len(tcp))
	}
	if off != len(tcp) {
		t.Errorf("TCP payload of %d bytes", len(tcp)-off)
	}
	p.tcpLen = len(tcp)
	p.sport = binary.BigEndian.Uint16(tcp[0:])
	p.dport = binary.BigEndian.Uint16(tcp[2:])
	p.seq = binary.BigEndian.Uint32(tcp[4:])
	p.flags = tcp[13]
	if ack := binary.BigEndian.Uint32(tcp[8:]); ack != 0 {
		t.Errorf("ack number %d in a SYN", ack)
	}
	for o := tcp[20:off]; len(o) > 0; {
		switch o[0] {
		case 0:
			o = nil
		case 1:
			o = o[1:]
		default:
			if len(o) < 2 || int(o[1]) < 2 || int(o[1]) > len(o) {
				t.Fatalf("bad TCP option %x", o)
			}
			if o[0] == 2 && o[1] == 4 {
				p.mss = binary.BigEndian.Uint16(o[2:])
			}
			o = o[o[1]:]
		}
	}
	return p
}

func TestFrames(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		n         int          // frames to check
		srcs      []netip.Addr // expected sources, cycled
		ports     []uint16     // expected destination ports, cycled
		sport     uint16       // fixed source port expected, 0 = cycling
		wantMSS   uint16
		wantTCPLn int
	}{
		{
			name: "v4 bare one source",
			cfg: Config{Dst: netip.MustParseAddr("10.200.0.1"), Src: netip.MustParseAddr("10.200.0.2"),
				DstPorts: Ports{22, 22}},
			n: 5, srcs: addrs("10.200.0.2"), ports: []uint16{22}, wantTCPLn: 20,
		},
		{
			name: "v4 MSS three sources two ports",
			cfg: Config{Dst: netip.MustParseAddr("10.200.0.1"), Sources: 3, MSS: 1460,
				DstPorts: Ports{10000, 10001}},
			n: 12, srcs: addrs("10.64.0.1", "10.64.0.2", "10.64.0.3"), ports: []uint16{10000, 10001},
			wantMSS: 1460, wantTCPLn: 24,
		},
		{
			name: "v4 sources across an octet, fixed source port",
			cfg: Config{Dst: netip.MustParseAddr("10.200.0.1"), Src: netip.MustParseAddr("10.64.0.254"),
				Sources: 4, SrcPort: 40000, DstPorts: Ports{65534, 65535}},
			n: 8, srcs: addrs("10.64.0.254", "10.64.0.255", "10.64.1.0", "10.64.1.1"),
			ports: []uint16{65534, 65535}, sport: 40000, wantTCPLn: 20,
		},
		{
			name: "v6 bare",
			cfg:  Config{Dst: netip.MustParseAddr("fd00:200::1"), Sources: 2, DstPorts: Ports{1, 3}},
			n:    6, srcs: addrs("fd00:64::1", "fd00:64::2"), ports: []uint16{1, 2, 3}, wantTCPLn: 20,
		},
		{
			name: "v6 MSS with a carry into the upper 64 bits",
			cfg: Config{Dst: netip.MustParseAddr("fd00:200::1"), Src: netip.MustParseAddr("fd00:64::ffff:ffff:ffff:ffff"),
				Sources: 2, MSS: 1220, DstPorts: Ports{443, 443}},
			n: 4, srcs: addrs("fd00:64::ffff:ffff:ffff:ffff", "fd00:64:0:1::"), ports: []uint16{443},
			wantMSS: 1220, wantTCPLn: 24,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.cfg.validated()
			if err != nil {
				t.Fatal(err)
			}
			b := newBuilder(c, testSrcMAC, testDstMAC)
			// Two buffers used alternately, as the sender reuses its batch.
			bufs := [2][]byte{make([]byte, b.size), make([]byte, b.size)}
			b.init(bufs[0])
			b.init(bufs[1])
			seqs := map[uint32]bool{}
			var lastSport uint16
			for i := 0; i < tt.n; i++ {
				f := bufs[i%2]
				b.next(f)
				p := parseFrame(t, f)
				if p.dst != c.Dst {
					t.Errorf("frame %d: dst %v, want %v", i, p.dst, c.Dst)
				}
				if want := tt.srcs[i%len(tt.srcs)]; p.src != want {
					t.Errorf("frame %d: src %v, want %v", i, p.src, want)
				}
				if want := tt.ports[i%len(tt.ports)]; p.dport != want {
					t.Errorf("frame %d: dport %d, want %d", i, p.dport, want)
				}
				if p.flags != 0x02 {
					t.Errorf("frame %d: flags %#x, want SYN only", i, p.flags)
				}
				if p.mss != tt.wantMSS || p.tcpLen != tt.wantTCPLn {
					t.Errorf("frame %d: mss %d tcp length %d, want %d %d", i, p.mss, p.tcpLen, tt.wantMSS, tt.wantTCPLn)
				}
				switch {
				case tt.sport != 0 && p.sport != tt.sport:
					t.Errorf("frame %d: sport %d, want %d", i, p.sport, tt.sport)
				case tt.sport == 0 && (p.sport < 1024 || i > 0 && p.sport == lastSport):
					t.Errorf("frame %d: sport %d (previous %d): want cycling from 1024", i, p.sport, lastSport)
				}
				lastSport = p.sport
				if seqs[p.seq] {
					t.Errorf("frame %d: sequence number %d repeats", i, p.seq)
				}
				seqs[p.seq] = true
			}
		})
	}
}

// TestFramesManyChecksums checks the incremental checksums against the plain
// computation over many frames (all the 16-bit carries of the varying fields).
func TestFramesManyChecksums(t *testing.T) {
	for _, dst := range []string{"10.200.0.1", "fd00:200::1"} {
		checkManyFrames(t, Config{Dst: netip.MustParseAddr(dst), Sources: 70000, MSS: 1460, DstPorts: Ports{1, 65535}}, 997, func(t *testing.T, f []byte) { parseFrame(t, f) })
	}
}

// checkManyFrames builds 200,000 frames of c and parses (checks) every
// every-th one, and those around the 70,000th (where the sources wrap).
func checkManyFrames(t *testing.T, c Config, every int, parse func(*testing.T, []byte)) {
	t.Helper()
	c, err := c.validated()
	if err != nil {
		t.Fatal(err)
	}
	b := newBuilder(c, testSrcMAC, testDstMAC)
	f := make([]byte, b.size)
	b.init(f)
	for i := 0; i < 200000; i++ {
		b.next(f)
		if i%every == 0 || i > 69990 && i < 70010 {
			parse(t, f)
		}
		if t.Failed() {
			t.Fatalf("%s: frame %d", c.Dst, i)
		}
	}
}

func TestNextAllocs(t *testing.T) {
	c, err := Config{Dst: netip.MustParseAddr("10.200.0.1"), Sources: 1000, MSS: 1460}.validated()
	if err != nil {
		t.Fatal(err)
	}
	b := newBuilder(c, testSrcMAC, testDstMAC)
	f := make([]byte, b.size)
	b.init(f)
	if n := testing.AllocsPerRun(1000, func() { b.next(f) }); n != 0 {
		t.Errorf("next allocates %v times per frame, want 0", n)
	}
}

func TestValidateRefusesOutsideTestNet(t *testing.T) {
	dst4 := netip.MustParseAddr("10.200.0.1")
	dst6 := netip.MustParseAddr("fd00:200::1")
	tests := []struct {
		name    string
		cfg     Config
		outside bool // want ErrOutsideTestNet (else some other error, or none when ok)
		ok      bool
	}{
		{name: "default spoof sources v4", cfg: Config{Dst: dst4, Sources: 1000000}, ok: true},
		{name: "default spoof sources v6", cfg: Config{Dst: dst6, Sources: 1000000}, ok: true},
		{name: "real client source", cfg: Config{Dst: dst4, Src: netip.MustParseAddr("10.200.0.2")}, ok: true},
		{name: "whole 10/8 up to its end", cfg: Config{Dst: dst4, Src: netip.MustParseAddr("10.255.255.254"), Sources: 2}, ok: true},
		{name: "public destination", cfg: Config{Dst: netip.MustParseAddr("8.8.8.8")}, outside: true},
		{name: "192.168 destination", cfg: Config{Dst: netip.MustParseAddr("192.168.1.1")}, outside: true},
		{name: "172.16 destination", cfg: Config{Dst: netip.MustParseAddr("172.16.0.1")}, outside: true},
		{name: "loopback destination", cfg: Config{Dst: netip.MustParseAddr("127.0.0.1")}, outside: true},
		{name: "11/8 destination", cfg: Config{Dst: netip.MustParseAddr("11.0.0.1")}, outside: true},
		{name: "public v6 destination", cfg: Config{Dst: netip.MustParseAddr("2001:db8::1")}, outside: true},
		{name: "fc00::/8 destination", cfg: Config{Dst: netip.MustParseAddr("fc00::1")}, outside: true},
		{name: "v4-mapped destination", cfg: Config{Dst: netip.MustParseAddr("::ffff:10.0.0.1")}, outside: true},
		{name: "zoned v6 destination", cfg: Config{Dst: netip.MustParseAddr("fd00:200::1%veth0")}, outside: true},
		{name: "public source", cfg: Config{Dst: dst4, Src: netip.MustParseAddr("1.2.3.4")}, outside: true},
		{name: "192.168 source", cfg: Config{Dst: dst4, Src: netip.MustParseAddr("192.168.0.1")}, outside: true},
		{name: "public v6 source", cfg: Config{Dst: dst6, Src: netip.MustParseAddr("2001:db8::1")}, outside: true},
		{name: "sources running past 10/8", cfg: Config{Dst: dst4, Src: netip.MustParseAddr("10.255.255.255"), Sources: 2}, outside: true},
		{name: "sources running past fd00::/8", cfg: Config{Dst: dst6, Src: netip.MustParseAddr("fdff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"), Sources: 3}, outside: true},
		{name: "mixed families", cfg: Config{Dst: dst6, Src: netip.MustParseAddr("10.64.0.1")}},
		{name: "no destination", cfg: Config{}},
		{name: "port zero", cfg: Config{Dst: dst4, DstPorts: Ports{0, 10}}},
		{name: "ports reversed", cfg: Config{Dst: dst4, DstPorts: Ports{20, 10}}},
		{name: "negative rate", cfg: Config{Dst: dst4, Rate: -1}},
		{name: "too many sources", cfg: Config{Dst: dst4, Sources: 1<<24 + 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.ok && err != nil:
				t.Fatalf("Validate: %v, want nil", err)
			case tt.ok:
			case err == nil:
				t.Fatal("Validate: nil, want an error")
			case tt.outside != errors.Is(err, ErrOutsideTestNet):
				t.Fatalf("Validate: %v; errors.Is(ErrOutsideTestNet) = %v, want %v", err, !tt.outside, tt.outside)
			}
		})
	}
}

func TestResolveMACRefusesOutsideTestNet(t *testing.T) {
	if _, err := ResolveMAC(netip.MustParseAddr("192.168.0.1"), 1); !errors.Is(err, ErrOutsideTestNet) {
		t.Fatalf("ResolveMAC(192.168.0.1): %v, want ErrOutsideTestNet", err)
	}
}

func addrs(s ...string) []netip.Addr {
	a := make([]netip.Addr, len(s))
	for i := range s {
		a[i] = netip.MustParseAddr(s[i])
	}
	return a
}

// TestRandomPorts: with RandomPorts every port lies in the range, the ports
// spread over all of it (no cycle), the checksums hold, and the same seed
// gives the same ports.
func TestRandomPorts(t *testing.T) {
	for _, r := range []Ports{{1, 65535}, {10000, 10009}, {22, 22}} {
		c, err := Config{Dst: netip.MustParseAddr("10.200.0.1"), Sources: 1000, MSS: 1460, DstPorts: r, RandomPorts: true, Seed: 7}.validated()
		if err != nil {
			t.Fatal(err)
		}
		b := newBuilder(c, testSrcMAC, testDstMAC)
		b2 := newBuilder(c, testSrcMAC, testDstMAC)
		f, f2 := make([]byte, b.size), make([]byte, b.size)
		b.init(f)
		b2.init(f2)
		span := int(r.Last) - int(r.First) + 1
		counts := map[uint16]int{}
		const n = 200000
		inOrder := 0
		var prev uint16
		for i := 0; i < n; i++ {
			b.next(f)
			b2.next(f2)
			p := parseFrame(t, f)
			if p.dport < r.First || p.dport > r.Last {
				t.Fatalf("%v: port %d outside", r, p.dport)
			}
			if q := parseFrame(t, f2); q.dport != p.dport {
				t.Fatalf("%v: same seed, ports %d and %d", r, p.dport, q.dport)
			}
			if i > 0 && p.dport == prev+1 {
				inOrder++
			}
			prev = p.dport
			counts[p.dport]++
		}
		// Distinct ports: all of a small range; of 65535 with 200,000 draws,
		// 1-e^(-200000/65535) = 95% of them are expected.
		want := span
		if span > 1000 {
			want = span * 93 / 100
		}
		if len(counts) < want {
			t.Errorf("%v: %d distinct ports in %d packets, want at least %d", r, len(counts), n, want)
		}
		if span > 1 && inOrder > n/span*2+100 {
			t.Errorf("%v: %d of %d packets followed the previous port: cycled, not random", r, inOrder, n)
		}
		if span <= 10 {
			for p, k := range counts {
				if k < n/span*9/10 || k > n/span*11/10 {
					t.Errorf("%v: port %d drawn %d times of %d, want about %d", r, p, k, n, n/span)
				}
			}
		}
	}
}
