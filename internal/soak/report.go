package main

// The report: the figures of a run, printed and written as JSON.

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// resources are the daemon's resources at one reading.
type resources struct {
	PID         int   `json:"pid"`
	RSSKiB      int64 `json:"rss_kib"`
	FDs         int64 `json:"open_fds"`
	Threads     int64 `json:"os_threads"`
	Goroutines  int64 `json:"goroutines"`
	HeapLiveKiB int64 `json:"heap_live_kib"`
}

// tenths are a resource's medians in the first and last tenth of the run.
type tenths struct {
	First int64    `json:"first_tenth_median"`
	Last  int64    `json:"last_tenth_median"`
	Pct   *float64 `json:"growth_pct"` // nil: not measured
}

// report is the whole JSON document.
type report struct {
	Date       string  `json:"date"`
	Seed       uint64  `json:"seed"`
	Generation string  `json:"generation"`
	DurationS  float64 `json:"duration_s"`
	Kernel     string  `json:"kernel"`
	CPUs       int     `json:"cpus"`
	Daemon     string  `json:"daemon"`

	ProberAttempts  int64  `json:"prober_attempts"`
	ProberSuccesses int64  `json:"prober_successes"`
	ProberErrors    int64  `json:"prober_errors"`
	ProberFirstIn   string `json:"prober_first_in,omitempty"`

	ClientTries     int            `json:"client_tries"`
	ClientOpened    int            `json:"client_opened"`
	ClientOpenPct   float64        `json:"client_open_success_pct"`
	FailedInWindows map[string]int `json:"client_failed_in_windows"`
	FailedOutside   int            `json:"client_failed_outside_windows"`
	// Outside are those failures, each with the events that overlapped it.
	Outside          []string       `json:"client_failures_outside,omitempty"`
	KnockToOpenP50ms float64        `json:"knock_to_open_p50_ms"`
	KnockToOpenP99ms float64        `json:"knock_to_open_p99_ms"`
	CloseFailures    int            `json:"client_close_failures"`
	Replays          int            `json:"replays"`
	ReplaysIn        int            `json:"replays_connected"`
	ReplaysOpened    int            `json:"replays_opened"`
	Windows          map[string]int `json:"windows"`

	Events      map[string]int `json:"events"`
	EventErrors map[string]int `json:"event_errors,omitempty"`
	NftOutcomes map[string]int `json:"nft_outcomes"`
	FloodSent   uint64         `json:"flood_syns_sent"`

	First   resources `json:"daemon_first"`
	Last    resources `json:"daemon_last"`
	Samples int       `json:"resource_samples"`
	// Growth holds rss_kib, heap_live_kib, goroutines and open_fds.
	Growth      map[string]tenths `json:"growth"`
	DaemonsRun  int               `json:"daemons_started"`
	StopError   string            `json:"stop_error,omitempty"`
	SetsFirst   map[string]int    `json:"sets_first"`
	SetsLast    map[string]int    `json:"sets_last"`
	LogMessages map[string]int    `json:"log_warnings_errors"`
	// Series are the resource readings, every 2 s: seconds since the
	// start, pid, RSS KiB, open fds, OS threads, goroutines, live heap KiB.
	Series   [][7]int64 `json:"series"`
	Failures []string   `json:"failures"`
	Passed   bool       `json:"passed"`
}

// report gathers the figures of the run from start to end.
func (s *soak) report(seed uint64, start, end time.Time, p *testutil.Prober, sets0, sets1 map[string]int, log string, stopErr error) *report {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := sumOpens(s.attempts, s.windows)
	r := &report{
		Date: start.UTC().Format(time.RFC3339), Seed: seed, Generation: s.gen,
		DurationS: end.Sub(start).Seconds(), Kernel: kernel(), CPUs: runtime.NumCPU(), Daemon: s.bin,
		ProberAttempts: p.Attempts.Load(), ProberSuccesses: p.Successes.Load(), ProberErrors: p.Errs.Load(),
		ClientTries: o.Tries, ClientOpened: o.Opened, ClientOpenPct: o.SuccessPercent,
		FailedInWindows: o.FailedExcused, FailedOutside: o.FailedOutside,
		KnockToOpenP50ms: ms(o.P50), KnockToOpenP99ms: ms(o.P99),
		CloseFailures: o.CloseFailures, Replays: o.Replays, ReplaysIn: o.ReplaysIn, ReplaysOpened: o.ReplaysOpened,
		Windows: map[string]int{}, Events: map[string]int{}, EventErrors: s.errs,
		NftOutcomes: s.nftOutcomes, FloodSent: s.floodSent, Samples: len(s.samples),
		SetsFirst: sets0, SetsLast: sets1, LogMessages: logMessages(log),
		DaemonsRun: strings.Count(log, "msg=started"),
	}
	if v, ok := p.FirstIn.Load().(string); ok {
		r.ProberFirstIn = v
	}
	for _, w := range s.windows {
		r.Windows[w.Why]++
	}
	for _, a := range s.attempts {
		if a.Opened {
			continue
		}
		if _, ok := excuse(s.windows, a.From, a.To); ok {
			continue
		}
		line := fmt.Sprintf("%s %s..%s, %d of its knocks unanswered within %v; events meanwhile:", a.Src,
			a.From.UTC().Format("15:04:05.000"), a.To.UTC().Format("15:04:05.000"), a.KnockWaits, knockTimeout)
		for _, e := range s.timeline {
			if !e.To.Before(a.From) && !e.From.After(a.To) && e.Event.Kind != evClient4 && e.Event.Kind != evClient6 && e.Event.Kind != evOneTime {
				line += " [" + e.String() + "]"
			}
		}
		r.Outside = append(r.Outside, line)
	}
	for k, n := range s.counts {
		r.Events[kind(k).String()] = n
	}
	for _, x := range s.samples {
		r.Series = append(r.Series, [7]int64{int64(x.At.Sub(start).Seconds()), int64(x.PID), x.RSSKiB, x.FDs, x.Threads, x.Goroutines, x.HeapLiveKiB})
	}
	if len(s.samples) > 0 {
		r.First, r.Last = res(s.samples[0]), res(s.samples[len(s.samples)-1])
	}
	in := verdictIn{Gen: s.gen, ProberSuccesses: r.ProberSuccesses, Opens: o}
	r.Growth = map[string]tenths{}
	measure := func(name string, field func(sample) int64) grown {
		g, first, last, ok := growth(s.samples, start, end, field)
		t := tenths{First: first, Last: last}
		if ok {
			t.Pct = ptr(100 * g)
		}
		r.Growth[name] = t
		return grown{Frac: g, Abs: last - first, OK: ok}
	}
	in.RSS = measure("rss_kib", func(x sample) int64 { return x.RSSKiB })
	in.HeapLive = measure("heap_live_kib", func(x sample) int64 { return x.HeapLiveKiB })
	in.Goroutines = measure("goroutines", func(x sample) int64 { return x.Goroutines })
	in.FDs = measure("open_fds", func(x sample) int64 { return x.FDs })
	if s.fatalErr != nil {
		in.Fatal = firstLine(s.fatalErr.Error())
	}
	if stopErr != nil {
		r.StopError = firstLine(stopErr.Error())
	}
	r.Failures = verdict(in)
	r.Passed = len(r.Failures) == 0
	return r
}

// print writes the report for a reader.
func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\nsoak: %s, seed %d, generation %s, %.0f s, kernel %s, %d CPUs\n", r.Date, r.Seed, r.Generation, r.DurationS, r.Kernel, r.CPUs)
	fmt.Fprintf(w, "prober: %d attempts, %d got in, %d errors %s\n", r.ProberAttempts, r.ProberSuccesses, r.ProberErrors, r.ProberFirstIn)
	fmt.Fprintf(w, "clients: %d tries, %d opened (%.1f %%), failed in windows %v, failed outside %d; knock-to-open p50 %.1f ms, p99 %.1f ms; close failures %d\n",
		r.ClientTries, r.ClientOpened, r.ClientOpenPct, r.FailedInWindows, r.FailedOutside, r.KnockToOpenP50ms, r.KnockToOpenP99ms, r.CloseFailures)
	for _, o := range r.Outside {
		fmt.Fprintf(w, "  failed outside the windows: %s\n", o)
	}
	fmt.Fprintf(w, "one-time replays: %d, opened by the daemon %d, connected anyway %d\n", r.Replays, r.ReplaysOpened, r.ReplaysIn)
	fmt.Fprintf(w, "windows: %v\n", r.Windows)
	fmt.Fprintln(w, "events:")
	for _, k := range kindNames {
		fmt.Fprintf(w, "  %-22s %d\n", k, r.Events[k])
	}
	printMap(w, "nft outcomes", r.NftOutcomes)
	printMap(w, "event errors", r.EventErrors)
	fmt.Fprintf(w, "floods: %d SYNs sent\n", r.FloodSent)
	fmt.Fprintf(w, "daemon first: %+v\ndaemon last:  %+v\n", r.First, r.Last)
	fmt.Fprintf(w, "daemons started: %d\n", r.DaemonsRun)
	fmt.Fprint(w, "growth, first to last tenth (medians):")
	for _, k := range []string{"rss_kib", "heap_live_kib", "goroutines", "open_fds"} {
		g := r.Growth[k]
		fmt.Fprintf(w, " %s %d -> %d (%s)", k, g.First, g.Last, pct(g.Pct))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "sets first: %v\nsets last:  %v\n", r.SetsFirst, r.SetsLast)
	printMap(w, "log warnings and errors", r.LogMessages)
	if r.StopError != "" {
		fmt.Fprintf(w, "final stop: %s\n", r.StopError)
	}
	if r.Passed {
		fmt.Fprintln(w, "PASS")
		return
	}
	for _, f := range r.Failures {
		fmt.Fprintln(w, "FAIL:", f)
	}
}

// write writes the report as JSON to name.
func (r *report) write(name string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.WriteFile(name, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// printMap prints m sorted by key, under title, when not empty.
func printMap(w io.Writer, title string, m map[string]int) {
	if len(m) == 0 {
		return
	}
	fmt.Fprintf(w, "%s:\n", title)
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(w, "  %6d  %s\n", m[k], k)
	}
}

func res(s sample) resources {
	return resources{PID: s.PID, RSSKiB: s.RSSKiB, FDs: s.FDs, Threads: s.Threads, Goroutines: s.Goroutines, HeapLiveKiB: s.HeapLiveKiB}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func ptr(f float64) *float64 { return &f }

func pct(p *float64) string {
	if p == nil {
		return "not measured"
	}
	return fmt.Sprintf("%+.1f %%", *p)
}

// kernel returns the running kernel's release.
func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}
