//go:build linux

package testutil

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
)

// verify checks the headers and checksums of a packet of syn.
func verify(t *testing.T, syn SYN, pkt []byte) {
	t.Helper()
	ipl := 20
	if syn.Src.Is6() {
		ipl = 40
	}
	tl := 20
	if syn.MSS != 0 {
		tl = 24
	}
	if len(pkt) != ipl+tl {
		t.Fatalf("%v: %d bytes, want %d", syn, len(pkt), ipl+tl)
	}
	ip, tcp := pkt[:ipl], pkt[ipl:]
	var src, dst []byte
	if syn.Src.Is4() {
		if ip[0] != 0x45 || ip[9] != 6 || binary.BigEndian.Uint16(ip[2:]) != uint16(len(pkt)) {
			t.Errorf("%v: IPv4 header % x", syn, ip)
		}
		if fold16(sum16(ip)) != 0xffff {
			t.Errorf("%v: bad IPv4 header checksum", syn)
		}
		src, dst = ip[12:16], ip[16:20]
	} else {
		if ip[0]>>4 != 6 || ip[6] != 6 || binary.BigEndian.Uint16(ip[4:]) != uint16(tl) {
			t.Errorf("%v: IPv6 header % x", syn, ip)
		}
		src, dst = ip[8:24], ip[24:40]
	}
	if !bytes.Equal(src, syn.Src.AsSlice()) || !bytes.Equal(dst, syn.Dst.AsSlice()) {
		t.Errorf("%v: addresses % x -> % x", syn, src, dst)
	}
	if binary.BigEndian.Uint16(tcp[0:]) != syn.SrcPort || binary.BigEndian.Uint16(tcp[2:]) != syn.DstPort ||
		binary.BigEndian.Uint32(tcp[4:]) != syn.Seq || tcp[13] != 0x02 || int(tcp[12]>>4)*4 != tl {
		t.Errorf("%v: TCP header % x", syn, tcp)
	}
	if syn.MSS != 0 && (tcp[20] != 2 || tcp[21] != 4 || binary.BigEndian.Uint16(tcp[22:]) != syn.MSS) {
		t.Errorf("%v: MSS option % x", syn, tcp[20:])
	}
	if fold16(sum16(src)+sum16(dst)+6+uint32(tl)+sum16(tcp)) != 0xffff {
		t.Errorf("%v: bad TCP checksum", syn)
	}
}

func TestSYNPacket(t *testing.T) {
	for _, syn := range []SYN{
		{Src: netip.MustParseAddr("10.64.0.7"), Dst: netip.MustParseAddr("10.200.0.1"), SrcPort: 40000, DstPort: 4242, Seq: 12345},
		{Src: netip.MustParseAddr("10.200.0.2"), Dst: netip.MustParseAddr("10.200.0.1"), SrcPort: 65535, DstPort: 1, Seq: 0xffffffff, MSS: 1460},
		{Src: netip.MustParseAddr("fd00:64::7"), Dst: netip.MustParseAddr("fd00:200::1"), SrcPort: 1, DstPort: 65535, Seq: 1},
		{Src: netip.MustParseAddr("fd00:200::2"), Dst: netip.MustParseAddr("fd00:200::1"), SrcPort: 33333, DstPort: 22, Seq: 0x80000000, MSS: 1440},
	} {
		pkt, err := syn.Packet()
		if err != nil {
			t.Fatalf("%v: %v", syn, err)
		}
		verify(t, syn, pkt)
	}
}

func TestSYNPacketRefuses(t *testing.T) {
	for _, syn := range []SYN{
		{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("10.200.0.1")},
		{Src: netip.MustParseAddr("10.200.0.2"), Dst: netip.MustParseAddr("8.8.8.8")},
		{Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("fd00:200::1")},
		{Src: netip.MustParseAddr("::ffff:10.200.0.2"), Dst: netip.MustParseAddr("fd00:200::1")},
		{Src: netip.MustParseAddr("10.200.0.2"), Dst: netip.MustParseAddr("fd00:200::1")},
		{Dst: netip.MustParseAddr("10.200.0.1")},
	} {
		if _, err := syn.Packet(); err == nil {
			t.Errorf("%v: built, want refused", syn)
		}
	}
}

// TestSendStream sends a stream from spoofed and real sources of a client
// namespace and finds every SYN, exactly as built, in nft counters of the
// server namespace; a retransmission is counted twice.
func TestSendStream(t *testing.T) {
	p := netns.NewPair(t)
	rules := `table inet count {
	chain pre {
		type filter hook prerouting priority -300; policy accept;
		ip saddr 10.64.0.7 tcp sport 40000 tcp dport 4242 tcp sequence 12345 tcp flags == syn counter
		ip saddr 10.200.0.2 tcp sport 40001 tcp dport 4243 tcp sequence 7 tcp flags == syn tcp option maxseg size 1460 counter
		ip6 saddr fd00:64::7 tcp sport 40002 tcp dport 4244 tcp sequence 99 tcp flags == syn counter
		ip6 saddr fd00:200::2 tcp sport 40003 tcp dport 4245 tcp sequence 3000000000 tcp flags == syn tcp option maxseg size 1440 counter
	}
}`
	cmd := netns.Command(p.Server, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v: %s", err, out)
	}
	s, err := NewSYNSender(p.Client)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv4, srv6 := netns.ServerIP4, netns.ServerIP6
	// The neighbours first: a raw send does not wait for them, and the
	// first packets to a link just up can be lost.
	for _, a := range []netip.Addr{srv4, srv6} {
		resolve(t, p.Client, a)
	}
	t0 := time.Now().Add(50 * time.Millisecond)
	stream := []TimedSYN{
		{SYN{Src: netip.MustParseAddr("fd00:200::2"), Dst: srv6, SrcPort: 40003, DstPort: 4245, Seq: 3000000000, MSS: 1440}, t0.Add(40 * time.Millisecond)},
		{SYN{Src: netip.MustParseAddr("10.64.0.7"), Dst: srv4, SrcPort: 40000, DstPort: 4242, Seq: 12345}, t0},
		{SYN{Src: netip.MustParseAddr("10.200.0.2"), Dst: srv4, SrcPort: 40001, DstPort: 4243, Seq: 7, MSS: 1460}, t0.Add(10 * time.Millisecond)},
		{SYN{Src: netip.MustParseAddr("fd00:64::7"), Dst: srv6, SrcPort: 40002, DstPort: 4244, Seq: 99}, t0.Add(20 * time.Millisecond)},
		{SYN{Src: netip.MustParseAddr("10.64.0.7"), Dst: srv4, SrcPort: 40000, DstPort: 4242, Seq: 12345}, t0.Add(30 * time.Millisecond)},
	}
	sent, err := s.SendStream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(sent) != len(stream) {
		t.Fatalf("sent %d of %d", len(sent), len(stream))
	}
	for i, x := range sent {
		if i > 0 && x.At.Before(sent[i-1].At) {
			t.Errorf("sent out of order: %v after %v", x, sent[i-1])
		}
	}
	if sent[0].SYN != stream[1].SYN || sent[4].SYN != stream[0].SYN {
		t.Errorf("not sent in the order of the instants: %v", sent)
	}
	time.Sleep(100 * time.Millisecond)
	out, err := netns.Command(p.Server, "nft", "list", "table", "inet", "count").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v: %s", err, out)
	}
	var got []int
	for _, m := range regexp.MustCompile(`counter packets (\d+)`).FindAllSubmatch(out, -1) {
		n, _ := strconv.Atoi(string(m[1]))
		got = append(got, n)
	}
	if want := []int{2, 1, 1, 1}; len(got) != 4 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		t.Errorf("counters %v, want %v:\n%s", got, want, out)
	}
}

// resolve connects from ns to a closed port of dst until the answer (a
// reset) comes: dst's link address is known then.
func resolve(t *testing.T, ns string, dst netip.Addr) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := netns.Do(ns, func() error {
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(dst, 9).String(), 300*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err
		})
		var ne net.Error
		if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer from %v: %v", dst, err)
		}
	}
}
