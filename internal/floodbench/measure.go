package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// queueStat is one line of /proc/net/netfilter/nfnetlink_queue.
type queueStat = testutil.QueueStat

// readQueues reads the NFQUEUE instances of the network namespace that
// process pid lives in (/proc/PID/net is that namespace's view).
func readQueues(pid int) ([]queueStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/netfilter/nfnetlink_queue", pid))
	if err != nil {
		return nil, fmt.Errorf("read nfnetlink_queue: %w", err)
	}
	return testutil.ParseQueues(b)
}

// netlinkDrops sums the Drops column of /proc/PID/net/netlink over the
// NETLINK_NETFILTER sockets whose port ids are in portids.
func netlinkDrops(pid int, portids map[uint32]bool) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/netlink", pid))
	if err != nil {
		return 0, fmt.Errorf("read /proc/net/netlink: %w", err)
	}
	return parseNetlinkDrops(b, portids)
}

// parseNetlinkDrops parses /proc/net/netlink:
// sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode.
func parseNetlinkDrops(b []byte, portids map[uint32]bool) (uint64, error) {
	const netlinkNetfilter = 12
	var sum uint64
	sc := bufio.NewScanner(bytes.NewReader(b))
	for first := true; sc.Scan(); first = false {
		f := strings.Fields(sc.Text())
		if first || len(f) < 9 {
			continue
		}
		eth, err1 := strconv.Atoi(f[1])
		pid, err2 := strconv.ParseUint(f[2], 10, 32)
		drops, err3 := strconv.ParseUint(f[8], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return 0, fmt.Errorf("/proc/net/netlink line %q: not numbers", sc.Text())
		}
		if eth == netlinkNetfilter && portids[uint32(pid)] {
			sum += drops
		}
	}
	return sum, sc.Err()
}

// cpuTicks returns utime + stime of process pid (all its threads, live and
// dead), in clock ticks.
func cpuTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read stat: %w", err)
	}
	return parseCPUTicks(b)
}

func parseCPUTicks(b []byte) (uint64, error) {
	// The command name may hold spaces and parentheses: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat %q: no ')'", b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the name", len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("stat: utime %q stime %q", f[11], f[12])
	}
	return u + s, nil
}

// peakRSS returns VmHWM of process pid in bytes.
func peakRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read status: %w", err)
	}
	return parseVmHWM(b)
}

func parseVmHWM(b []byte) (uint64, error) {
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("status line %q", line)
			}
			kb, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("status line %q: %w", line, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("status: no VmHWM line")
}

var packetsRE = regexp.MustCompile(`counter packets (\d+) bytes`)

// counterSum sums every "counter packets N" in nft output.
func counterSum(out string) (uint64, error) {
	m := packetsRE.FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		return 0, fmt.Errorf("no counter in:\n%s", out)
	}
	var sum uint64
	for _, s := range m {
		n, err := strconv.ParseUint(s[1], 10, 64)
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

// chainCounter reads the counters of chain in table inet t in p's server namespace.
func (p *pair) chainCounter(t, chain string) (uint64, error) {
	out, err := p.nft("", "list", "chain", "inet", t, chain)
	if err != nil {
		return 0, err
	}
	n, err := counterSum(out)
	if err != nil {
		return 0, fmt.Errorf("chain %s %s: %w", t, chain, err)
	}
	return n, nil
}

// cpuNanos returns the time on CPU of process pid's live threads in
// nanoseconds (/proc/PID/task/*/schedstat, first field): finer than the
// clock ticks of cpuTicks, but threads that ended are not counted.
func cpuNanos(pid int) (uint64, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("read tasks: %w", err)
	}
	var sum uint64
	for _, e := range ents {
		b, err := os.ReadFile(dir + "/" + e.Name() + "/schedstat")
		if err != nil {
			continue // the thread ended
		}
		f := strings.Fields(string(b))
		if len(f) < 1 {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("schedstat %q: %w", b, err)
		}
		sum += n
	}
	return sum, nil
}
