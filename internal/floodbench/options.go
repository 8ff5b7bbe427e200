package main

// The command line: the options, and the floods and addresses they make.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/syngen"
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

	// Single-packet authorization under floods.
	spa        bool   // measure it at all
	spaPort    uint16 // the daemon's --spa port
	spaSources int    // sources of the flood of random payloads
	spaCopies  int    // copies of each SPA packet the client sends

	// The table's own cost.
	tableCost  bool          // measure it at all
	costRounds int           // rounds of without and with the table
	costFlood  time.Duration // each flood of a round
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
	fs.BoolVar(&o.tableCost, "table-cost", true, "measure the table's own cost (kernel-only SYN rates with the daemon's table / without)")
	fs.IntVar(&o.costRounds, "cost-rounds", 10, "rounds of without and with the table for the table's own cost")
	fs.DurationVar(&o.costFlood, "cost-flood", time.Second, "length of each flood of the table's own cost")
	fs.BoolVar(&o.spa, "spa", true, "measure single-packet authorization under floods of random payloads to the SPA port")
	spaPort := fs.Uint("spa-port", 62201, "the daemon's --spa port")
	fs.IntVar(&o.spaSources, "spa-sources", 1000000, "sources of the flood of random payloads to the SPA port (then one source)")
	fs.IntVar(&o.spaCopies, "spa-copies", 1, "copies of each SPA packet the client sends, 5 ms apart (nfqknock sends 3)")
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
	if o.costRounds < 1 || o.costFlood <= 0 || o.costFlood > syngen.MaxDuration {
		return nil, fmt.Errorf("--cost-rounds %d --cost-flood %v: want >= 1 round and 0 < flood <= %v", o.costRounds, o.costFlood, syngen.MaxDuration)
	}
	if o.filterSources < 1 || o.filterSources > 1<<22 {
		return nil, fmt.Errorf("--filter-sources %d: want 1..%d", o.filterSources, 1<<22)
	}
	if *spaPort == 0 || *spaPort > 65535 {
		return nil, fmt.Errorf("--spa-port %d: want 1..65535", *spaPort)
	}
	o.spaPort = uint16(*spaPort)
	if o.spaSources < 1 || o.spaSources > 1<<22 || o.spaCopies < 1 || o.spaCopies > 5 {
		return nil, fmt.Errorf("--spa-sources %d --spa-copies %d: want 1..%d and 1..5", o.spaSources, o.spaCopies, 1<<22)
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

// addrs returns the server's and the client's address of the bench's family.
func (o *options) addrs() (dst, client netip.Addr) {
	if o.family == 6 {
		return netns.ServerIP6, netns.ClientIP6
	}
	return netns.ServerIP4, netns.ClientIP4
}
