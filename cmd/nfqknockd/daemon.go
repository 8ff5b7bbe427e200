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
	"syscall"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/sdnotify"
	"github.com/nfqknockd/nfqknockd/knock"
	"github.com/nfqknockd/nfqknockd/nft"
	"github.com/nfqknockd/nfqknockd/queue"
)

// restartSignal makes the daemon exit 0 and leave its table guarding, with
// the opened sources, for the next daemon to take over (the unit's
// RestartKillSignal=): a restart or an upgrade leaves no gap in the guard.
const restartSignal = syscall.SIGQUIT

// Test hooks that make the daemon use the table as on an older kernel.
// noOwnerEnv, set to 1, keeps the table without the ownership flags, as
// before 5.12: the daemon then watches the table and puts it back.
// noPersistEnv, set to 1, leaves out the flag persist, as from 5.12 to
// 6.8: an owned table and a backup table.
const (
	noOwnerEnv   = "NFQKNOCKD_TEST_NO_OWNER"
	noPersistEnv = "NFQKNOCKD_TEST_NO_PERSIST"
)

// service is a running nfqknockd: its table, its queues and what it was
// started with.
type service struct {
	cfg    *config
	log    *slog.Logger
	stderr io.Writer // the one-line errors of a failed start
	rules  ruleset
	spec   nft.Spec
	shards []*shard
	lock   *tableLock
	gen    nft.Generation // how the kernel keeps the table; below GenPersist Watch helps

	// metrics are the counters of --metrics-file (metrics.go);
	// metricsErr is the last write's failure, owned by the writer.
	metrics    metrics
	metricsErr error

	// paramsMu guards cfg.Params and cfg.Users, which a reload changes
	// while the first-port keeper reads them.
	paramsMu sync.Mutex
	// spent are the one-time sequences used (--one-time), for all shards.
	spent *spent
	// clock is the time of the daemon's start-up work (seedSpent); nil:
	// time.Now. Unit tests give the clock they move.
	clock func() time.Time
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
	d := &service{
		cfg:    cfg,
		log:    newLogger(os.Stderr, level),
		stderr: os.Stderr,
	}
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

// start checks the privileges, takes the table's lock, checks whose the
// table is, binds the queues and programs the table, in that order:
// whatever fails leaves nothing behind.
func (d *service) start() error {
	guard := d.cfg.guardPorts()
	if len(guard) == 0 {
		return fail(2, "--guard %s: no port to guard: every one is also given with -P/--open-port, which wins", portList(d.cfg.Guard))
	}
	if err := dropPrivileges(); err != nil {
		return err
	}
	if err := d.checkMetricsDir(); err != nil {
		return err
	}
	lock, err := lockTable(d.cfg.Table)
	if err != nil {
		return fail(1, "--table %s: %v", d.cfg.Table, err)
	}
	d.lock = lock
	rules, err := nft.Dial(0)
	if err != nil {
		d.release()
		return err
	}
	d.rules = rules
	// A table that is not ours stops the start here, before any queue.
	if err := d.tableError(d.rules.Check(d.cfg.Table)); err != nil {
		d.release()
		return err
	}
	if err := d.openQueues(); err != nil {
		d.release()
		return err
	}
	d.spec = nft.Spec{
		Table: d.cfg.Table, Start: d.cfg.Params.Range.Start, End: d.cfg.Params.Range.End, Guard: guard,
		QueueNum: d.cfg.Queue, QueueTotal: d.cfg.Queues, Allow: d.cfg.Allow, NoOwner: os.Getenv(noOwnerEnv) == "1",
		NoPersist: os.Getenv(noPersistEnv) == "1",
		QueueAll:  d.cfg.QueueAll, KnockTimeout: d.cfg.Timeout + knockTimeoutMargin,
	}
	d.spec.First, _ = d.firstPorts(time.Now())
	if err := d.program(); err != nil {
		d.release()
		return err
	}
	return nil
}

// dropPrivileges checks for CAP_NET_ADMIN and keeps it alone: a daemon
// that cannot drop root's other capabilities refuses to run.
func dropPrivileges() error {
	ok, err := hasCapNetAdmin()
	if err != nil {
		return fail(1, "%v", err)
	}
	if !ok {
		return fail(1, "CAP_NET_ADMIN is missing: run as root or grant the capability (it binds NFQUEUE and programs nf_tables)")
	}
	if err := dropCapabilities(); err != nil {
		return fail(1, "refusing to run with capabilities it does not need: %v", err)
	}
	return nil
}

// openQueues binds the queues, one shard each. A queue bound by another
// process fails here.
func (d *service) openQueues() error {
	for i := uint16(0); i < d.cfg.Queues; i++ {
		num := d.cfg.Queue + i
		q, err := queue.Open(queue.Config{Num: num, Total: d.cfg.Queues, MaxLen: d.cfg.MaxQueueLen, Logger: d.log})
		if err != nil {
			return fail(1, "-q %d: %v", num, err)
		}
		tc := d.cfg.trackerConfig()
		tc.MaxSources = maxPerShard(d.cfg.MaxSources, int(d.cfg.Queues))
		tr, err := knock.NewTracker(tc)
		if err != nil {
			q.Close()
			return fail(2, "%v", err)
		}
		tr.Prepare(time.Now())
		d.shards = append(d.shards, d.newShard(q, tr))
	}
	return nil
}

// newShard returns a shard of the daemon reading q (nil in unit tests).
func (d *service) newShard(q *queue.Queue, tr *knock.Tracker) *shard {
	if d.cfg.OneTime && d.spent == nil {
		d.spent = newSpent(d.cfg.Params.Period, d.cfg.Params.Grace)
	}
	s := &shard{
		q: q, tracker: tr, m: &d.metrics, log: d.log, ttl: d.cfg.OpenTimeout, verbose: d.cfg.Verbose,
		users: d.cfg.users(), guard: d.cfg.guardPorts(), spent: d.spent,
	}
	if q != nil {
		s.now = q.ReadAt
	}
	return s
}

// program applies the table (or takes over ours, left by the daemon before)
// and logs how it started.
func (d *service) program() error {
	res, err := d.rules.Apply(d.spec)
	if err := d.tableError(err); err != nil {
		return err
	}
	d.gen = res.Gen
	for _, s := range d.shards {
		s.rules = d.rules
	}
	d.log.Info("started",
		"table", "inet "+d.cfg.Table,
		"took_over", res.TookOver, "opened_kept", res.Carried,
		"table_flags", res.Gen.Flags(),
		"kept_by", keptBy(res.Gen, d.spec),
		"queue", fmt.Sprintf("num %d total %d", d.cfg.Queue, d.cfg.Queues),
		"queue_variant", res.Queue.String(),
		"range", fmt.Sprintf("%d-%d", d.cfg.Params.Range.Start, d.cfg.Params.Range.End),
		"guard", portList(d.spec.Guard),
		"allow", prefixList(d.cfg),
		"digest", d.cfg.Params.Digest.String(),
		"period", d.cfg.Params.Period,
		"one_time", d.cfg.OneTime,
		"open_timeout", ttlString(d.cfg.OpenTimeout),
		"max_sources", d.cfg.MaxSources,
		"secrets", d.cfg.secretsFrom(),
	)
	for _, w := range d.cfg.startWarnings() {
		d.log.Warn(w)
	}
	if d.spent != nil {
		d.seedSpent()
	}
	if res.Carried > 0 {
		d.closeUnlisted() // what the daemon before opened for users no longer listed
	}
	for _, p := range d.cfg.Opened {
		for _, g := range d.cfg.Guard {
			if p == g {
				d.log.Warn("port given with both --guard and --open-port is not guarded", "port", p)
			}
		}
	}
	return nil
}

// seedSpent marks used the one-time sequences that the table's set spent
// holds (those the daemon before this one used, in their period), so that
// a knock of one is a replay. A table it cannot read leaves them unknown:
// logged, and the daemon goes on.
func (d *service) seedSpent() {
	keys, err := d.rules.Spent()
	if err != nil {
		d.log.Error("could not read the used one-time sequences from the table: those used before this start may open once more in their period", "err", err)
		return
	}
	now := time.Now()
	if d.clock != nil {
		now = d.clock()
	}
	n := d.spent.seed(keys, now)
	d.log.Info("one-time sequences used before this start are refused", "kept", len(keys), "used", n)
}

// tableError turns an error of Check or Apply into the line to print.
func (d *service) tableError(err error) error {
	var held *nft.HeldError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, nft.ErrNotOurs):
		return fail(1, "--table %s: table inet %s exists and is not nfqknockd's: it is left untouched; give another --table", d.cfg.Table, d.cfg.Table)
	case errors.As(err, &held):
		return fail(1, "--table %s: %v", d.cfg.Table, held)
	}
	return fail(1, "program table inet %s: %v", d.cfg.Table, err)
}

// release lets go of what start took, leaving the table as it is.
func (d *service) release() {
	for _, s := range d.shards {
		if s.q == nil {
			continue
		}
		if err := s.q.Close(); err != nil {
			d.log.Error("close queue", "err", err)
		}
	}
	d.shards = nil
	if d.rules != nil {
		if err := d.rules.Close(); err != nil {
			d.log.Error("close the nftables socket", "err", err)
		}
	}
	if d.lock != nil {
		d.lock.unlock()
		d.lock = nil
	}
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
	if d.cfg.MetricsFile != "" {
		wg.Go(func() { d.keepMetrics(ctx) })
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
	if r.Err != nil {
		d.metrics.repairFailures.Add(1)
		d.log.Error("table changed by another program and could not be put back", "table", "inet "+r.Table, "vanished", r.Vanished, "err", r.Err)
		return
	}
	d.metrics.repairs.Add(1)
	d.log.Warn("table changed by another program and put back", "table", "inet "+r.Table, "vanished", r.Vanished)
}

// keptBy says, for the start line, how the kernel generation gen keeps the
// table: what an admin can expect of it.
func keptBy(gen nft.Generation, spec nft.Spec) string {
	s := gen.String()
	if gen == nft.GenOwner {
		s = strings.Replace(s, "a backup table", "the backup table inet "+nft.BackupTable(spec.Table), 1)
	}
	switch {
	case spec.NoOwner:
		s += "; ownership switched off by " + noOwnerEnv
	case spec.NoPersist && gen == nft.GenOwner:
		s += "; persist switched off by " + noPersistEnv
	}
	return s
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
