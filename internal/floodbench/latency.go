package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

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

// startConnect opens a non-blocking TCP socket in the calling thread's
// namespace and starts a connect to ap: the SYN leaves before it returns.
func startConnect(ap netip.AddrPort) (int, error) {
	fam, sa := sockaddr(ap)
	fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Connect(fd, sa); err != nil && !errors.Is(err, unix.EINPROGRESS) {
		unix.Close(fd)
		return -1, fmt.Errorf("connect %v: %w", ap, err)
	}
	return fd, nil
}

// knock sends one SYN (an abandoned connect) to each port in order and
// returns the time right after the last one left.
func knock(dst netip.Addr, ports []uint16) (time.Time, error) {
	fds := make([]int, 0, len(ports))
	defer func() {
		for _, fd := range fds {
			unix.Close(fd) // in SYN_SENT: closes without sending anything
		}
	}()
	for _, p := range ports {
		fd, err := startConnect(netip.AddrPortFrom(dst, p))
		if err != nil {
			return time.Time{}, err
		}
		fds = append(fds, fd)
	}
	return time.Now(), nil
}

// firstAccept starts a new connect to ap every interval until one completes
// (its SYN-ACK arrived: the guard let a SYN through) or max passes, and
// returns when that happened. SYNs that the guard drops are never
// retransmitted: their sockets are closed at the end.
func firstAccept(ap netip.AddrPort, interval, max time.Duration) (time.Time, bool, error) {
	var pfds []unix.PollFd
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	deadline := time.Now().Add(max)
	next := time.Now()
	for {
		now := time.Now()
		if now.After(deadline) {
			return time.Time{}, false, nil
		}
		if !now.Before(next) {
			fd, err := startConnect(ap)
			if err != nil {
				return time.Time{}, false, err
			}
			fds = append(fds, fd)
			pfds = append(pfds, unix.PollFd{Fd: int32(fd), Events: unix.POLLOUT})
			next = next.Add(interval)
		}
		ts := unix.NsecToTimespec(max64(int64(time.Until(next)), 0))
		n, err := unix.Ppoll(pfds, &ts, nil)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return time.Time{}, false, fmt.Errorf("ppoll: %w", err)
		}
		if n <= 0 {
			continue
		}
		at := time.Now()
		for i := range pfds {
			if pfds[i].Revents == 0 {
				continue
			}
			soerr, err := unix.GetsockoptInt(int(pfds[i].Fd), unix.SOL_SOCKET, unix.SO_ERROR)
			if err == nil && soerr == 0 && pfds[i].Revents&unix.POLLOUT != 0 {
				return at, true, nil
			}
			// Refused or failed: stop watching it (ppoll skips negative fds).
			pfds[i].Fd = -1
			pfds[i].Revents = 0
		}
	}
}

// reachable reports whether a connect to ap completes within wait.
func reachable(ap netip.AddrPort, wait time.Duration) (bool, error) {
	_, ok, err := firstAccept(ap, wait+time.Second, wait)
	return ok, err
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// latencyResult is the knock-to-open measurement.
type latencyResult struct {
	Sources    int       `json:"sources"`
	FloodRate  float64   `json:"flood_rate_syn_per_s"` // sent during the tries, mean
	Tries      int       `json:"tries"`
	Opened     int       `json:"opened"`
	MedianMS   *float64  `json:"median_ms"`
	P95MS      *float64  `json:"p95_ms"`
	SamplesMS  []float64 `json:"samples_ms"`
	CloseRetry int       `json:"close_retries"`
	Note       string    `json:"note,omitempty"`
}

// flooder starts a flood and returns a function that stops it and returns
// the rate it sent at.
type flooder func() (stop func() (float64, error))

// measureLatency runs tries knock-open-close rounds from the calling
// thread's namespace (the client's, at its real address) against dst:guard.
// Each try: check that the guarded port is closed (without flood, so the
// close knocks are seen), start the flood, wait warm, knock the open
// sequence and time the first accepted connect, stop the flood, knock the
// close sequence. tlog, when not nil, logs each try.
func measureLatency(ctx context.Context, dst netip.Addr, guard uint16, open, close []uint16, tries int, warm time.Duration,
	flood flooder, tlog func(string, ...any)) (r latencyResult, err error) {
	r.Tries = tries
	gp := netip.AddrPortFrom(dst, guard)
	var rates float64
	defer func() {
		if r.Opened > 0 {
			s := slices.Clone(r.SamplesMS)
			slices.Sort(s)
			med, p95 := quantile(s, 0.5), quantile(s, 0.95)
			r.MedianMS, r.P95MS = &med, &p95
		}
		if tries > 0 {
			r.FloodRate = rates / float64(tries)
		}
	}()
	for i := 0; i < tries; i++ {
		if err := ctx.Err(); err != nil {
			return r, fmt.Errorf("knock-to-open interrupted: %w", err)
		}
		for attempt := 0; ; attempt++ {
			ok, err := reachable(gp, 150*time.Millisecond)
			if err != nil {
				return r, err
			}
			if !ok {
				break
			}
			if attempt == 3 {
				return r, fmt.Errorf("try %d: guarded port %v still open after %d close sequences without flood", i, gp, attempt)
			}
			r.CloseRetry++
			if _, err := knock(dst, close); err != nil {
				return r, err
			}
			time.Sleep(50 * time.Millisecond)
		}
		stop := flood()
		time.Sleep(warm)
		last, err := knock(dst, open)
		var at time.Time
		var ok bool
		if err == nil {
			at, ok, err = firstAccept(gp, 200*time.Microsecond, time.Second)
		}
		rate, ferr := stop()
		rates += rate
		if err == nil {
			err = ferr
		}
		if err != nil {
			return r, err
		}
		if ok {
			r.Opened++
			r.SamplesMS = append(r.SamplesMS, float64(at.Sub(last).Microseconds())/1000)
		}
		if tlog != nil {
			took := "not opened within 1s"
			if ok {
				took = "opened after " + at.Sub(last).String()
			}
			tlog("try %d: flood %.0f SYN/s, last knock at %s, %s", i, rate, last.Format("15:04:05.000000"), took)
		}
		if _, err := knock(dst, close); err != nil {
			return r, err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return r, nil
}

// quantile returns the q-quantile of sorted s (nearest rank).
func quantile(s []float64, q float64) float64 {
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}
