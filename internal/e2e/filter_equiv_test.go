package e2e

// The differential test of the kernel filter: random knock streams
// (filter_stream_test.go) sent as raw SYNs through the kernel filter and
// the daemon must open and close exactly what knock.Tracker alone opens and
// closes on the same SYNs at the same instants. Real kernel, real packets,
// in namespaces; none asserts a time or a rate.

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/syngen"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/knock"
)

// eqResult is what happened to one stream: the SYNs as sent, with the
// tracker's action on each, and the opens and closes by source.
type eqResult struct {
	sent    []testutil.TimedSYN
	actions []knock.Action
	events  map[netip.Addr][]string // "open" or "close", in order
}

// expect feeds the SYNs as sent, at the instants they were sent, to a
// knock.Tracker alone with the daemon's parameters.
func expect(t *testing.T, sent []testutil.TimedSYN, admit bool) eqResult {
	t.Helper()
	tr, err := knock.NewTracker(knock.TrackerConfig{Params: eqParams(), Timeout: eqTimeout, Admit: admit})
	if err != nil {
		t.Fatal(err)
	}
	r := eqResult{sent: sent, events: map[netip.Addr][]string{}}
	for _, s := range sent {
		k := knock.Knock{Src: s.Src, SrcPort: s.SrcPort, DstPort: s.DstPort, Seq: s.Seq}
		a := tr.Knock(&k, s.At).Action
		r.actions = append(r.actions, a)
		if a != knock.None {
			r.events[s.Src] = append(r.events[s.Src], a.String())
		}
	}
	return r
}

var eventRE = regexp.MustCompile(`msg=(open|close) source=(\S+)`)

// daemonEvents returns the opens and closes the daemon logged, by source.
func daemonEvents(t *testing.T, log string) map[netip.Addr][]string {
	t.Helper()
	ev := map[netip.Addr][]string{}
	for _, m := range eventRE.FindAllStringSubmatch(log, -1) {
		a, err := netip.ParseAddr(m[2])
		if err != nil {
			t.Fatalf("daemon logged %q", m[0])
		}
		ev[a] = append(ev[a], m[1])
	}
	return ev
}

// setElements returns the elements of set name of the table, the first
// word of each (the address or port), as nft lists them.
func (e *env) setElements(t *testing.T, name string) []string {
	t.Helper()
	out, err := e.nft("list", "set", "inet", "nfqknock", name)
	if err != nil {
		t.Fatalf("nft list set %s: %v: %s", name, err, out)
	}
	return elementsOf(out)
}

// elementsOf returns the first word of each element of the first
// `elements = { ... }` of an nft listing.
func elementsOf(list string) []string {
	_, rest, ok := strings.Cut(list, "elements = {")
	if !ok {
		return nil
	}
	body, _, _ := strings.Cut(rest, "}")
	var out []string
	for _, el := range strings.Split(body, ",") {
		if f := strings.Fields(el); len(f) > 0 {
			out = append(out, f[0])
		}
	}
	return out
}

// prime waits until the client's link to the server answers over IPv4 and
// IPv6: raw SYNs do not wait for the neighbour, and the first packets on a
// new link can be lost.
func (e *env) prime(t *testing.T) {
	t.Helper()
	for _, dst := range []netip.Addr{netns.ServerIP4, netns.ServerIP6} {
		deadline := time.Now().Add(10 * time.Second)
		for !e.reachable(netip.Addr{}, dst, freePort) {
			if time.Now().After(deadline) {
				t.Fatalf("the server's free port does not answer over %v", dst)
			}
		}
	}
}

// eqRun is one daemon of the differential test, in namespaces of its
// own, with a sender of raw SYNs in its client namespace.
type eqRun struct {
	name string
	e    *env
	d    *daemon
	snd  *testutil.SYNSender
	sent []testutil.TimedSYN
	err  error
}

// settle waits until the daemon's log has not grown for 300 ms, for a
// second at least and 10 s at most: the knocks still in the queue are
// handled (each is logged with -v), whatever the machine's load.
func (d *daemon) settle() {
	start, n := time.Now(), -1
	for time.Since(start) < 10*time.Second {
		m := len(d.stderr.String())
		if m == n && time.Since(start) >= time.Second {
			return
		}
		n = m
		time.Sleep(300 * time.Millisecond)
	}
}

// newEqRun starts a daemon with the flags of the differential test and
// extra ones, and waits until its namespaces carry packets.
func newEqRun(t *testing.T, name string, extra ...string) *eqRun {
	t.Helper()
	r := &eqRun{name: name, e: newEnv(t)}
	if err := syngen.AddSpoofRoutes(r.e.pair.Server, netns.ClientIP4, netns.ClientIP6); err != nil {
		t.Fatalf("spoof routes: %v", err)
	}
	r.d = r.e.start(append(slices.Clone(eqFlags), extra...)...)
	r.e.prime(t)
	var err error
	if r.snd, err = testutil.NewSYNSender(r.e.pair.Client); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.snd.Close() })
	return r
}

// runEquivalence starts a daemon with the kernel filter and one with
// --queue-all, makes the stream around the next rotation that leaves time
// enough, sends it to both at once (the same SYNs at the same instants),
// and compares each daemon's opens and closes with the tracker's alone
// (subtests filter and queue-all).
func runEquivalence(t *testing.T, stream func(rot time.Time) *eqStream) {
	t.Helper()
	runs := []*eqRun{newEqRun(t, "filter"), newEqRun(t, "queue-all", "--queue-all")}
	st := stream(nextRotation(7500 * time.Millisecond))
	plan := make([]testutil.TimedSYN, len(st.steps))
	for i, s := range st.steps {
		plan[i] = testutil.TimedSYN{SYN: s.syn, At: st.rot.Add(s.at)}
	}
	if late := time.Since(plan[0].At); late > 0 {
		t.Fatalf("the stream should have started %v ago", late)
	}
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Go(func() { r.sent, r.err = r.snd.SendStream(context.Background(), plan) })
	}
	wg.Wait()
	for _, r := range runs {
		r.d.settle() // the last knocks reach the daemon (-v logs each)
	}
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			if r.err != nil {
				t.Fatalf("send the stream: %v", r.err)
			}
			for i := range r.sent {
				if r.sent[i].SYN != plan[i].SYN {
					t.Fatalf("SYN %d sent out of order", i)
				}
			}
			r.check(t, st)
		})
	}
}

// check compares the daemon's opens and closes, and its allow sets, with
// the tracker's alone on the SYNs as sent.
func (r *eqRun) check(t *testing.T, st *eqStream) {
	e, d, sent := r.e, r.d, r.sent
	got := daemonEvents(t, d.stderr.String())
	allowed := map[netip.Addr]bool{}
	for _, set := range []string{"allow4", "allow6"} {
		for _, el := range e.setElements(t, set) {
			allowed[netip.MustParseAddr(el)] = true
		}
	}
	queued := e.queueSeen(t)
	list, _ := e.nft("list", "table", "inet", "nfqknock")

	want := expect(t, sent, false)
	admitted := expect(t, sent, true)
	late := lateSends(st, sent)
	opens, closes := 0, 0
	for _, ev := range want.events {
		for _, x := range ev {
			if x == "open" {
				opens++
			} else {
				closes++
			}
		}
	}
	t.Logf("stream: seed %d, %d sources, %d SYNs from %v to %v around the rotation at %v; the daemon was handed %d of them; "+
		"the tracker alone: %d opens, %d closes, %d sources open at the end",
		st.seed, len(st.sources), len(sent), st.steps[0].at, st.steps[len(st.steps)-1].at, st.rot.Format("15:04:05"),
		queued, opens, closes, len(openAtEnd(want.events)))

	failed := false
	for _, src := range st.sources {
		if w, g := strings.Join(want.events[src], ","), strings.Join(got[src], ","); w != g {
			t.Errorf("source %v: the daemon logged [%s], the tracker alone gives [%s]", src, g, w)
			failed = true
		}
	}
	for src := range got {
		if !slices.Contains(st.sources, src) {
			t.Errorf("the daemon logged %v for %v, which sent nothing", got[src], src)
			failed = true
		}
	}
	if w, g := openAtEnd(want.events), slices.SortedFunc(maps.Keys(allowed), netip.Addr.Compare); !slices.Equal(w, g) {
		t.Errorf("allow sets at the end: %v; the tracker alone opens %v", g, w)
		failed = true
	}
	if r.name == "filter" {
		for _, b := range st.bystanders {
			if n := d.knocksSeen(b, 0); n != 0 {
				t.Errorf("bystander %v, which never knocked a first port, reached the daemon %d times through the kernel filter", b, n)
				failed = true
			}
		}
	}
	if len(late) > 0 {
		t.Errorf("the sender was late: %d SYNs were sent near an instant the stream avoids (the result may not mean anything): %s",
			len(late), strings.Join(late, "; "))
		failed = true
	}
	if failed {
		t.Logf("the stream as sent (times from the rotation; the tracker's action, alone / with admission):\n%s",
			describe(st, want, admitted, got, d))
		t.Logf("nft list table inet nfqknock:\n%s", list)
	}
}

// openAtEnd returns the sources whose last event is an open, sorted.
func openAtEnd(ev map[netip.Addr][]string) []netip.Addr {
	var out []netip.Addr
	for a, x := range ev {
		if x[len(x)-1] == "open" {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// lateSends returns the SYNs that were sent late, inside half the margins
// the stream keeps (eqGaps.clash).
func lateSends(st *eqStream, sent []testutil.TimedSYN) []string {
	var out []string
	gaps := map[netip.Addr]*eqGaps{}
	for i, s := range sent {
		at := s.At.Sub(st.rot)
		g := gaps[s.Src]
		if g == nil {
			g = &eqGaps{}
			gaps[s.Src] = g
		}
		if _, why := g.clash(at, 2); why != "" {
			out = append(out, fmt.Sprintf("SYN %d of %v at %v: %s", i, s.Src, at, why))
		}
		g.add(at, s.SYN)
	}
	return out
}

// describe lists the stream by source, with what the daemon d did.
func describe(st *eqStream, want, admitted eqResult, got map[netip.Addr][]string, d *daemon) string {
	var b strings.Builder
	for i, src := range st.sources {
		n := 0
		for _, s := range want.sent {
			if s.Src == src {
				n++
			}
		}
		fmt.Fprintf(&b, "source %d %v: expected [%s], the daemon logged [%s] and saw %d of its %d SYNs\n", i, src,
			strings.Join(want.events[src], ","), strings.Join(got[src], ","), d.knocksSeen(src, 0), n)
		for j, s := range want.sent {
			if s.Src != src {
				continue
			}
			fmt.Fprintf(&b, "  %+9.3fs (planned %+9.3fs) dport %5d sport %5d seq %10d mss %4d  %-5s/%-5s  %s\n",
				s.At.Sub(st.rot).Seconds(), st.steps[j].at.Seconds(), s.DstPort, s.SrcPort, s.Seq, s.MSS,
				want.actions[j], admitted.actions[j], st.steps[j].note)
		}
	}
	return b.String()
}

// The sources of the random streams: knocking ones (IPv4 and IPv6 by
// turns) and bystanders.
const (
	eqSources    = 12
	eqBystanders = 2
)

// filterSeed returns the seed of the random streams: filterSeedEnv, or 12.
func filterSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(12)
	if s := os.Getenv(filterSeedEnv); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", filterSeedEnv, s, err)
		}
		seed = n
	}
	t.Logf("seed %d (%s=N for another stream)", seed, filterSeedEnv)
	return seed
}

// nextRotation returns the first rotation of a 10 s period at least
// ahead from now.
func nextRotation(ahead time.Duration) time.Time {
	at := time.Now().Add(ahead)
	const p = int64(eqPeriod / time.Second)
	return time.Unix((at.Unix()+p-1)/p*p, 0)
}

// TestFilterEquivalence is the differential test of the kernel filter: a
// random knock stream from 12 sources (IPv4 and IPv6, spoofed, a few fixed
// runs around the rotation and random episodes), with open and close
// sequences, wrong knocks and gaps over --timeout in the middle of
// sequences, retransmissions, partial sequences and a rotation with its
// grace, and 2 bystanders that knock no sequence, sent as raw SYNs (with and
// without options) to a daemon with the kernel filter and, at the same
// instants, to one with --queue-all, must give, in each, the same opens and
// closes, source by source and in order, and the same allow sets at the end,
// as knock.Tracker alone on the same SYNs at the instants they were sent.
// Through the filter, no SYN of a bystander reaches the daemon.
func TestFilterEquivalence(t *testing.T) {
	netns.RequireRoot(t)
	t.Parallel()
	seed := filterSeed(t)
	runEquivalence(t, func(rot time.Time) *eqStream {
		st := newEqStream(seed, rot, eqSources, eqBystanders)
		// The fixed runs hold: the tracker alone opens with the previous
		// period's sequence within the grace, with the new one before
		// and after the rotation, and closes.
		sim := simulate(st)
		for _, c := range []string{"P0 open after the rotation", "P1 open before the rotation", "P1 open after the rotation", "close"} {
			if sim[c] == 0 {
				t.Fatalf("the stream has no %s: %v", c, sim)
			}
		}
		t.Logf("stream of seed %d: %d SYNs from %d sources (%d bystanders); random episodes by kind %v; planned: %v",
			seed, len(st.steps), len(st.sources), len(st.bystanders), st.episodes, sim)
		return st
	})
}
