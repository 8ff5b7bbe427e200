package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// allocStats is the daemon's own count of heap allocations and packets.
type allocStats struct{ allocs, packets uint64 }

var (
	allocsRE  = regexp.MustCompile(`\bheap_allocs=(\d+)`)
	packetsKV = regexp.MustCompile(`\breceived=(\d+)`)
)

// readAllocs asks the daemon for its statistics (SIGUSR1) and reads the
// newest log line that carries heap_allocs=N (runtime/metrics
// /gc/heap/allocs:objects) and received=N (packets read from the queue).
// It returns nil when the daemon does not report them.
func readAllocs(d *daemon) (*allocStats, error) {
	before := len(d.stderr.String())
	if err := d.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s := d.stderr.String()[before:]
		lines := strings.Split(s, "\n")
		for i := len(lines) - 1; i >= 0; i-- {
			a := allocsRE.FindStringSubmatch(lines[i])
			p := packetsKV.FindStringSubmatch(lines[i])
			if a == nil || p == nil {
				continue
			}
			av, _ := strconv.ParseUint(a[1], 10, 64)
			pv, _ := strconv.ParseUint(p[1], 10, 64)
			return &allocStats{allocs: av, packets: pv}, nil
		}
	}
	return nil, nil
}

// allocsPerPacket is the daemon's heap allocations per packet between a0
// and a1, less what one statistics round costs itself (a0 - pre, with no
// packet in between); nil when the daemon reports nothing or no packet came.
func allocsPerPacket(pre, a0, a1 *allocStats) *float64 {
	if a0 == nil || a1 == nil || a1.packets <= a0.packets || a1.allocs < a0.allocs {
		return nil
	}
	d := a1.allocs - a0.allocs
	if pre != nil && pre.packets == a0.packets && a0.allocs >= pre.allocs {
		d -= min(d, a0.allocs-pre.allocs)
	}
	v := float64(d) / float64(a1.packets-a0.packets)
	return &v
}

// goBench is one line of `go test -bench -benchmem` output.
type goBench struct {
	Pkg       string   `json:"pkg"`
	Name      string   `json:"name"`
	NsPerOp   float64  `json:"ns_per_op"`
	BytesOp   *float64 `json:"bytes_per_op,omitempty"`
	AllocsOp  *float64 `json:"allocs_per_op,omitempty"`
	Iteration uint64   `json:"iterations"`
}

// readGoBench parses benchmark result lines (and "pkg:" headers) of a go
// test -bench output file.
func readGoBench(path string) ([]goBench, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--gobench: %w", err)
	}
	defer f.Close()
	return parseGoBench(f)
}

func parseGoBench(r io.Reader) ([]goBench, error) {
	var out []goBench
	pkg := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		iters, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		b := goBench{Pkg: pkg, Name: f[0], Iteration: iters}
		ok := false
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			switch f[i+1] {
			case "ns/op":
				b.NsPerOp, ok = v, true
			case "B/op":
				b.BytesOp = &v
			case "allocs/op":
				b.AllocsOp = &v
			}
		}
		if ok {
			out = append(out, b)
		}
	}
	return out, sc.Err()
}

// fmtPtr formats *v with format, or "n/a".
func fmtPtr[T any](v *T, format string) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf(format, *v)
}

// printTable prints the report for people.
func printTable(w io.Writer, rep *report) {
	runs := "one run"
	if rep.Runs != 1 {
		runs = fmt.Sprintf("%d runs", rep.Runs)
	}
	fmt.Fprintf(w, "\nnfqknockd benchmark, %s: %d CPUs (%s), Linux %s, %s; %s\n",
		rep.Date, rep.Machine.CPUs, rep.Machine.Model, rep.Machine.Kernel, rep.Machine.Go, runs)
	if len(rep.GoBench) > 0 {
		fmt.Fprintln(w, "\nper-packet path (go test -bench):")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "benchmark\tns/op\tB/op\tallocs/op\t")
		for _, b := range rep.GoBench {
			fmt.Fprintf(tw, "%s %s\t%.1f\t%s\t%s\t\n", shortPkg(b.Pkg), b.Name, b.NsPerOp,
				fmtPtr(b.BytesOp, "%.0f"), fmtPtr(b.AllocsOp, "%.0f"))
		}
		tw.Flush()
	}
	printConnect(w, rep.Connect)
	printFilter(w, rep)
	printSPA(w, rep.SPA)
	printTableCost(w, rep.TableCost)
	printQueueAll(w, rep)
	if len(rep.Targets) > 0 {
		fmt.Fprintf(w, "\ntargets (%s; printed, never asserted):\n", runs)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "what\ttarget\tthis run\t\t")
		for _, t := range rep.Targets {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", t.What, t.Target, t.Figure, verdict(t))
		}
		tw.Flush()
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintln(w)
}

// printConnect prints the connect latencies.
func printConnect(w io.Writer, c *connectResult) {
	if c == nil {
		return
	}
	fmt.Fprintf(w, "\nconnect latency from the client namespace (connect(2) to SYN-ACK), %d connects each; the three unguarded ones in %d interleaved rounds:\n",
		c.Without.Connects, c.Rounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "connect to\tdaemon\tmedian µs\tp99 µs\t/ without (median, p99)\tqueued\ttarget\t")
	ratio := func(m, p float64) string { return fmt.Sprintf("%.2fx, %.2fx", m, p) }
	fmt.Fprintf(tw, "unguarded port %d\tnone\t%.1f\t%.1f\t\t%d\t\t\n", c.Port, c.Without.MedianUS, c.Without.P99US, c.Without.Queued)
	met := "n/a"
	switch {
	case c.Without.Connects == 0 || c.Filter.Connects == 0:
	case c.FilterMedianRatio <= 1.2:
		met = "met"
	default:
		met = "MISSED"
	}
	fmt.Fprintf(tw, "unguarded port %d\tkernel filter\t%.1f\t%.1f\t%s\t%d\tmedian <= 1.2x: %s\t\n", c.Port, c.Filter.MedianUS, c.Filter.P99US,
		ratio(c.FilterMedianRatio, c.FilterP99Ratio), c.Filter.Queued, met)
	fmt.Fprintf(tw, "unguarded port %d\t--queue-all\t%.1f\t%.1f\t%s\t%d\t\t\n", c.Port, c.QueueAll.MedianUS, c.QueueAll.P99US,
		ratio(c.QueueAllMedianRatio, c.QueueAllP99Ratio), c.QueueAll.Queued)
	if g := c.Guarded; g != nil && g.Connects > 0 {
		fmt.Fprintf(tw, "guarded port %d after a knock, one every %g ms\tkernel filter\t%.1f\t%.1f\t\t%d\t\t\n", guardPort, c.GuardedIntervalMS,
			g.MedianUS, g.P99US, g.Queued)
	}
	tw.Flush()
}

// printFilter prints the floods against the kernel filter.
func printFilter(w io.Writer, rep *report) {
	if len(rep.Filter) == 0 {
		return
	}
	f0 := rep.Filter[0]
	fmt.Fprintf(w, "\nkernel filter (the default) under SYN floods to random ports %s (%s sender at its full rate, one flood through all the tries):\n"+
		"a legitimate client knocks %d times, %g ms between knocks; knock-to-open is from its last knock until nf_tables announced it in allow4\n"+
		"(then a connect to the guarded port must complete: \"+connect\"); CPU is the daemon's over the whole flood (knocks included; flood alone: its first seconds,\n"+
		"before the client knocks), peak RSS (VmHWM) at its end:\n",
		f0.Ports, f0.Sender, f0.Knock.Tries, f0.Knock.GapMS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "flood\tSYN/s\tsent\tqueued\topened\tknock-to-open median / p95 ms\t+connect median / p95 ms\tCPU s/1M SYN\t(flood alone)\tpeak RSS MiB\t")
	for _, f := range rep.Filter {
		k := f.Knock
		fmt.Fprintf(tw, "%s\t%.0f\t%d\t%d\t%d/%d\t%s / %s\t%s / %s\t%.3f\t%.3f\t%.1f\t\n", floodName(f.Sources), f.Rate, f.Sent, f.Queued,
			k.Opened, k.Tries, fmtPtr(k.MedianMS, "%.2f"), fmtPtr(k.P95MS, "%.2f"), fmtPtr(k.ConnectMedianMS, "%.2f"), fmtPtr(k.ConnectP95MS, "%.2f"),
			f.CPUPerMillion, f.FloodOnlyCPUPerMillion, f.PeakRSSMiB)
	}
	tw.Flush()
	for _, f := range rep.Filter {
		if f.Knock.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", floodName(f.Sources), f.Knock.Note)
		}
	}
}

// printQueueAll prints the --queue-all flood rows.
func printQueueAll(w io.Writer, rep *report) {
	if len(rep.Rows) == 0 {
		return
	}
	full := "at the sender's full rate"
	if rep.FloodRate > 0 {
		full = fmt.Sprintf("at %d SYN/s", rep.FloodRate)
	}
	fmt.Fprintf(w, "\n--queue-all (every SYN of the range queued): IPv%d SYN floods (%s sender, MSS %d, ports %s in turn) %s, %.0fs each; CPU and RSS at a fixed rate:\n",
		rep.Family, rep.Sender, rep.MSS, rep.Ports, full, rep.FloodS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "sources\tkernel-only SYN/s\tH\tanswered\tanswered/kernel-only\tleaked %\tCPU s/1M SYN\tpeak RSS MiB\tallocs/packet\t")
	for _, r := range rep.Rows {
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", rowLabel(rep, r), r.KernelOnlyRate,
			fmtPtr(r.Arrivals, "%d"), fmtPtr(r.Answered, "%d"), fmtPtr(r.AnsweredRatio, "%.2f"),
			fmtPtr(r.LeakedPct, "%.2f"), fmtPtr(r.CPUPerMillion, "%.2f"), fmtPtr(r.PeakRSSMiB, "%.1f"),
			fmtPtr(r.AllocsPerPkt, "%.3f"))
	}
	tw.Flush()
	if l := rep.Latency; l != nil {
		fmt.Fprintf(w, "\nknock-to-open with --queue-all under the flood from %d sources (%.0f SYN/s sent, a flood per try, %g ms between knocks): %d/%d opened, median %s ms, p95 %s ms (+connect %s / %s ms)\n",
			l.Sources, l.FloodRate, l.GapMS, l.Opened, l.Tries, fmtPtr(l.MedianMS, "%.2f"), fmtPtr(l.P95MS, "%.2f"),
			fmtPtr(l.ConnectMedianMS, "%.2f"), fmtPtr(l.ConnectP95MS, "%.2f"))
		if l.Note != "" {
			fmt.Fprintf(w, "  note: %s\n", l.Note)
		}
	}
}

// rowLabel names a row by its source count, and says so when its floods
// came from another sender or at another rate than the report's.
func rowLabel(rep *report, r row) string {
	label := strconv.Itoa(r.Sources)
	if r.Sender != rep.Sender {
		label += ", " + r.Sender + " sender"
	}
	switch {
	case r.FloodRate == rep.FloodRate:
	case r.FloodRate == 0:
		label += " at its full rate"
	default:
		label += fmt.Sprintf(" at %d SYN/s", r.FloodRate)
	}
	return label
}

// shortPkg drops the module path.
func shortPkg(p string) string {
	return strings.TrimPrefix(p, "github.com/nfqknockd/nfqknockd/")
}

// target is one target of the issue against what this run measured.
type target struct {
	What   string `json:"what"`
	Target string `json:"target"`
	Figure string `json:"figure"`
	Met    *bool  `json:"met"` // null: not measured
}

// verdict says met or missed.
func verdict(t target) string {
	switch {
	case t.Met == nil:
		return "not measured"
	case *t.Met:
		return "met"
	}
	return "MISSED"
}

// targets checks the run against the targets (printed, never asserted).
func targets(rep *report) []target {
	var out []target
	add := func(what, tgt, fig string, met *bool) { out = append(out, target{what, tgt, fig, met}) }
	is := func(b bool) *bool { return &b }
	if c := rep.Connect; c != nil && c.Without.Connects > 0 && c.Filter.Connects > 0 {
		add("unguarded connect latency, with the daemon / without, median", "<= 1.2x",
			fmt.Sprintf("%.2fx (%.1f / %.1f µs)", c.FilterMedianRatio, c.Filter.MedianUS, c.Without.MedianUS), is(c.FilterMedianRatio <= 1.2))
	}
	for _, f := range rep.Filter {
		name := floodName(f.Sources)
		add(fmt.Sprintf("opened under the %s random-port flood", name), fmt.Sprintf("%d/%d", f.Knock.Tries, f.Knock.Tries),
			fmt.Sprintf("%d/%d", f.Knock.Opened, f.Knock.Tries), is(f.Knock.Tries > 0 && f.Knock.Opened == f.Knock.Tries))
		var p95 *bool
		if f.Knock.P95MS != nil {
			p95 = is(*f.Knock.P95MS <= 5)
		}
		add(fmt.Sprintf("knock-to-open p95 under the %s flood", name), "<= 5 ms", fmtPtr(f.Knock.P95MS, "%.2f ms"), p95)
		if f.Sources > 1 {
			add(fmt.Sprintf("daemon CPU per million random-port flood SYNs (%s)", name), "<= 0.1 s",
				fmt.Sprintf("%.3f s", f.CPUPerMillion), is(f.CPUPerMillion <= 0.1))
			add(fmt.Sprintf("peak RSS at %s (kernel filter)", name), "<= 16 MiB", fmt.Sprintf("%.1f MiB", f.PeakRSSMiB), is(f.PeakRSSMiB <= 16))
		}
	}
	spaTargets(rep.SPA, add)
	if tc := rep.TableCost; tc != nil && len(tc.First.Ratios) > 0 {
		for _, f := range []costFlood{tc.Unguard, tc.First} {
			add(fmt.Sprintf("kernel-only SYN rate, flood at the %s: with the table / without (median of %d)", f.Name, len(f.Ratios)), ">= 0.95",
				fmt.Sprintf("%.3f (%.3f-%.3f)", f.Median, f.Min, f.Max), is(f.Median >= 0.95))
		}
	}
	// The --queue-all rows of the report's own sender and rate.
	var allocs *float64
	for _, r := range rep.Rows {
		if r.Sender != rep.Sender || r.FloodRate != rep.FloodRate || r.LeakedPct == nil {
			continue
		}
		add(fmt.Sprintf("--queue-all, %s: leaked", floodName(r.Sources)), "<= 1 %", fmt.Sprintf("%.2f %%", *r.LeakedPct), is(*r.LeakedPct <= 1))
		add(fmt.Sprintf("--queue-all, %s: answered / kernel-only", floodName(r.Sources)), ">= 0.65",
			fmt.Sprintf("%.2f", *r.AnsweredRatio), is(*r.AnsweredRatio >= 0.65))
		if r.AllocsPerPkt != nil && (allocs == nil || *r.AllocsPerPkt > *allocs) {
			allocs = r.AllocsPerPkt
		}
	}
	if allocs != nil {
		add("allocations per queued packet (largest of the rows)", "0", fmt.Sprintf("%.3f", *allocs), is(*allocs < 0.0005))
	}
	return out
}

// floodName names a flood by its source count.
func floodName(n int) string {
	if n == 1 {
		return "one-source"
	}
	return group(n) + "-source"
}

// group writes n with thousands separators.
func group(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// printTableCost prints the table's own cost.
func printTableCost(w io.Writer, tc *tableCost) {
	if tc == nil || len(tc.First.Ratios) == 0 {
		return
	}
	fmt.Fprintf(w, "\nthe table's own cost: kernel-only SYNs per second of the sender's CPU with the daemon's table (%s, left by SIGQUIT) / without, %d sources, %d rounds of %.0f s:\n",
		strings.Join(tc.Tables, ", "), tc.Sources, tc.Rounds, tc.FloodS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "flood\twithout (median)\twith (median)\twith / without, median\tmin-max\t")
	for _, f := range []costFlood{tc.Unguard, tc.First} {
		fmt.Fprintf(tw, "%s %d\t%.0f\t%.0f\t%.3f\t%.3f-%.3f\t\n", f.Name, f.Port,
			quantile(slices.Sorted(slices.Values(f.Without)), 0.5), quantile(slices.Sorted(slices.Values(f.With)), 0.5),
			f.Median, f.Min, f.Max)
	}
	tw.Flush()
}
