package syngen

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/nfqknockd/nfqknockd/internal/netns"
)

func TestMain(m *testing.M) {
	netns.SweepStale()
	os.Exit(m.Run())
}

// counterTable counts, in a chain at priority -20, the bare SYNs (v4 and v6)
// that come from the spoof ranges.
const counterTable = `table inet syngentest {
	chain c {
		type filter hook input priority -20; policy accept;
		tcp flags & (fin|syn|rst|ack) == syn ip saddr 10.64.0.0/10 counter
		tcp flags & (fin|syn|rst|ack) == syn ip6 saddr fd00:64::/32 counter
	}
}
`

// newFloodPair makes a namespace pair with the spoof routes and the counter
// table in the server namespace.
func newFloodPair(t *testing.T) *netns.Pair {
	t.Helper()
	p := netns.NewPair(t)
	if err := AddSpoofRoutes(p.Server, netns.ClientIP4, netns.ClientIP6); err != nil {
		t.Fatal(err)
	}
	cmd := netns.Command(p.Server, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(counterTable)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v: %s", err, out)
	}
	return p
}

var packetsRE = regexp.MustCompile(`counter packets (\d+)`)

// readCounters returns the two counters of the test table (v4, v6).
func readCounters(t *testing.T, ns string) (v4, v6 uint64) {
	t.Helper()
	out, err := netns.Command(ns, "nft", "list", "table", "inet", "syngentest").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v: %s", err, out)
	}
	m := packetsRE.FindAllSubmatch(out, -1)
	if len(m) != 2 {
		t.Fatalf("want 2 counters in:\n%s", out)
	}
	v4, _ = strconv.ParseUint(string(m[0][1]), 10, 64)
	v6, _ = strconv.ParseUint(string(m[1][1]), 10, 64)
	return v4, v6
}

// TestSendCountsInServer sends K SYNs at a fixed rate and checks that the
// server's nft counter saw exactly K (counting only: no rate is asserted).
func TestSendCountsInServer(t *testing.T) {
	const k = 3000
	tests := []struct {
		name string
		cfg  Config
	}{
		{"v4 one source bare", Config{Dst: netns.ServerIP4}},
		{"v4 1000 sources MSS", Config{Dst: netns.ServerIP4, Sources: 1000, MSS: 1460}},
		{"v6 1000 sources MSS", Config{Dst: netns.ServerIP6, Sources: 1000, MSS: 1440}},
		{"v6 one source bare", Config{Dst: netns.ServerIP6, DstPorts: Ports{22, 22}}},
		{"v4 raw socket 1000 sources MSS", Config{Dst: netns.ServerIP4, Sources: 1000, MSS: 1460, RawIP: true}},
		{"v6 raw socket 1000 sources bare", Config{Dst: netns.ServerIP6, Sources: 1000, RawIP: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newFloodPair(t)
			c := tt.cfg
			c.Rate = 20000
			c.Count = k
			c.Batch = 16
			res, err := Run(context.Background(), p.Client, c)
			if err != nil {
				t.Fatal(err)
			}
			v4, v6 := readCounters(t, p.Server)
			got, other := v4, v6
			if c.Dst.Is6() {
				got, other = v6, v4
			}
			t.Logf("sent %d dropped %d in %v (%.0f SYN/s), counted %d", res.Sent, res.Dropped, res.Elapsed, res.Rate(), got)
			if res.Sent+res.Dropped != k {
				t.Errorf("sent %d + dropped %d, want %d", res.Sent, res.Dropped, k)
			}
			if got != res.Sent || other != 0 {
				t.Errorf("server counted %d (other family %d), want %d", got, other, res.Sent)
			}
		})
	}
}

// TestSendRefusesBeforeSending checks that a destination outside the test
// network fails in validation, before any namespace is entered.
func TestSendRefusesBeforeSending(t *testing.T) {
	_, err := Run(context.Background(), "no-such-namespace", Config{Dst: netip.MustParseAddr("192.0.2.1")})
	if err == nil || !strings.Contains(err.Error(), "outside the test network") {
		t.Fatalf("Run: %v, want an error about the test network", err)
	}
}

// BenchmarkFlood sends b.N SYNs as fast as one core can and reports SYN/s
// (the rate is printed, never asserted).
func BenchmarkFlood(b *testing.B) {
	for _, raw := range []bool{false, true} {
		for _, dst := range []netip.Addr{netns.ServerIP4, netns.ServerIP6} {
			name := fmt.Sprintf("packet/v%d", map[bool]int{true: 4, false: 6}[dst.Is4()])
			if raw {
				name = "raw" + name[len("packet"):]
			}
			b.Run(name, func(b *testing.B) {
				p := netns.NewPair(b)
				if err := AddSpoofRoutes(p.Server, netns.ClientIP4, netns.ClientIP6); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				res, err := Run(context.Background(), p.Client,
					Config{Dst: dst, Sources: 100000, MSS: 1460, Count: uint64(b.N), RawIP: raw})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(res.Rate(), "SYN/s")
				b.ReportMetric(float64(res.Dropped), "dropped")
			})
		}
	}
}

// snmpCounter reads one counter of /proc/net/snmp (table "Udp") or
// /proc/net/snmp6 (name "Udp6...") in namespace ns.
func snmpCounter(t *testing.T, ns, table, name string) uint64 {
	t.Helper()
	file := "/proc/net/snmp"
	if strings.HasPrefix(name, "Udp6") {
		file = "/proc/net/snmp6"
	}
	out, err := netns.Command(ns, "cat", file).Output()
	if err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
	lines := strings.Split(string(out), "\n")
	for i, l := range lines {
		f := strings.Fields(l)
		if file == "/proc/net/snmp6" && len(f) == 2 && f[0] == name {
			n, _ := strconv.ParseUint(f[1], 10, 64)
			return n
		}
		if file == "/proc/net/snmp" && len(f) > 0 && f[0] == table+":" && i+1 < len(lines) {
			vals := strings.Fields(lines[i+1])
			for j := range f {
				if f[j] == name && j < len(vals) {
					n, _ := strconv.ParseUint(vals[j], 10, 64)
					return n
				}
			}
		}
	}
	t.Fatalf("%s %s not in %s", table, name, file)
	return 0
}

// TestSendUDPCountsInServer sends K UDP datagrams from spoofed sources to a
// port without a socket: the server's UDP stack checks each checksum before
// it counts the datagram as sent to no port, so all K must be counted there
// and none as a checksum error (counts only, no rate).
func TestSendUDPCountsInServer(t *testing.T) {
	const k = 3000
	payload := make([]byte, 113)
	payload[0] = 1
	for _, tt := range []struct {
		name           string
		cfg            Config
		noPorts, csErr string
	}{
		{"v4 packet", Config{Dst: netns.ServerIP4}, "NoPorts", "InCsumErrors"},
		{"v6 packet", Config{Dst: netns.ServerIP6}, "Udp6NoPorts", "Udp6InCsumErrors"},
		{"v4 raw", Config{Dst: netns.ServerIP4, RawIP: true}, "NoPorts", "InCsumErrors"},
		{"v6 raw", Config{Dst: netns.ServerIP6, RawIP: true}, "Udp6NoPorts", "Udp6InCsumErrors"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newFloodPair(t)
			c := tt.cfg
			c.UDP, c.Payload, c.Vary = true, payload, Span{1, 8}
			c.Sources, c.DstPorts, c.Rate, c.Count, c.Batch = 1000, Ports{62201, 62201}, 20000, k, 16
			// One datagram first: the next hop is resolved (by a probe
			// datagram of its own) before the counters are read.
			one := c
			one.Count = 1
			if _, err := Run(context.Background(), p.Client, one); err != nil {
				t.Fatal(err)
			}
			n0, e0 := snmpCounter(t, p.Server, "Udp", tt.noPorts), snmpCounter(t, p.Server, "Udp", tt.csErr)
			res, err := Run(context.Background(), p.Client, c)
			if err != nil {
				t.Fatal(err)
			}
			n1, e1 := snmpCounter(t, p.Server, "Udp", tt.noPorts), snmpCounter(t, p.Server, "Udp", tt.csErr)
			t.Logf("sent %d dropped %d in %v; server: %d to no port, %d checksum errors", res.Sent, res.Dropped, res.Elapsed, n1-n0, e1-e0)
			if res.Sent+res.Dropped != k || n1-n0 != res.Sent || e1 != e0 {
				t.Errorf("sent %d + dropped %d (want %d); server counted %d to no port (want %d), %d checksum errors (want 0)",
					res.Sent, res.Dropped, k, n1-n0, res.Sent, e1-e0)
			}
		})
	}
}
