package testutil

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
)

// Prober connects from addresses that never knocked to guarded ports,
// every 50 ms from each source, each attempt waiting Limit: through a
// restart or an upgrade no attempt may get in. An attempt that times out
// was dropped; one that connects got in.
type Prober struct {
	Started                   atomic.Int64 // attempts begun
	Attempts, Successes, Errs atomic.Int64 // attempts ended, and how
	FirstErr, FirstIn         atomic.Value // strings: the first error, the first attempt that got in
	stop                      chan struct{}
	once                      sync.Once
	wg                        sync.WaitGroup
}

// StartProber starts probing, from namespace ns, each target (source ->
// destination) every 50 ms, each attempt waiting limit.
func StartProber(ns string, targets map[netip.Addr]netip.AddrPort, limit time.Duration) *Prober {
	p := &Prober{stop: make(chan struct{})}
	p.wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			for src, dst := range targets {
				p.Started.Add(1)
				p.wg.Go(func() { p.attempt(ns, src, dst, limit) })
			}
		}
	})
	return p
}

// attempt connects once from src to dst and counts how it ended.
func (p *Prober) attempt(ns string, src netip.Addr, dst netip.AddrPort, limit time.Duration) {
	err := netns.Do(ns, func() error {
		d := net.Dialer{Timeout: limit, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		c, err := d.Dial("tcp", dst.String())
		if err != nil {
			return err
		}
		return c.Close()
	})
	p.Attempts.Add(1)
	var ne net.Error
	switch {
	case err == nil:
		p.Successes.Add(1)
		p.FirstIn.CompareAndSwap(nil, fmt.Sprintf("%s -> %s at %s", src, dst, time.Now().Format(time.StampMilli)))
	case errors.As(err, &ne) && ne.Timeout():
		// dropped by the guard
	default:
		p.Errs.Add(1)
		p.FirstErr.CompareAndSwap(nil, err.Error())
	}
}

// WaitMore waits until the prober ended n more attempts than now, for at
// most 30 s.
func (p *Prober) WaitMore(t testing.TB, n int64, what string) {
	t.Helper()
	want := p.Attempts.Load() + n
	for deadline := time.Now().Add(30 * time.Second); p.Attempts.Load() < want; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the prober made %d attempts, not %d, %s", p.Attempts.Load(), want, what)
		}
	}
}

// Halt stops the prober and waits for its attempts under way.
func (p *Prober) Halt() {
	p.once.Do(func() { close(p.stop) })
	p.wg.Wait()
}
