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
// Then single-packet authorization (--spa), in a namespace pair of its own:
// nfqknockd --spa PORT (--spa-port) --spa-only, and a legitimate client that opens
// --tries times by SPA from its real address (a packet sealed with package
// spa, sent --spa-copies times 5 ms apart; default once), first without a
// flood (the baseline), then under a flood of random 113-byte payloads
// (version byte 1, a new key id in every packet) to the SPA port from
// --spa-sources spoofed sources at the sender's full rate, then from one
// source. SPA-to-open is from sending the packet until nf_tables announces
// the client in allow4/allow6; a connect to the guarded port must then
// complete for the try to count, and an SPA close packet ends it. For each
// flood: the daemon's CPU (utime+stime) per million flood packets, what the
// SPA chain's rate rules dropped and its queue rule queued (for one source,
// against burst + rate x seconds), the queue's drops and its peak RSS.
//
// Then the table's own cost (--table-cost): in two fresh namespace pairs,
// one with the daemon's table (the daemon loads it and leaves it on
// SIGQUIT, so nothing reads the queue) and one without, in --cost-rounds
// rounds, the kernel-only SYN rate (counted at input) of a flood from
// 100,000 spoofed sources to the unguarded port, and of one to a current
// first port (more sources than a knocking set holds: the knocking, rate
// and flood sets and the spill rules do their work), in both pairs one
// right after the other: with / without per round, the median and the
// spread.
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
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
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

// main runs the bench with the process's arguments and exits with its status.
func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses the command line, runs the bench, prints the table and
// writes the JSON; it returns the exit status.
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
		daemonLog = &testutil.LockedWriter{W: f}
	}
	if o.gobench != "" {
		gb, err := readGoBench(o.gobench)
		if err != nil {
			return rep, err
		}
		rep.GoBench = gb
	}
	var daemonArgs, filterArgs, seqArgs, secrets []string
	if !o.kernelOnly {
		if _, err := os.Stat(o.daemon); err != nil {
			return rep, fmt.Errorf("--daemon: %w (build it first, or use --kernel-only)", err)
		}
		rep.Daemon = o.daemon
		secrets = []string{"-o", openSecret, "-c", closeSecret}
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
	if !o.kernelOnly && o.spa && ctx.Err() == nil {
		s, err := benchSPA(ctx, o, secrets)
		rep.SPA = s
		if err != nil {
			return rep, fmt.Errorf("SPA: %w", err)
		}
	}
	if !o.kernelOnly && o.tableCost && ctx.Err() == nil {
		tc, err := benchTableCost(ctx, o, filterArgs, seqArgs)
		rep.TableCost = tc
		if err != nil {
			return rep, fmt.Errorf("table cost: %w", err)
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
