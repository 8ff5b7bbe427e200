package e2e

import (
	"context"
	"crypto/rand"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/syngen"
	"github.com/nfqknockd/nfqknockd/nft"
	"github.com/nfqknockd/nfqknockd/spa"
)

// SPA floods of TestSPAFlood.
const (
	spaFloodSources = 1_000_000
	spaFloodTries   = 20
	spaCopies       = 3 // of each SPA packet, 5 ms apart, as nfqknock sends them
	singleFlood     = 3 * time.Second
)

// TestSPAFlood: SPA under floods to the SPA port from a million spoofed
// sources at the generator's full rate, each while a legitimate client
// opens by SPA 20 times (each open confirmed by a connect to the guarded
// port, closed by SPA):
//
//   - random payloads (a new key id in every datagram): the key id rule
//     drops them in the kernel, the daemon sees none of them;
//   - payloads of a key id of now (as a sniffer who copied a packet's
//     first bytes sends), the rest new in every datagram: they pass the key
//     id rule, fill the per-source rate sets, and are queued; the daemon
//     refuses them for failing authentication. It falls behind now and
//     then, and the queue, full, lets packets pass unseen (fail-open; the
//     guard chain drops them): as a user would, the client sends a new
//     packet once when the first (3 copies) did not open within a second;
//     how many opened at the first is logged.
//
// Then a single source flooding the SPA port with a key id of now is
// stopped by its rate bound: the SPA chain's rate rules drop nearly all of
// it, its queue rule counts at most the burst plus the rate times the
// seconds. Figures are logged; only counts are asserted. IPv4 and IPv6, one
// after the other (each flood takes a core).
func TestSPAFlood(t *testing.T) {
	for _, fam := range filterFams {
		t.Run(fam.name, func(t *testing.T) {
			e := newEnv(t)
			d := e.startSPA()
			if err := syngen.AddSpoofRoutes(e.pair.Server, netns.ClientIP4, netns.ClientIP6); err != nil {
				t.Fatalf("spoof routes: %v", err)
			}
			random := make([]byte, spa.PacketLen)
			rand.Read(random)
			random[0] = spa.Version
			cfg := syngen.Config{Dst: fam.server, DstPorts: syngen.Ports{First: spaPort, Last: spaPort},
				UDP: true, Payload: random, Vary: syngen.Span{Off: 1, Len: spa.KeyIDLen}, Sources: spaFloodSources}

			// Random key ids: dropped in the kernel.
			c0 := spaRuleCounters(t, e)
			r, res := spaUnderFlood(t, e, fam, cfg)
			c1 := spaRuleCounters(t, e)
			p := e.spaPackets(t)
			t.Logf("%s: random key ids from %d sources: %d datagrams (%d refused by the device) in %v, %.0f/s; SPA chain: %d dropped for their key id, %d queued; daemon: %v",
				fam.name, spaFloodSources, res.Sent, res.Dropped, res.Elapsed.Round(time.Millisecond), res.Rate(), c1.Key-c0.Key, c1.Queue-c0.Queue, p)
			r.log(t, fam.name)
			if r.opened != spaFloodTries {
				t.Errorf("%d of %d SPA opens under the flood of random key ids, want all", r.opened, spaFloodTries)
			}
			if c1.Key-c0.Key < res.Sent*99/100 || p["refused_key_id"] != 0 {
				t.Errorf("random key ids: %d of %d dropped in the kernel, %d reached the daemon: want all in the kernel", c1.Key-c0.Key, res.Sent, p["refused_key_id"])
			}

			// A key id of now, the rest new: queued, refused by the daemon.
			sniffed := keyIDPayload(openSecret)
			cfg.Payload, cfg.Vary = sniffed, syngen.Span{Off: 1 + spa.KeyIDLen, Len: spa.NonceLen}
			q0 := queueIDs(t, e.pair.Server)
			r, res = spaUnderFlood(t, e, fam, cfg)
			c2 := spaRuleCounters(t, e)
			p = e.spaPackets(t)
			t.Logf("%s: a key id of now from %d sources: %d datagrams (%d refused by the device) in %v, %.0f/s; SPA chain: %d queued, %d over the rate; %d unseen (passed the full queue, dropped by the guard chain); daemon: %v",
				fam.name, spaFloodSources, res.Sent, res.Dropped, res.Elapsed.Round(time.Millisecond), res.Rate(), c2.Queue-c1.Queue, c2.Rate-c1.Rate,
				(c2.Queue-c1.Queue)-(queueIDs(t, e.pair.Server)-q0), p)
			r.log(t, fam.name)
			if r.opened != spaFloodTries {
				t.Errorf("%d of %d SPA opens under the flood of a key id of now, want all", r.opened, spaFloodTries)
			}
			if p["refused_decrypt"] == 0 {
				t.Errorf("the daemon refused no packet for failing authentication: the flood did not reach it (%v)", p)
			}

			// One source, at full rate: stopped by its rate bound.
			one := cfg
			one.Sources, one.Duration = 1, singleFlood
			start := time.Now()
			res, err := syngen.Run(context.Background(), e.pair.Client, one)
			elapsed := time.Since(start)
			if err != nil {
				t.Fatalf("one-source flood: %v", err)
			}
			c3 := spaRuleCounters(t, e)
			queued, over := c3.Queue-c2.Queue, c3.Rate-c2.Rate
			bound := uint64(nft.SPABurst + nft.SPARate*(int(elapsed/time.Second)+1))
			t.Logf("%s: one-source flood: %d datagrams (%d refused by the device) in %v, %.0f/s; SPA chain: %d queued (bound %d), %d over the rate",
				fam.name, res.Sent, res.Dropped, elapsed.Round(time.Millisecond), res.Rate(), queued, bound, over)
			if queued > bound {
				t.Errorf("one source: %d queued, want at most %d (burst %d + %d/s)", queued, bound, nft.SPABurst, nft.SPARate)
			}
			if res.Sent == 0 || over+queued > res.Sent || over < res.Sent*99/100 {
				t.Errorf("one source: %d over the rate and %d queued of %d sent: want nearly all over the rate", over, queued, res.Sent)
			}
			select {
			case <-d.done:
				t.Fatalf("the daemon died under the floods:\n%s", d.stderr)
			default:
			}
			if code := d.stop(syscall.SIGTERM); code != 0 {
				t.Errorf("exit status after the floods = %d", code)
			}
		})
	}
}

// spaUnderFlood runs the flood of cfg in the client namespace through the
// client's tries.
func spaUnderFlood(t *testing.T, e *env, fam filterFam, cfg syngen.Config) (spaTry, syngen.Result) {
	t.Helper()
	stop := udpFloodRun(t, e.pair.Client, cfg)
	time.Sleep(500 * time.Millisecond)
	r := spaTries(t, e, fam)
	return r, stop()
}

// log logs the tries.
func (r spaTry) log(t *testing.T, fam string) {
	t.Helper()
	t.Logf("%s: %d/%d SPA opens confirmed by a connect, %d at the first packet; close packets sent again: %d; from the first copy to the connect: %v",
		fam, r.opened, spaFloodTries, r.first, r.closeResent, r.waits)
}

// udpFloodRun runs the generator with c (UDP) from namespace ns at its full
// rate in the background, until the returned function is called or
// c.Duration (the generator's cap when 0) ends; the function stops it and
// returns what was sent.
func udpFloodRun(t *testing.T, ns string, c syngen.Config) (stop func() syngen.Result) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var (
		res  syngen.Result
		err  error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		res, err = syngen.Run(ctx, ns, c)
	}()
	return func() syngen.Result {
		cancel()
		<-done
		if err != nil {
			t.Fatalf("UDP flood: %v", err)
		}
		return res
	}
}

// spaTry is what spaTries saw.
type spaTry struct {
	opened, first int             // opened, and of them at the first packet
	waits         []time.Duration // first copy of the packet that opened until the connect
	closeResent   int             // close packets sent again
}

// spaTries makes spaFloodTries SPA opens from the client's own address.
// Each sends an open packet (spaCopies copies) and connects to the guarded
// port within a second; when that fails it sends a new packet once, as a
// user would; then it sends a close packet (again, up to twice, while the
// port stays open) and waits until the port is closed. The waits are from
// the first copy to the completed connect (the copies' 10 ms and sending
// through a namespace switch included; floodbench measures SPA-to-open
// finely). Tries are paced so that the client's own packets stay below its
// rate bound.
func spaTries(t *testing.T, e *env, fam filterFam) spaTry {
	t.Helper()
	var r spaTry
	pace := time.Duration(2*spaCopies) * time.Second / nft.SPARate
	next := time.Now()
	open := func() bool {
		return e.connectsWithin(fam.client, fam.server, guardPort, time.Now())
	}
	for i := range spaFloodTries {
		time.Sleep(time.Until(next))
		next = time.Now().Add(pace)
		for attempt := 1; attempt <= 2; attempt++ {
			sent := sendSPA(t, e, fam, spa.Open)
			if e.connectsWithin(fam.client, fam.server, guardPort, sent.Add(time.Second)) {
				r.opened++
				if attempt == 1 {
					r.first++
				}
				r.waits = append(r.waits, time.Since(sent).Round(10*time.Microsecond))
				break
			}
			t.Logf("try %d: not open within 1 s of open packet %d", i, attempt)
		}
		closed := false
		for attempt := 1; attempt <= 3 && !closed; attempt++ {
			if attempt > 1 {
				r.closeResent++
				t.Logf("try %d: still open 1 s after close packet %d", i, attempt-1)
			}
			sendSPA(t, e, fam, spa.Close)
			closed = eventually(time.Second, func() bool { return !open() })
		}
		if !closed {
			t.Fatalf("try %d: the guarded port still open after 3 close packets", i)
		}
	}
	return r
}

// sendSPA seals one packet of action a and sends it spaCopies times, 5 ms
// apart, from the client's own address; it returns when the first left.
func sendSPA(t *testing.T, e *env, fam filterFam, a spa.Action) time.Time {
	t.Helper()
	pkt := spaSeal(t, openSecret, &spa.Message{Time: time.Now(), Action: a})
	first := time.Now()
	for i := range spaCopies {
		if i > 0 {
			time.Sleep(5 * time.Millisecond)
		}
		sendUDP(t, e.pair.Client, fam.client, fam.server, spaPort, pkt)
	}
	return first
}

// connectsWithin tries to connect from src to dst:port, each attempt given
// 200 ms, until one succeeds or deadline passes (one attempt at least).
func (e *env) connectsWithin(src, dst netip.Addr, port int, deadline time.Time) bool {
	for {
		if c, err := e.dial(src, dst, port, 200*time.Millisecond); err == nil {
			c.Close()
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
	}
}
