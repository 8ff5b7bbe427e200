package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestParseSPACounters reads the rate rules (summed) and the queue rule of
// chain spa, and refuses a chain without its three counters.
func TestParseSPACounters(t *testing.T) {
	const chain = `table inet nfqknock {
	chain spa {
		@th,72,64 != @spakeys counter packets 9000 bytes 9 drop comment "nfqknockd spa: not a key id of now"
		ip saddr update @sparate4 { ip saddr limit rate over 10/second burst 20 packets } counter packets 700 bytes 99 drop comment "nfqknockd: spa: a source over the rate"
		ip6 saddr update @sparate6 { ip6 saddr limit rate over 10/second burst 20 packets } counter packets 5 bytes 9 drop comment "nfqknockd: spa: a source over the rate"
		counter packets 42 bytes 4746 queue flags bypass to 100 comment "nfqknockd: spa"
	}
}`
	tests := []struct {
		name           string
		out            string
		key, rate, que uint64
		wantErr        bool
	}{
		{name: "chain", out: chain, key: 9000, rate: 705, que: 42},
		{name: "no counters", out: "table inet nfqknock {\n}", wantErr: true},
		{name: "a counter missing", out: strings.Replace(chain, "counter packets 42 bytes 4746 ", "", 1), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseSPACounters(tt.out)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (c.key != tt.key || c.rate != tt.rate || c.queue != tt.que) {
				t.Errorf("key %d rate %d queue %d, want %d %d %d", c.key, c.rate, c.queue, tt.key, tt.rate, tt.que)
			}
		})
	}
}

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
