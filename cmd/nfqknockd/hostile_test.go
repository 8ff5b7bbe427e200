package main

// Hostile cases of issue 20 against the kernel ruleset: a flood that fills
// the kernel filter's knocking sets (case 2), and a non-SYN packet of a new
// connection from a source that never knocked (case 3).

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/syngen"
)

// fillSources is how many spoofed sources fill a knocking set (65,536
// elements) with some to spare.
const fillSources = 70_000

// fillTries is how many legitimate clients knock and must open while the
// set is full.
const fillTries = 20

// TestFullKnockingSet (issue 20, case 2): 70,000 sources, spoofed IPv4
// sources or addresses of one IPv6 /64, send SYNs to a current first port
// and fill knocking4 (knocking6) to its size; a legitimate client then
// knocks and opens, 20 times out of 20, each from an address of its own.
// The fill is sent again before each try, so the set stays full
// throughout: the knocks get to the daemon by the overflow rules alone.
func TestFullKnockingSet(t *testing.T) {
	for _, fam := range []struct {
		name     string
		server   netip.Addr
		src      netip.Addr // the first of fillSources consecutive sources
		client   func(i int) netip.Addr
		knocking string
	}{
		{"ipv4", netns.ServerIP4, netip.Addr{}, func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 200, 0, byte(10 + i)}) }, "knocking4"},
		{"ipv6", netns.ServerIP6, netip.MustParseAddr("fd00:64:0:1::1"), func(i int) netip.Addr {
			return netip.MustParseAddr(fmt.Sprintf("fd00:200::%x", 0x10+i))
		}, "knocking6"},
	} {
		t.Run(fam.name, func(t *testing.T) {
			e := newEnv(t)
			d := e.start()
			if err := syngen.AddSpoofRoutes(e.pair.Server, netns.ClientIP4, netns.ClientIP6); err != nil {
				t.Fatalf("spoof routes: %v", err)
			}
			clients := make([]netip.Addr, fillTries)
			for i := range clients {
				clients[i] = fam.client(i)
			}
			e.addClientAddrs(t, clients...)
			open, _ := e.sequences()
			fill := func() {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				res, err := syngen.Run(ctx, e.pair.Client, syngen.Config{
					Dst: fam.server, DstPorts: syngen.Ports{First: open[0], Last: open[0]},
					MSS: 1460, Src: fam.src, Sources: fillSources, Count: fillSources, Duration: 30 * time.Second,
				})
				if err != nil {
					t.Fatalf("fill: %v", err)
				}
				if res.Sent < fillSources {
					t.Fatalf("fill: sent %d SYNs of %d", res.Sent, fillSources)
				}
				e.queueDrained(t)
			}
			fill()
			if n := len(e.setElements(t, fam.knocking)); n != 65536 {
				t.Fatalf("after %d sources sent SYNs to first port %d, %s holds %d elements, want 65536 (full)",
					fillSources, open[0], fam.knocking, n)
			}
			opened := 0
			for i, src := range clients {
				if i > 0 {
					fill()
				}
				e.knock(src, fam.server, open)
				if e.reachable(src, fam.server, guardPort) {
					opened++
				} else {
					t.Logf("try %d from %s: not opened", i+1, src)
				}
			}
			full := len(e.setElements(t, fam.knocking))
			t.Logf("%s: %d of %d clients opened with %s full (%d elements after the last try); overflow rules queued %d SYNs",
				fam.name, opened, fillTries, fam.knocking, full, e.overflowQueued(t))
			if full != 65536 {
				t.Errorf("%s holds %d elements after the tries, want 65536: the tries did not all run against a full set", fam.knocking, full)
			}
			if opened != fillTries {
				t.Errorf("%d of %d legitimate clients opened while %s was full, want all", opened, fillTries, fam.knocking)
			}
			if code := d.stop(syscall.SIGTERM); code != 0 {
				t.Errorf("exit status = %d", code)
			}
		})
	}
}

// queueDrained waits until queue 100 holds no packet waiting for the
// daemon's verdict (a flood from sources in a knocking set is queued), so
// that a knock sent next finds room in it.
func (e *env) queueDrained(t *testing.T) {
	t.Helper()
	for range 500 {
		out, err := netns.Command(e.pair.Server, "cat", "/proc/net/netfilter/nfnetlink_queue").Output()
		if err != nil {
			t.Fatalf("nfnetlink_queue: %v", err)
		}
		waiting := -1
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) >= 3 && f[0] == "100" {
				waiting, _ = strconv.Atoi(f[2])
			}
		}
		if waiting == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("queue 100 did not drain")
}

// overflowRE finds the counters of the overflow rules of chain knocks.
var overflowRE = regexp.MustCompile(`@overflow limit rate [^\n]* counter packets (\d+)`)

// overflowQueued returns the SYNs the overflow rules queued (0 where there
// are none).
func (e *env) overflowQueued(t *testing.T) int {
	t.Helper()
	out, err := e.nft("list", "chain", "inet", "nfqknock", "knocks")
	if err != nil {
		t.Fatalf("nft list chain knocks: %v: %s", err, out)
	}
	ms := overflowRE.FindAllStringSubmatch(out, -1)
	sum := 0
	for _, m := range ms {
		n, _ := strconv.Atoi(m[1])
		sum += n
	}
	return sum
}
