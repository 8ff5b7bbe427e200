package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
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
	fmt.Fprintf(w, "\nnfqknockd flood benchmark, %s: %d CPUs (%s), Linux %s, %s\n",
		rep.Date, rep.Machine.CPUs, rep.Machine.Model, rep.Machine.Kernel, rep.Machine.Go)
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
	full := "at the sender's full rate"
	if rep.FloodRate > 0 {
		full = fmt.Sprintf("at %d SYN/s", rep.FloodRate)
	}
	fmt.Fprintf(w, "\nIPv%d SYN floods (%s sender, MSS %d, ports %s) %s, %.0fs each; CPU and RSS at a fixed rate:\n",
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
		fmt.Fprintf(w, "\nknock-to-open under the flood from %d sources (%.0f SYN/s sent): %d/%d opened, median %s ms, p95 %s ms\n",
			l.Sources, l.FloodRate, l.Opened, l.Tries, fmtPtr(l.MedianMS, "%.2f"), fmtPtr(l.P95MS, "%.2f"))
		if l.Note != "" {
			fmt.Fprintf(w, "  note: %s\n", l.Note)
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintln(w)
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
