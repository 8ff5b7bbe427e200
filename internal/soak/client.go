package main

// The clients: they knock one-time sequences (the daemon runs with
// --one-time), computed here by the knock package with nonces the soak
// never uses twice in a period, from addresses of the client namespace.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/knock"
)

// Client timing: as nfqknock's defaults (a knock is a connect attempt
// abandoned after 50 ms, 10 ms apart), then connect attempts to the
// guarded port of connectTry each, for openLimit after the last knock.
const (
	knockTimeout = 50 * time.Millisecond
	knockGap     = 10 * time.Millisecond
	connectTry   = 300 * time.Millisecond
	openLimit    = 2 * time.Second
)

// addrPool hands out client addresses, one family each, round robin: an
// address comes back to the pool when its client is done.
type addrPool struct{ ch chan netip.Addr }

// newAddrPool returns a pool of n addresses counted up from first.
func newAddrPool(first netip.Addr, n int) *addrPool {
	p := &addrPool{ch: make(chan netip.Addr, n)}
	for a, i := first, 0; i < n; a, i = a.Next(), i+1 {
		p.ch <- a
	}
	return p
}

func (p *addrPool) get() netip.Addr  { return <-p.ch }
func (p *addrPool) put(a netip.Addr) { p.ch <- a }

// all returns the pool's addresses (all of them: call before any get).
func (p *addrPool) all() []netip.Addr {
	var as []netip.Addr
	for range len(p.ch) {
		a := <-p.ch
		as = append(as, a)
		p.ch <- a
	}
	return as
}

// nonces remembers the one-time nonces used per secret and period, so that
// no client is refused as a replay by chance.
type nonces struct {
	mu   sync.Mutex
	rng  *rand.Rand
	used map[string]map[uint32]bool
}

func newNonces(seed uint64) *nonces {
	return &nonces{rng: rand.New(rand.NewPCG(seed, 7)), used: map[string]map[uint32]bool{}}
}

// pick returns a nonce not used yet with secret in period ps.
func (n *nonces) pick(secret string, ps int64) (uint32, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	key := fmt.Sprintf("%d/%s", ps, secret)
	u := n.used[key]
	if u == nil {
		u = map[uint32]bool{}
		n.used[key] = u
	}
	if len(u) >= 1024 {
		return 0, fmt.Errorf("all 1024 one-time nonces of period %d used", ps)
	}
	for {
		j := uint32(n.rng.IntN(1024))
		if !u[j] {
			u[j] = true
			return j, nil
		}
	}
}

// sequence returns the one-time sequence of secret at now with a fresh nonce.
func (n *nonces) sequence(p knock.Params, secret string, now time.Time) ([]uint16, error) {
	ps := p.PeriodStart(now)
	j, err := n.pick(secret, ps)
	if err != nil {
		return nil, err
	}
	return knock.OneTimeSequence(p.Digest, secret, ps, j, p.Range), nil
}

// knockPorts knocks ports at dst from src, in the calling thread's
// namespace, and returns when it sent the last knock, and how many knocks
// got no answer (a RST) within knockTimeout.
func knockPorts(src, dst netip.Addr, ports []uint16) (last time.Time, waits int) {
	d := net.Dialer{Timeout: knockTimeout, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
	for i, p := range ports {
		if i > 0 {
			time.Sleep(knockGap)
		}
		last = time.Now()
		c, err := d.Dial("tcp", netip.AddrPortFrom(dst, p).String())
		var ne net.Error
		switch {
		case err == nil:
			c.Close()
		case errors.As(err, &ne) && ne.Timeout():
			waits++
		}
	}
	return last, waits
}

// connectOnce tries one connect from src to dst, waiting connectTry: true
// when the handshake completed.
func connectOnce(src netip.Addr, dst netip.AddrPort) bool {
	d := net.Dialer{Timeout: connectTry, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
	c, err := d.Dial("tcp", dst.String())
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// connectUntil tries to connect until limit after since; it returns
// whether a connect completed, and when.
func connectUntil(src netip.Addr, dst netip.AddrPort, since time.Time, limit time.Duration) (bool, time.Time) {
	for time.Since(since) < limit {
		if connectOnce(src, dst) {
			return true, time.Now()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false, time.Now()
}

// clientRun is one client's work: knock open, connect, knock close (and
// check that it closed); with replay, then knock the same open sequence
// from another address, which must not open.
type clientRun struct {
	ns         string
	src, other netip.Addr // other: the replay's address (replay only)
	dst        netip.AddrPort
	open       []uint16
	close      []uint16
	replay     bool
}

// run does the client's work in the client namespace.
func (c clientRun) run() (attempt, error) {
	a := attempt{Family: 4, OneTime: c.replay, Src: c.src.String()}
	if c.src.Is6() {
		a.Family = 6
	}
	err := netns.Do(c.ns, func() error {
		a.From = time.Now()
		last, waits := knockPorts(c.src, c.dst.Addr(), c.open)
		a.KnockWaits = waits
		ok, at := connectUntil(c.src, c.dst, last, openLimit)
		a.To = at
		if !ok {
			return nil
		}
		a.Opened, a.Open = true, at.Sub(last)
		knockPorts(c.src, c.dst.Addr(), c.close)
		a.CloseFail = connectOnce(c.src, c.dst)
		if c.replay {
			knockPorts(c.other, c.dst.Addr(), c.open)
			a.Replayed = true
			a.ReplayIn, _ = connectUntil(c.other, c.dst, time.Now(), 3*connectTry)
		}
		return nil
	})
	if err != nil {
		return a, fmt.Errorf("client %s: %w", c.src, err)
	}
	if a.From.IsZero() {
		return a, errors.New("client did not run")
	}
	return a, nil
}
