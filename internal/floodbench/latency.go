package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/nft"
	"golang.org/x/sys/unix"
)

// sequences runs `nfqknockd -s` with the bench's secrets and range.
func sequences(bin string, args []string) (open, close []uint16, err error) {
	out, err := exec.Command(bin, append([]string{"-s"}, args...)...).Output()
	if err != nil {
		return nil, nil, fmt.Errorf("%s -s: %w", bin, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, list, _ := strings.Cut(line, ":")
		var ports []uint16
		for _, f := range strings.Fields(list) {
			n, err := strconv.ParseUint(f, 10, 16)
			if err != nil || n == 0 {
				return nil, nil, fmt.Errorf("%s -s printed %q", bin, line)
			}
			ports = append(ports, uint16(n))
		}
		switch name {
		case "OPEN":
			open = ports
		case "CLOSE":
			close = ports
		}
	}
	if len(open) == 0 || len(close) == 0 {
		return nil, nil, fmt.Errorf("%s -s printed %q", bin, out)
	}
	return open, close, nil
}

// sockaddr returns the socket family and address of ap.
func sockaddr(ap netip.AddrPort) (int, unix.Sockaddr) {
	if ap.Addr().Is4() {
		return unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return unix.AF_INET6, &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

// knock sends one SYN (an abandoned connect) to each port in order, gap
// apart, and returns when the last one was sent (right before its
// connect(2)).
func knock(dst netip.Addr, ports []uint16, gap time.Duration) (time.Time, error) {
	fds := make([]int, 0, len(ports))
	defer func() {
		for _, fd := range fds {
			unix.Close(fd) // in SYN_SENT or reset: closes without sending anything
		}
	}()
	var last time.Time
	for i, p := range ports {
		if i > 0 && gap > 0 {
			time.Sleep(gap)
		}
		ap := netip.AddrPortFrom(dst, p)
		fam, sa := sockaddr(ap)
		fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return time.Time{}, fmt.Errorf("socket: %w", err)
		}
		fds = append(fds, fd)
		last = time.Now()
		if err := unix.Connect(fd, sa); err != nil && !errors.Is(err, unix.EINPROGRESS) {
			return time.Time{}, fmt.Errorf("connect %v: %w", ap, err)
		}
	}
	return last, nil
}

// errRefused is a connect answered with a reset.
var errRefused = errors.New("connection refused")

// connectOnce connects to ap from the calling thread's namespace and
// returns how long the handshake took, from connect(2) until the SYN-ACK
// completed it; false when nothing came within wait (the SYN was dropped:
// it is not retransmitted, the socket is closed). The socket is closed with
// a reset (SO_LINGER 0): no TIME_WAIT piles up over thousands of connects.
func connectOnce(ap netip.AddrPort, wait time.Duration) (time.Duration, bool, error) {
	fam, sa := sockaddr(ap)
	fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, false, fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	t0 := time.Now()
	deadline := t0.Add(wait)
	if err := unix.Connect(fd, sa); err != nil && !errors.Is(err, unix.EINPROGRESS) {
		return 0, false, fmt.Errorf("connect %v: %w", ap, err)
	}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return 0, false, nil
		}
		ts := unix.NsecToTimespec(int64(left))
		n, err := unix.Ppoll(pfd, &ts, nil)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return 0, false, fmt.Errorf("ppoll: %w", err)
		}
		if n <= 0 {
			continue
		}
		took := time.Since(t0)
		soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return 0, false, fmt.Errorf("SO_ERROR: %w", err)
		}
		if soerr != 0 {
			return 0, false, fmt.Errorf("connect %v: %w (%v)", ap, errRefused, unix.Errno(soerr))
		}
		return took, true, nil
	}
}

// connectTimes makes n connects to ap one after another (the next starts
// interval after the previous one started, or at once when interval is 0)
// and returns their handshake times in microseconds. Every one must
// complete within a second.
func connectTimes(ctx context.Context, ap netip.AddrPort, n int, interval time.Duration) ([]float64, error) {
	out := make([]float64, 0, n)
	next := time.Now()
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if interval > 0 {
			time.Sleep(time.Until(next))
			next = next.Add(interval)
		}
		took, ok, err := connectOnce(ap, time.Second)
		if err != nil {
			return out, err
		}
		if !ok {
			return out, fmt.Errorf("connect %d to %v: no answer within 1s", i, ap)
		}
		out = append(out, float64(took.Nanoseconds())/1000)
	}
	return out, nil
}

// latencyResult is the knock-to-open measurement of one flood.
type latencyResult struct {
	Mode      string  `json:"mode"` // "filter" or "queue-all"
	Sources   int     `json:"sources"`
	Ports     string  `json:"flood_ports"`
	Random    bool    `json:"random_ports"`
	FloodRate float64 `json:"flood_rate_syn_per_s"` // sent during the tries, mean
	// Continuous: one flood ran through all the tries (the close knocks
	// too); else a flood was started for each try, warm before the
	// knocks, and stopped before the close knocks.
	Continuous bool    `json:"continuous_flood"`
	GapMS      float64 `json:"knock_gap_ms"`
	Tries      int     `json:"tries"`
	Opened     int     `json:"opened"`
	// Knock-to-open: from sending the last knock until the daemon's
	// addition of the client to allow4 was announced by nf_tables.
	MedianMS  *float64  `json:"median_ms"`
	P95MS     *float64  `json:"p95_ms"`
	SamplesMS []float64 `json:"samples_ms"`
	// Knock-to-connect: from the last knock until a connect to the
	// guarded port, started as soon as the client was in allow4, completed.
	ConnectMedianMS *float64  `json:"connect_median_ms,omitempty"`
	ConnectP95MS    *float64  `json:"connect_p95_ms,omitempty"`
	ConnectMS       []float64 `json:"connect_samples_ms,omitempty"`
	CloseRetry      int       `json:"close_retries"`
	Note            string    `json:"note,omitempty"`
}

// flooder starts a flood and returns a function that stops it and returns
// the rate it sent at.
type flooder func() (stop func() (float64, error))

// knockPlan is what knockTries does.
type knockPlan struct {
	dst, client netip.Addr // the server's address, the client's own
	guard       uint16
	open, close []uint16
	tries       int
	gap         time.Duration // between two knocks of a sequence
	warm        time.Duration // flood this long before the knocks (perTry)
	// perTry, when not nil, floods during each try only; nil: the caller
	// keeps a flood running through all of them.
	perTry  flooder
	watch   *allowWatch
	allowed func(netip.Addr) (bool, error) // reads the allow sets
	tlog    func(string, ...any)
}

// knockTries runs k.tries knock-open-close rounds from the calling thread's
// namespace (the client's, at its real address). Each try: make sure the
// client is not in allow4 (knock the close sequence again if it is), knock
// the open sequence with k.gap between knocks, wait up to a second for the
// daemon to put the client in allow4 and connect to the guarded port once,
// knock the close sequence. A try opened when both happened within a second.
func knockTries(ctx context.Context, k knockPlan) (r latencyResult, err error) {
	r.Tries, r.GapMS = k.tries, float64(k.gap.Microseconds())/1000
	r.Continuous = k.perTry == nil
	gp := netip.AddrPortFrom(k.dst, k.guard)
	var rates float64
	defer func() {
		if r.Opened > 0 {
			med, p95 := quantiles(r.SamplesMS)
			r.MedianMS, r.P95MS = &med, &p95
			cmed, cp95 := quantiles(r.ConnectMS)
			r.ConnectMedianMS, r.ConnectP95MS = &cmed, &cp95
		}
		if k.perTry != nil && k.tries > 0 {
			r.FloodRate = rates / float64(k.tries)
		}
	}()
	closeKnock := func() error {
		k.watch.drain()
		if _, err := knock(k.dst, k.close, 0); err != nil {
			return err
		}
		k.watch.wait(k.client, false, time.Now().Add(300*time.Millisecond))
		return nil
	}
	for i := 0; i < k.tries; i++ {
		if err := ctx.Err(); err != nil {
			return r, fmt.Errorf("knock-to-open interrupted: %w", err)
		}
		for attempt := 0; ; attempt++ {
			in, err := k.allowed(k.client)
			if err != nil {
				return r, err
			}
			if !in {
				break
			}
			if attempt == 3 {
				return r, fmt.Errorf("try %d: %v still in allow4 after %d close sequences", i, k.client, attempt)
			}
			r.CloseRetry++
			if err := closeKnock(); err != nil {
				return r, err
			}
		}
		var stop func() (float64, error)
		if k.perTry != nil {
			stop = k.perTry()
			time.Sleep(k.warm)
		}
		k.watch.drain()
		last, err := knock(k.dst, k.open, k.gap)
		var at time.Time
		var in, connected bool
		var took time.Duration
		if err == nil {
			if at, in = k.watch.wait(k.client, true, last.Add(time.Second)); in {
				took, connected, err = connectOnce(gp, time.Until(last.Add(time.Second)))
			}
		}
		if stop != nil {
			rate, ferr := stop()
			rates += rate
			if err == nil {
				err = ferr
			}
		}
		if err != nil {
			return r, fmt.Errorf("try %d: %w", i, err)
		}
		if in && connected {
			r.Opened++
			r.SamplesMS = append(r.SamplesMS, ms(at.Sub(last)))
			r.ConnectMS = append(r.ConnectMS, ms(at.Add(took).Sub(last)))
		}
		if k.tlog != nil {
			msg := "not in allow4 within 1s"
			switch {
			case in && connected:
				msg = fmt.Sprintf("in allow4 after %v, connected %v later", at.Sub(last), took)
			case in:
				msg = fmt.Sprintf("in allow4 after %v, but no connect within 1s", at.Sub(last))
			}
			k.tlog("try %d: last knock at %s, %s", i, last.Format("15:04:05.000000"), msg)
		}
		if err := closeKnock(); err != nil {
			return r, err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return r, nil
}

// ms is d in milliseconds, to the microsecond.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// quantiles returns the median and 95th percentile of s (nearest rank).
func quantiles(s []float64) (med, p95 float64) {
	if len(s) == 0 {
		return 0, 0
	}
	c := slices.Clone(s)
	slices.Sort(c)
	return quantile(c, 0.5), quantile(c, 0.95)
}

// quantile returns the q-quantile of sorted s (nearest rank).
func quantile(s []float64, q float64) float64 {
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// knockUnder runs the knock-to-open tries of the client of pair p against
// the daemon running in its server namespace: with a flood per try
// (perTry), or under a flood the caller runs (nil). A listener accepts on
// the guarded port meanwhile.
func knockUnder(ctx context.Context, o *options, p *pair, seqArgs []string, perTry flooder) (latencyResult, error) {
	open, close, err := sequences(o.daemon, seqArgs)
	if err != nil {
		return latencyResult{}, err
	}
	dst, client := o.addrs()
	ln, err := listen(p.server, netip.AddrPortFrom(dst, guardPort))
	if err != nil {
		return latencyResult{}, fmt.Errorf("listen on the guarded port: %w", err)
	}
	defer ln.Close()
	w, err := watchAllow(p.server)
	if err != nil {
		return latencyResult{}, err
	}
	defer w.close()
	allowed, done, err := allowReader(p.server)
	if err != nil {
		return latencyResult{}, err
	}
	defer done()
	var lat latencyResult
	err = netns.Do(p.client, func() error {
		var tlog func(string, ...any)
		if o.verbose {
			tlog = logf
		}
		var err error
		lat, err = knockTries(ctx, knockPlan{dst: dst, client: client, guard: guardPort, open: open, close: close,
			tries: o.tries, gap: o.knockGap, warm: o.warm, perTry: perTry, watch: w, allowed: allowed, tlog: tlog})
		return err
	})
	if w.lost > 0 && lat.Note == "" {
		lat.Note = fmt.Sprintf("%d nf_tables announcements lost", w.lost)
	}
	return lat, err
}

// listen makes a listener on ap in namespace ns that accepts and closes
// every connection.
func listen(ns string, ap netip.AddrPort) (net.Listener, error) {
	var ln net.Listener
	if err := netns.Do(ns, func() (err error) {
		ln, err = net.Listen("tcp", ap.String())
		return err
	}); err != nil {
		return nil, err
	}
	testutil.AcceptAndClose(ln)
	return ln, nil
}

// allowReader returns a function that tells whether a source is in the
// daemon's allow sets in namespace ns (read over netlink), and one that
// releases it.
func allowReader(ns string) (func(netip.Addr) (bool, error), func(), error) {
	fd, err := netns.Open(ns)
	if err != nil {
		return nil, nil, err
	}
	c, err := nft.Dial(fd)
	if err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	read := func(a netip.Addr) (bool, error) {
		elems, err := c.Allowed()
		if err != nil {
			return false, err
		}
		for _, e := range elems {
			if e.Addr.Unmap() == a {
				return true, nil
			}
		}
		return false, nil
	}
	return read, func() { c.Close(); unix.Close(fd) }, nil
}
