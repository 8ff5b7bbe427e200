package knock

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
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

// benchMix returns a stream of knocks at an instant of the period of t0:
// noise from 50,000 sources to random ports of the range, and one knock in
// 16 from 256 clients that knock whole sequences of the users (one-time
// sequences with fresh nonces in one-time mode; when the stream repeats
// they are replays).
func benchMix(p Params, users []User, oneTime bool) []Knock {
	rng := rand.New(rand.NewPCG(3, 4))
	ps := p.PeriodStart(t0.Add(30 * time.Minute))
	var seqs [][]uint16
	for i := range 1024 {
		u := users[i%len(users)]
		secret := u.OpenSecret
		if i%4 == 3 {
			secret = u.CloseSecret
		}
		if oneTime {
			seqs = append(seqs, OneTimeSequence(p.Digest, secret, ps, uint32(i/len(users)), p.Range))
		} else {
			seqs = append(seqs, Sequence(p.Digest, secret, ps, p.Range))
		}
	}
	var ks []Knock
	var clients [256]struct{ seq, pos int }
	next := 0
	for i := range 1 << 18 {
		if i%16 != 0 {
			j := rng.IntN(50000)
			ks = append(ks, Knock{Src: netip.AddrFrom4([4]byte{10, 1 + byte(j>>16), byte(j >> 8), byte(j)}),
				SrcPort: uint16(rng.Uint32()), DstPort: uint16(rng.Uint32()) | 1, Seq: rng.Uint32()})
			continue
		}
		c := rng.IntN(len(clients))
		cl := &clients[c]
		if cl.pos == 0 {
			cl.seq, next = next%len(seqs), next+1
		}
		ks = append(ks, Knock{Src: netip.AddrFrom4([4]byte{10, 0, 0, byte(c)}),
			SrcPort: uint16(i), DstPort: seqs[cl.seq][cl.pos], Seq: uint32(i)})
		cl.pos = (cl.pos + 1) % len(seqs[cl.seq])
	}
	return ks
}

// BenchmarkKnockUsers: the cost of a knock with 1 or 64 users, in C or
// one-time mode, over a realistic mix (see benchMix), with the default
// MaxSources. It reports the bytes NewTracker allocated (tracker-B), of
// which the sequence tables (catalog-B), and the verdicts other than None
// per million knocks (acts/Mknock).
func BenchmarkKnockUsers(b *testing.B) {
	for _, tt := range []struct {
		users   int
		oneTime bool
	}{{1, false}, {1, true}, {64, false}, {64, true}} {
		mode := "c"
		if tt.oneTime {
			mode = "onetime"
		}
		b.Run(fmt.Sprintf("users=%d/%s", tt.users, mode), func(b *testing.B) {
			p := testParams()
			users := testUsers(tt.users)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			tr, err := NewTracker(TrackerConfig{Params: p, Users: users, OneTime: tt.oneTime})
			if err != nil {
				b.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			ks := benchMix(p, users, tt.oneTime)
			now := t0.Add(30 * time.Minute)
			for i := range ks { // pre-fill, and the first rotation
				tr.Knock(&ks[i], now)
			}
			b.ReportAllocs()
			acts, j := 0, 0
			for b.Loop() {
				if tr.Knock(&ks[j], now).Action != None {
					acts++
				}
				now = now.Add(time.Nanosecond)
				if j++; j == len(ks) {
					j = 0
				}
			}
			if acts == 0 && b.N > len(ks) {
				b.Fatal("no sequence recognised")
			}
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc), "tracker-B")
			b.ReportMetric(float64(tr.cat.memory()), "catalog-B")
			b.ReportMetric(float64(acts)/float64(b.N)*1e6, "acts/Mknock")
		})
	}
}

// BenchmarkRotate: the knock that rotates (ns/op): to the next period (one
// table of users x 2 x nonces sequences to compute) or after a jump of the
// clock (three tables), for 1 and 64 users in C and one-time mode, md5 and
// sha512.
func BenchmarkRotate(b *testing.B) {
	for _, d := range []Digest{MD5, SHA512} {
		for _, oneTime := range []bool{false, true} {
			for _, users := range []int{1, 64} {
				for _, jump := range []time.Duration{time.Hour, 10 * time.Hour} {
					mode, name := "c", "next"
					if oneTime {
						mode = "onetime"
					}
					if jump > time.Hour {
						name = "all"
					}
					b.Run(fmt.Sprintf("%v/users=%d/%s/%s", d, users, mode, name), func(b *testing.B) {
						p := testParams()
						p.Digest = d
						tr, err := NewTracker(TrackerConfig{Params: p, Users: testUsers(users), OneTime: oneTime, MaxSources: 16})
						if err != nil {
							b.Fatal(err)
						}
						now := t0.Add(30 * time.Minute)
						k := Knock{Src: src4, DstPort: 7}
						tr.Knock(&k, now)
						b.ReportAllocs()
						for b.Loop() {
							now = now.Add(jump)
							k.Seq++
							tr.Knock(&k, now)
						}
					})
				}
			}
		}
	}
}
