package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nfqknockd/nfqknockd/cmd/internal/sdnotify"
	"github.com/nfqknockd/nfqknockd/knock"
	"github.com/nfqknockd/nfqknockd/nft"
	"github.com/nfqknockd/nfqknockd/queue"
)

// restartSignal makes the daemon exit 0 and leave its table guarding, with
// the opened sources, for the next daemon to take over (the unit's
// RestartKillSignal=): a restart or an upgrade leaves no gap in the guard.
const restartSignal = syscall.SIGQUIT

// service is a running nfqknockd: its table, its queues, what it was
// started with and the secrets in force.
type service struct {
	// cfg is what it was started with; nothing writes it (config).
	cfg *config
	// live holds the secrets in force, which a reload replaces whole
	// (live.go): read them with secrets(), one Load per use, no lock.
	live atomic.Pointer[liveSecrets]

	log    *slog.Logger
	stderr io.Writer // the one-line errors of a failed start
	rules  nft.Interface
	spec   nft.Spec
	shards []*shard
	lock   *tableLock
	gen    nft.Generation // how the kernel keeps the table; below GenPersist Watch helps
	// queueVariant is how the table queues (native queue or the compat
	// target), for nfqknockd status.
	queueVariant string

	// metrics are the counters of --metrics-file (metrics.go);
	// metricsErr is the last write's failure, owned by the writer.
	metrics    metrics
	metricsErr error
	// spaCounts are the SPA counters (--spa, spa.go), which the shards
	// share.
	spaCounts spaCounts

	// spent is the ledger of the one-time sequences used (--one-time) and
	// the SPA packets' nonces (--spa), for all shards; spentPath is their file in --state-dir ("" for
	// none), and spentDirty asks keepSpentFile to write it (state.go).
	spent      *knock.Ledger
	spentPath  string
	spentDirty chan struct{}
	// clock is the time of the daemon's start-up work (seedSpent); nil:
	// time.Now. Unit tests give the clock they move.
	clock func() time.Time
	// hooks runs --on-event (hooks.go); nil: none.
	hooks *hooks
	// notifier is systemd's notify socket (notify.go); nil: none.
	notifier *sdnotify.Notifier
}

// exitError is a failed start: the line to print and the exit status.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func fail(code int, format string, a ...any) *exitError {
	return &exitError{code: code, msg: fmt.Sprintf(format, a...)}
}

// runDaemon starts the daemon, serves knocks until a signal ends it, and
// returns the exit status.
func runDaemon(cfg *config) int {
	level := slog.LevelInfo
	if cfg.Verbose {
		level = slog.LevelDebug
	}
	d := newService(cfg, newLogger(os.Stderr, level), os.Stderr)
	// Signals are caught from the very start: a SIGTERM while starting
	// still ends with the table deleted.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, restartSignal)
	defer signal.Stop(sigs)
	if err := d.start(); err != nil {
		var ee *exitError
		if !errors.As(err, &ee) {
			ee = fail(1, "%v", err)
		}
		fmt.Fprintf(d.stderr, "%snfqknockd: %s\n", errorPrefix(d.stderr), ee.msg)
		return ee.code
	}
	d.notifyReady() // the guard is in place: systemd may start sshd
	return d.serve(sigs)
}

// newService returns the service of cfg, logging to log and printing a
// failed start on stderr, with the secrets of cfg in force.
func newService(cfg *config, log *slog.Logger, stderr io.Writer) *service {
	d := &service{cfg: cfg, log: log, stderr: stderr, hooks: newHooks(cfg.OnEvent, cfg.Table, log)}
	d.live.Store(cfg.startSecrets())
	return d
}

// secrets returns the secrets in force.
func (d *service) secrets() *liveSecrets {
	return d.live.Load()
}

// ending is how the daemon ends: stop (delete the table), restart (leave
// it guarding), or a failure (leave it guarding).
type ending int

const (
	endStop ending = iota
	endRestart
	endFailure
)

// serve runs the queue readers (and the watch) until a signal or a reader
// failure ends the daemon, and returns the exit status.
func (d *service) serve(sigs <-chan os.Signal) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	failed := make(chan struct{}, len(d.shards)+1)
	for _, s := range d.shards {
		wg.Go(func() {
			if err := s.q.Run(ctx, s.handle); err != nil && ctx.Err() == nil {
				d.log.Error("queue reader stopped", "err", err)
				failed <- struct{}{}
			}
		})
	}
	if !d.cfg.QueueAll {
		_, next := d.firstPorts(time.Now())
		wg.Go(func() { d.keepFirstPorts(ctx, next) })
	}
	if len(d.cfg.SPA.Ports) > 0 {
		wg.Go(func() { d.keepSPAKeys(ctx) })
	}
	if d.cfg.MetricsFile != "" {
		wg.Go(func() { d.keepMetrics(ctx) })
	}
	if d.spentPath != "" {
		wg.Go(func() { d.keepSpentFile(ctx) })
	}
	if d.hooks != nil {
		wg.Go(func() { d.hooks.run(ctx) })
	}
	if ln, err := d.listenControl(); err != nil {
		d.log.Error("nfqknockd status and revoke cannot reach this daemon", "err", err)
	} else {
		wg.Go(func() { d.serveControl(ctx, ln) })
	}
	if d.gen != nft.GenPersist {
		wg.Go(func() {
			if err := d.rules.Watch(ctx, d.repaired); err != nil && ctx.Err() == nil {
				d.log.Error("cannot watch the table: it is not put back if deleted", "err", err)
			}
		})
	}
	end := endFailure
loop:
	for {
		select {
		case <-failed:
			break loop
		case sig := <-sigs:
			if e, done := d.signal(sig); done {
				end = e
				break loop
			}
		}
	}
	cancel()
	wg.Wait()
	return d.finish(end)
}

// signal acts on one signal; done says the daemon ends, and how.
func (d *service) signal(sig os.Signal) (ending, bool) {
	switch sig {
	case syscall.SIGUSR1:
		d.dumpOpened()
		d.logStats()
	case syscall.SIGUSR2:
		for _, s := range d.shards {
			s.do(s.dumpSources)
		}
	case syscall.SIGHUP:
		d.reload()
	case restartSignal:
		d.log.Info("restarting: the table stays and keeps guarding, with the opened sources", "signal", sig.String())
		return endRestart, true
	default:
		d.log.Info("stopping", "signal", sig.String())
		return endStop, true
	}
	return 0, false
}

// repaired logs a repair of the table by Watch.
func (d *service) repaired(r nft.Repair) {
	d.hooks.emit(hookEvent{Kind: "repair", Detail: r.Changed, Err: errString(r.Err)})
	if r.Err != nil {
		d.metrics.repairFailures.Add(1)
		d.log.Error("table changed by another program and could not be put back", "table", "inet "+r.Table, "changed", r.Changed, "err", r.Err)
		return
	}
	d.metrics.repairs.Add(1)
	d.log.Warn("table changed by another program and put back", "table", "inet "+r.Table, "changed", r.Changed)
}

// finish ends the daemon: the table is deleted on stop, left guarding on a
// restart or a failure. It returns the exit status.
func (d *service) finish(end ending) int {
	d.notifyEnd(end)
	status := 0
	switch end {
	case endFailure:
		d.log.Error("exiting on a queue failure; the table stays and keeps guarding", "table", "inet "+d.cfg.Table)
		status = 1
	case endStop:
		if err := d.rules.Destroy(); err != nil {
			d.log.Error("delete table", "table", "inet "+d.cfg.Table, "err", err)
			status = 1
		} else {
			d.log.Info("table deleted", "table", "inet "+d.cfg.Table)
		}
	}
	d.writeMetrics(end == endStop && status == 0)
	d.writeSpentFile() // a one-time open just before the signal is kept
	for _, s := range d.shards {
		if s.q == nil {
			continue
		}
		st := s.q.Stats()
		d.log.Info("queue stats", "received", st.Received, "parse_errors", st.ParseErrors, "read_errors", st.ReadErrors, "verdict_errors", st.VerdictErrors)
	}
	d.release()
	d.log.Info("stopped")
	return status
}

// logStats logs the counters of all queues together and the heap
// allocations of the process so far, which tell the allocations per packet
// over an interval.
func (d *service) logStats() {
	var sum queue.Stats
	for _, s := range d.shards {
		if s.q == nil {
			continue
		}
		st := s.q.Stats()
		sum.Received += st.Received
		sum.ParseErrors += st.ParseErrors
		sum.ReadErrors += st.ReadErrors
		sum.VerdictErrors += st.VerdictErrors
		sum.Batches += st.Batches
	}
	// ReadMemStats flushes the per-thread caches, so Mallocs is exact;
	// runtime/metrics counts in whole spans, late.
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	d.log.Info("stats", "received", sum.Received, "batches", sum.Batches, "parse_errors", sum.ParseErrors,
		"read_errors", sum.ReadErrors, "verdict_errors", sum.VerdictErrors, "replays", d.metrics.replays.Load(), "heap_allocs", ms.Mallocs)
}

// dumpOpened logs the opened sources (SIGUSR1), as the kernel holds them.
func (d *service) dumpOpened() {
	els, err := d.rules.Allowed()
	if err != nil {
		d.log.Error("list opened sources", "err", err)
		return
	}
	sources := 0
	for i, e := range els {
		if i == 0 || e.Addr != els[i-1].Addr { // Allowed sorts by source
			sources++
		}
		if e.User != "" {
			d.log.Info("opened", "source", e.Addr, "port", e.Port, "user", e.User, "expires", ttlString(e.Expires))
			continue
		}
		d.log.Info("opened", "source", e.Addr, "port", e.Port, "expires", ttlString(e.Expires))
	}
	d.log.Info("opened sources", "count", sources)
}

// maxPerShard splits --max-sources between the queues.
func maxPerShard(total, shards int) int {
	return max(1, (total+shards-1)/shards)
}

func portList(ports []uint16) string {
	var b strings.Builder
	for i, p := range ports {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(p)))
	}
	return b.String()
}

// prefixList renders --allow for the start line.
func prefixList(c *config) string {
	if len(c.Allow) == 0 {
		return "none"
	}
	s := make([]string, len(c.Allow))
	for i, p := range c.Allow {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
