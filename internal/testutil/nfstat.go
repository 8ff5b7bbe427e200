package testutil

// What the kernel counts, as tests and benchmarks read it: the NFQUEUE
// instances of /proc/net/netfilter/nfnetlink_queue, and the rule counters
// of the daemon's chain spa in `nft list chain inet nfqknock spa`.

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// QueueStat is one line of /proc/net/netfilter/nfnetlink_queue.
type QueueStat struct {
	Num, PortID                        uint32
	Total, Dropped, UserDropped, IDSeq uint64
}

// ParseQueues parses nfnetlink_queue: queue_num peer_portid queue_total
// copy_mode copy_range queue_dropped user_dropped id_sequence 1.
func ParseQueues(b []byte) ([]QueueStat, error) {
	var qs []QueueStat
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 8 {
			return nil, fmt.Errorf("nfnetlink_queue line %q: want 9 fields", line)
		}
		var v [8]uint64
		for i := 0; i < 8; i++ {
			n, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("nfnetlink_queue line %q: field %d: %w", line, i+1, err)
			}
			v[i] = n
		}
		qs = append(qs, QueueStat{Num: uint32(v[0]), PortID: uint32(v[1]), Total: v[2],
			Dropped: v[5], UserDropped: v[6], IDSeq: v[7]})
	}
	return qs, nil
}

// SPACounters are the packet counters of the daemon's chain spa: its key
// id rule, its two rate rules (summed), and its queue rule.
type SPACounters struct{ Key, Rate, Queue uint64 }

var spaRuleRE = regexp.MustCompile(`counter packets (\d+) bytes \d+ (.*)`)

// ParseSPACounters parses `nft list chain inet nfqknock spa`: the rules
// are told apart by their comments (nft.CommentSPAKey, CommentSPARate).
func ParseSPACounters(out string) (SPACounters, error) {
	var c SPACounters
	m := spaRuleRE.FindAllStringSubmatch(out, -1)
	if len(m) != 4 {
		return c, fmt.Errorf("chain spa: want 4 counters, got %d in:\n%s", len(m), out)
	}
	for _, s := range m {
		n, err := strconv.ParseUint(s[1], 10, 64)
		if err != nil {
			return c, fmt.Errorf("chain spa: %w", err)
		}
		switch {
		case strings.Contains(s[2], "not a key id"):
			c.Key += n
		case strings.Contains(s[2], "over the rate"):
			c.Rate += n
		default:
			c.Queue += n
		}
	}
	return c, nil
}
