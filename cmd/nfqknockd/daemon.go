package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nfqknockd/nfqknockd/knock"
	"github.com/nfqknockd/nfqknockd/nft"
	"github.com/nfqknockd/nfqknockd/queue"
)

// shard is one queue with its own tracker and its own netlink socket to
// nf_tables. The kernel hashes a source to one queue, so shards share no
// state and the per-packet path takes no lock.
type shard struct {
	q       *queue.Queue
	tracker *knock.Tracker
	rules   *nft.Conn
	log     *slog.Logger
	ttl     time.Duration
	verbose bool             // -v: log every knock
	onLost  func()           // the table is gone: put it back
	now     func() time.Time // the time of the packet's batch (queue.Queue.ReadAt)
	k       knock.Knock
}

// handle is called by the queue reader for every packet, before the verdict
// of its batch is sent: a source opened here is in the allow set before the
// knock that completed its sequence is accepted.
func (s *shard) handle(p *queue.Packet) {
	if !p.BareSYN() {
		return
	}
	if s.verbose {
		s.log.Debug("knock", "source", p.Src, "port", p.DstPort)
	}
	s.k = knock.Knock{Src: p.Src, SrcPort: p.SrcPort, DstPort: p.DstPort, Seq: p.Seq}
	switch s.tracker.Knock(&s.k, s.now()) {
	case knock.Open:
		s.open(p.Src)
	case knock.Close:
		s.close(p.Src)
	}
}

func (s *shard) open(src netip.Addr) {
	err := s.rules.Allow(src, s.ttl)
	if err != nil && nft.IsNotFound(err) && s.onLost != nil {
		s.onLost()
		err = s.rules.Allow(src, s.ttl)
	}
	if err != nil {
		s.log.Error("open failed", "source", src, "err", err)
		return
	}
	s.log.Info("open", "source", src, "timeout", ttlString(s.ttl))
}

func (s *shard) close(src netip.Addr) {
	if err := s.rules.Revoke(src); err != nil {
		s.log.Error("close failed", "source", src, "err", err)
		return
	}
	s.log.Info("close", "source", src)
}

func (s *shard) dumpSources() {
	n := 0
	s.tracker.Each(func(src netip.Addr, last time.Time, knocks int) {
		n++
		s.log.Info("knocking", "source", src, "last", last.UTC().Format(time.RFC3339), "knocks", knocks)
	})
	s.log.Info("knocking sources", "count", n)
}

func ttlString(d time.Duration) string {
	if d == 0 {
		return "until closed"
	}
	return d.String()
}

// runDaemon binds the queues, programs the table, serves knocks until
// SIGINT/SIGTERM, then deletes the table. It returns the exit status.
func runDaemon(cfg *config) int {
	level := slog.LevelInfo
	if cfg.Verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	// Signals are caught from the very start: a SIGTERM while starting
	// still ends with the table deleted.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)

	guard := cfg.guardPorts()
	if len(guard) == 0 {
		fmt.Fprintf(os.Stderr, "nfqknockd: --guard %s: no port to guard: every one is also given with -P/--open-port, which wins\n", portList(cfg.Guard))
		return 2
	}
	if ok, err := hasCapNetAdmin(); err != nil {
		fmt.Fprintf(os.Stderr, "nfqknockd: %v\n", err)
		return 1
	} else if !ok {
		fmt.Fprintln(os.Stderr, "nfqknockd: CAP_NET_ADMIN is missing: run as root or grant the capability (it binds NFQUEUE and programs nf_tables)")
		return 1
	}
	if err := dropCapabilities(); err != nil {
		log.Warn("could not drop the capabilities the daemon does not need", "err", err)
	}
	// Bind the queues first: a second instance fails here, touching nothing.
	var shards []*shard
	closeQueues := func() {
		for _, s := range shards {
			if err := s.q.Close(); err != nil {
				log.Error("close queue", "err", err)
			}
		}
	}
	for i := uint16(0); i < cfg.Queues; i++ {
		num := cfg.Queue + i
		q, err := queue.Open(queue.Config{Num: num, Total: cfg.Queues, MaxLen: cfg.MaxQueueLen, Logger: log})
		if err != nil {
			closeQueues()
			fmt.Fprintf(os.Stderr, "nfqknockd: -q %d: %v\n", num, err)
			return 1
		}
		tc := cfg.trackerConfig()
		tc.MaxSources = maxPerShard(cfg.MaxSources, int(cfg.Queues))
		tr, err := knock.NewTracker(tc)
		if err != nil {
			q.Close()
			closeQueues()
			fmt.Fprintf(os.Stderr, "nfqknockd: %v\n", err)
			return 2
		}
		shards = append(shards, &shard{q: q, tracker: tr, log: log, ttl: cfg.OpenTimeout, verbose: cfg.Verbose, now: q.ReadAt})
	}

	spec := nft.Spec{Table: cfg.Table, Start: cfg.Params.Range.Start, End: cfg.Params.Range.End, Guard: guard, QueueNum: cfg.Queue, QueueTotal: cfg.Queues}
	admin, err := nft.Dial(0)
	if err != nil {
		closeQueues()
		fmt.Fprintf(os.Stderr, "nfqknockd: %v\n", err)
		return 1
	}
	variant, err := admin.Apply(spec)
	if err != nil {
		closeQueues()
		fmt.Fprintf(os.Stderr, "nfqknockd: program table inet %s: %v\n", cfg.Table, err)
		return 1
	}
	var reapply sync.Mutex
	onLost := func() {
		reapply.Lock()
		defer reapply.Unlock()
		if _, err := admin.Apply(spec); err != nil {
			log.Error("table vanished and could not be put back", "table", cfg.Table, "err", err)
			return
		}
		log.Warn("table vanished (nft flush ruleset?) and was put back", "table", cfg.Table)
	}
	for _, s := range shards {
		if s.rules, err = nft.Dial(0); err != nil {
			closeQueues()
			destroy(log, admin, cfg.Table)
			fmt.Fprintf(os.Stderr, "nfqknockd: %v\n", err)
			return 1
		}
		s.onLost = onLost
	}
	log.Info("started",
		"table", "inet "+cfg.Table,
		"queue", fmt.Sprintf("num %d total %d", cfg.Queue, cfg.Queues),
		"queue_variant", variant.String(),
		"range", fmt.Sprintf("%d-%d", cfg.Params.Range.Start, cfg.Params.Range.End),
		"guard", portList(guard),
		"digest", cfg.Params.Digest.String(),
		"period", cfg.Params.Period,
		"open_timeout", ttlString(cfg.OpenTimeout),
		"max_sources", cfg.MaxSources,
		"secrets_from", string(cfg.SecretsFrom),
	)

	switch cfg.SecretsFrom {
	case fromDefault:
		log.Warn("the secrets are the C daemon's public defaults: anyone can compute the sequences; give --secret-file")
	case fromArgv:
		log.Warn("secrets on the command line can be read by every local user (/proc/PID/cmdline); prefer --secret-file or the systemd credential " + credentialName)
	}
	for _, p := range cfg.Opened {
		for _, g := range cfg.Guard {
			if p == g {
				log.Warn("port given with both --guard and --open-port is not guarded", "port", p)
			}
		}
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	for _, s := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.q.Run(ctx, s.handle); err != nil && ctx.Err() == nil {
				log.Error("queue reader stopped", "err", err)
				stop()
			}
		}()
	}

	status := 0
loop:
	for {
		select {
		case <-ctx.Done():
			status = 1
			break loop
		case sig := <-sigs:
			switch sig {
			case syscall.SIGUSR1:
				dumpOpened(log, admin)
				logStats(log, shards)
			case syscall.SIGUSR2:
				for _, s := range shards {
					s.q.Do(s.dumpSources) // on the reader's goroutine: no lock
				}
			default:
				log.Info("stopping", "signal", sig.String())
				break loop
			}
		}
	}
	stop()
	wg.Wait()
	switch {
	case status != 0:
		// A reader failed: leave the table, as a crash would, so the guard
		// stays enforced until a restart replaces it.
		log.Error("exiting on a queue failure; the table stays and keeps guarding", "table", "inet "+cfg.Table)
	case !destroy(log, admin, cfg.Table):
		status = 1
	}
	closeQueues()
	for _, s := range shards {
		st := s.q.Stats()
		log.Info("queue stats", "received", st.Received, "parse_errors", st.ParseErrors, "read_errors", st.ReadErrors, "verdict_errors", st.VerdictErrors)
	}
	log.Info("stopped")
	return status
}

// logStats logs the counters of all queues together and the heap
// allocations of the process so far, which tell the
// allocations per packet over an interval.
func logStats(log *slog.Logger, shards []*shard) {
	var sum queue.Stats
	for _, s := range shards {
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
	allocs := ms.Mallocs
	log.Info("stats", "received", sum.Received, "batches", sum.Batches, "parse_errors", sum.ParseErrors,
		"read_errors", sum.ReadErrors, "verdict_errors", sum.VerdictErrors, "heap_allocs", allocs)
}

// maxPerShard splits --max-sources between the queues.
func maxPerShard(max, shards int) int {
	n := (max + shards - 1) / shards
	if n < 1 {
		n = 1
	}
	return n
}

func destroy(log *slog.Logger, c *nft.Conn, table string) bool {
	if err := c.Destroy(); err != nil {
		log.Error("delete table", "table", "inet "+table, "err", err)
		return false
	}
	log.Info("table deleted", "table", "inet "+table)
	return true
}

func dumpOpened(log *slog.Logger, c *nft.Conn) {
	els, err := c.Allowed()
	if err != nil {
		log.Error("list opened sources", "err", err)
		return
	}
	for _, e := range els {
		log.Info("opened", "source", e.Addr, "expires", ttlString(e.Expires))
	}
	log.Info("opened sources", "count", len(els))
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
