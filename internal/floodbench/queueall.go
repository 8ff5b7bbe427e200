package main

// The --queue-all rows: for each source count, in a fresh namespace pair,
// the kernel-only rate (a), the daemon under the flood (b), a fixed-rate
// flood for CPU, RSS and allocations (c) and, under the heaviest flood,
// knock-to-open (d).

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/syngen"
)

// arrivalsRuleset counts, before the daemon's knock chain (prerouting,
// priority mangle), every SYN it would see.
const arrivalsRuleset = `table inet floodbench {
	chain arrivals {
		type filter hook prerouting priority mangle - 20; policy accept;
		tcp flags & (fin|syn|rst|ack) == syn tcp dport 1-65535 counter
	}
}
`

// kernelOnlyRuleset is the daemon's --queue-all table (see
// testdata/nft/ruleset-queue-all.nft) with the queue rule of chain knocks
// replaced by a counter.
var kernelOnlyRuleset = fmt.Sprintf(`table inet nfqknock {
	set guard { type inet_service; elements = { %d } }
	set allow4 { type ipv4_addr . inet_service; size 65536; flags timeout; }
	set allow6 { type ipv6_addr . inet_service; size 65536; flags timeout; }
	set static4 { type ipv4_addr; flags interval; }
	set static6 { type ipv6_addr; flags interval; }
	chain knock {
		type filter hook prerouting priority mangle; policy accept;
		iif "lo" accept
		tcp flags & (fin|syn|rst|ack) == syn tcp dport %s fib daddr type local jump knocks
	}
	chain guard {
		type filter hook prerouting priority mangle + 5; policy accept;
		iif "lo" accept
		tcp flags & (fin|syn|rst|ack) == syn tcp dport @guard fib daddr type local jump guarded
		ip frag-off & 16383 == 8192 tcp dport @guard fib daddr type local jump guarded
	}
	chain guarded {
		ip saddr . tcp dport @allow4 accept
		ip6 saddr . tcp dport @allow6 accept
		ip saddr @static4 accept
		ip6 saddr @static6 accept
		drop
	}
	chain knocks {
		counter
	}
}
`, guardPort, knockRange)

// benchSources measures one source count in a fresh namespace pair, with
// the floods f. A row whose floods are not the main ones (--flood-rate,
// --sender) only has the floods (a) and (b).
func benchSources(ctx context.Context, o *options, f flood, daemonArgs, seqArgs []string, heaviest bool) (row, *latencyResult, error) {
	n := f.n
	r := row{Sources: n, FloodRate: f.rate, Sender: senderName(f.rawIP)}
	p, err := newPair()
	if err != nil {
		return r, nil, err
	}
	defer p.close()
	if _, err := p.nft(arrivalsRuleset+kernelOnlyRuleset, "-f", "-"); err != nil {
		return r, nil, err
	}

	// (a) kernel-only, after a short unmeasured warm-up (neighbour
	// resolution both ways, first touches of every buffer).
	warm := o.config(f)
	warm.Duration = 300 * time.Millisecond
	if _, err := syngen.Run(ctx, p.client, warm); err != nil {
		return r, nil, err
	}
	time.Sleep(o.settle)
	k0, err := p.chainCounter("nfqknock", "knocks")
	if err != nil {
		return r, nil, err
	}
	logf("%d sources: kernel-only flood for %v", n, o.flood)
	res, err := syngen.Run(ctx, p.client, o.config(f))
	if err != nil {
		return r, nil, err
	}
	time.Sleep(o.settle)
	k1, err := p.chainCounter("nfqknock", "knocks")
	if err != nil {
		return r, nil, err
	}
	k := k1 - k0
	r.KernelOnlySent, r.KernelOnlyCount, r.KernelOnlyS = res.Sent, k, res.Elapsed.Seconds()
	r.KernelOnlyRate = float64(k) / res.Elapsed.Seconds()
	logf("%d sources: kernel-only %.0f SYN/s (sent %d, counted %d)", n, r.KernelOnlyRate, res.Sent, k)
	if _, err := p.nft("", "delete", "table", "inet", "nfqknock"); err != nil {
		return r, nil, err
	}
	if len(daemonArgs) == 0 || ctx.Err() != nil {
		return r, nil, ctx.Err()
	}

	// (b) the daemon under the flood.
	if err := floodDaemon(ctx, o, p, f, daemonArgs, &r); err != nil {
		return r, nil, err
	}

	if err := ctx.Err(); err != nil || f.rate != o.floodRate || f.rawIP != o.rawIP {
		return r, nil, err
	}

	// (c) fixed rate: CPU, RSS, allocations.
	d, err := startDaemon(o.daemon, p.server, daemonArgs)
	if err != nil {
		return r, nil, err
	}
	if err := fixedRate(ctx, o, p, d, n, &r); err != nil {
		d.kill()
		return r, nil, err
	}

	// (d) knock-to-open under the heaviest flood.
	var lat *latencyResult
	if ctx.Err() == nil && heaviest && o.tries > 0 {
		l, err := latencyUnderFlood(ctx, o, p, n, seqArgs)
		lat = &l
		if err != nil {
			d.kill()
			return r, lat, err
		}
	}
	if err := d.stop(); err != nil {
		return r, lat, err
	}
	r.DaemonWarnings = append(r.DaemonWarnings, warnings(d.stderr.String())...)
	if out, err := p.nft("", "list", "tables"); err == nil && strings.Contains(out, "nfqknock") {
		return r, lat, fmt.Errorf("the daemon left its table after SIGTERM:\n%s", out)
	}
	return r, lat, nil
}

// floodDaemon is part (b): H, answered and leaked under the flood.
func floodDaemon(ctx context.Context, o *options, p *pair, f flood, daemonArgs []string, r *row) error {
	n := f.n
	d, err := startDaemon(o.daemon, p.server, daemonArgs)
	if err != nil {
		return err
	}
	defer d.kill()
	time.Sleep(200 * time.Millisecond)
	q0, drops0, err := queueState(d.pid)
	if err != nil {
		return err
	}
	h0, err := p.chainCounter("floodbench", "arrivals")
	if err != nil {
		return err
	}
	logf("%d sources: flood with the daemon for %v", n, o.flood)
	res, peak, err := floodWatchingQueue(ctx, p, d.pid, o.config(f))
	if err != nil {
		return err
	}
	r.QueuePeak = &peak
	// Let the daemon drain its socket and the queue.
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		time.Sleep(o.settle)
		qs, err := readQueues(d.pid)
		if err != nil {
			return err
		}
		var total uint64
		for _, q := range qs {
			total += q.Total
		}
		if total == 0 {
			break
		}
	}
	q1, drops1, err := queueState(d.pid)
	if err != nil {
		return err
	}
	h1, err := p.chainCounter("floodbench", "arrivals")
	if err != nil {
		return err
	}
	var idDelta, qDropped, uDropped uint64
	for num, b := range q1 {
		a := q0[num] // a queue bound only after q0 starts from zero
		idDelta += b.IDSeq - a.IDSeq
		qDropped += b.Dropped - a.Dropped
		uDropped += b.UserDropped - a.UserDropped
	}
	nlDrops := drops1 - drops0
	h := h1 - h0
	answered := idDelta - min(nlDrops, idDelta)
	leaked := int64(h) - int64(answered)
	secs := res.Elapsed.Seconds()
	rate := float64(answered) / secs
	ratio := rate / r.KernelOnlyRate
	pct := 100 * float64(leaked) / float64(max(h, 1))
	r.FloodSent, r.FloodS = &res.Sent, &secs
	r.Arrivals, r.Answered, r.AnsweredRate, r.AnsweredRatio = &h, &answered, &rate, &ratio
	r.Leaked, r.LeakedPct = &leaked, &pct
	r.QueueDropped, r.UserDropped, r.NetlinkDrops = &qDropped, &uDropped, &nlDrops
	logf("%d sources: H %d answered %d (%.0f/s, %.2f of kernel-only) leaked %.2f%% (socket drops %d, longest queue %d)",
		n, h, answered, rate, ratio, pct, nlDrops, peak)
	if err := d.stop(); err != nil {
		return err
	}
	log := d.stderr.String()
	r.DaemonWarnings = append(r.DaemonWarnings, warnings(log)...)
	if rcv, ok := receivedAtExit(log); ok {
		r.DaemonReceived = &rcv
	}
	return nil
}

// receivedAtExit sums received=N over the daemon's exit lines "queue stats"
// (one per queue): what the daemon says it read, a cross-check of answered.
func receivedAtExit(log string) (uint64, bool) {
	var sum uint64
	found := false
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, "queue stats") {
			continue
		}
		if m := packetsKV.FindStringSubmatch(l); m != nil {
			n, err := strconv.ParseUint(m[1], 10, 64)
			if err == nil {
				sum += n
				found = true
			}
		}
	}
	return sum, found
}

// floodWatchingQueue runs the flood c and meanwhile samples the daemon's
// queues every 50ms; it returns the longest queue_total seen (when it
// reaches the queue's length, further packets pass unseen: fail-open).
func floodWatchingQueue(ctx context.Context, p *pair, pid int, c syngen.Config) (syngen.Result, uint64, error) {
	type done struct {
		res syngen.Result
		err error
	}
	ch := make(chan done, 1)
	go func() {
		res, err := syngen.Run(ctx, p.client, c)
		ch <- done{res, err}
	}()
	var peak uint64
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case d := <-ch:
			return d.res, peak, d.err
		case <-tick.C:
			if qs, err := readQueues(pid); err == nil {
				for _, q := range qs {
					peak = max(peak, q.Total)
				}
			}
		}
	}
}

// queueState returns the queues (by number) and the drops of their sockets.
func queueState(pid int) (map[uint32]queueStat, uint64, error) {
	qs, err := readQueues(pid)
	if err != nil {
		return nil, 0, err
	}
	if len(qs) == 0 {
		return nil, 0, errors.New("no NFQUEUE is bound in the server namespace")
	}
	m := map[uint32]queueStat{}
	ports := map[uint32]bool{}
	for _, q := range qs {
		m[q.Num] = q
		ports[q.PortID] = true
	}
	drops, err := netlinkDrops(pid, ports)
	return m, drops, err
}

// fixedRate is part (c): CPU seconds per million SYNs, peak RSS, allocations.
func fixedRate(ctx context.Context, o *options, p *pair, d *daemon, n int, r *row) error {
	dur := time.Duration(float64(n) / float64(o.fixedRate) * float64(time.Second))
	dur = max(dur, o.fixedMin)
	if dur > o.fixedMax {
		dur, r.FixedCapped = o.fixedMax, true
	}
	time.Sleep(200 * time.Millisecond)
	// Two rounds before the flood: the second tells what a round itself
	// allocates (the daemon lists the opened sources and logs), which
	// the round after the flood also costs.
	pre, _ := readAllocs(d)
	a0, _ := readAllocs(d)
	t0, err := cpuTicks(d.pid)
	if err != nil {
		return err
	}
	cfg := o.config(flood{n, o.fixedRate, o.rawIP})
	cfg.Duration = dur
	logf("%d sources: %d SYN/s for %v", n, o.fixedRate, dur)
	res, err := syngen.Run(ctx, p.client, cfg)
	if err != nil {
		return err
	}
	time.Sleep(o.settle)
	t1, err := cpuTicks(d.pid)
	if err != nil {
		return err
	}
	hwm, err := peakRSS(d.pid)
	if err != nil {
		return err
	}
	secs := res.Elapsed.Seconds()
	cpu := float64(t1-t0) / clkTck / (float64(res.Sent) / 1e6)
	mib := float64(hwm) / (1 << 20)
	r.FixedRate, r.FixedS, r.FixedSent = o.fixedRate, &secs, &res.Sent
	r.CPUPerMillion, r.PeakRSSMiB = &cpu, &mib
	if a0 != nil {
		a1, _ := readAllocs(d)
		r.AllocsPerPkt = allocsPerPacket(pre, a0, a1)
	}
	logf("%d sources: CPU %.2f s per 1M SYN, peak RSS %.1f MiB, allocs/packet %s", n, cpu, mib, fmtPtr(r.AllocsPerPkt, "%.3f"))
	return nil
}

// latencyUnderFlood is part (d): knock-to-open while the flood runs, a
// flood started for each try (with --queue-all, knocks of the close
// sequence may pass unseen under the flood).
func latencyUnderFlood(ctx context.Context, o *options, p *pair, n int, seqArgs []string) (latencyResult, error) {
	cfg := o.config(flood{n, o.floodRate, o.rawIP})
	cfg.Duration = syngen.MaxDuration
	flood := func() func() (float64, error) {
		stop := continuousFlood(ctx, p, cfg)
		return func() (float64, error) {
			r, err := stop()
			return r.Rate(), err
		}
	}
	logf("%d sources, --queue-all: %d knock-to-open tries, %v between knocks, each under the flood", n, o.tries, o.knockGap)
	lat, err := knockUnder(ctx, o, p, seqArgs, flood)
	lat.Mode, lat.Sources, lat.Ports = "queue-all", n, fmt.Sprintf("%d-%d", cfg.DstPorts.First, cfg.DstPorts.Last)
	if err != nil {
		lat.Note = err.Error()
		return lat, err
	}
	logf("knock-to-open, --queue-all: %d/%d opened, median %s ms, p95 %s ms", lat.Opened, lat.Tries, fmtPtr(lat.MedianMS, "%.2f"), fmtPtr(lat.P95MS, "%.2f"))
	return lat, nil
}
