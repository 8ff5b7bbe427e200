package queue

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// fixtureDir holds one packet per .hex file: hex bytes, whitespace free,
// '#' starts a comment that runs to the end of the line. Each file says what
// it is and, on a "# want:" line, what Parse must answer.
const fixtureDir = "../testdata/packets"

// readFixture decodes one .hex fixture and returns its bytes and its
// "want:" comment.
func readFixture(t testing.TB, name string) (b []byte, want string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtureDir, name+".hex"))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	b, want, err = decodeHex(data)
	if err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return b, want
}

// decodeHex decodes the fixture format.
func decodeHex(data []byte) (b []byte, want string, err error) {
	var digits strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			if w, ok := strings.CutPrefix(strings.TrimSpace(line[i+1:]), "want:"); ok {
				want = strings.TrimSpace(w)
			}
			line = line[:i]
		}
		for _, f := range strings.Fields(line) {
			digits.WriteString(f)
		}
	}
	b, err = hex.DecodeString(digits.String())
	return b, want, err
}

// fixtureNames lists the fixtures on disk, without the .hex suffix.
func fixtureNames(t testing.TB) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(fixtureDir, "*.hex"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no fixtures in %s: %v", fixtureDir, err)
	}
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = strings.TrimSuffix(filepath.Base(p), ".hex")
	}
	return names
}

var (
	cli4   = netip.MustParseAddr("10.200.0.2")
	cli6   = netip.MustParseAddr("fd00:200::2")
	mapped = netip.MustParseAddr("::ffff:10.200.0.2")
)

// parseCases is the table of every fixture and what Parse must make of it.
var parseCases = []struct {
	name    string
	want    error
	pkt     Packet
	bareSYN bool
}{
	{name: "empty", want: ErrTruncated},

	{name: "ipv4_syn", pkt: Packet{Proto: ProtoTCP, Src: cli4, SrcPort: 40000, DstPort: 22, Seq: 0x01020304, Flags: FlagSYN}, bareSYN: true},
	{name: "ipv4_syn_mss", pkt: Packet{Proto: ProtoTCP, Src: cli4, SrcPort: 40000, DstPort: 22, Seq: 0x01020304, Flags: FlagSYN}, bareSYN: true},
	{name: "ipv4_syn_linux_options", pkt: Packet{Proto: ProtoTCP, Src: cli4, SrcPort: 51234, DstPort: 443, Seq: 0xdeadbeef, Flags: FlagSYN}, bareSYN: true},
	{name: "ipv4_ip_options", pkt: Packet{Proto: ProtoTCP, Src: cli4, SrcPort: 40001, DstPort: 7000, Seq: 0x0a0b0c0d, Flags: FlagSYN}, bareSYN: true},
	{name: "ipv4_max_headers", pkt: Packet{Proto: ProtoTCP, Src: cli4, SrcPort: 65535, DstPort: 65535, Seq: 0xffffffff, Flags: FlagSYN | FlagECE | FlagCWR}, bareSYN: true},
	{name: "ipv4_synack", pkt: Packet{Proto: ProtoTCP, Src: netip.MustParseAddr("10.200.0.1"), SrcPort: 22, DstPort: 40000, Seq: 0x55667788, Flags: FlagSYN | FlagACK}},
	{name: "ipv4_data_copy_range", pkt: Packet{Proto: ProtoTCP, Src: cli4, SrcPort: 40000, DstPort: 22, Seq: 0x01020305, Flags: FlagPSH | FlagACK}},
	{name: "ipv4_first_fragment", pkt: Packet{Proto: ProtoTCP, Src: cli4, SrcPort: 40002, DstPort: 22, Seq: 0x01010101, Flags: FlagSYN}, bareSYN: true},
	{name: "ipv4_first_fragment_short", want: ErrFragment},
	{name: "ipv4_fragment_offset", want: ErrFragment},
	{name: "ipv4_udp", pkt: Packet{Proto: ProtoUDP, Src: cli4, SrcPort: 40000, DstPort: 53, Payload: []byte("knok")}},
	{name: "ipv4_udp_length_7", want: ErrBadHeader},
	{name: "ipv4_udp_length_beyond_total", want: ErrBadHeader},
	{name: "ipv4_udp_first_fragment", want: ErrFragment},
	{name: "ipv4_udp_trunc_data", want: ErrTruncated},
	{name: "ipv4_icmp", want: ErrProtocol},
	{name: "ipv4_ihl_4", want: ErrBadHeader},
	{name: "ipv4_total_below_ihl", want: ErrBadHeader},
	{name: "ipv4_total_short", want: ErrBadHeader},
	{name: "ipv4_tcp_doff_4", want: ErrBadHeader},
	{name: "ipv4_tcp_doff_beyond_total", want: ErrBadHeader},
	{name: "ipv4_trunc_fixed", want: ErrTruncated},
	{name: "ipv4_trunc_ip_options", want: ErrTruncated},
	{name: "ipv4_trunc_ports", want: ErrTruncated},
	{name: "ipv4_trunc_tcp", want: ErrTruncated},
	{name: "ipv4_trunc_tcp_options", want: ErrTruncated},
	{name: "version_0", want: ErrVersion},
	{name: "version_5", want: ErrVersion},

	{name: "ipv6_syn", pkt: Packet{Proto: ProtoTCP, Src: cli6, SrcPort: 40000, DstPort: 22, Seq: 0x11223344, Flags: FlagSYN}, bareSYN: true},
	{name: "ipv6_ext_chain", pkt: Packet{Proto: ProtoTCP, Src: cli6, SrcPort: 40003, DstPort: 22, Seq: 0x99aabbcc, Flags: FlagSYN}, bareSYN: true},
	{name: "ipv6_first_fragment", pkt: Packet{Proto: ProtoTCP, Src: cli6, SrcPort: 40004, DstPort: 22, Seq: 1, Flags: FlagSYN}, bareSYN: true},
	{name: "ipv6_eight_ext", pkt: Packet{Proto: ProtoTCP, Src: cli6, SrcPort: 40007, DstPort: 22, Seq: 7, Flags: FlagSYN}, bareSYN: true},
	{name: "ipv6_mapped_source", pkt: Packet{Proto: ProtoTCP, Src: mapped, SrcPort: 40008, DstPort: 22, Seq: 8, Flags: FlagSYN}, bareSYN: true},
	{name: "ipv6_jumbo", pkt: Packet{Proto: ProtoTCP, Src: cli6, SrcPort: 40009, DstPort: 22, Seq: 9, Flags: FlagSYN}, bareSYN: true},
	{name: "ipv6_first_fragment_short", want: ErrFragment},
	{name: "ipv6_fragment_offset", want: ErrFragment},
	{name: "ipv6_udp", pkt: Packet{Proto: ProtoUDP, Src: cli6, SrcPort: 40000, DstPort: 53, Payload: []byte("knok")}},
	{name: "ipv6_dstopts_udp", pkt: Packet{Proto: ProtoUDP, Src: cli6, SrcPort: 40000, DstPort: 53, Payload: []byte{}}},
	{name: "ipv6_no_next_header", want: ErrProtocol},
	{name: "ipv6_hbh_not_first", want: ErrBadHeader},
	{name: "ipv6_too_many_ext", want: ErrBadHeader},
	{name: "ipv6_payload_short", want: ErrBadHeader},
	{name: "ipv6_payload_short_ext", want: ErrBadHeader},
	{name: "ipv6_trunc_fixed", want: ErrTruncated},
	{name: "ipv6_trunc_hbh", want: ErrTruncated},
	{name: "ipv6_trunc_routing", want: ErrTruncated},
	{name: "ipv6_trunc_fragment", want: ErrTruncated},
	{name: "ipv6_trunc_tcp", want: ErrTruncated},
	{name: "ipv6_trunc_tcp_options", want: ErrTruncated},
}

// errName is how a fixture's "want:" line names an outcome.
func errName(err error) string {
	for _, s := range []struct {
		err  error
		name string
	}{{nil, "ok"}, {ErrTruncated, "ErrTruncated"}, {ErrProtocol, "ErrProtocol"}, {ErrFragment, "ErrFragment"}, {ErrBadHeader, "ErrBadHeader"}, {ErrVersion, "ErrVersion"}} {
		if err == s.err {
			return s.name
		}
	}
	return "unknown error " + err.Error()
}

func TestParseFixtures(t *testing.T) {
	var covered []string
	for _, tc := range parseCases {
		covered = append(covered, tc.name)
		t.Run(tc.name, func(t *testing.T) {
			b, want := readFixture(t, tc.name)
			if want != errName(tc.want) {
				t.Fatalf("fixture says want: %q, table says %q", want, errName(tc.want))
			}
			p := Packet{Src: netip.MustParseAddr("192.0.2.1"), SrcPort: 1, DstPort: 2, Seq: 3, Flags: 4} // stale content
			err := Parse(b, &p)
			if err != tc.want {
				t.Fatalf("Parse = %v, want %v", err, tc.want)
			}
			if err != nil {
				if !reflect.DeepEqual(p, Packet{}) {
					t.Errorf("after error, packet = %+v, want zero", p)
				}
				return
			}
			if !reflect.DeepEqual(p, tc.pkt) {
				t.Errorf("Parse = %+v\nwant    %+v", p, tc.pkt)
			}
			if got := p.BareSYN(); got != tc.bareSYN {
				t.Errorf("BareSYN = %v, want %v", got, tc.bareSYN)
			}
		})
	}
	for _, name := range fixtureNames(t) {
		if !slices.Contains(covered, name) {
			t.Errorf("fixture %s.hex has no row in parseCases", name)
		}
	}
}

// TestParseEveryPrefix cuts every fixture that parses at every length short
// of its headers: each cut must say ErrTruncated, never succeed or panic.
func TestParseEveryPrefix(t *testing.T) {
	for _, tc := range parseCases {
		if tc.want != nil {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			b, _ := readFixture(t, tc.name)
			need := headerLen(t, b)
			var p Packet
			for n := 0; n < need; n++ {
				if err := Parse(b[:n], &p); err != ErrTruncated {
					t.Errorf("Parse(first %d of %d header bytes) = %v, want ErrTruncated", n, need, err)
				}
			}
			for n := need; n <= len(b); n++ {
				if err := Parse(b[:n], &p); err != nil {
					t.Errorf("Parse(first %d bytes, headers %d) = %v, want ok", n, need, err)
				}
			}
		})
	}
}

// headerLen finds the shortest prefix of b that parses, the slow way.
func headerLen(t *testing.T, b []byte) int {
	t.Helper()
	var p Packet
	for n := len(b); n > 0; n-- {
		if Parse(b[:n-1], &p) != nil {
			return n
		}
	}
	t.Fatal("an empty packet parsed")
	return 0
}

func TestBareSYN(t *testing.T) {
	for _, tc := range []struct {
		flags uint8
		want  bool
	}{
		{FlagSYN, true},
		{FlagSYN | FlagECE | FlagCWR, true},
		{FlagSYN | FlagPSH | FlagURG, true},
		{FlagSYN | FlagACK, false},
		{FlagSYN | FlagRST, false},
		{FlagSYN | FlagFIN, false},
		{FlagACK, false},
		{0, false},
	} {
		p := Packet{Flags: tc.flags}
		if got := p.BareSYN(); got != tc.want {
			t.Errorf("BareSYN(flags %#02x) = %v, want %v", tc.flags, got, tc.want)
		}
	}
}

func TestParseAllocs(t *testing.T) {
	var pkts [][]byte
	for _, tc := range parseCases {
		b, _ := readFixture(t, tc.name)
		pkts = append(pkts, b)
	}
	var p Packet
	allocs := testing.AllocsPerRun(100, func() {
		for _, b := range pkts {
			_ = Parse(b, &p)
		}
	})
	if allocs != 0 {
		t.Errorf("Parse allocates %v times per run of %d packets, want 0", allocs, len(pkts))
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range fixtureNames(f) {
		b, _ := readFixture(f, name)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Packet
		err := Parse(b, &p)
		if err != nil {
			switch err {
			case ErrTruncated, ErrProtocol, ErrFragment, ErrBadHeader, ErrVersion:
			default:
				t.Fatalf("Parse returned a non-sentinel error %v", err)
			}
			if !reflect.DeepEqual(p, Packet{}) {
				t.Fatalf("after %v, packet = %+v, want zero", err, p)
			}
			return
		}
		switch b[0] >> 4 {
		case 4:
			if !p.Src.Is4() || p.Src != netip.AddrFrom4([4]byte(b[12:16])) {
				t.Fatalf("IPv4 packet, Src = %v, header says %v", p.Src, b[12:16])
			}
			if b[9] != p.Proto || len(b) < int(b[0]&15)*4+8 {
				t.Fatalf("IPv4 packet parsed with protocol %d, %d bytes", b[9], len(b))
			}
		case 6:
			if !p.Src.Is6() || p.Src != netip.AddrFrom16([16]byte(b[8:24])) {
				t.Fatalf("IPv6 packet, Src = %v, header says %v", p.Src, b[8:24])
			}
			if len(b) < 48 || p.Proto == ProtoTCP && len(b) < 60 {
				t.Fatalf("IPv6 packet parsed with only %d bytes", len(b))
			}
		default:
			t.Fatalf("version %d parsed", b[0]>>4)
		}
		var again Packet
		if err := Parse(b, &again); err != nil || !reflect.DeepEqual(again, p) {
			t.Fatalf("second Parse = %+v, %v; first %+v", again, err, p)
		}
		if p.Proto == ProtoUDP {
			// The data ends the UDP header, which holds the ports.
			off := cap(b[:len(b)]) - cap(p.Payload) - 8
			if off < 20 || binary.BigEndian.Uint16(b[off:]) != p.SrcPort || binary.BigEndian.Uint16(b[off+2:]) != p.DstPort {
				t.Fatalf("fields %+v not found as a UDP header in the input", p)
			}
			return
		}
		// The TCP header must lie in b: find it by its ports and sequence
		// number right before the flags byte.
		var want [14]byte
		want[0], want[1] = byte(p.SrcPort>>8), byte(p.SrcPort)
		want[2], want[3] = byte(p.DstPort>>8), byte(p.DstPort)
		want[4], want[5], want[6], want[7] = byte(p.Seq>>24), byte(p.Seq>>16), byte(p.Seq>>8), byte(p.Seq)
		found := false
		for off := 20; off+20 <= len(b) && !found; off++ {
			found = bytes.Equal(b[off:off+8], want[:8]) && b[off+13] == p.Flags
		}
		if !found {
			t.Fatalf("fields %+v not found as a TCP header in the input", p)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	for _, name := range []string{"ipv4_syn_mss", "ipv4_max_headers", "ipv6_syn", "ipv6_ext_chain"} {
		pkt, _ := readFixture(b, name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var p Packet
			for b.Loop() {
				if err := Parse(pkt, &p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
