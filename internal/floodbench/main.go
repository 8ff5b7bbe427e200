// Command floodbench measures nfqknockd under SYN floods from spoofed
// sources, in throw-away network namespaces, and prints a table (and writes
// it as JSON). It runs as root and builds nothing itself: it is given the
// daemon's binary.
//
// First the kernel filter, the daemon's default mode (only sources that
// knocked a first port of a valid sequence are queued), in one namespace
// pair:
//
//   - connect latency from the client namespace to an unguarded port (an
//     accept-and-close listener, --unguarded-port) without the daemon, with
//     it and with --queue-all, --connects each, in --rounds interleaved
//     rounds (the daemon started again for each): median, p99, the ratios to
//     without, and how many SYNs reached the queue meanwhile;
//   - connect latency to the guarded port after the client knocked it open
//     (its SYNs go through the queue), one connect every --guarded-interval
//     (below the filter's 250 SYN/s per knocking source);
//   - a flood from --filter-sources sources, then one from a single source,
//     to random ports of --filter-ports at the sender's full rate, each
//     running through --tries knock-to-open tries of a legitimate client
//     that knocks with --knock-gap between knocks. Knock-to-open is from
//     sending its last knock until nf_tables announces the client in allow4
//     (the daemon's change committed; watched on NFNLGRP_NFTABLES, without a
//     connect that would go through the queue and count against the filter's
//     rate limit); then one connect to the guarded port must complete for
//     the try to count as opened ("+connect" is the time until then). The
//     daemon's CPU (utime+stime) over the whole flood per million SYNs sent,
//     the same over its first --flood-only seconds (before the knocks), and
//     its peak RSS (VmHWM) at the end.
//
// Then the queue itself, with --queue-all (every bare SYN of the range
// queued), for each number of sources N in a fresh namespace pair:
//
//   - kernel-only: loads the daemon's --queue-all ruleset shape with the
//     queue rule (chain knocks) replaced by a counter, floods at
//     --flood-rate (default 0: the sender's full rate) and reads the rate
//     the kernel took;
//   - with the daemon: runs nfqknockd --queue-all in the server namespace
//     and floods again; arrivals H come from a counter in a prerouting
//     chain at priority mangle - 20 (before the knock chain), answered from
//     the queue's id sequence in /proc/net/netfilter/nfnetlink_queue minus
//     the drops of the daemon's netlink socket in /proc/net/netlink, leaked
//     = H - answered;
//   - at a fixed 20,000 SYN/s long enough that every source is seen (capped):
//     the daemon's CPU seconds per million SYNs, its peak RSS (VmHWM), and
//     its allocations per packet when the daemon reports them.
//
// Under the heaviest of these floods, a flood started for each try, the
// legitimate client knocks as above (knock-to-open with --queue-all).
//
// The floods come from an IPPROTO_RAW socket (--sender raw, the issue's
// "raw sockets"). One more row floods the largest source count with the
// other sender (AF_PACKET past the qdisc) at its full rate, kernel-only and
// with the daemon, so that what a faster flood does is shown too
// (--other-sender-row=false: not).
//
// The server's replies (RSTs to the spoofed sources) go back into the
// client namespace, where a drop rule before routing ends them: they cost
// the testbed as little as the replies of a real flood cost the host that
// sends them (their reception is the attacker's work, but veth runs it on
// the core that sent them, which is the daemon's when it accepts a SYN).
//
// Last, the targets against this run's figures (printed, never
// asserted).
//
// Everything it makes (namespaces, processes) is removed on every way out,
// including SIGINT and SIGTERM.
//
// Usage (as root):
//
//	floodbench --daemon ./bin/nfqknockd --json bench.json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/syngen"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/nft"
	"golang.org/x/sys/unix"
)

// Fixed parts of the benchmark.
const (
	openSecret  = "floodbench open secret"
	closeSecret = "floodbench close secret"
	knockRange  = "1-65535"
	guardPort   = 22
	queueNum    = 100
	clkTck      = 100 // USER_HZ: /proc/PID/stat ticks per second on Linux
)

// options are the command-line flags.
type options struct {
	daemon      string
	jsonPath    string
	sources     []int
	family      int
	mss         uint
	ports       syngen.Ports
	flood       time.Duration
	fixedRate   int
	fixedMin    time.Duration
	fixedMax    time.Duration
	tries       int
	daemonArgs  []string
	kernelOnly  bool
	gobench     string
	settle      time.Duration
	floodRate   int
	otherRow    bool
	rawIP       bool
	daemonLog   string
	verbose     bool
	warm        time.Duration
	argvSecrets bool

	// The kernel filter's rows (the daemon's default mode).
	connects        int           // connects per latency figure
	rounds          int           // the unguarded connects come in this many rounds of the three modes
	unguarded       uint16        // an unguarded port with a listener
	guardedInterval time.Duration // between two connects to the guarded port
	knockGap        time.Duration // between two knocks of the legitimate client
	filterSources   int           // sources of the filter's random-port flood
	filterPorts     syngen.Ports  // its ports (random)
	floodOnly       time.Duration // flood the filter alone this long before the client knocks
	filterRows      bool          // measure the filter's rows at all
	queueAllRows    bool          // measure the --queue-all rows at all
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("floodbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.daemon, "daemon", "./bin/nfqknockd", "path of the nfqknockd binary")
	fs.StringVar(&o.jsonPath, "json", "bench.json", "write the results as JSON here (empty: don't)")
	srcs := fs.String("sources", "1,1000,100000,1000000", "comma list of source counts")
	fs.IntVar(&o.family, "family", 4, "IP family of the flood: 4 or 6")
	fs.UintVar(&o.mss, "mss", 1460, "MSS option of the flood SYNs (0: bare SYNs)")
	ports := fs.String("ports", "10000-60000", "destination ports of the flood")
	fs.DurationVar(&o.flood, "flood", 4*time.Second, "length of each flood")
	fs.IntVar(&o.fixedRate, "fixed-rate", 20000, "rate of the CPU/RSS flood, SYN/s")
	fs.DurationVar(&o.fixedMin, "fixed-min", 10*time.Second, "shortest fixed-rate flood")
	fs.DurationVar(&o.fixedMax, "fixed-max", 50*time.Second, "longest fixed-rate flood (caps N/rate)")
	fs.IntVar(&o.tries, "tries", 20, "knock-to-open tries under the heaviest flood (0: skip)")
	dargs := fs.String("daemon-args", "", "extra daemon arguments, space separated (e.g. \"--queues 2\")")
	fs.BoolVar(&o.kernelOnly, "kernel-only", false, "measure only the kernel-only rates (no daemon)")
	fs.StringVar(&o.gobench, "gobench", "", "a `go test -bench -benchmem` output file to include in the table and JSON")
	fs.IntVar(&o.floodRate, "flood-rate", 0, "rate of the floods in SYN/s (0: as fast as the sender goes)")
	fs.BoolVar(&o.otherRow, "other-sender-row", true, "also flood the largest source count with the other sender at its full rate (one more row)")
	sender := fs.String("sender", "raw", "how the generator sends: raw (IPPROTO_RAW socket) or packet (AF_PACKET past the qdisc, faster)")
	fs.StringVar(&o.daemonLog, "daemon-log", "", "append the daemons' stderr to this file")
	fs.DurationVar(&o.warm, "warm", 300*time.Millisecond, "flood this long before each knock-to-open try")
	fs.BoolVar(&o.argvSecrets, "argv-secrets", false, "give the daemon its secrets with -o/-c instead of --secret-file")
	fs.BoolVar(&o.verbose, "v", false, "log every knock-to-open try")
	fs.DurationVar(&o.settle, "settle", 500*time.Millisecond, "wait after a flood before reading counters")
	fs.IntVar(&o.connects, "connects", 2000, "connects per connect-latency figure")
	fs.IntVar(&o.rounds, "rounds", 10, "the unguarded connects without the daemon, with it and with --queue-all come in this many interleaved rounds")
	unguarded := fs.Uint("unguarded-port", 8080, "an unguarded port (a listener in the server namespace) for the connect latency")
	fs.DurationVar(&o.guardedInterval, "guarded-interval", 5*time.Millisecond, "start a connect to the guarded port this often (below the kernel filter's 250 SYN/s per knocking source)")
	fs.DurationVar(&o.knockGap, "knock-gap", 100*time.Millisecond, "the legitimate client's gap between two knocks")
	fs.IntVar(&o.filterSources, "filter-sources", 1000000, "sources of the random-port flood against the kernel filter")
	fports := fs.String("filter-ports", "1-65535", "destination ports (drawn at random) of the floods against the kernel filter")
	fs.DurationVar(&o.floodOnly, "flood-only", 3*time.Second, "flood the kernel filter alone this long (its CPU measured apart) before the client knocks")
	fs.BoolVar(&o.filterRows, "filter", true, "measure the kernel filter's rows (connect latency, knocking under random-port floods)")
	fs.BoolVar(&o.queueAllRows, "queue-all-rows", true, "measure the --queue-all rows (the queue under floods)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() != 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, s := range strings.Split(*srcs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 1<<22 {
			return nil, fmt.Errorf("--sources %q: want numbers in 1..%d", *srcs, 1<<22)
		}
		o.sources = append(o.sources, n)
	}
	var err error
	if o.ports, err = parsePorts(*ports); err != nil {
		return nil, fmt.Errorf("--ports %w", err)
	}
	if o.filterPorts, err = parsePorts(*fports); err != nil {
		return nil, fmt.Errorf("--filter-ports %w", err)
	}
	if *unguarded == 0 || *unguarded > 65535 || *unguarded == guardPort {
		return nil, fmt.Errorf("--unguarded-port %d: want 1..65535, not %d", *unguarded, guardPort)
	}
	o.unguarded = uint16(*unguarded)
	if o.connects < 1 || o.rounds < 1 || o.rounds > o.connects {
		return nil, fmt.Errorf("--connects %d --rounds %d: want 1 <= rounds <= connects", o.connects, o.rounds)
	}
	if o.filterSources < 1 || o.filterSources > 1<<22 {
		return nil, fmt.Errorf("--filter-sources %d: want 1..%d", o.filterSources, 1<<22)
	}
	if o.knockGap < 0 || o.guardedInterval < 0 {
		return nil, errors.New("--knock-gap, --guarded-interval: want >= 0")
	}
	if o.family != 4 && o.family != 6 {
		return nil, fmt.Errorf("--family %d: want 4 or 6", o.family)
	}
	if o.mss > 65535 {
		return nil, fmt.Errorf("--mss %d: too large", o.mss)
	}
	if o.flood <= 0 || o.flood > syngen.MaxDuration || o.fixedMax > syngen.MaxDuration || o.fixedMin > o.fixedMax {
		return nil, fmt.Errorf("--flood/--fixed-min/--fixed-max: want 0 < d <= %v and min <= max", syngen.MaxDuration)
	}
	if o.fixedRate <= 0 {
		return nil, fmt.Errorf("--fixed-rate %d: want > 0", o.fixedRate)
	}
	if o.floodRate < 0 {
		return nil, fmt.Errorf("--flood-rate %d: want >= 0", o.floodRate)
	}
	switch *sender {
	case "packet":
	case "raw":
		o.rawIP = true
	default:
		return nil, fmt.Errorf("--sender %q: want packet or raw", *sender)
	}
	o.daemonArgs = strings.Fields(*dargs)
	return o, nil
}

// parsePorts parses FIRST-LAST.
func parsePorts(s string) (syngen.Ports, error) {
	a, b, ok := strings.Cut(s, "-")
	p1, err1 := strconv.ParseUint(a, 10, 16)
	p2, err2 := strconv.ParseUint(b, 10, 16)
	if !ok || err1 != nil || err2 != nil || p1 == 0 || p1 > p2 {
		return syngen.Ports{}, fmt.Errorf("%q: want FIRST-LAST", s)
	}
	return syngen.Ports{First: uint16(p1), Last: uint16(p2)}, nil
}

// row is the result for one source count. Pointers are null (n/a) when
// not measured.
type row struct {
	Sources int `json:"sources"`
	// FloodRate is the rate the floods of this row were sent at, SYN/s; 0:
	// the sender's full rate.
	FloodRate int `json:"flood_rate_syn_per_s"`
	// Sender is the generator's socket: IPPROTO_RAW or AF_PACKET.
	Sender string `json:"sender"`

	KernelOnlyRate  float64 `json:"kernel_only_rate_syn_per_s"`
	KernelOnlySent  uint64  `json:"kernel_only_sent"`
	KernelOnlyCount uint64  `json:"kernel_only_counted"`
	KernelOnlyS     float64 `json:"kernel_only_s"`

	FloodSent      *uint64  `json:"flood_sent,omitempty"`
	FloodS         *float64 `json:"flood_s,omitempty"`
	Arrivals       *uint64  `json:"arrivals_h,omitempty"`
	Answered       *uint64  `json:"answered,omitempty"`
	AnsweredRate   *float64 `json:"answered_rate_syn_per_s,omitempty"`
	AnsweredRatio  *float64 `json:"answered_over_kernel_only,omitempty"`
	Leaked         *int64   `json:"leaked,omitempty"`
	LeakedPct      *float64 `json:"leaked_pct,omitempty"`
	QueueDropped   *uint64  `json:"queue_dropped,omitempty"`
	UserDropped    *uint64  `json:"user_dropped,omitempty"`
	NetlinkDrops   *uint64  `json:"netlink_drops,omitempty"`
	QueuePeak      *uint64  `json:"queue_total_peak,omitempty"`
	DaemonReceived *uint64  `json:"daemon_received,omitempty"` // the daemon's own count at exit (part b)
	FixedRate      int      `json:"fixed_rate_syn_per_s,omitempty"`
	FixedS         *float64 `json:"fixed_s,omitempty"`
	FixedSent      *uint64  `json:"fixed_sent,omitempty"`
	FixedCapped    bool     `json:"fixed_capped,omitempty"`
	CPUPerMillion  *float64 `json:"cpu_s_per_million_syn,omitempty"`
	PeakRSSMiB     *float64 `json:"peak_rss_mib,omitempty"`
	AllocsPerPkt   *float64 `json:"allocs_per_packet"`
	DaemonWarnings []string `json:"daemon_warnings,omitempty"`
}

// report is the whole JSON document.
type report struct {
	Date    string  `json:"date"`
	Machine machine `json:"machine"`
	// Runs is how many runs these figures come from: one (run make bench
	// again for another).
	Runs   int    `json:"runs"`
	Daemon string `json:"daemon,omitempty"`
	// FilterArgs are the daemon's arguments in its default mode (the
	// kernel filter); DaemonArgs those of the flood rows (--queue-all).
	FilterArgs []string       `json:"filter_daemon_args,omitempty"`
	DaemonArgs []string       `json:"daemon_args,omitempty"`
	Family     int            `json:"family"`
	MSS        uint           `json:"mss"`
	Ports      string         `json:"ports"`
	FloodS     float64        `json:"flood_s"`
	FloodRate  int            `json:"flood_rate_cap,omitempty"`
	Sender     string         `json:"sender"`
	GoBench    []goBench      `json:"go_benchmarks,omitempty"`
	Connect    *connectResult `json:"connect_latency,omitempty"`
	Filter     []filterFlood  `json:"filter_floods,omitempty"`
	Rows       []row          `json:"rows"`
	Latency    *latencyResult `json:"knock_to_open,omitempty"` // with --queue-all
	Targets    []target       `json:"targets,omitempty"`
	Notes      []string       `json:"notes,omitempty"`
}

type machine struct {
	CPUs   int    `json:"cpus"`
	Model  string `json:"cpu_model"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "floodbench: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer undo.run()
	rep, err := bench(ctx, o, stderr)
	if rep != nil {
		printTable(stdout, rep)
		if o.jsonPath != "" {
			if werr := writeJSON(o.jsonPath, rep); werr != nil {
				fmt.Fprintf(stderr, "floodbench: %v\n", werr)
				return 1
			}
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "floodbench: %v\n", err)
		return 1
	}
	return 0
}

func writeJSON(path string, rep *report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// logf prints progress to stderr.
var logw io.Writer = os.Stderr

func logf(format string, a ...any) {
	fmt.Fprintf(logw, "floodbench: "+format+"\n", a...)
}

// bench runs everything; the report holds what was measured even on error.
func bench(ctx context.Context, o *options, stderr io.Writer) (*report, error) {
	logw = stderr
	if os.Geteuid() != 0 {
		return nil, errors.New("needs root (network namespaces, raw sockets, nft)")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("needs %s: %w", tool, err)
		}
	}
	netns.SweepStale()
	rep := &report{Date: time.Now().UTC().Format(time.RFC3339), Machine: describeMachine(), Runs: 1,
		Family: o.family, MSS: o.mss, Ports: fmt.Sprintf("%d-%d", o.ports.First, o.ports.Last), FloodS: o.flood.Seconds(),
		FloodRate: o.floodRate, Sender: senderName(o.rawIP)}
	if o.daemonLog != "" {
		f, err := os.OpenFile(o.daemonLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return rep, fmt.Errorf("--daemon-log: %w", err)
		}
		defer f.Close()
		daemonLog = &lockedWriter{w: f}
	}
	if o.gobench != "" {
		gb, err := readGoBench(o.gobench)
		if err != nil {
			return rep, err
		}
		rep.GoBench = gb
	}
	var daemonArgs, filterArgs, seqArgs []string
	if !o.kernelOnly {
		if _, err := os.Stat(o.daemon); err != nil {
			return rep, fmt.Errorf("--daemon: %w (build it first, or use --kernel-only)", err)
		}
		rep.Daemon = o.daemon
		secrets := []string{"-o", openSecret, "-c", closeSecret}
		if !o.argvSecrets {
			path, err := secretFile()
			if err != nil {
				return rep, err
			}
			secrets = []string{"--secret-file", path}
		}
		seqArgs = append([]string{"--range", knockRange}, secrets...)
		filterArgs = append(slices.Clone(seqArgs), "--guard", strconv.Itoa(guardPort))
		filterArgs = append(filterArgs, o.daemonArgs...)
		daemonArgs = append(slices.Clone(filterArgs), "--queue-all")
		rep.FilterArgs, rep.DaemonArgs = filterArgs, daemonArgs
	}
	defer func() { rep.Targets = targets(rep) }()
	if !o.kernelOnly && o.filterRows {
		if err := benchFilter(ctx, o, rep, filterArgs, daemonArgs, seqArgs); err != nil {
			return rep, fmt.Errorf("kernel filter: %w", err)
		}
	}
	if !o.queueAllRows {
		return rep, nil
	}
	heaviest := 0
	for _, n := range o.sources {
		heaviest = max(heaviest, n)
	}
	for _, n := range o.sources {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		r, lat, err := benchSources(ctx, o, flood{n, o.floodRate, o.rawIP}, daemonArgs, seqArgs, n == heaviest)
		rep.Rows = append(rep.Rows, r)
		if lat != nil {
			rep.Latency = lat
		}
		if err != nil {
			return rep, fmt.Errorf("%d sources: %w", n, err)
		}
	}
	if o.otherRow && ctx.Err() == nil {
		other := flood{heaviest, 0, !o.rawIP}
		logf("%d sources, %s sender at its full rate", heaviest, senderName(other.rawIP))
		r, _, err := benchSources(ctx, o, other, daemonArgs, seqArgs, false)
		rep.Rows = append(rep.Rows, r)
		if err != nil {
			return rep, fmt.Errorf("%d sources, %s sender: %w", heaviest, senderName(other.rawIP), err)
		}
	}
	for _, r := range rep.Rows {
		if r.FixedCapped {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%d sources: the fixed-rate flood was capped at %v, so only %d of them were seen",
				r.Sources, o.fixedMax, min(uint64(r.Sources), *r.FixedSent)))
		}
	}
	return rep, nil
}

// secretFile writes the bench's secrets to a 0600 file in a temporary
// directory (removed at the end) and returns its path.
func secretFile() (string, error) {
	dir, err := os.MkdirTemp("", "floodbench-")
	if err != nil {
		return "", fmt.Errorf("secret file: %w", err)
	}
	undo.add(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "secrets")
	body := fmt.Sprintf("open=%s\nclose=%s\n", openSecret, closeSecret)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		return "", fmt.Errorf("secret file: %w", err)
	}
	return path, nil
}

// flood is what the floods of one row are: from n sources, at rate SYN/s
// (0: the sender's full rate), through an IPPROTO_RAW socket or AF_PACKET.
type flood struct {
	n, rate int
	rawIP   bool
}

// senderName names the generator's socket.
func senderName(rawIP bool) string {
	if rawIP {
		return "IPPROTO_RAW"
	}
	return "AF_PACKET"
}

// config is the generator's configuration for f.
func (o *options) config(f flood) syngen.Config {
	dst := netns.ServerIP4
	if o.family == 6 {
		dst = netns.ServerIP6
	}
	return syngen.Config{Dst: dst, DstPorts: o.ports, MSS: uint16(o.mss), Sources: f.n, Duration: o.flood,
		Rate: f.rate, RawIP: f.rawIP}
}

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
	set allow4 { type ipv4_addr; size 65536; flags timeout; }
	set allow6 { type ipv6_addr; size 65536; flags timeout; }
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
		ip saddr @allow4 accept
		ip6 saddr @allow6 accept
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
		fctx, cancel := context.WithCancel(ctx)
		type result struct {
			res syngen.Result
			err error
		}
		ch := make(chan result, 1)
		go func() {
			res, err := syngen.Run(fctx, p.client, cfg)
			ch <- result{res, err}
		}()
		return func() (float64, error) {
			cancel()
			r := <-ch
			return r.res.Rate(), r.err
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

// addrs returns the server's and the client's address of the bench's family.
func (o *options) addrs() (dst, client netip.Addr) {
	if o.family == 6 {
		return netns.ServerIP6, netns.ClientIP6
	}
	return netns.ServerIP4, netns.ClientIP4
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

// warnings returns the daemon's log lines at level WARN or ERROR.
func warnings(log string) []string {
	var w []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			w = append(w, l)
			if len(w) == 10 {
				break
			}
		}
	}
	return w
}

func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		b := make([]byte, 0, len(u.Release))
		for _, c := range u.Release {
			if c == 0 {
				break
			}
			b = append(b, byte(c))
		}
		m.Kernel = string(b)
	}
	return m
}
