// Command soak runs nfqknockd for a long time under random hostile events
// and checks that nothing gets in and nobody is locked out (issue 20). It
// runs as root, in two throw-away network namespaces (server and client,
// joined by veth), and builds nothing itself: it is given the daemon's
// binary (make soak builds both).
//
// The daemon guards one port (an accept-and-close listener) with
// --one-time and a secret file. Every 0.2 to 3 s (--min, --max) one of
// these events happens, drawn from a seeded generator (--seed; the seed is
// printed, so a run can be repeated; the timing of course differs):
//
//   - nft flush ruleset, nft delete table, nft flush table, nft flush set
//     guard (while a daemon runs);
//   - SIGHUP with new secrets (clients then knock the new ones), or with a
//     broken file (refused; the good file is then put back);
//   - SIGQUIT, or SIGKILL, followed by a new daemon;
//   - a flood of SYNs, 2 to 5 s at --flood-rate, to random ports of the
//     knock range, from one spoofed source or from 1,000,000;
//   - an IPv4 or IPv6 client that knocks a one-time open sequence (a nonce
//     never used before in its period), connects to the guarded port, and
//     knocks close;
//   - the same, then a replay of its open sequence from another address,
//     which must not open.
//
// Throughout, a prober tries the guarded port every 5 ms (from 5 IPv4 and
// 5 IPv6 addresses that never knock, each every 50 ms).
//
// At the end it prints its figures and writes them to --json. It exits 1
// when the prober got in where the kernel owns the table (--gen persist or
// owner), when a client's open failed outside the windows in which an
// open may fail (stats.go names them), when RSS or open file descriptors
// grew by more than 10 % from the first to the last tenth of the run (RSS:
// and by more than 1 MiB, see rssNoiseKiB), or
// when a replay opened (the daemon logged msg=open for the replay's
// address; a replay that merely connects, as anyone does once the guard
// set was flushed on the generation none, is reported apart); 2 when it
// could not run.
//
// Usage (as root):
//
//	soak --daemon bin/nfqknockd --duration 10m --json soak.json [--gen owner]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/knock"
)

// guardPort is the port the daemon guards in the server namespace.
const guardPort = 2222

// soak is one run: its options, its world and what it counted.
type soak struct {
	ctx        context.Context
	bin        string
	gen        string
	table      string
	args, env  []string
	log        io.Writer
	allLog     *testutil.SyncBuffer // every daemon's log, as log
	pair       *pair
	secretFile string
	// metricsFile is the daemon's --metrics-file, read for its goroutines
	// and live heap.
	metricsFile string
	floodRate   int
	dst4, dst6  netip.AddrPort
	pool4       *addrPool
	pool6       *addrPool
	nonces      *nonces
	rng         *rand.Rand // the secrets of the reloads
	verbose     bool       // print each event as it ends

	// life serialises what changes the daemon or its table: restarts,
	// reloads, nft changes.
	life    sync.Mutex
	d       *daemon // guarded by life (and dmu for the sampler)
	dmu     sync.Mutex
	secrets sync.RWMutex // held (write) while the secrets change
	params  knock.Params
	reloads int
	floodMu sync.Mutex // one flood at a time

	mu          sync.Mutex
	counts      [numKinds]int
	errs        map[string]int
	nftOutcomes map[string]int
	windows     []window
	attempts    []attempt
	timeline    []eventRec
	samples     []sample
	floodSent   uint64
	fatalErr    error
	cancel      context.CancelFunc
}

func main() {
	os.Exit(run())
}

// run is main, returning the exit status.
func run() int {
	var (
		bin      = flag.String("daemon", "bin/nfqknockd", "the nfqknockd binary")
		dur      = flag.Duration("duration", 10*time.Minute, "how long the events go on")
		seed     = flag.Uint64("seed", 0, "seed of the events (0: from the clock; printed)")
		gen      = flag.String("gen", "persist", "kernel generation the daemon uses: persist (owner and persist), owner (owned table and backup: NFQKNOCKD_TEST_NO_PERSIST=1), none (no ownership, a monitor: NFQKNOCKD_TEST_NO_OWNER=1; prober successes are reported, not failed)")
		minGap   = flag.Duration("min", 200*time.Millisecond, "shortest time between two events")
		maxGap   = flag.Duration("max", 3*time.Second, "longest time between two events")
		rate     = flag.Int("flood-rate", 20000, "SYN/s of each flood")
		weights  = flag.String("weights", "", "event weights over the defaults, KIND=N,... (kinds: see soak.json's events)")
		jsonOut  = flag.String("json", "soak.json", "write the figures to this file (empty: do not)")
		logOut   = flag.String("daemon-log", "bin/soak-daemon.log", "write the daemons' logs to this file (empty: keep them in memory only)")
		evOut    = flag.String("events-log", "bin/soak-events.log", "write the timeline of the events to this file (empty: do not)")
		extraArg = flag.String("daemon-args", "", "more arguments for the daemon, space-separated")
		verbose  = flag.Bool("v", false, "print each event as it ends, with its error")
	)
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "soak: needs root (network namespaces, nftables)")
		return 2
	}
	env, err := genEnv(*gen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	w, err := parseWeights(*weights)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	sched, err := newScheduler(*seed, *minGap, *maxGap, w)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	fmt.Printf("soak: seed %d, %v, generation %s, daemon %s\n", *seed, *dur, *gen, *bin)
	sweepStale()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &soak{
		ctx: ctx, cancel: cancel, bin: *bin, gen: *gen, table: "nfqknock", env: env,
		floodRate: *rate, nonces: newNonces(*seed), rng: rand.New(rand.NewPCG(*seed, 11)),
		errs: map[string]int{}, nftOutcomes: map[string]int{}, verbose: *verbose,
		dst4:  netip.AddrPortFrom(netns.ServerIP4, guardPort),
		dst6:  netip.AddrPortFrom(netns.ServerIP6, guardPort),
		pool4: newAddrPool(netip.MustParseAddr("10.200.0.10"), 190),
		pool6: newAddrPool(netip.MustParseAddr("fd00:200::1:0"), 190),
	}
	var logBuf testutil.SyncBuffer
	s.log, s.allLog = &logBuf, &logBuf
	if *logOut != "" {
		f, err := os.Create(*logOut)
		if err != nil {
			fmt.Fprintln(os.Stderr, "soak: daemon log:", err)
			return 2
		}
		defer f.Close()
		s.log = &testutil.LockedWriter{W: io.MultiWriter(&logBuf, f)}
	}
	s.params = knock.DefaultParams()
	probers := proberAddrs()
	p, err := newPair(append(append(s.pool4.all(), s.pool6.all()...), probers...))
	s.pair = p
	defer p.close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	if err := s.setUp(*extraArg); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	defer os.RemoveAll(s.dir())
	start := time.Now()
	targets := map[netip.Addr]netip.AddrPort{}
	for _, a := range probers {
		targets[a] = s.dst4
		if a.Is6() {
			targets[a] = s.dst6
		}
	}
	prober := testutil.StartProber(p.client, targets, 300*time.Millisecond)
	sampled := make(chan struct{})
	go func() { s.sample(ctx, 2*time.Second); close(sampled) }()
	sets0 := s.setSizes()

	var wg sync.WaitGroup
	end := start.Add(*dur)
	for ctx.Err() == nil {
		e := sched.next()
		if time.Now().Add(e.Delay).After(end) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(e.Delay):
			wg.Go(func() { s.do(e) })
		}
	}
	interrupted := ctx.Err() != nil && s.fatalErr == nil
	wg.Wait()
	stopAt := time.Now()
	prober.Halt()
	cancel()
	<-sampled
	sets1 := s.setSizes()
	s.life.Lock()
	stopErr := s.stopDaemon()
	s.life.Unlock()
	r := s.report(*seed, start, stopAt, prober, sets0, sets1, logBuf.String(), stopErr)
	if interrupted {
		// What ran until the signal is reported all the same (a long run
		// stopped early still tells its figures), then exit 2.
		fmt.Fprintf(os.Stderr, "soak: interrupted after %v: the figures so far\n", stopAt.Sub(start).Round(time.Second))
		r.print(os.Stdout)
		if *jsonOut != "" {
			if err := r.write(*jsonOut); err != nil {
				fmt.Fprintln(os.Stderr, "soak:", err)
			}
		}
		return 2
	}
	r.print(os.Stdout)
	if *jsonOut != "" {
		if err := r.write(*jsonOut); err != nil {
			fmt.Fprintln(os.Stderr, "soak:", err)
			return 2
		}
	}
	if *evOut != "" {
		if err := s.writeTimeline(*evOut); err != nil {
			fmt.Fprintln(os.Stderr, "soak:", err)
			return 2
		}
	}
	if len(r.Failures) > 0 {
		return 1
	}
	return 0
}

// genEnv returns the daemon's environment for a kernel generation.
func genEnv(gen string) ([]string, error) {
	switch gen {
	case "persist":
		return nil, nil
	case "owner":
		return []string{"NFQKNOCKD_TEST_NO_PERSIST=1"}, nil
	case "none":
		return []string{"NFQKNOCKD_TEST_NO_OWNER=1"}, nil
	}
	return nil, fmt.Errorf("--gen %q: want persist, owner or none", gen)
}

// proberAddrs are the prober's sources: never used by a client.
func proberAddrs() []netip.Addr {
	var as []netip.Addr
	for i := range 5 {
		as = append(as, netip.AddrFrom4([4]byte{10, 200, 0, byte(220 + i)}),
			netip.MustParseAddr(fmt.Sprintf("fd00:200::2:%x", i)))
	}
	return as
}

// dir is the directory of the secret file.
func (s *soak) dir() string {
	if s.secretFile == "" {
		return ""
	}
	return s.secretFile[:len(s.secretFile)-len("/secrets")]
}

// setUp writes the secrets, starts the listener and the first daemon.
func (s *soak) setUp(extra string) error {
	dir, err := os.MkdirTemp("", "nfqknockd-soak-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	s.secretFile = dir + "/secrets"
	s.params.OpenSecret, s.params.CloseSecret = fmt.Sprintf("soak-open-0-%x", s.rng.Uint64()), fmt.Sprintf("soak-close-0-%x", s.rng.Uint64())
	if err := writeSecrets(s.secretFile, s.params.OpenSecret, s.params.CloseSecret); err != nil {
		return err
	}
	// A state directory of its own: the default /var/lib/nfqknockd is the
	// host's, shared by every daemon of the table name in any namespace.
	s.metricsFile = dir + "/nfqknockd.prom"
	s.args = []string{"--guard", fmt.Sprint(guardPort), "--secret-file", s.secretFile, "--one-time", "--open-timeout", "5m",
		"--state-dir", dir + "/state", "--metrics-file", s.metricsFile}
	s.args = append(s.args, strings.Fields(extra)...)
	err = netns.Do(s.pair.server, func() error {
		ln, err := net.Listen("tcp", fmt.Sprintf("[::]:%d", guardPort))
		if err != nil {
			return fmt.Errorf("listener: %w", err)
		}
		testutil.AcceptAndClose(ln) // lives as long as the namespace
		return nil
	})
	if err != nil {
		return err
	}
	d, err := startDaemon(s.bin, s.pair.server, s.args, s.env, s.log)
	if err != nil {
		return err
	}
	s.setDaemon(d)
	return nil
}

// setDaemon makes d the daemon of the run.
func (s *soak) setDaemon(d *daemon) {
	s.dmu.Lock()
	s.d = d
	s.dmu.Unlock()
}

// stopDaemon stops the last daemon with SIGTERM (which deletes the table).
func (s *soak) stopDaemon() error {
	if err := s.d.signal(syscall.SIGTERM); err != nil {
		return err
	}
	if err := s.d.wait(10 * time.Second); err != nil {
		s.d.kill()
		return fmt.Errorf("stop: %w", err)
	}
	return nil
}

// sample reads the daemon's resources every interval until ctx ends.
func (s *soak) sample(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.dmu.Lock()
		pid := s.d.pid
		s.dmu.Unlock()
		if r, err := readSample(pid); err == nil {
			readRuntime(s.metricsFile, &r)
			s.mu.Lock()
			s.samples = append(s.samples, r)
			s.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// setSizes reads the sizes of the allow and knocking sets (-1: unreadable).
func (s *soak) setSizes() map[string]int {
	m := map[string]int{}
	for _, name := range []string{"allow4", "allow6", "knocking4", "knocking6"} {
		n, err := setSize(s.pair.server, s.table, name)
		if err != nil {
			n = -1
		}
		m[name] = n
	}
	return m
}

// writeTimeline writes the events, one a line, in the order they ended.
func (s *soak) writeTimeline(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, r := range s.timeline {
		b.WriteString(r.String() + "\n")
	}
	if err := os.WriteFile(name, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("events log: %w", err)
	}
	return nil
}

// addWindow records a window in which a client's open may fail.
func (s *soak) addWindow(from, to time.Time, why string) {
	s.mu.Lock()
	s.windows = append(s.windows, window{From: from, To: to, Why: why})
	s.mu.Unlock()
}

// fatal ends the run early: the daemon could not be started again.
func (s *soak) fatal(err error) {
	s.mu.Lock()
	if s.fatalErr == nil {
		s.fatalErr = err
	}
	s.mu.Unlock()
	s.cancel()
}
