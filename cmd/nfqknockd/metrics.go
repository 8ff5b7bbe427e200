package main

// --metrics-file: the daemon's counters in the Prometheus text format, for
// node_exporter's textfile collector. The daemon listens on no IP socket (the
// unit denies IP); it rewrites the file every metricsInterval and at exit.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// metricsInterval is how often the metrics file is rewritten.
const metricsInterval = 10 * time.Second

// metrics are the daemon's counters that the queues do not keep. The
// shards and the watch count into them; the metrics writer reads them.
type metrics struct {
	opens, closes, replays  atomic.Uint64
	repairs, repairFailures atomic.Uint64
	revokes                 atomic.Uint64 // sources closed by nfqknockd revoke
}

// replayed counts a knock of a one-time sequence that was used before and
// so opened nothing.
func (m *metrics) replayed() { m.replays.Add(1) }

// countTracked publishes the size of the shard's tracker for the metrics
// writer; it is called on the reader's goroutine after each knock, and
// stores only when the size changed.
func (s *shard) countTracked() {
	if n := int64(s.tracker.Len()); n != s.tracked.Load() {
		s.tracked.Store(n)
	}
}

// sample is what one write of the metrics file shows.
type sample struct {
	opens, closes, replays  uint64
	repairs, repairFailures uint64
	revokes                 uint64
	hookDropped, hookFailed uint64
	hooksOn                 bool // --on-event is set
	tracked                 int64
	queues                  []queueSample
	// opened4 and opened6 are the sources in the allow sets; openedOK
	// is false when the table could not be read (the gauge is left out).
	opened4, opened6 int
	openedOK         bool
	runtime          runtimeSample
	spa              *spaSample // nil without --spa
}

// queueSample are the counters of one queue.
type queueSample struct {
	num                   uint16
	received, parseErrors uint64
	drops                 uint64
	dropsOK               bool // false when the socket's counter could not be read
}

// formatMetrics writes s in the Prometheus text format (version 0.0.4),
// every metric with its HELP and TYPE lines.
func formatMetrics(b *bytes.Buffer, s *sample) {
	family := func(name, typ, help string) {
		fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	value := func(name, labels string, v uint64) {
		b.WriteString(name)
		if labels != "" {
			b.WriteString("{" + labels + "}")
		}
		b.WriteByte(' ')
		b.WriteString(strconv.FormatUint(v, 10))
		b.WriteByte('\n')
	}
	queue := func(q queueSample) string { return `queue="` + strconv.Itoa(int(q.num)) + `"` }

	family("nfqknockd_packets_received_total", "counter", "Packets read from the queue: the SYNs the kernel passed to the daemon.")
	for _, q := range s.queues {
		value("nfqknockd_packets_received_total", queue(q), q.received)
	}
	family("nfqknockd_parse_errors_total", "counter", "Queued packets that did not parse (accepted all the same), and netlink messages that did not hold together.")
	for _, q := range s.queues {
		value("nfqknockd_parse_errors_total", queue(q), q.parseErrors)
	}
	family("nfqknockd_queue_drops_total", "counter", "Queued packets the kernel could not hand to the daemon, its socket buffer being full: they passed unseen (fail-open), so their knocks were lost. Packets passed because the queue held --max-queue-len packets are not counted here.")
	for _, q := range s.queues {
		if q.dropsOK {
			value("nfqknockd_queue_drops_total", queue(q), q.drops)
		}
	}
	family("nfqknockd_opens_total", "counter", "Sources opened by their open sequence.")
	value("nfqknockd_opens_total", "", s.opens)
	family("nfqknockd_closes_total", "counter", "Sources closed by their close sequence.")
	value("nfqknockd_closes_total", "", s.closes)
	family("nfqknockd_replays_total", "counter", "Knocked one-time sequences that were used before, and so opened nothing.")
	value("nfqknockd_replays_total", "", s.replays)
	family("nfqknockd_revokes_total", "counter", "Sources closed by nfqknockd revoke.")
	value("nfqknockd_revokes_total", "", s.revokes)
	if s.hooksOn {
		family("nfqknockd_hook_events_dropped_total", "counter", "Events not given to --on-event because it fell behind.")
		value("nfqknockd_hook_events_dropped_total", "", s.hookDropped)
		family("nfqknockd_hook_failures_total", "counter", "Runs of --on-event that failed: an exit status other than 0, or killed after 10s.")
		value("nfqknockd_hook_failures_total", "", s.hookFailed)
	}
	if s.spa != nil {
		family("nfqknockd_spa_packets_total", "counter", "SPA packets (--spa) the daemon read: result open or close, or refused with its reason; the copies a client sends of one packet count as replays.")
		value("nfqknockd_spa_packets_total", `result="open"`, s.spa.opens)
		value("nfqknockd_spa_packets_total", `result="close"`, s.spa.closes)
		for r, n := range s.spa.refused {
			value("nfqknockd_spa_packets_total", `result="refused",reason="`+spaReasons[r]+`"`, n)
		}
	}
	family("nfqknockd_table_repairs_total", "counter", "Times another program changed the table and the daemon put it back (kernels without the table flag persist: the table itself before 5.12, the backup table from 5.12 to 6.8).")
	value("nfqknockd_table_repairs_total", "", s.repairs)
	family("nfqknockd_table_repair_failures_total", "counter", "Times another program changed the table and the daemon could not put it back.")
	value("nfqknockd_table_repair_failures_total", "", s.repairFailures)
	family("nfqknockd_tracked_sources", "gauge", "Sources the knock trackers hold (at most --max-sources).")
	value("nfqknockd_tracked_sources", "", uint64(max(s.tracked, 0)))
	if s.openedOK {
		family("nfqknockd_opened_sources", "gauge", "Sources the guard lets through, from the table's allow sets.")
		value("nfqknockd_opened_sources", `family="ipv4"`, uint64(s.opened4))
		value("nfqknockd_opened_sources", `family="ipv6"`, uint64(s.opened6))
	}
	family("nfqknockd_goroutines", "gauge", "Goroutines of the daemon: a count that grows without end is a leak.")
	value("nfqknockd_goroutines", "", s.runtime.goroutines)
	family("nfqknockd_heap_live_bytes", "gauge", "Bytes of the daemon's heap that the last collection found live; the knock trackers are most of it, and a count that grows without end is a leak.")
	value("nfqknockd_heap_live_bytes", "", s.runtime.heapLive)
	family("nfqknockd_runtime_memory_bytes", "gauge", "Memory the daemon's Go runtime has from the system and has not released: heap, stacks and the runtime's own (RSS less the binary's pages, roughly).")
	value("nfqknockd_runtime_memory_bytes", "", s.runtime.held)
}

// metricsFileValue is --metrics-file: a file name whose directory exists.
// Whether the daemon may write there is checked at start
// (checkMetricsDir).
type metricsFileValue struct{ s *string }

func (v *metricsFileValue) Set(s string) error {
	if s == "" {
		return errors.New("file name is empty")
	}
	if fi, err := os.Stat(s); err == nil && fi.IsDir() || strings.HasSuffix(s, "/") {
		return errors.New("is a directory: give a file in it, such as " + style.Quote(filepath.Join(s, "nfqknockd.prom")))
	}
	dir := filepath.Dir(s)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("directory %s does not exist", style.Quote(dir))
	case err != nil:
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("directory %s: %w", style.Quote(dir), err)
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", style.Quote(dir))
	}
	*v.s = s
	return nil
}
func (v *metricsFileValue) String() string { return *v.s }
func (v *metricsFileValue) Type() string   { return "file" }

// writeMetricsFile replaces the file at path with data atomically: a
// temporary file in the same directory, written, synced, made mode 0644
// (node_exporter runs as another user) and renamed over path.
func writeMetricsFile(path string, data []byte) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// The collector reads only names that end in .prom.
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return pathless(err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return pathless(err)
}

// pathless drops the file names from err ("rename: read-only file
// system"): the temporary file's name changes from write to write, and the
// log line names the file.
func pathless(err error) error {
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	case errors.As(err, &le):
		return fmt.Errorf("%s: %w", le.Op, le.Err)
	}
	return err
}

// checkMetricsDir checks, as the daemon's user, that a file can be
// created in the directory of --metrics-file (a read-only file system, a
// directory of another user): a failed start, exit 2, before the kernel.
func (d *service) checkMetricsDir() error {
	path := d.cfg.MetricsFile
	if path == "" {
		return nil
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fail(2, "--metrics-file %s: cannot create a file in %s: %v", style.Quote(path), style.Quote(dir), err)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// sample reads the counters; tableGone says the table was deleted (stop),
// so that no source is open.
func (d *service) sample(tableGone bool) *sample {
	m := &d.metrics
	s := &sample{
		opens: m.opens.Load(), closes: m.closes.Load(), replays: m.replays.Load(),
		repairs: m.repairs.Load(), repairFailures: m.repairFailures.Load(), revokes: m.revokes.Load(),
		openedOK: true, runtime: readRuntime(),
	}
	if len(d.cfg.SPA.Ports) > 0 {
		s.spa = d.spaCounts.sample()
	}
	if d.hooks != nil {
		s.hooksOn, s.hookDropped, s.hookFailed = true, d.hooks.dropped.Load(), d.hooks.failed.Load()
	}
	for i, sh := range d.shards {
		s.tracked += sh.tracked.Load()
		if sh.q == nil {
			continue
		}
		st := sh.q.Stats()
		q := queueSample{num: d.cfg.Queue + uint16(i), received: st.Received, parseErrors: st.ParseErrors}
		var err error
		q.drops, err = sh.q.Drops()
		q.dropsOK = err == nil
		s.queues = append(s.queues, q)
	}
	if !tableGone {
		s.opened4, s.opened6 = d.rules.OpenedSources()
		s.openedOK = true
	}
	return s
}

// writeMetrics writes the metrics file, when there is one. A failure is
// logged when it differs from the previous write's.
func (d *service) writeMetrics(tableGone bool) {
	if d.cfg.MetricsFile == "" {
		return
	}
	var b bytes.Buffer
	formatMetrics(&b, d.sample(tableGone))
	err := writeMetricsFile(d.cfg.MetricsFile, b.Bytes())
	switch {
	case err != nil && (d.metricsErr == nil || d.metricsErr.Error() != err.Error()):
		d.log.Error("cannot write the metrics file", "file", d.cfg.MetricsFile, "err", err)
	case err == nil && d.metricsErr != nil:
		d.log.Info("metrics file written again", "file", d.cfg.MetricsFile)
	}
	d.metricsErr = err
}

// keepMetrics writes the metrics file now and every metricsInterval until
// ctx is done; finish writes it one last time.
func (d *service) keepMetrics(ctx context.Context) {
	tick := time.NewTicker(metricsInterval)
	defer tick.Stop()
	for {
		d.writeMetrics(false)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
