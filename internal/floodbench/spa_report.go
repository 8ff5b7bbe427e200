package main

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// printSPA prints the SPA rows.
func printSPA(w io.Writer, s *spaResult) {
	if s == nil {
		return
	}
	fmt.Fprintf(w, "\nSPA on udp %d (--spa-only), %d cop(ies) of each packet; floods of %s:\n", s.Port, s.Copies, spaPayloads)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "flood\tpkt/s\tsent\tkey id dropped\tqueued\tover rate\tunseen\topened\topen med/p95 ms\t+connect med/p95 ms\tCPU s/1M (alone)\tRSS MiB\t")
	line := func(name string, f *spaFlood, l latencyResult) {
		rate, sent, key, queued, over, qd, cpu, rss := "-", "-", "-", "-", "-", "-", "-", "-"
		if f != nil {
			rate, sent, key = fmt.Sprintf("%.0f", f.Rate), fmt.Sprint(f.Sent), fmt.Sprint(f.KeyDropped)
			queued, over, qd = fmt.Sprint(f.Queued), fmt.Sprint(f.RateDropped), fmt.Sprint(f.Unseen+f.QueueDropped)
			if f.QueuedBound > 0 {
				queued += fmt.Sprintf(" (bound %d)", f.QueuedBound)
			}
			cpu = fmt.Sprintf("%.3f (%.3f)", f.CPUPerMillion, f.FloodOnlyCPUPerMillion)
			rss = fmt.Sprintf("%.1f", f.PeakRSSMiB)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%s/%s\t%s/%s\t%s\t%s\t\n", name, rate, sent, key, queued, over, qd,
			l.Opened, l.Tries, fmtPtr(l.MedianMS, "%.2f"), fmtPtr(l.P95MS, "%.2f"),
			fmtPtr(l.ConnectMedianMS, "%.2f"), fmtPtr(l.ConnectP95MS, "%.2f"), cpu, rss)
	}
	line("none (baseline)", nil, s.Baseline)
	for i := range s.Floods {
		line(s.Floods[i].name(), &s.Floods[i], s.Floods[i].Open)
	}
	tw.Flush()
}

// spaTargets are issue 23's targets against the SPA rows.
func spaTargets(s *spaResult, add func(what, tgt, fig string, met *bool)) {
	if s == nil {
		return
	}
	is := func(b bool) *bool { return &b }
	for _, f := range s.Floods {
		name := f.name()
		l := f.Open
		add(fmt.Sprintf("SPA opens under the flood (%s)", name), fmt.Sprintf("%d/%d", l.Tries, l.Tries),
			fmt.Sprintf("%d/%d", l.Opened, l.Tries), is(l.Tries > 0 && l.Opened == l.Tries))
		var p95 *bool
		if l.P95MS != nil {
			p95 = is(*l.P95MS <= 5)
		}
		add(fmt.Sprintf("SPA-to-open p95 under the flood (%s)", name), "<= 5 ms", fmtPtr(l.P95MS, "%.2f ms"), p95)
		if f.Sources > 1 {
			add(fmt.Sprintf("daemon CPU per million bad SPA packets (%s)", name), "<= 1 s",
				fmt.Sprintf("%.3f s", f.CPUPerMillion), is(f.CPUPerMillion <= 1))
		} else {
			add("one source's SPA flood queued (its rate bound)", fmt.Sprintf("<= %d", f.QueuedBound),
				fmt.Sprintf("%d of %d", f.Queued, f.Sent), is(f.Queued <= f.QueuedBound))
		}
	}
}
