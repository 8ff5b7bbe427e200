package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/nft"
	"github.com/nfqknockd/nfqknockd/nft/nfttest"
)

func TestFormatMetrics(t *testing.T) {
	full := &sample{
		opens: 7, closes: 3, replays: 2, repairs: 1, repairFailures: 4, revokes: 5, tracked: 12,
		queues: []queueSample{
			{num: 100, received: 1 << 40, parseErrors: 5, drops: 9, dropsOK: true},
			{num: 101, received: 20, parseErrors: 0, drops: 0, dropsOK: false},
		},
		opened4: 6, opened6: 1, openedOK: true,
		runtime: runtimeSample{goroutines: 9, heapLive: 5 << 20, held: 11 << 20},
	}
	bare := &sample{}
	tests := []struct {
		name   string
		s      *sample
		want   map[string]float64
		absent []string
	}{
		{"full", full, map[string]float64{
			`nfqknockd_packets_received_total{queue="100"}`: 1 << 40,
			`nfqknockd_packets_received_total{queue="101"}`: 20,
			`nfqknockd_parse_errors_total{queue="100"}`:     5,
			`nfqknockd_parse_errors_total{queue="101"}`:     0,
			`nfqknockd_queue_drops_total{queue="100"}`:      9,
			`nfqknockd_opens_total`:                         7,
			`nfqknockd_closes_total`:                        3,
			`nfqknockd_replays_total`:                       2,
			`nfqknockd_table_repairs_total`:                 1,
			`nfqknockd_revokes_total`:                       5,
			`nfqknockd_table_repair_failures_total`:         4,
			`nfqknockd_tracked_sources`:                     12,
			`nfqknockd_opened_sources{family="ipv4"}`:       6,
			`nfqknockd_opened_sources{family="ipv6"}`:       1,
			`nfqknockd_goroutines`:                          9,
			`nfqknockd_heap_live_bytes`:                     5 << 20,
			`nfqknockd_runtime_memory_bytes`:                11 << 20,
		}, []string{`nfqknockd_queue_drops_total{queue="101"}`}},
		// No queue (unit tests) and the table unread: the counters that
		// need neither are still there.
		{"bare", bare, map[string]float64{
			`nfqknockd_opens_total`:                 0,
			`nfqknockd_closes_total`:                0,
			`nfqknockd_replays_total`:               0,
			`nfqknockd_table_repairs_total`:         0,
			`nfqknockd_revokes_total`:               0,
			`nfqknockd_table_repair_failures_total`: 0,
			`nfqknockd_tracked_sources`:             0,
			`nfqknockd_goroutines`:                  0,
			`nfqknockd_heap_live_bytes`:             0,
			`nfqknockd_runtime_memory_bytes`:        0,
		}, []string{`nfqknockd_opened_sources{family="ipv4"}`, `nfqknockd_packets_received_total{queue="100"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			formatMetrics(&b, tt.s)
			got := testutil.ParseMetrics(t, b.Bytes())
			for k, v := range tt.want {
				if g, ok := got[k]; !ok || g != v {
					t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
				}
			}
			for _, k := range tt.absent {
				if _, ok := got[k]; ok {
					t.Errorf("%s is there, want it left out", k)
				}
			}
			if len(got) != len(tt.want) {
				t.Errorf("%d samples, want %d:\n%s", len(got), len(tt.want), b.String())
			}
			// HELP comes first, then TYPE, then the samples, for every name.
			lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
			for i, l := range lines {
				if name, ok := strings.CutPrefix(l, "# HELP "); ok {
					name, _, _ = strings.Cut(name, " ")
					if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "# TYPE "+name+" ") {
						t.Errorf("HELP of %s not followed by its TYPE", name)
					}
				}
			}
		})
	}
}

func TestWriteMetricsFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nfqknockd.prom")
	for _, content := range []string{"first 1\n", "second 2\n"} {
		if err := writeMetricsFile(path, []byte(content)); err != nil {
			t.Fatalf("write: %v", err)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != content {
			t.Fatalf("file holds %q, %v; want %q", b, err, content)
		}
		fi, _ := os.Stat(path)
		if fi.Mode() != 0o644 {
			t.Errorf("mode %v, want 0644 (node_exporter reads it as another user)", fi.Mode())
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Errorf("directory holds %d files, want the metrics file alone", len(entries))
		}
	}
	gone := filepath.Join(dir, "gone", "nfqknockd.prom")
	if err := writeMetricsFile(gone, []byte("x 1\n")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("write in a missing directory: %v, want ErrNotExist", err)
	}
}

// TestServiceMetrics counts opens, closes, tracked sources, repairs and
// replays through the daemon's logic on the fake ruleset, and writes the
// file at each step, as the writer and finish do.
func TestServiceMetrics(t *testing.T) {
	rules := nfttest.NewFake()
	dir := t.TempDir()
	path := filepath.Join(dir, "nfqknockd.prom")
	ts := newTestService(t, rules, "-o", testOpen, "-c", testClose, "--metrics-file", path)
	read := func() map[string]float64 {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return testutil.ParseMetrics(t, b)
	}
	expect := func(got map[string]float64, want map[string]float64) {
		t.Helper()
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %v, want %v", k, got[k], v)
			}
		}
	}
	open, close := ts.sequences(testOpen, testClose)
	ts.knock(src4, open)
	ts.knock(src6, open)
	ts.knock(src4, close)
	ts.knock(mapped, open[:1]) // an IPv4-mapped source is never tracked
	ts.metrics.replayed()
	ts.repaired(nft.Repair{Changed: "table deleted"})
	ts.repaired(nft.Repair{Changed: "table deleted", Err: errors.New("EPERM")})
	ts.writeMetrics(false)
	expect(read(), map[string]float64{
		"nfqknockd_opens_total":                   2,
		"nfqknockd_closes_total":                  1,
		"nfqknockd_replays_total":                 1,
		"nfqknockd_table_repairs_total":           1,
		"nfqknockd_table_repair_failures_total":   1,
		"nfqknockd_tracked_sources":               2,
		`nfqknockd_opened_sources{family="ipv4"}`: 0,
		`nfqknockd_opened_sources{family="ipv6"}`: 1,
	})
	// The runtime's gauges are this process's: its goroutines, and a heap
	// that holds at least the trackers' tables, within what the runtime
	// holds from the system.
	got := read()
	if g := got["nfqknockd_goroutines"]; g < 1 || g != float64(int(g)) {
		t.Errorf("nfqknockd_goroutines = %v, want a count of at least 1", g)
	}
	heap, held := got["nfqknockd_heap_live_bytes"], got["nfqknockd_runtime_memory_bytes"]
	if heap < 1<<20 || heap > held {
		t.Errorf("live heap %v bytes, runtime memory %v: want at least 1 MiB of heap (the trackers), within the runtime's memory", heap, held)
	}
	// The last write of a stop, once the table is deleted: nobody is open.
	ts.writeMetrics(true)
	expect(read(), map[string]float64{
		"nfqknockd_opens_total":                   2,
		`nfqknockd_opened_sources{family="ipv6"}`: 0,
	})
	// A failed write is logged once, and its end once.
	if err := os.Rename(dir, dir+".moved"); err != nil {
		t.Fatal(err)
	}
	ts.writeMetrics(false)
	ts.writeMetrics(false)
	if err := os.Rename(dir+".moved", dir); err != nil {
		t.Fatal(err)
	}
	ts.writeMetrics(false)
	logs := ts.logs.String()
	if n := strings.Count(logs, "msg=\"cannot write the metrics file\""); n != 1 {
		t.Errorf("failed writes logged %d times, want once:\n%s", n, logs)
	}
	if !strings.Contains(logs, "msg=\"metrics file written again\"") {
		t.Errorf("the recovery is not logged:\n%s", logs)
	}
}
