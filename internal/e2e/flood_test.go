package e2e

import (
	"context"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/syngen"
)

// flood sends SYNs with an MSS option from spoofed sources of the test
// network to the server at full rate, in the background, until the returned
// function is called (or count packets were sent); it returns what was sent.
func (e *env) flood(t *testing.T, sources int, count uint64, d time.Duration) (wait func() syngen.Result) {
	t.Helper()
	if err := syngen.AddSpoofRoutes(e.pair.Server, netns.ClientIP4, netns.ClientIP6); err != nil {
		t.Fatalf("spoof routes: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	var (
		res  syngen.Result
		err  error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		res, err = syngen.Run(ctx, e.pair.Client, syngen.Config{
			Dst: netns.ServerIP4, DstPorts: syngen.Ports{First: 10000, Last: 60000},
			MSS: 1460, Sources: sources, Count: count, Duration: d,
		})
	}()
	var once sync.Once
	return func() syngen.Result {
		once.Do(func() {
			<-done
			cancel()
			if err != nil {
				t.Fatalf("flood: %v", err)
			}
			t.Logf("flood: %d SYNs from %d sources in %v", res.Sent, sources, res.Elapsed.Round(time.Millisecond))
		})
		return res
	}
}

// TestFloodNeverOpens: a flood from spoofed sources that overflows a
// 100-packet queue never lets a client that did not knock reach the guarded
// port; the daemon keeps running; a client that knocks afterwards gets in.
//
// It runs with --queue-all, so that every SYN of the flood goes to the
// queue and overflows it (TestFilterFlood floods the kernel filter).
func TestFloodNeverOpens(t *testing.T) {
	e := newEnv(t)
	d := e.start("-m", "100", "--queue-all")
	wait := e.flood(t, 100_000, 0, 4*time.Second)
	attempts, successes := 0, 0
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		attempts++
		if c, err := e.dial(strangerIP4, netns.ServerIP4, guardPort, 200*time.Millisecond); err == nil {
			successes++
			c.Close()
		}
	}
	wait()
	t.Logf("client that never knocked, during the flood: %d connect attempts, %d successes", attempts, successes)
	if successes != 0 {
		t.Errorf("%d of %d connects reached the guarded port without a knock", successes, attempts)
	}
	arrived, seen := e.knockCounter(t), e.queueSeen(t)
	t.Logf("SYNs that reached the knock rule: %d; queued to the daemon: %d; passed unseen (queue full, fail-open): %d",
		arrived, seen, arrived-seen)
	select {
	case <-d.done:
		t.Fatalf("daemon died under the flood:\n%s", d.stderr)
	default:
	}
	open, _ := e.sequences()
	e.knock(netip.Addr{}, netns.ServerIP4, open)
	if !e.reachable(netip.Addr{}, netns.ServerIP4, guardPort) {
		t.Fatalf("a client that knocked after the flood did not get in")
	}
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status after the flood = %d", code)
	}
}

// TestMillionSources: a million spoofed sources knock; the tracker never
// holds more than --max-sources, and a real client still gets in. With
// --queue-all every source reaches the tracker (the kernel filter would
// keep almost all of them in the kernel: TestFilterFlood).
func TestMillionSources(t *testing.T) {
	const maxSources = 1000
	e := newEnv(t)
	d := e.start("--max-sources", strconv.Itoa(maxSources), "--queue-all")
	res := e.flood(t, 1_000_000, 1_000_000, 30*time.Second)()
	if res.Sent < 1_000_000 {
		t.Logf("sent %d SYNs only (the 30 s cap)", res.Sent)
	}
	open, _ := e.sequences()
	e.knock(netip.Addr{}, netns.ServerIP4, open)
	if !e.reachable(netip.Addr{}, netns.ServerIP4, guardPort) {
		t.Fatalf("a real client did not get in after a million spoofed sources")
	}
	d.cmd.Process.Signal(syscall.SIGUSR2)
	if !d.waitLog(`msg="knocking sources"`, 10*time.Second) {
		t.Fatalf("no knocking-sources count after SIGUSR2")
	}
	m := regexp.MustCompile(`msg="knocking sources" count=(\d+)`).FindStringSubmatch(d.stderr.String())
	n, _ := strconv.Atoi(m[1])
	t.Logf("sources tracked after the flood: %d (--max-sources %d)", n, maxSources)
	if n > maxSources || n == 0 {
		t.Errorf("tracker holds %d sources, want 1..%d", n, maxSources)
	}
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status = %d", code)
	}
}

// TestFilterFlood: with the kernel filter (the default), a flood from
// 100,000 spoofed sources to random ports almost never reaches the daemon:
// only sources that hit a first port are queued. A client that knocks
// during the flood gets in, and the tracker holds few sources.
func TestFilterFlood(t *testing.T) {
	e := newEnv(t)
	d := e.start()
	wait := e.flood(t, 100_000, 0, 4*time.Second)
	time.Sleep(time.Second)
	open, _ := e.sequences()
	e.knock(netip.Addr{}, netns.ServerIP4, open)
	opened := e.reachable(netip.Addr{}, netns.ServerIP4, guardPort)
	res := wait()
	queued := e.queueSeen(t)
	t.Logf("flood of %d SYNs: %d queued to the daemon (%.4f%%); the knocking client got in: %v",
		res.Sent, queued, 100*float64(queued)/float64(max(res.Sent, 1)), opened)
	if !opened {
		t.Errorf("a client that knocked during the flood did not get in")
	}
	// Of 50,001 ports in the flood's range at most 4 are first ports now
	// (2 around a rotation): a source is queued only from such a hit on.
	// Far below a hundredth of the flood reaches the daemon.
	if uint64(queued) > res.Sent/100 {
		t.Errorf("%d of %d flood SYNs were queued: the kernel filter does not filter", queued, res.Sent)
	}
	// The tracker admits a source only from a first port on: each source
	// it holds had a SYN queued.
	d.cmd.Process.Signal(syscall.SIGUSR2)
	if !d.waitLog(`msg="knocking sources"`, 10*time.Second) {
		t.Fatalf("no knocking-sources count after SIGUSR2")
	}
	m := regexp.MustCompile(`msg="knocking sources" count=(\d+)`).FindStringSubmatch(d.stderr.String())
	tracked, _ := strconv.ParseInt(m[1], 10, 64)
	t.Logf("sources tracked after the flood: %d", tracked)
	if tracked > queued {
		t.Errorf("the tracker holds %d sources, more than the %d SYNs queued", tracked, queued)
	}
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status = %d", code)
	}
}

// knockCounter returns the packets counted by the queue rules (chain
// knocks): every SYN of the range with --queue-all, the SYNs of knocking
// sources with the kernel filter.
func (e *env) knockCounter(t *testing.T) int64 {
	t.Helper()
	out, err := netns.Command(e.pair.Server, "nft", "list", "chain", "inet", "nfqknock", "knocks").Output()
	ms := regexp.MustCompile(`counter packets (\d+) .*nfqknockd knock`).FindAllSubmatch(out, -1)
	if err != nil || ms == nil {
		t.Fatalf("queue rule counters: %v: %s", err, out)
	}
	var sum int64
	for _, m := range ms {
		n, _ := strconv.ParseInt(string(m[1]), 10, 64)
		sum += n
	}
	return sum
}

// queueSeen returns the id sequence of queue 100: how many packets the
// kernel handed to the daemon's queue.
func (e *env) queueSeen(t *testing.T) int64 {
	t.Helper()
	out, err := netns.Command(e.pair.Server, "cat", "/proc/net/netfilter/nfnetlink_queue").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 8 && f[0] == "100" {
			n, _ := strconv.ParseInt(f[7], 10, 64)
			return n
		}
	}
	t.Fatalf("queue 100 not in nfnetlink_queue: %v: %s", err, out)
	return 0
}
