package knock

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// benchKnocks returns knocks from n sources to ports that match no
// sequence, each with a fresh source port and sequence number.
func benchKnocks(n int) []Knock {
	ks := make([]Knock, n)
	for i := range ks {
		ks[i] = Knock{
			Src:     netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}),
			SrcPort: uint16(i), DstPort: uint16(i*7919) | 1, Seq: uint32(i) * 2654435761,
		}
	}
	return ks
}

func benchTracker(b *testing.B, maxSources int) *Tracker {
	b.Helper()
	tr, err := NewTracker(TrackerConfig{Params: testParams(), Timeout: 10 * time.Second, MaxSources: maxSources})
	if err != nil {
		b.Fatal(err)
	}
	return tr
}

// runKnocks knocks ks in the given order, round after round, with a fresh
// source port and sequence number each time, and checks that nothing opens.
func runKnocks(b *testing.B, tr *Tracker, ks []Knock, order []int32) {
	b.Helper()
	now := t0.Add(30 * time.Minute)
	for _, k := range ks { // pre-fill
		tr.Knock(&k, now)
	}
	b.ReportAllocs()
	b.ResetTimer()
	j := 0
	for i := 0; b.Loop(); i++ {
		k := &ks[order[j]]
		k.SrcPort++
		k.Seq += 7919
		k.DstPort += 12345
		if k.DstPort == 0 {
			k.DstPort = 1
		}
		if tr.Knock(k, now).Action != None {
			b.Fatal("a benchmark knock opened")
		}
		now = now.Add(time.Nanosecond) // the clock moves on
		if j++; j == len(order) {
			j = 0
		}
	}
}

func seqOrder(n int) []int32 {
	o := make([]int32, n)
	for i := range o {
		o[i] = int32(i)
	}
	return o
}

// BenchmarkKnock1Source: one source knocks again and again.
func BenchmarkKnock1Source(b *testing.B) {
	runKnocks(b, benchTracker(b, 131072), benchKnocks(1), seqOrder(1))
}

// BenchmarkKnock100kSources: 100,000 tracked sources knock in turn.
func BenchmarkKnock100kSources(b *testing.B) {
	runKnocks(b, benchTracker(b, 131072), benchKnocks(100000), seqOrder(100000))
}

// BenchmarkKnock100kSourcesRandom: 100,000 tracked sources knock in a
// random order (no help from the memory prefetcher).
func BenchmarkKnock100kSourcesRandom(b *testing.B) {
	order := seqOrder(100000)
	rand.New(rand.NewPCG(1, 1)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	runKnocks(b, benchTracker(b, 131072), benchKnocks(100000), order)
}

// BenchmarkKnockFlood: every knock comes from a new source (a spoofed
// flood), so each one evicts the least recently seen of 65,536.
func BenchmarkKnockFlood(b *testing.B) {
	tr := benchTracker(b, DefaultMaxSources)
	now := t0.Add(30 * time.Minute)
	b.ReportAllocs()
	var k Knock
	for i := uint32(0); b.Loop(); i++ {
		k = Knock{Src: netip.AddrFrom4([4]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}), SrcPort: uint16(i), DstPort: uint16(i) | 1, Seq: i}
		tr.Knock(&k, now)
	}
	if tr.Len() != min(DefaultMaxSources, b.N) {
		b.Fatalf("Len %d", tr.Len())
	}
}
