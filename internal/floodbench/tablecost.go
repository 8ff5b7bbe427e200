package main

// The table's own cost (issue 20): the kernel-only SYN rate with the
// daemon's table loaded, divided by the same without it, for a flood to an
// unguarded port and for a flood at a current first port.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/syngen"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// costSources is how many spoofed sources each flood of the table-cost
// rows cycles: more than a knocking set holds (65,536), so that the flood
// at a first port fills knocking4 and runs through the spill rules too.
const costSources = 100_000

// costCounter counts, in the server namespace, every bare SYN that got
// through prerouting (the daemon's chains among them) to this host: the
// rate the kernel took.
const costCounter = `table inet floodbench_cost {
	chain in {
		type filter hook input priority 1000; policy accept;
		tcp flags & (fin|syn|rst|ack) == syn counter
	}
}
`

// costFlood is one flood of the table-cost rows, measured without and
// with the table in each round.
type costFlood struct {
	Name string `json:"name"`
	Port uint16 `json:"port"`
	// Without and With are the SYNs the kernel took per second of the
	// sender's CPU time, one per round; the Wall ones per second of the
	// flood.
	Without     []float64 `json:"without_syn_per_cpu_s"`
	With        []float64 `json:"with_syn_per_cpu_s"`
	WithoutWall []float64 `json:"without_syn_per_s"`
	WithWall    []float64 `json:"with_syn_per_s"`
	Ratios      []float64 `json:"ratios"` // With[i] / Without[i]
	// Median, Min and Max are of Ratios.
	Median float64 `json:"median_ratio"`
	Min    float64 `json:"min_ratio"`
	Max    float64 `json:"max_ratio"`
}

// tableCost is the table's own cost, from one run of interleaved rounds.
type tableCost struct {
	Sources int     `json:"sources"`
	FloodS  float64 `json:"flood_s"`
	Rounds  int     `json:"rounds"`
	// Tables are the tables the daemon left after SIGQUIT, the "with"
	// pair's (nfqknock on kernels with table persist or without
	// owner; only nfqknock_backup, the guard alone, on owner-only kernels).
	Tables  []string  `json:"tables_with"`
	Unguard costFlood `json:"unguarded_port"`
	First   costFlood `json:"first_port"`
}

// benchTableCost measures the table's own cost in three fresh namespace
// pairs alike but for the daemon's table: the daemon loads it in the first
// two and leaves it there on SIGQUIT (as on a restart; no daemon reads the
// queue then, so the queue rules let the packets pass: bypass); the third
// has none. In each of o.costRounds rounds it takes the kernel-only rate
// (SYNs counted at input, see costCounter, per second of the sender's CPU
// time, see rate) of a flood of costSources spoofed sources to the
// unguarded port (no listener: each SYN gets an RST) in the first pair and
// in the third, then of one to a current first port in the second and in
// the third, one right after the other (which first alternates by round).
// The unguarded-port flood has a table of its own: in the table the
// first-port flood fills, its sources would be knocking or spilled, and
// queued, for 12 s: what a flood at a first port costs, measured in its
// own row.
func benchTableCost(ctx context.Context, o *options, filterArgs, seqArgs []string) (*tableCost, error) {
	var pairs [3]*pair
	for i := range pairs {
		p, err := newPair()
		if err != nil {
			return nil, err
		}
		defer p.close()
		if _, err := p.nft(costCounter, "-f", "-"); err != nil {
			return nil, err
		}
		pairs[i] = p
	}
	without := pairs[2]
	open, _, err := sequences(o.daemon, seqArgs)
	if err != nil {
		return nil, err
	}
	tc := &tableCost{Sources: costSources, FloodS: o.costFlood.Seconds(), Rounds: o.costRounds}
	for _, p := range pairs[:2] {
		if tc.Tables, err = leaveTable(o, p, filterArgs); err != nil {
			return tc, err
		}
	}
	floods := []*costFlood{{Name: "unguarded port", Port: o.unguarded}, {Name: "first port", Port: open[0]}}
	withPair := map[*costFlood]*pair{floods[0]: pairs[0], floods[1]: pairs[1]}
	rate := func(p *pair, port uint16, d time.Duration) (perCPU, perS float64, err error) {
		c := o.config(flood{costSources, 0, o.rawIP})
		c.DstPorts, c.Duration = syngen.Ports{First: port, Last: port}, d
		k0, err := p.chainCounter("floodbench_cost", "in")
		if err != nil {
			return 0, 0, err
		}
		cpu0, err := selfCPU()
		if err != nil {
			return 0, 0, err
		}
		res, err := syngen.Run(ctx, p.client, c)
		if err != nil {
			return 0, 0, err
		}
		cpu1, err := selfCPU()
		if err != nil {
			return 0, 0, err
		}
		time.Sleep(o.settle)
		k1, err := p.chainCounter("floodbench_cost", "in")
		if err != nil {
			return 0, 0, err
		}
		k := float64(k1 - k0)
		return k / max((cpu1-cpu0).Seconds(), 1e-6), k / res.Elapsed.Seconds(), nil
	}
	// Warm-up, unmeasured: neighbours, buffers.
	for _, p := range pairs {
		if _, _, err := rate(p, o.unguarded, 300*time.Millisecond); err != nil {
			return tc, err
		}
	}
	for round := 1; round <= o.costRounds; round++ {
		for _, f := range floods {
			with := withPair[f]
			order := []*pair{with, without}
			if round%2 == 0 {
				order = []*pair{without, with}
			}
			for _, p := range order {
				r, wall, err := rate(p, f.Port, o.costFlood)
				if err != nil {
					return tc, err
				}
				if p == with {
					f.With, f.WithWall = append(f.With, r), append(f.WithWall, wall)
				} else {
					f.Without, f.WithoutWall = append(f.Without, r), append(f.WithoutWall, wall)
				}
			}
			f.Ratios = append(f.Ratios, f.With[round-1]/max(f.Without[round-1], 1))
		}
		logf("table cost, round %d: %s %.0f / %.0f SYN per CPU-s, %s %.0f / %.0f (with / without)", round,
			floods[0].Name, floods[0].With[round-1], floods[0].Without[round-1],
			floods[1].Name, floods[1].With[round-1], floods[1].Without[round-1])
		if err := ctx.Err(); err != nil {
			return tc, err
		}
	}
	for _, f := range floods {
		s := slices.Sorted(slices.Values(f.Ratios))
		f.Median, f.Min, f.Max = quantile(s, 0.5), s[0], s[len(s)-1]
	}
	tc.Unguard, tc.First = *floods[0], *floods[1]
	return tc, nil
}

// leaveTable starts the daemon with args in p's server namespace, sends it
// SIGQUIT (exit leaving the table) and returns the tables of ours left.
func leaveTable(o *options, p *pair, args []string) ([]string, error) {
	d, err := startDaemon(o.daemon, p.server, args)
	if err != nil {
		return nil, err
	}
	_ = d.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		d.kill()
		return nil, fmt.Errorf("daemon still running 5s after SIGQUIT: killed")
	}
	if d.err != nil {
		return nil, fmt.Errorf("daemon exit after SIGQUIT: %w; stderr:\n%s", d.err, testutil.Tail(d.stderr.String(), 20))
	}
	out, err := p.nft("", "list", "tables")
	if err != nil {
		return nil, err
	}
	var tables []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[1] == "inet" && strings.HasPrefix(f[2], "nfqknock") {
			tables = append(tables, f[2])
		}
	}
	if len(tables) == 0 {
		return nil, fmt.Errorf("the daemon left no table after SIGQUIT:\n%s", out)
	}
	return tables, nil
}

// selfCPU returns this process's user and system time.
func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
