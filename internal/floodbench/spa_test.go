package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestSPATable: the SPA rows and their targets are printed (counts and
// verdicts, from a made-up report).
func TestSPATable(t *testing.T) {
	med, p95 := 0.8, 1.2
	l := latencyResult{Tries: 20, Opened: 20, MedianMS: &med, P95MS: &p95}
	rep := &report{SPA: &spaResult{Port: 62201, Copies: 1, Baseline: l, Floods: []spaFlood{
		{Sources: 1000000, Sent: 2000000, Queued: 2000000, CPUPerMillion: 2.5, Open: l},
		{Sources: 1, Sniffed: true, Sent: 5000000, Queued: 60, QueuedBound: 80, Open: latencyResult{Tries: 20, Opened: 19, MedianMS: &med, P95MS: &p95}},
	}}}
	rep.Targets = targets(rep)
	var b bytes.Buffer
	printTable(&b, rep)
	for _, want := range []string{"SPA on udp 62201", "none (baseline)", "1,000,000-source", "60 (bound 80)", "19/20"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	met := map[string]string{}
	for _, tg := range rep.Targets {
		met[tg.What] = verdict(tg)
	}
	for what, want := range map[string]string{
		"SPA opens under the flood (1,000,000-source, random)":              "met",
		"daemon CPU per million bad SPA packets (1,000,000-source, random)": "MISSED",
		"SPA opens under the flood (one-source, key id of now)":             "MISSED",
		"one source's SPA flood queued (its rate bound)":                    "met",
	} {
		if met[what] != want {
			t.Errorf("target %q: %q, want %q (all: %v)", what, met[what], want, met)
		}
	}
}
