package main

// The soak's arithmetic and its verdict: percentiles, growth between the
// first and the last tenth of the run, the windows that excuse a client's
// failed open, and the rules that make the soak exit 1. Pure: no clock,
// no kernel.

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// percentile returns the p-th percentile (0 < p <= 100) of d by the
// nearest-rank method, and 0 for no samples. d is not modified.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// sample is one reading of the daemon's resources: from /proc, and from
// its metrics file (0 until the daemon first wrote it).
type sample struct {
	At          time.Time
	PID         int
	RSSKiB      int64
	FDs         int64
	Threads     int64
	Goroutines  int64
	HeapLiveKiB int64
}

// growth returns by how much field grew from the first tenth of the run
// [start, end] to its last tenth, as a fraction (0.1 is 10 %): the median of
// the samples in the last tenth over the median of those in the first,
// minus one. Samples whose field is 0 were not read (the metrics file
// before its first write) and are left out; ok is false when a tenth holds
// no other sample. Medians, not means: a restart in a tenth (a new daemon,
// smaller) or one sample under a flood moves them little.
func growth(samples []sample, start, end time.Time, field func(sample) int64) (g float64, first, last int64, ok bool) {
	tenth := end.Sub(start) / 10
	var a, b []int64
	for _, s := range samples {
		if field(s) == 0 {
			continue // not read
		}
		if s.At.Before(start.Add(tenth)) && !s.At.Before(start) {
			a = append(a, field(s))
		}
		if !s.At.Before(end.Add(-tenth)) && !s.At.After(end) {
			b = append(b, field(s))
		}
	}
	if len(a) == 0 || len(b) == 0 {
		return 0, 0, 0, false
	}
	first, last = median(a), median(b)
	return float64(last)/float64(first) - 1, first, last, true
}

// median returns the median of v (the lower middle for an even count).
func median(v []int64) int64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// window is a time in which a client's open may fail, and why: the daemon
// is not there to see the knock, or the kernel's table is not.
type window struct {
	From, To time.Time
	Why      string
}

// The reasons of the windows.
const (
	// winKill: from the SIGKILL until the new daemon logged msg=started.
	// Knocks in it reach nobody (the queue is bypassed); the tracker's
	// half-knocked sources die with the daemon.
	winKill = "sigkill_gap"
	// winQuit: the same for SIGQUIT, a restart.
	winQuit = "sigquit_gap"
	// winRepair: on a generation without ownership (none), from an nft
	// change until the daemon logged that it put the table back: the
	// first-port filter is gone and knocks are not queued.
	winRepair = "repair_gap"
	// winOwnFlood: a flood from the client's own address (the kernel's
	// per-source rate bound and the knocking set see the flood first).
	// The soak never floods from a client's address, so this window
	// never happens; it is named so that the rule is complete.
	winOwnFlood = "own_address_flood"
)

// attempt is one client's knock-open-connect: when it ran and how it ended.
type attempt struct {
	Family     int
	Src        string        // the client's address
	KnockWaits int           // knocks that got no answer within knockTimeout
	From, To   time.Time     // first knock, end of the last connect attempt
	Opened     bool          // a connect to the guarded port completed
	Open       time.Duration // last knock to the completed connect
	CloseFail  bool          // still open after knocking close
	OneTime    bool          // the first half of a one-time replay event
	Replayed   bool          // the replay ran
	// ReplayIn: the replay's address connected to the guarded port. Where
	// the guard set was flushed (generation none) anyone connects.
	ReplayIn bool
	// ReplayOpen: the daemon opened the replay's address (logged msg=open
	// for it): a one-time sequence worked twice.
	ReplayOpen bool
}

// excuse returns the reason of the first window that overlaps [from, to],
// and false when none does.
func excuse(ws []window, from, to time.Time) (string, bool) {
	for _, w := range ws {
		if !w.To.Before(from) && !w.From.After(to) {
			return w.Why, true
		}
	}
	return "", false
}

// opens sums up the clients' attempts.
type opens struct {
	Tries, Opened  int
	FailedExcused  map[string]int // failed opens inside a window, by its reason
	FailedOutside  int            // failed opens outside every window
	FirstOutside   string         // when the first of those ran
	CloseFailures  int
	Replays        int // replays that ran
	ReplaysIn      int // replays whose address then connected
	ReplaysOpened  int // replays the daemon opened
	P50, P99       time.Duration
	SuccessPercent float64
}

// sumOpens classifies each attempt against the windows.
func sumOpens(as []attempt, ws []window) opens {
	o := opens{FailedExcused: map[string]int{}}
	var lat []time.Duration
	for _, a := range as {
		o.Tries++
		if a.CloseFail {
			o.CloseFailures++
		}
		if a.Replayed {
			o.Replays++
			if a.ReplayIn {
				o.ReplaysIn++
			}
			if a.ReplayOpen {
				o.ReplaysOpened++
			}
		}
		if a.Opened {
			o.Opened++
			lat = append(lat, a.Open)
			continue
		}
		if why, ok := excuse(ws, a.From, a.To); ok {
			o.FailedExcused[why]++
			continue
		}
		o.FailedOutside++
		if o.FirstOutside == "" {
			o.FirstOutside = fmt.Sprintf("IPv%d client %s..%s", a.Family,
				a.From.UTC().Format("15:04:05.000"), a.To.UTC().Format("15:04:05.000"))
		}
	}
	if o.Tries > 0 {
		o.SuccessPercent = 100 * float64(o.Opened) / float64(o.Tries)
	}
	o.P50, o.P99 = percentile(lat, 50), percentile(lat, 99)
	return o
}

// maxGrowth is the most a resource may grow from the first to the last
// tenth of the run, beyond its noise.
const maxGrowth = 0.10

// The growth of each resource that never fails the run, whatever its
// share: what a daemon that leaks nothing shows. The daemons of the first
// and last tenth may be different processes (restarts).
const (
	// rssNoiseKiB: a daemon's RSS is about 12 MiB, 5 of it the binary's
	// pages and 4 the knock tracker. A daemon that ran 1 to 3 minutes of
	// events without a restart grew RSS by 1.2 to 1.5 MiB with a flat
	// live heap (+64 KiB): freed pages the Go runtime keeps for reuse (up
	// to a tenth above its heap goal), span fragmentation and metadata,
	// bounded by the heap goal. OS threads (7 to 9) differ by a few
	// hundred KiB between daemons. A leak shows in the live heap
	// (heapNoiseKiB) before it shows here.
	rssNoiseKiB = 2048
	// heapNoiseKiB: the live heap is the trackers (4 MiB) and some 100
	// KiB that moves with the events in flight at the collection.
	heapNoiseKiB = 256
	// goroutineNoise: a reload or a repair in flight adds one or two.
	goroutineNoise = 2
)

// grown is a resource's growth from the first to the last tenth (growth).
type grown struct {
	Frac float64 // 0.1 is 10 %
	Abs  int64   // in the resource's unit
	OK   bool    // measured
}

// over reports whether g is a failure: more than maxGrowth, and more than
// noise.
func (g grown) over(noise int64) bool { return g.OK && g.Frac > maxGrowth && g.Abs > noise }

// verdictIn is what the verdict is made of.
type verdictIn struct {
	Gen             string // persist, owner or none
	ProberSuccesses int64
	Opens           opens
	RSS             grown // KiB
	HeapLive        grown // KiB
	Goroutines      grown
	FDs             grown
	Fatal           string // the run could not go on (a daemon that did not start again)
}

// verdict returns why the soak fails, one line each; none: it passed.
func verdict(in verdictIn) []string {
	var why []string
	if in.Fatal != "" {
		why = append(why, "the run stopped: "+in.Fatal)
	}
	if in.ProberSuccesses > 0 && in.Gen != "none" {
		why = append(why, fmt.Sprintf("the prober got in %d times (generation %s: the kernel owns the table)", in.ProberSuccesses, in.Gen))
	}
	if in.Opens.FailedOutside > 0 {
		why = append(why, fmt.Sprintf("%d client opens failed outside the windows (first: %s)", in.Opens.FailedOutside, in.Opens.FirstOutside))
	}
	for _, r := range []struct {
		what  string
		g     grown
		noise int64
		unit  string
	}{
		{"RSS", in.RSS, rssNoiseKiB, " KiB"},
		{"the live heap", in.HeapLive, heapNoiseKiB, " KiB"},
		{"goroutines", in.Goroutines, goroutineNoise, ""},
		{"open file descriptors", in.FDs, 0, ""},
	} {
		if r.g.over(r.noise) {
			why = append(why, fmt.Sprintf("%s grew by %.1f %% (%d%s) from the first to the last tenth (at most %.0f %%, or %d%s)",
				r.what, 100*r.g.Frac, r.g.Abs, r.unit, 100*maxGrowth, r.noise, r.unit))
		}
	}
	if in.Opens.ReplaysOpened > 0 {
		why = append(why, fmt.Sprintf("%d one-time replays opened", in.Opens.ReplaysOpened))
	}
	return why
}
