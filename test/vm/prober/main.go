// Command prober tries a TCP port at a fixed interval and counts what
// happens: connected (the port answered: for a guarded port from a source
// that never knocked, a breach), refused (RST: nothing listens), timed out
// (the SYN was dropped: the guard holds), other errors. It is the prober of
// `make vm-test` (test/vm), run inside the VMs from a network namespace;
// the "opened client" check is the same program from a source that knocked.
//
//	prober [-every 5ms] [-timeout 300ms] [-out FILE] [-ready FILE] ADDR:PORT
//	prober -once [-timeout 2s] ADDR:PORT     exit 0 if it connects, else 1
//	prober -listen [ADDR]:PORT               accept and close, forever (a cheap
//	                                         guarded service: sshd forks per connection)
//
// It runs until SIGTERM or SIGINT, waits for the attempts in flight, and
// writes key=value lines (to -out, or stdout): tries, ok, refused, timeout,
// other; first_ok_ms and last_ok_ms (Unix milliseconds of the first and the
// last success); first_ok_up, first_refused_up, first_timeout_up and
// last_ok_up, last_refused_up (seconds since boot, from /proc/uptime: for the boot checks);
// ok_at (up to 50 success times, Unix ms). Each attempt is a fresh socket
// with a new source port; attempts overlap when the timeout is longer than
// the interval. Built static (CGO_ENABLED=0) for the guests. It has no test
// files: `go test ./...` only compiles it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

type stats struct {
	mu                                 sync.Mutex
	tries, ok, refused, timeout, other int
	firstOK, lastOK                    int64
	firstOKUp, firstRefUp, firstTOUp   string
	lastOKUp, lastRefUp                string
	okAt                               []int64
	lastErr                            string
}

func uptime() string {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// try makes one connect attempt and records its outcome.
func (s *stats) try(addr string, timeout time.Duration) bool {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(context.Background(), "tcp", addr)
	now := time.Now().UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tries++
	switch {
	case err == nil:
		c.Close()
		s.ok++
		if s.firstOK == 0 {
			s.firstOK = now
			s.firstOKUp = uptime()
		}
		s.lastOK = now
		s.lastOKUp = uptime()
		if len(s.okAt) < 50 {
			s.okAt = append(s.okAt, now)
		}
		return true
	case errors.Is(err, syscall.ECONNREFUSED):
		s.refused++
		if s.firstRefUp == "" {
			s.firstRefUp = uptime()
		}
		s.lastRefUp = uptime()
	case isTimeout(err):
		s.timeout++
		if s.firstTOUp == "" {
			s.firstTOUp = uptime()
		}
	default:
		s.other++
		s.lastErr = err.Error()
	}
	return false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (s *stats) write(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := make([]string, len(s.okAt))
	for i, t := range s.okAt {
		at[i] = fmt.Sprint(t)
	}
	fmt.Fprintf(w, "tries=%d\nok=%d\nrefused=%d\ntimeout=%d\nother=%d\n", s.tries, s.ok, s.refused, s.timeout, s.other)
	fmt.Fprintf(w, "first_ok_ms=%d\nlast_ok_ms=%d\n", s.firstOK, s.lastOK)
	fmt.Fprintf(w, "first_ok_up=%s\nlast_ok_up=%s\nfirst_refused_up=%s\nlast_refused_up=%s\nfirst_timeout_up=%s\n", s.firstOKUp, s.lastOKUp, s.firstRefUp, s.lastRefUp, s.firstTOUp)
	fmt.Fprintf(w, "ok_at=%s\nlast_error=%q\n", strings.Join(at, ","), s.lastErr)
}

func main() {
	every := flag.Duration("every", 5*time.Millisecond, "interval between two attempts")
	timeout := flag.Duration("timeout", 300*time.Millisecond, "each attempt is abandoned after this")
	out := flag.String("out", "", "write the counts to this file (default stdout)")
	once := flag.Bool("once", false, "one attempt: exit 0 if it connects, else 1")
	ready := flag.String("ready", "", "create this file once the first attempt has its answer")
	listen := flag.Bool("listen", false, "accept connections on ADDR:PORT and close them, forever")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: prober [-every D] [-timeout D] [-out FILE] [-once] ADDR:PORT")
		os.Exit(2)
	}
	addr := flag.Arg(0)
	if *listen {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		for {
			c, err := l.Accept()
			if err == nil {
				c.Close()
			}
		}
	}
	s := &stats{}
	if *once {
		if s.try(addr, *timeout) {
			os.Exit(0)
		}
		s.write(os.Stderr)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	tick := time.NewTicker(*every)
	var wg sync.WaitGroup
	n := 0
loop:
	for {
		select {
		case <-sig:
			break loop
		case <-tick.C:
			wg.Add(1)
			first := n == 0 && *ready != ""
			n++
			go func() {
				defer wg.Done()
				s.try(addr, *timeout)
				if first {
					os.WriteFile(*ready, nil, 0o644)
				}
			}()
		}
	}
	tick.Stop()
	wg.Wait()
	w := io.Writer(os.Stdout)
	if *out != "" {
		f, err := os.Create(*out + ".tmp")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		s.write(f)
		f.Close()
		if err := os.Rename(*out+".tmp", *out); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	s.write(w)
}
