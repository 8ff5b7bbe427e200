package main

// Single-packet authorization under floods (--spa): the daemon with --spa
// and --spa-only, a legitimate client opening by SPA without a flood (the
// baseline), then under floods from --spa-sources spoofed sources of
// random SPA-like payloads (a new key id in each: the kernel drops them)
// and of payloads that carry a key id of now (as a sniffer who copied a
// packet's first bytes sends them: queued, refused by the daemon), and of
// the latter from one source (its rate bound).

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/syngen"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
	knockpkg "github.com/nfqknockd/nfqknockd/knock"
	"github.com/nfqknockd/nfqknockd/nft"
	"github.com/nfqknockd/nfqknockd/spa"
	"golang.org/x/sys/unix"
)

// spaFlood is one flood of random payloads to the SPA port while the
// legitimate client opens by SPA.
type spaFlood struct {
	Sources int `json:"sources"`
	// Sniffed: the payloads carry a key id of now (else a new random one
	// each).
	Sniffed bool    `json:"key_id_of_now"`
	Sender  string  `json:"sender"`
	Sent    uint64  `json:"sent"`
	FloodS  float64 `json:"flood_s"`
	Rate    float64 `json:"rate_pkt_per_s"`
	// Queued is what the SPA chain's queue rule counted during the flood
	// (the client's packets included), RateDropped what its per-source
	// rate rules dropped; Received what the queue handed the daemon (its
	// id sequence). Unseen = Queued - Received passed the full queue
	// (fail-open: the kernel neither numbers nor counts them) and the
	// guard chain dropped them unread; QueueDropped is what the queue
	// counted as dropped (none while it fails open).
	KeyDropped   uint64 `json:"key_id_dropped"` // dropped in the kernel: not a key id of now
	Queued       uint64 `json:"queued"`
	RateDropped  uint64 `json:"rate_dropped"`
	Received     uint64 `json:"queue_ids"`
	Unseen       uint64 `json:"unseen_fail_open"`
	QueueDropped uint64 `json:"queue_dropped"`
	// QueuedBound is, for one source, the most its rate bound lets
	// through over the flood (burst + rate x seconds), plus the client's
	// own SPA packets.
	QueuedBound uint64 `json:"queued_bound,omitempty"`
	// CPU is the daemon's utime+stime over the whole flood (the client's
	// opens included), per million flood packets sent.
	CPUSeconds    float64 `json:"cpu_s"`
	CPUPerMillion float64 `json:"cpu_s_per_million_pkt"`
	// FloodOnlyCPUPerMillion is the same over --flood-only seconds before
	// the client's first try (from schedstat, per packet sent at the
	// flood's mean rate): the flood alone.
	FloodOnlyS             float64       `json:"flood_only_s"`
	FloodOnlyCPUPerMillion float64       `json:"flood_only_cpu_s_per_million_pkt"`
	PeakRSSMiB             float64       `json:"peak_rss_mib"`
	Open                   latencyResult `json:"spa_to_open"`
}

// spaResult is the SPA part of the report.
type spaResult struct {
	Port       uint16   `json:"port"`
	DaemonArgs []string `json:"daemon_args"`
	Copies     int      `json:"copies"` // copies of each SPA packet the client sends, 5 ms apart

	Baseline latencyResult `json:"baseline_no_flood"`
	Floods   []spaFlood    `json:"floods"`
}

// spaPayloads describe the floods' payloads.
const spaPayloads = "113 random bytes, version byte 1; random: the key id (bytes 1-8) new in every packet; key id of now: the nonce (bytes 9-32) new in every packet"

// benchSPA measures SPA in a namespace pair of its own.
func benchSPA(ctx context.Context, o *options, secrets []string) (*spaResult, error) {
	res := &spaResult{Port: o.spaPort, Copies: o.spaCopies}
	p, err := newPair()
	if err != nil {
		return res, err
	}
	defer p.close()
	state, err := tempDir()
	if err != nil {
		return res, err
	}
	res.DaemonArgs = append(slices.Clone(secrets), "--guard", strconv.Itoa(guardPort), "--spa", strconv.Itoa(int(o.spaPort)),
		"--spa-only", "--state-dir", state)
	res.DaemonArgs = append(res.DaemonArgs, o.daemonArgs...)
	d, err := startDaemon(o.daemon, p.server, res.DaemonArgs)
	if err != nil {
		return res, err
	}
	defer d.kill()
	dst, _ := o.addrs()
	ln, err := listen(p.server, netip.AddrPortFrom(dst, guardPort))
	if err != nil {
		return res, fmt.Errorf("listen on the guarded port: %w", err)
	}
	defer ln.Close()
	w, err := watchAllow(p.server)
	if err != nil {
		return res, err
	}
	defer w.close()
	logf("SPA on udp %d, no flood: %d SPA-to-open tries, %d cop(ies) per packet", o.spaPort, o.tries, o.spaCopies)
	res.Baseline, err = spaOpens(ctx, o, p, w)
	res.Baseline.Mode = "spa"
	if err != nil {
		return res, fmt.Errorf("SPA without a flood: %w", err)
	}
	logf("SPA, no flood: %d/%d opened, SPA-to-open median %s ms, p95 %s ms", res.Baseline.Opened, res.Baseline.Tries,
		fmtPtr(res.Baseline.MedianMS, "%.2f"), fmtPtr(res.Baseline.P95MS, "%.2f"))
	for _, fl := range []struct {
		n       int
		sniffed bool
	}{{o.spaSources, false}, {o.spaSources, true}, {1, true}} {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		f, err := floodSPA(ctx, o, p, d, w, fl.n, fl.sniffed)
		res.Floods = append(res.Floods, f)
		if err != nil {
			return res, fmt.Errorf("SPA, %s: %w", f.name(), err)
		}
	}
	return res, d.stop()
}

// name names the flood in the table: its sources and payloads.
func (f *spaFlood) name() string {
	if f.Sniffed {
		return floodName(f.Sources) + ", key id of now"
	}
	return floodName(f.Sources) + ", random"
}

// floodSPA floods the SPA port from n sources at the sender's full rate
// (sniffed: with a key id of now) while the client makes its tries, and
// measures the daemon meanwhile.
func floodSPA(ctx context.Context, o *options, p *pair, d *daemon, w *allowWatch, n int, sniffed bool) (spaFlood, error) {
	f := spaFlood{Sources: n, Sniffed: sniffed, Sender: senderName(o.rawIP)}
	tmpl := make([]byte, spa.PacketLen)
	rand.Read(tmpl)
	tmpl[0] = spa.Version
	vary := syngen.Span{Off: 1, Len: spa.KeyIDLen}
	if sniffed {
		id := spa.NewKey(openSecret).KeyID(spa.PeriodOf(time.Now(), knockpkg.DefaultPeriod))
		copy(tmpl[1:], id[:])
		vary = syngen.Span{Off: 1 + spa.KeyIDLen, Len: spa.NonceLen}
	}
	cfg := o.config(flood{n, o.floodRate, o.rawIP})
	cfg.MSS, cfg.UDP, cfg.Payload, cfg.Vary = 0, true, tmpl, vary
	cfg.DstPorts, cfg.Duration = syngen.Ports{First: o.spaPort, Last: o.spaPort}, syngen.MaxDuration
	c0, err := spaCounters(p)
	if err != nil {
		return f, err
	}
	q0, err := spaQueueState(d.pid)
	if err != nil {
		return f, err
	}
	t0, err := cpuTicks(d.pid)
	if err != nil {
		return f, err
	}
	logf("SPA, %s: a flood to udp %d through %d SPA-to-open tries", f.name(), o.spaPort, o.tries)
	stop, cpu, secs, err := startMeasured(ctx, p, cfg, d.pid, o.floodOnly)
	if err != nil {
		return f, err
	}
	f.FloodOnlyS = secs
	lat, err := spaOpens(ctx, o, p, w)
	fres, ferr := stop()
	f.FloodOnlyCPUPerMillion = float64(cpu) / 1e9 / (max(fres.Rate(), 1) * f.FloodOnlyS / 1e6)
	lat.Mode, lat.Sources, lat.FloodRate = "spa", n, fres.Rate()
	f.Open = lat
	f.Sent, f.FloodS, f.Rate = fres.Sent, fres.Elapsed.Seconds(), fres.Rate()
	if err == nil {
		err = ferr
	}
	if err != nil {
		return f, err
	}
	time.Sleep(o.settle)
	t1, err := cpuTicks(d.pid)
	if err != nil {
		return f, err
	}
	c1, err := spaCounters(p)
	if err != nil {
		return f, err
	}
	q1, err := spaQueueState(d.pid)
	if err != nil {
		return f, err
	}
	hwm, err := peakRSS(d.pid)
	if err != nil {
		return f, err
	}
	f.KeyDropped, f.Queued, f.RateDropped = c1.Key-c0.Key, c1.Queue-c0.Queue, c1.Rate-c0.Rate
	f.QueueDropped, f.Received = q1.dropped-q0.dropped, q1.ids-q0.ids
	if f.Queued > f.Received {
		f.Unseen = f.Queued - f.Received
	}
	if n == 1 {
		f.QueuedBound = nft.SPABurst + uint64(nft.SPARate*(f.FloodS+o.settle.Seconds())+1) + uint64(2*o.tries*o.spaCopies)
	}
	f.CPUSeconds = float64(t1-t0) / clkTck
	f.CPUPerMillion = f.CPUSeconds / (float64(max(f.Sent, 1)) / 1e6)
	f.PeakRSSMiB = float64(hwm) / (1 << 20)
	logf("SPA, %s: %.0f pkt/s, %d sent, %d dropped for their key id, %d queued (%d over the rate, %d unseen: the queue full); %d/%d opened, SPA-to-open median %s ms, p95 %s ms; CPU %.3f s per 1M (flood alone %.3f), peak RSS %.1f MiB",
		f.name(), f.Rate, f.Sent, f.KeyDropped, f.Queued, f.RateDropped, f.Unseen+f.QueueDropped, lat.Opened, lat.Tries, fmtPtr(lat.MedianMS, "%.2f"),
		fmtPtr(lat.P95MS, "%.2f"), f.CPUPerMillion, f.FloodOnlyCPUPerMillion, f.PeakRSSMiB)
	return f, nil
}

// spaQueue is the sum over the namespace's queues of their drops and id
// sequences.
type spaQueue struct{ dropped, ids uint64 }

// spaQueueState reads the queues of process pid's namespace.
func spaQueueState(pid int) (spaQueue, error) {
	qs, err := readQueues(pid)
	if err != nil {
		return spaQueue{}, err
	}
	var s spaQueue
	for _, q := range qs {
		s.dropped += q.Dropped + q.UserDropped
		s.ids += q.IDSeq
	}
	return s, nil
}

// spaCounters reads the counters of the daemon's chain spa.
func spaCounters(p *pair) (testutil.SPACounters, error) {
	out, err := p.nft("", "list", "chain", "inet", nft.DefaultTable, nft.ChainSPA)
	if err != nil {
		return testutil.SPACounters{}, err
	}
	return testutil.ParseSPACounters(out)
}

// spaOpens runs o.tries SPA opens of the client of p, from its real
// address: each try sends an open packet (o.spaCopies copies, 5 ms apart),
// waits up to a second for nf_tables to announce the client in the allow
// set and connects to the guarded port once; then it sends a close packet
// and waits for the client to leave the set. A try opened when both
// happened within a second of the first copy. Tries start far enough apart
// that the client stays below its own rate bound.
func spaOpens(ctx context.Context, o *options, p *pair, w *allowWatch) (r latencyResult, err error) {
	dst, client := o.addrs()
	r.Tries = o.tries
	r.Continuous = true
	key := spa.NewKey(openSecret)
	gp := netip.AddrPortFrom(dst, guardPort)
	defer func() {
		if r.Opened > 0 {
			med, p95 := quantiles(r.SamplesMS)
			r.MedianMS, r.P95MS = &med, &p95
			cmed, cp95 := quantiles(r.ConnectMS)
			r.ConnectMedianMS, r.ConnectP95MS = &cmed, &cp95
		}
		if w.lost > 0 {
			r.Note = fmt.Sprintf("%d nf_tables announcements lost", w.lost)
		}
	}()
	// Two packets a try, each sent spaCopies times: that many at the rate.
	pace := time.Duration(2*o.spaCopies) * time.Second / nft.SPARate
	err = netns.Do(p.client, func() error {
		fd, sa, err := udpSocket(netip.AddrPortFrom(dst, o.spaPort))
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		send := func(a spa.Action) (time.Time, error) {
			var nonce [spa.NonceLen]byte
			rand.Read(nonce[:])
			pkt, err := spa.Seal(nil, key, knockpkg.DefaultPeriod, nonce, &spa.Message{Time: time.Now(), Action: a})
			if err != nil {
				return time.Time{}, err
			}
			first := time.Now()
			for i := range o.spaCopies {
				if i > 0 {
					time.Sleep(5 * time.Millisecond)
				}
				if err := unix.Sendto(fd, pkt, 0, sa); err != nil {
					return first, fmt.Errorf("send SPA: %w", err)
				}
			}
			return first, nil
		}
		next := time.Now()
		for i := range o.tries {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("SPA-to-open interrupted: %w", err)
			}
			time.Sleep(time.Until(next))
			next = time.Now().Add(pace)
			w.drain()
			sent, err := send(spa.Open)
			if err != nil {
				return err
			}
			at, in := w.wait(client, true, sent.Add(time.Second))
			var took time.Duration
			var connected bool
			if in {
				if took, connected, err = connectOnce(gp, time.Until(sent.Add(time.Second))); err != nil {
					return fmt.Errorf("try %d: %w", i, err)
				}
			}
			if in && connected {
				r.Opened++
				r.SamplesMS = append(r.SamplesMS, ms(at.Sub(sent)))
				r.ConnectMS = append(r.ConnectMS, ms(at.Add(took).Sub(sent)))
			}
			if o.verbose {
				logf("SPA try %d: in the allow set %v after %v, connected %v", i, in, at.Sub(sent), connected)
			}
			// Closed by SPA, even when it did not seem to open (it may
			// have opened late).
			w.drain()
			if _, err := send(spa.Close); err != nil {
				return err
			}
			if _, out := w.wait(client, false, time.Now().Add(time.Second)); in && !out {
				r.CloseRetry++
			}
		}
		return nil
	})
	return r, err
}

// tempDir makes a temporary directory, removed at the end.
func tempDir() (string, error) {
	dir, err := os.MkdirTemp("", "floodbench-state-")
	if err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	undo.add(func() { os.RemoveAll(dir) })
	return dir, nil
}

// udpSocket returns a UDP socket of the calling thread's namespace and the
// address of ap.
func udpSocket(ap netip.AddrPort) (int, unix.Sockaddr, error) {
	fam, sa := sockaddr(ap)
	fd, err := unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, nil, fmt.Errorf("UDP socket: %w", err)
	}
	return fd, sa, nil
}
