package e2e

// End-to-end test of the metrics file (--metrics-file).

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// metricsEvery is how often the daemon writes the metrics file
// (metricsInterval in cmd/nfqknockd).
const metricsEvery = 10 * time.Second

// TestMetricsFileE2E: the daemon writes the file at start and rewrites it
// while it runs; after a knock open and close it counts them, and the
// packets; the last write at SIGTERM counts them too and no opened source
// (the table is gone), and at SIGQUIT the opened source (the table stays).
// Every version parses with the Prometheus text parser.
func TestMetricsFileE2E(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "nfqknockd.prom")
	read := func() map[string]float64 {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read the metrics file: %v", err)
		}
		return testutil.ParseMetrics(t, b)
	}
	value := func(m map[string]float64, name string) float64 {
		t.Helper()
		v, ok := sum(m, name)
		if !ok {
			t.Errorf("no %s in the metrics file", name)
		}
		return v
	}

	d := e.start("--metrics-file", path)
	// Written at start, before any knock.
	var first map[string]float64
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			first = read()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no metrics file after the start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v := value(first, "nfqknockd_opens_total"); v != 0 {
		t.Errorf("opens_total = %v before any knock", v)
	}
	if _, ok := first[`nfqknockd_queue_drops_total{queue="100"}`]; !ok {
		t.Errorf("no queue drops of queue 100 in %v", first)
	}

	open, close := e.sequences()
	none := netip.Addr{}
	e.knock(none, netns.ServerIP4, open)
	if !d.waitLog("msg=open ", 2*time.Second) {
		t.Fatalf("no open logged")
	}
	e.knock(none, netns.ServerIP4, close)
	if !d.waitLog("msg=close ", 2*time.Second) {
		t.Fatalf("no close logged")
	}
	// The writer's next round (every 10 s) shows them while the daemon runs.
	var during map[string]float64
	deadline = time.Now().Add(2*metricsEvery + 5*time.Second)
	for {
		during = read()
		if during["nfqknockd_opens_total"] >= 1 && during["nfqknockd_closes_total"] >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the running daemon's file does not count the open and close: %v", during)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if v := value(during, "nfqknockd_packets_received_total"); v < float64(len(open)+len(close)) {
		t.Errorf("packets_received_total = %v while running, want at least the %d knocks", v, len(open)+len(close))
	}
	if v := value(during, "nfqknockd_tracked_sources"); v < 1 {
		t.Errorf("tracked_sources = %v while running, want the client", v)
	}

	d.term()
	last := read()
	t.Logf("after SIGTERM: %v", last)
	for name, min := range map[string]float64{
		"nfqknockd_opens_total":            1,
		"nfqknockd_closes_total":           1,
		"nfqknockd_packets_received_total": float64(len(open) + len(close)),
	} {
		if v := value(last, name); v < min {
			t.Errorf("after SIGTERM %s = %v, want at least %v", name, v, min)
		}
	}
	for _, name := range []string{"nfqknockd_parse_errors_total", "nfqknockd_queue_drops_total", "nfqknockd_replays_total", "nfqknockd_table_repairs_total"} {
		if v := value(last, name); v != 0 {
			t.Errorf("after SIGTERM %s = %v, want 0", name, v)
		}
	}
	if v := value(last, "nfqknockd_opened_sources"); v != 0 {
		t.Errorf("after SIGTERM opened_sources = %v, want 0: the table is deleted", v)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode() != 0o644 {
		t.Errorf("metrics file: %v, mode %v; want 0644", err, fi.Mode())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the directory holds %d files, want the metrics file alone", len(entries))
	}

	// A restart leaves the table guarding, with the opened source: the
	// last write counts it.
	d = e.start("--metrics-file", path)
	e.knock(none, netns.ServerIP4, open)
	if !d.waitLog("msg=open ", 2*time.Second) {
		t.Fatalf("no open logged")
	}
	if code := d.stop(syscall.SIGQUIT); code != 0 {
		t.Errorf("exit status after SIGQUIT = %d", code)
	}
	last = read()
	if v := last[`nfqknockd_opened_sources{family="ipv4"}`]; v != 1 {
		t.Errorf(`after SIGQUIT opened_sources{family="ipv4"} = %v, want 1: %v`, v, last)
	}
	if v := last["nfqknockd_opens_total"]; v != 1 {
		t.Errorf("after SIGQUIT opens_total = %v, want 1 (the counters start at 0 with each daemon)", v)
	}
}

// sum adds the samples of the metric name, whatever their labels.
func sum(samples map[string]float64, name string) (float64, bool) {
	total, found := 0.0, false
	for k, v := range samples {
		if k == name || strings.HasPrefix(k, name+"{") {
			total += v
			found = true
		}
	}
	return total, found
}
