package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/knock"
	"github.com/nfqknockd/nfqknockd/queue"
)

// synIPv4 returns an IPv4 SYN with an MSS option from src to port dport.
// Checksums are left zero: nothing on this path reads them.
func synIPv4(src netip.Addr, sport, dport uint16, seq uint32) []byte {
	b := make([]byte, 44)
	b[0], b[8], b[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	a := src.As4()
	copy(b[12:16], a[:])
	copy(b[16:20], []byte{10, 200, 0, 1})
	t := b[20:]
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	binary.BigEndian.PutUint32(t[4:], seq)
	t[12], t[13] = 6<<4, queue.FlagSYN
	binary.BigEndian.PutUint16(t[14:], 64240)
	copy(t[20:], []byte{2, 4, 0x05, 0xb4})
	return b
}

// BenchmarkParseTrack is the daemon's per-packet work in user space between
// the read and the verdict: parse the queued packet and track the knock,
// with 1 and with 100,000 knocking sources. Knocks never complete a
// sequence, so no netlink call is made.
func BenchmarkParseTrack(b *testing.B) {
	for _, sources := range []int{1, 100_000} {
		b.Run(fmt.Sprintf("sources=%d", sources), func(b *testing.B) {
			params := knock.Params{OpenSecret: "bench open", CloseSecret: "bench close",
				Range: knock.Range{Start: 1, End: 65535}, Period: time.Hour, Grace: time.Minute}
			tr, err := knock.NewTracker(knock.TrackerConfig{Params: params, Timeout: 10 * time.Second, MaxSources: 131072})
			if err != nil {
				b.Fatal(err)
			}
			// The clock is read once per batch (queue.Queue.ReadAt), not per packet.
			readAt := time.Now()
			s := &shard{tracker: tr, log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: func() time.Time { return readAt }}
			pkts := make([][]byte, sources)
			for i := range pkts {
				src := netip.AddrFrom4([4]byte{10, 64 + byte(i>>16), byte(i >> 8), byte(i)})
				pkts[i] = synIPv4(src, uint16(40000+i%20000), 1, uint32(i))
			}
			var p queue.Packet
			port := uint16(1)
			for i := range pkts { // every source tracked before timing
				queue.Parse(pkts[i], &p)
				s.handle(&p)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pkt := pkts[i%sources]
				port = port%60000 + 1
				binary.BigEndian.PutUint16(pkt[22:], port) // a new knock each time
				binary.BigEndian.PutUint32(pkt[24:], uint32(i))
				if err := queue.Parse(pkt, &p); err != nil {
					b.Fatal(err)
				}
				s.handle(&p)
			}
		})
	}
}

// udpIPv4 returns an IPv4 UDP datagram from src to port dport carrying
// payload. Checksums are left zero: nothing on this path reads them.
func udpIPv4(src netip.Addr, dport uint16, payload []byte) []byte {
	b := make([]byte, 28+len(payload))
	b[0], b[8], b[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	a := src.As4()
	copy(b[12:16], a[:])
	copy(b[16:20], []byte{10, 200, 0, 1})
	binary.BigEndian.PutUint16(b[20:], 40000)
	binary.BigEndian.PutUint16(b[22:], dport)
	binary.BigEndian.PutUint16(b[24:], uint16(8+len(payload)))
	copy(b[28:], payload)
	return b
}

// BenchmarkSPARefused is the daemon's per-packet work for an SPA flood:
// parse a queued UDP packet and refuse its random payload (version 1, an
// unknown key id), with 1 and 100 users. Nothing opens.
func BenchmarkSPARefused(b *testing.B) {
	for _, users := range []int{1, 100} {
		b.Run(fmt.Sprintf("users=%d", users), func(b *testing.B) {
			var us []knock.User
			for i := range users {
				us = append(us, knock.User{Name: fmt.Sprintf("u%d", i), OpenSecret: fmt.Sprintf("open %d", i), CloseSecret: fmt.Sprintf("close %d", i)})
			}
			cfg := defaultConfig()
			cfg.SPA.Ports = []uint16{62201}
			readAt := time.Now()
			s := &shard{log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: func() time.Time { return readAt },
				users: us, spa: newSPAGate(cfg, us, &spaCounts{})}
			payload := make([]byte, 113)
			payload[0] = 1
			pkt := udpIPv4(netip.MustParseAddr("10.64.0.1"), 62201, payload)
			var p queue.Packet
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				binary.BigEndian.PutUint64(pkt[29:], uint64(i)) // a new key id each time
				if err := queue.Parse(pkt, &p); err != nil {
					b.Fatal(err)
				}
				s.handle(&p)
			}
		})
	}
}
