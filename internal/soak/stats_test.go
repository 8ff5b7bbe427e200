package main

import (
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100..1, unsorted
	}
	tests := []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"p50 of two", ms(2, 1), 50, time.Millisecond},
		{"p50 of three", ms(3, 1, 2), 50, 2 * time.Millisecond},
		{"p99 of 100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p50 of 100", ms(hundred...), 50, 50 * time.Millisecond},
		{"p100", ms(hundred...), 100, 100 * time.Millisecond},
		{"tiny p", ms(5, 3, 9), 0.001, 3 * time.Millisecond},
	}
	for _, tc := range tests {
		in := append([]time.Duration(nil), tc.in...)
		if got := percentile(tc.in, tc.p); got != tc.want {
			t.Errorf("%s: p%v = %v, want %v", tc.name, tc.p, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Fatalf("%s: percentile changed its input", tc.name)
			}
		}
	}
}

func TestGrowth(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	end := t0.Add(100 * time.Second) // tenths of 10 s
	at := func(s int, rss int64) sample { return sample{At: t0.Add(time.Duration(s) * time.Second), RSSKiB: rss} }
	rss := func(x sample) int64 { return x.RSSKiB }
	tests := []struct {
		name        string
		in          []sample
		want        float64
		first, last int64
		ok          bool
	}{
		{"flat", []sample{at(0, 100), at(5, 100), at(50, 500), at(95, 100), at(100, 100)}, 0, 100, 100, true},
		{"grew 20 %", []sample{at(1, 100), at(2, 100), at(3, 100), at(91, 120), at(92, 120), at(99, 120)}, 0.2, 100, 120, true},
		{"shrank", []sample{at(1, 200), at(99, 100)}, -0.5, 200, 100, true},
		{"one spike in a tenth: the median", []sample{at(1, 100), at(2, 100), at(3, 900), at(91, 100), at(92, 100), at(93, 100)}, 0, 100, 100, true},
		{"middle ignored", []sample{at(1, 100), at(50, 1000), at(99, 105)}, 0.05, 100, 105, true},
		{"no sample in the last tenth", []sample{at(1, 100), at(50, 100)}, 0, 0, 0, false},
		{"no sample in the first tenth", []sample{at(50, 100), at(99, 100)}, 0, 0, 0, false},
		{"first tenth not read", []sample{at(1, 0), at(99, 100)}, 0, 0, 0, false},
		{"unread samples left out", []sample{at(1, 0), at(2, 0), at(3, 100), at(98, 0), at(99, 110)}, 0.1, 100, 110, true},
		{"outside the run ignored", []sample{at(-5, 1), at(1, 100), at(99, 100), at(105, 1000)}, 0, 100, 100, true},
	}
	for _, tc := range tests {
		g, first, last, ok := growth(tc.in, t0, end, rss)
		if ok != tc.ok || first != tc.first || last != tc.last || ok && (g < tc.want-1e-9 || g > tc.want+1e-9) {
			t.Errorf("%s: growth %v (%d -> %d, ok %v), want %v (%d -> %d, ok %v)", tc.name, g, first, last, ok, tc.want, tc.first, tc.last, tc.ok)
		}
	}
}

func TestSumOpens(t *testing.T) {
	t0 := time.Unix(2_000_000, 0)
	s := func(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }
	ws := []window{
		{From: s(10), To: s(11), Why: winKill},
		{From: s(20), To: s(20.5), Why: winQuit},
	}
	as := []attempt{
		{Family: 4, From: s(1), To: s(1.1), Opened: true, Open: 2 * time.Millisecond},
		{Family: 6, From: s(2), To: s(2.1), Opened: true, Open: 4 * time.Millisecond, CloseFail: true},
		{Family: 4, From: s(9.5), To: s(10.2), Opened: false}, // overlaps the kill
		{Family: 4, From: s(10.9), To: s(13), Opened: false},  // starts in it
		{Family: 6, From: s(19), To: s(21), Opened: false},    // spans the quit
		{Family: 6, From: s(11.01), To: s(12), Opened: false}, // just after: outside
		{Family: 4, From: s(30), To: s(31), Opened: true, Open: time.Millisecond, // a replay that opened
			OneTime: true, Replayed: true, ReplayIn: true, ReplayOpen: true},
		{Family: 4, From: s(40), To: s(41), Opened: true, Open: 3 * time.Millisecond, OneTime: true, Replayed: true},
		{Family: 4, From: s(50), To: s(51), Opened: true, Open: 3 * time.Millisecond, OneTime: true, Replayed: true, ReplayIn: true}, // guard flushed
	}
	o := sumOpens(as, ws)
	if o.Tries != 9 || o.Opened != 5 || o.FailedOutside != 1 || o.FailedExcused[winKill] != 2 || o.FailedExcused[winQuit] != 1 {
		t.Errorf("tries %d opened %d outside %d excused %v; want 9, 5, 1, map[%s:2 %s:1]", o.Tries, o.Opened, o.FailedOutside, o.FailedExcused, winKill, winQuit)
	}
	if !strings.HasPrefix(o.FirstOutside, "IPv6 client") {
		t.Errorf("first outside: %q", o.FirstOutside)
	}
	if o.Replays != 3 || o.ReplaysIn != 2 || o.ReplaysOpened != 1 || o.CloseFailures != 1 {
		t.Errorf("replays %d connected %d opened %d, close failures %d; want 3, 2, 1, 1", o.Replays, o.ReplaysIn, o.ReplaysOpened, o.CloseFailures)
	}
	if o.P50 != 3*time.Millisecond || o.P99 != 4*time.Millisecond || o.SuccessPercent < 55.5 || o.SuccessPercent > 55.6 {
		t.Errorf("p50 %v p99 %v success %v %%; want 3ms, 4ms, 55.6", o.P50, o.P99, o.SuccessPercent)
	}
	if o := sumOpens(nil, nil); o.Tries != 0 || o.SuccessPercent != 0 || o.P99 != 0 {
		t.Errorf("no attempts: %+v", o)
	}
}

func TestVerdict(t *testing.T) {
	ok := func(frac float64, abs int64) grown { return grown{Frac: frac, Abs: abs, OK: true} }
	clean := verdictIn{Gen: "persist", RSS: ok(0.05, 600), HeapLive: ok(0.01, 40), Goroutines: ok(0, 0), FDs: ok(0, 0)}
	tests := []struct {
		name string
		mod  func(*verdictIn)
		want []string // substrings, one per failure, in order
	}{
		{"clean", func(*verdictIn) {}, nil},
		{"prober in, persist", func(v *verdictIn) { v.ProberSuccesses = 1 }, []string{"prober got in 1 times"}},
		{"prober in, owner", func(v *verdictIn) { v.Gen = "owner"; v.ProberSuccesses = 3 }, []string{"prober got in 3 times"}},
		{"prober in, none: reported, not failed", func(v *verdictIn) { v.Gen = "none"; v.ProberSuccesses = 40 }, nil},
		{"open failed outside", func(v *verdictIn) { v.Opens.FailedOutside = 2; v.Opens.FirstOutside = "IPv4 client x" }, []string{"2 client opens failed outside the windows (first: IPv4 client x)"}},
		{"failed in windows only", func(v *verdictIn) { v.Opens.FailedExcused = map[string]int{winKill: 5} }, nil},
		{"RSS at 10 %", func(v *verdictIn) { v.RSS = ok(0.10, 4000) }, nil},
		{"RSS over 10 %", func(v *verdictIn) { v.RSS = ok(0.11, 2049) }, []string{"RSS grew by 11.0 % (2049 KiB)"}},
		{"RSS over 10 %, within the noise", func(v *verdictIn) { v.RSS = ok(0.14, 2048) }, nil},
		{"RSS not measured", func(v *verdictIn) { v.RSS = grown{Frac: 5, Abs: 9000} }, nil},
		{"live heap over 10 %", func(v *verdictIn) { v.HeapLive = ok(0.2, 960) }, []string{"the live heap grew by 20.0 % (960 KiB)"}},
		{"live heap within the noise", func(v *verdictIn) { v.HeapLive = ok(0.2, 256) }, nil},
		{"goroutines grew by 3", func(v *verdictIn) { v.Goroutines = ok(3.0/16, 3) }, []string{"goroutines grew by 18.8 % (3)"}},
		{"goroutines grew by 2", func(v *verdictIn) { v.Goroutines = ok(2.0/16, 2) }, nil},
		{"fds over 10 %", func(v *verdictIn) { v.FDs = ok(0.5, 6) }, []string{"descriptors grew by 50.0 % (6)"}},
		{"fds up by one of 12", func(v *verdictIn) { v.FDs = ok(1.0/12, 1) }, nil},
		{"replay opened", func(v *verdictIn) { v.Opens.ReplaysOpened = 1 }, []string{"1 one-time replays opened"}},
		{"fatal", func(v *verdictIn) { v.Fatal = "no daemon" }, []string{"the run stopped: no daemon"}},
		{"all", func(v *verdictIn) {
			v.Fatal, v.ProberSuccesses, v.Opens.FailedOutside, v.Opens.ReplaysOpened = "x", 1, 1, 1
			v.RSS, v.HeapLive, v.Goroutines, v.FDs = ok(1, 6000), ok(1, 4000), ok(1, 16), ok(1, 12)
		}, []string{"stopped", "prober", "outside", "RSS", "heap", "goroutines", "descriptors", "replays"}},
	}
	for _, tc := range tests {
		in := clean
		tc.mod(&in)
		got := verdict(in)
		if len(got) != len(tc.want) {
			t.Errorf("%s: %q, want %d failures", tc.name, got, len(tc.want))
			continue
		}
		for i := range got {
			if !strings.Contains(got[i], tc.want[i]) {
				t.Errorf("%s: failure %d is %q, want it to hold %q", tc.name, i, got[i], tc.want[i])
			}
		}
	}
}

func TestLogMessages(t *testing.T) {
	log := `time=2026-12-07T04:00:00Z level=INFO msg=started table="inet nfqknock"
time=2026-12-07T04:00:01Z level=WARN msg=replay source=10.200.0.3 sequence=open
time=2026-12-07T04:00:02Z level=WARN msg=replay source=10.200.0.4 sequence=open
time=2026-12-07T04:00:03Z level=ERROR msg="reload refused: the secrets in force stay" err="line 2: want open=SECRET"
time=2026-12-07T04:00:04Z level=WARN msg="quoted \"inner\" text" x=1
level=ERROR no message here
`
	got := logMessages(log)
	want := map[string]int{
		"WARN replay": 2,
		"ERROR reload refused: the secrets in force stay": 1,
		`WARN quoted "inner" text`:                        1,
		"ERROR (no msg)":                                  1,
	}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%q: %d, want %d (all: %v)", k, got[k], n, got)
		}
	}
}
