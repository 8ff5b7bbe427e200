package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/syngen"
	"github.com/nfqknockd/nfqknockd/nft"
)

// latStats summarises connect times.
type latStats struct {
	Connects int     `json:"connects"`
	MedianUS float64 `json:"median_us"`
	P99US    float64 `json:"p99_us"`
	MeanUS   float64 `json:"mean_us"`
	// Queued is how many packets the kernel handed to the daemon's queue
	// during these connects (its id sequence): 0 when the connects never
	// reach the daemon.
	Queued    uint64    `json:"queued"`
	samplesUS []float64 // all of them, in order
}

// summarise fills in the statistics from the samples.
func (s *latStats) summarise() {
	s.Connects = len(s.samplesUS)
	if s.Connects == 0 {
		return
	}
	c := slices.Clone(s.samplesUS)
	slices.Sort(c)
	s.MedianUS, s.P99US = quantile(c, 0.5), quantile(c, 0.99)
	var sum float64
	for _, v := range c {
		sum += v
	}
	s.MeanUS = sum / float64(len(c))
}

// connectResult is the connect latency from the client namespace.
type connectResult struct {
	Port   uint16 `json:"unguarded_port"`
	Rounds int    `json:"rounds"`
	// To the unguarded port: without the daemon, with it (kernel filter,
	// the default) and with --queue-all, in interleaved rounds.
	Without  latStats `json:"without_daemon"`
	Filter   latStats `json:"with_daemon"`
	QueueAll latStats `json:"with_daemon_queue_all"`
	// Ratios to without the daemon.
	FilterMedianRatio   float64 `json:"with_daemon_over_without_median"`
	FilterP99Ratio      float64 `json:"with_daemon_over_without_p99"`
	QueueAllMedianRatio float64 `json:"queue_all_over_without_median"`
	QueueAllP99Ratio    float64 `json:"queue_all_over_without_p99"`
	// To the guarded port after the client knocked it open (kernel filter):
	// each connect's SYN goes through the queue.
	Guarded           *latStats `json:"guarded_after_knock,omitempty"`
	GuardedIntervalMS float64   `json:"guarded_interval_ms"`
}

// filterFlood is a flood against the kernel filter (the daemon's default)
// while a legitimate client knocks.
type filterFlood struct {
	Sources int     `json:"sources"`
	Ports   string  `json:"ports"` // drawn at random
	Sender  string  `json:"sender"`
	Sent    uint64  `json:"sent"`
	FloodS  float64 `json:"flood_s"`
	Rate    float64 `json:"rate_syn_per_s"`
	// Queued is how many packets reached the daemon's queue during the
	// flood: the flood's SYNs from sources that hit a first port, and the
	// client's knocks and connects.
	Queued uint64 `json:"queued"`
	// CPU is the daemon's utime+stime over the whole flood (the knocks
	// included), per million flood SYNs sent.
	CPUSeconds    float64 `json:"cpu_s"`
	CPUPerMillion float64 `json:"cpu_s_per_million_syn"`
	// FloodOnlyCPUPerMillion is the daemon's CPU per million flood SYNs
	// over a stretch of the flood before the client knocks (from
	// schedstat, per SYN sent at the flood's mean rate): what the flood
	// alone costs, without the knocks' wake-ups.
	FloodOnlyS             float64       `json:"flood_only_s"`
	FloodOnlyCPUPerMillion float64       `json:"flood_only_cpu_s_per_million_syn"`
	PeakRSSMiB             float64       `json:"peak_rss_mib"`
	Knock                  latencyResult `json:"knock_to_open"`
	DaemonWarnings         []string      `json:"daemon_warnings,omitempty"`
}

// benchFilter measures the kernel filter's rows in one namespace pair:
// the connect latencies, then the floods.
func benchFilter(ctx context.Context, o *options, rep *report, filterArgs, queueAllArgs, seqArgs []string) error {
	p, err := newPair()
	if err != nil {
		return err
	}
	defer p.close()
	c, err := benchConnect(ctx, o, p, filterArgs, queueAllArgs, seqArgs)
	rep.Connect = c
	if err != nil {
		return fmt.Errorf("connect latency: %w", err)
	}
	for _, n := range []int{o.filterSources, 1} {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := floodFilter(ctx, o, p, filterArgs, seqArgs, n)
		rep.Filter = append(rep.Filter, f)
		if err != nil {
			return fmt.Errorf("kernel filter, %d sources: %w", n, err)
		}
	}
	return nil
}

// benchConnect measures the connect latencies.
func benchConnect(ctx context.Context, o *options, p *pair, filterArgs, queueAllArgs, seqArgs []string) (*connectResult, error) {
	dst, client := o.addrs()
	res := &connectResult{Port: o.unguarded, Rounds: o.rounds, GuardedIntervalMS: ms(o.guardedInterval)}
	ap := netip.AddrPortFrom(dst, o.unguarded)
	gp := netip.AddrPortFrom(dst, guardPort)
	for _, a := range []netip.AddrPort{ap, gp} {
		ln, err := listen(p.server, a)
		if err != nil {
			return res, fmt.Errorf("listen on %v: %w", a, err)
		}
		defer ln.Close()
	}
	modes := []struct {
		name string
		args []string
		st   *latStats
	}{
		{"without the daemon", nil, &res.Without},
		{"with the daemon", filterArgs, &res.Filter},
		{"with the daemon --queue-all", queueAllArgs, &res.QueueAll},
	}
	defer func() {
		for _, m := range modes {
			m.st.summarise()
		}
	}()
	logf("connect latency to the unguarded port %d: %d connects each without the daemon, with it and with --queue-all, in %d rounds",
		o.unguarded, o.connects, o.rounds)
	per := o.connects / o.rounds
	for r := 0; r < o.rounds; r++ {
		n := per
		if r == o.rounds-1 {
			n = o.connects - per*(o.rounds-1)
		}
		for i := range modes {
			m := modes[(i+r)%len(modes)]
			times, queued, err := connectBlock(ctx, o, p, m.args, ap, n, 0)
			if err != nil {
				return res, fmt.Errorf("%s: %w", m.name, err)
			}
			m.st.samplesUS = append(m.st.samplesUS, times...)
			m.st.Queued += queued
		}
	}
	for _, m := range modes {
		m.st.summarise()
	}
	if w := res.Without; w.MedianUS > 0 && w.P99US > 0 {
		res.FilterMedianRatio, res.FilterP99Ratio = res.Filter.MedianUS/w.MedianUS, res.Filter.P99US/w.P99US
		res.QueueAllMedianRatio, res.QueueAllP99Ratio = res.QueueAll.MedianUS/w.MedianUS, res.QueueAll.P99US/w.P99US
	}
	logf("unguarded: median/p99 %.1f/%.1f µs without, %.1f/%.1f µs with the daemon (%.2f×, %d queued), %.1f/%.1f µs with --queue-all (%.2f×, %d queued)",
		res.Without.MedianUS, res.Without.P99US, res.Filter.MedianUS, res.Filter.P99US, res.FilterMedianRatio, res.Filter.Queued,
		res.QueueAll.MedianUS, res.QueueAll.P99US, res.QueueAllMedianRatio, res.QueueAll.Queued)

	// The guarded port, after a knock, with the kernel filter.
	if err := ctx.Err(); err != nil {
		return res, err
	}
	open, _, err := sequences(o.daemon, seqArgs)
	if err != nil {
		return res, err
	}
	logf("connect latency to the guarded port %d after a knock: %d connects, one every %v", guardPort, o.connects, o.guardedInterval)
	d, err := startDaemon(o.daemon, p.server, filterArgs)
	if err != nil {
		return res, err
	}
	defer d.kill()
	time.Sleep(200 * time.Millisecond)
	w, err := watchAllow(p.server)
	if err != nil {
		return res, err
	}
	defer w.close()
	g := &latStats{}
	err = netns.Do(p.client, func() error {
		last, err := knock(dst, open, 0)
		if err != nil {
			return err
		}
		if _, ok := w.wait(client, true, last.Add(2*time.Second)); !ok {
			return fmt.Errorf("the client's knock did not open the guarded port within 2s")
		}
		q0, _ := queueIDs(d.pid)
		g.samplesUS, err = connectTimes(ctx, gp, o.connects, o.guardedInterval)
		q1, _ := queueIDs(d.pid)
		g.Queued = q1 - q0
		return err
	})
	g.summarise()
	res.Guarded = g
	if err != nil {
		return res, fmt.Errorf("guarded port after a knock: %w", err)
	}
	if err := d.stop(); err != nil {
		return res, err
	}
	logf("guarded after a knock: median %.1f µs, p99 %.1f µs (%d of %d queued)", g.MedianUS, g.P99US, g.Queued, g.Connects)
	return res, nil
}

// connectBlock starts the daemon with args (none: no daemon), makes n
// connects to ap from the client after a few unmeasured ones, stops the
// daemon and returns the connect times and how many packets were queued
// meanwhile.
func connectBlock(ctx context.Context, o *options, p *pair, args []string, ap netip.AddrPort, n int, interval time.Duration) ([]float64, uint64, error) {
	var d *daemon
	if args != nil {
		var err error
		if d, err = startDaemon(o.daemon, p.server, args); err != nil {
			return nil, 0, err
		}
		defer d.kill()
		time.Sleep(200 * time.Millisecond)
		if !slices.Contains(args, "--queue-all") {
			// A connect to a first port would make the client a knocking source.
			first, err := firstPorts(p.server)
			if err != nil {
				return nil, 0, err
			}
			if slices.Contains(first, ap.Port()) {
				return nil, 0, fmt.Errorf("port %d is a first port of a sequence now: pick another --unguarded-port", ap.Port())
			}
		}
	}
	var times []float64
	var queued uint64
	err := netns.Do(p.client, func() error {
		if _, err := connectTimes(ctx, ap, 20, interval); err != nil {
			return err
		}
		var q0, q1 uint64
		if d != nil {
			q0, _ = queueIDs(d.pid)
		}
		var err error
		times, err = connectTimes(ctx, ap, n, interval)
		if d != nil {
			q1, _ = queueIDs(d.pid)
		}
		queued = q1 - q0
		return err
	})
	if err != nil {
		return times, queued, err
	}
	if d != nil {
		if err := d.stop(); err != nil {
			return times, queued, err
		}
	}
	return times, queued, nil
}

// queueIDs is the sum of the id sequences of the queues in the namespace
// of process pid: how many packets were ever queued there.
func queueIDs(pid int) (uint64, error) {
	qs, err := readQueues(pid)
	if err != nil {
		return 0, err
	}
	var sum uint64
	for _, q := range qs {
		sum += q.IDSeq
	}
	return sum, nil
}

// firstPorts reads the daemon's set of first ports in namespace ns.
func firstPorts(ns string) ([]uint16, error) {
	fd, err := netns.Open(ns)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	c, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		return nil, err
	}
	set, err := c.GetSetByName(&nftables.Table{Name: nft.DefaultTable, Family: nftables.TableFamilyINet}, nft.SetFirst)
	if err != nil {
		return nil, fmt.Errorf("set %s: %w", nft.SetFirst, err)
	}
	elems, err := c.GetSetElements(set)
	if err != nil {
		return nil, fmt.Errorf("set %s: %w", nft.SetFirst, err)
	}
	var out []uint16
	for _, e := range elems {
		if len(e.Key) >= 2 {
			out = append(out, binary.BigEndian.Uint16(e.Key))
		}
	}
	return out, nil
}

// floodFilter floods the kernel filter from n sources to random ports at
// the sender's full rate, continuously, while the legitimate client makes
// its knock-to-open tries; it measures the daemon's CPU over the whole
// flood and its peak RSS at the end.
func floodFilter(ctx context.Context, o *options, p *pair, args, seqArgs []string, n int) (filterFlood, error) {
	f := filterFlood{Sources: n, Ports: fmt.Sprintf("%d-%d", o.filterPorts.First, o.filterPorts.Last), Sender: senderName(o.rawIP)}
	d, err := startDaemon(o.daemon, p.server, args)
	if err != nil {
		return f, err
	}
	defer d.kill()
	time.Sleep(200 * time.Millisecond)
	q0, err := queueIDs(d.pid)
	if err != nil {
		return f, err
	}
	c0, err := cpuTicks(d.pid)
	if err != nil {
		return f, err
	}
	cfg := o.config(flood{n, o.floodRate, o.rawIP})
	cfg.DstPorts, cfg.RandomPorts, cfg.Duration = o.filterPorts, true, syngen.MaxDuration
	logf("kernel filter, %d sources, random ports %s: a flood through %d knock-to-open tries, %v between knocks",
		n, f.Ports, o.tries, o.knockGap)
	stop, cpu, secs, err := startMeasured(ctx, p, cfg, d.pid, o.floodOnly)
	if err != nil {
		return f, err
	}
	f.FloodOnlyS = secs
	lat, err := knockUnder(ctx, o, p, seqArgs, nil)
	res, ferr := stop()
	f.FloodOnlyCPUPerMillion = float64(cpu) / 1e9 / (res.Rate() * f.FloodOnlyS / 1e6)
	lat.Mode, lat.Sources, lat.Ports, lat.Random = "filter", n, f.Ports, true
	lat.FloodRate = res.Rate()
	f.Knock = lat
	f.Sent, f.FloodS, f.Rate = res.Sent, res.Elapsed.Seconds(), res.Rate()
	if err == nil {
		err = ferr
	}
	if err != nil {
		return f, err
	}
	time.Sleep(o.settle)
	c1, err := cpuTicks(d.pid)
	if err != nil {
		return f, err
	}
	hwm, err := peakRSS(d.pid)
	if err != nil {
		return f, err
	}
	q1, err := queueIDs(d.pid)
	if err != nil {
		return f, err
	}
	f.Queued = q1 - q0
	f.CPUSeconds = float64(c1-c0) / clkTck
	f.CPUPerMillion = f.CPUSeconds / (float64(max(res.Sent, 1)) / 1e6)
	f.PeakRSSMiB = float64(hwm) / (1 << 20)
	if err := d.stop(); err != nil {
		return f, err
	}
	f.DaemonWarnings = warnings(d.stderr.String())
	logf("kernel filter, %d sources: %.0f SYN/s, %d queued; %d/%d opened, knock-to-open median %s ms, p95 %s ms; CPU %.3f s per 1M SYN (flood alone %.3f), peak RSS %.1f MiB",
		n, f.Rate, f.Queued, lat.Opened, lat.Tries, fmtPtr(lat.MedianMS, "%.2f"), fmtPtr(lat.P95MS, "%.2f"), f.CPUPerMillion, f.FloodOnlyCPUPerMillion, f.PeakRSSMiB)
	return f, nil
}

// continuousFlood runs the flood c from the client of p until the returned
// function is called (starting it again if it ends before: a run is capped
// at syngen.MaxDuration), which returns what was sent in all.
func continuousFlood(ctx context.Context, p *pair, c syngen.Config) func() (syngen.Result, error) {
	fctx, cancel := context.WithCancel(ctx)
	type result struct {
		res syngen.Result
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var total syngen.Result
		for {
			res, err := syngen.Run(fctx, p.client, c)
			total.Sent += res.Sent
			total.Dropped += res.Dropped
			total.Elapsed += res.Elapsed
			if err != nil || fctx.Err() != nil {
				ch <- result{total, err}
				return
			}
		}
	}()
	return func() (syngen.Result, error) {
		cancel()
		r := <-ch
		return r.res, r.err
	}
}

// startMeasured starts the flood of cfg in p's client namespace and
// measures the CPU of the daemon pid over its first floodOnly, after half
// a second (past the flood's start: neighbour resolution): the flood
// alone. It returns the flood's stop, the CPU nanoseconds and the seconds
// they were measured over.
func startMeasured(ctx context.Context, p *pair, cfg syngen.Config, pid int, floodOnly time.Duration) (stop func() (syngen.Result, error), cpu uint64, secs float64, err error) {
	stop = continuousFlood(ctx, p, cfg)
	time.Sleep(500 * time.Millisecond)
	n0, err := cpuNanos(pid)
	if err != nil {
		stop()
		return nil, 0, 0, err
	}
	t0 := time.Now()
	time.Sleep(floodOnly)
	n1, err := cpuNanos(pid)
	if err != nil {
		stop()
		return nil, 0, 0, err
	}
	return stop, n1 - n0, time.Since(t0).Seconds(), nil
}
