package e2e

// The kernel filter in namespaces, continued (see filter_e2e_test.go): the
// first-port set over a rotation, what `nft list` shows, and the
// per-source limit.

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

func mapSlice[T, U any](s []T, f func(T) U) []U {
	out := make([]U, len(s))
	for i, x := range s {
		out[i] = f(x)
	}
	return out
}

// firstSet returns the ports in the set first, sorted.
func (e *env) firstSet(t *testing.T) []uint16 {
	t.Helper()
	var out []uint16
	for _, el := range e.setElements(t, "first") {
		n, err := strconv.Atoi(el)
		if err != nil {
			t.Fatalf("set first holds %q", el)
		}
		out = append(out, uint16(n))
	}
	slices.Sort(out)
	return out
}

// firstPortsOf returns the first ports of sequences, sorted, once each.
func firstPortsOf(seqs ...[]uint16) []uint16 {
	var out []uint16
	for _, s := range seqs {
		out = append(out, s[0])
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestFilterRotation: with --period 20s --grace 3s -t 1 the set first
// follows the rotation. A period's first ports are in the set from the time
// a sequence that ends as its acceptance begins may begin (the grace, 3 s,
// plus 7 gaps of -t, 7 s, plus the daemon's second of lead: 11 s before the
// period) until its acceptance ends (the grace after it, plus a second of
// margin). So, around the rotation rot: 14 s before it the set holds the
// current period's first ports only (from `nfqknockd -s --at T`), from 11 s
// before it the next period's too, and 5 s after it only those. Right after
// the rotation the new period's open sequence opens, and the previous one
// too (within the grace); after the grace the previous one does not.
func TestFilterRotation(t *testing.T) {
	const period = 20 * time.Second
	for _, fam := range filterFams {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.addClientAddrs(t, fam.second, fam.third)
			at0 := time.Now().Add(16 * time.Second)
			rot := time.Unix((at0.Unix()+19)/20*20, 0)
			d := e.start("--period", "20s", "--grace", "3s", "-t", "1")
			at := func(off time.Duration) string { return strconv.FormatInt(rot.Add(off).Unix(), 10) }
			curOpen, curClose := e.sequences("--period", "20s", "--at", at(-period/2))
			nextOpen, nextClose := e.sequences("--period", "20s", "--at", at(period/2))
			cur, next := firstPortsOf(curOpen, curClose), firstPortsOf(nextOpen, nextClose)
			both := firstPortsOf(curOpen, curClose, nextOpen, nextClose)
			t.Logf("rotation at %s; first ports before it %v, after it %v", rot.Format("15:04:05"), cur, next)
			check := func(when string, want []uint16) {
				t.Helper()
				if got := e.firstSet(t); !slices.Equal(got, want) {
					list, _ := e.nft("list", "set", "inet", "nfqknock", "first")
					t.Errorf("%s: set first holds %v, want %v:\n%s", when, got, want, list)
				} else {
					t.Logf("%s: set first holds %v", when, got)
				}
			}
			// 14 s before the rotation: the previous period's ports left
			// 16 s before it, the next period's join 11 s before it.
			sleepUntil(rot.Add(-14 * time.Second))
			check("14 s before the rotation", cur)
			e.watchFirst(t, rot, rot.Add(-9*time.Second), cur)
			check("9 s before the rotation", both)
			sleepUntil(rot.Add(200 * time.Millisecond))
			e.knock(fam.client, fam.server, nextOpen)
			if !e.reachable(fam.client, fam.server, guardPort) {
				t.Errorf("the new period's open sequence, knocked right after the rotation, did not open")
			}
			e.knock(fam.second, fam.server, curOpen)
			if !e.reachable(fam.second, fam.server, guardPort) {
				t.Errorf("the previous period's open sequence, knocked within the grace, did not open")
			}
			check("within the grace", both)
			// The previous period's first ports go with the grace (3 s,
			// and the daemon's second of margin); the one after next joins
			// 9 s after the rotation.
			e.watchFirst(t, rot, rot.Add(5*time.Second), both)
			check("5 s after the rotation", next)
			e.knock(fam.third, fam.server, curOpen)
			if e.reachable(fam.third, fam.server, guardPort) {
				t.Errorf("the previous period's open sequence opened after the grace")
			}
			if t.Failed() {
				t.Logf("daemon stderr:\n%s", d.stderr)
			}
		})
	}
}

// watchFirst reads the set first until the instant until and logs when it
// changed from was, from the rotation rot (a log, not a check).
func (e *env) watchFirst(t *testing.T, rot, until time.Time, was []uint16) {
	t.Helper()
	for time.Now().Before(until) {
		if got := e.firstSet(t); !slices.Equal(got, was) {
			t.Logf("set first became %v at %+.1fs from the rotation", got, time.Since(rot).Seconds())
			was = got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// setBlock returns the block of set name in an nft listing of the table.
func setBlock(list, name string) string {
	_, rest, ok := strings.Cut(list, "\tset "+name+" {")
	if !ok {
		return ""
	}
	block, _, _ := strings.Cut(rest, "\n\t}")
	return block
}

// TestFilterListing: `nft list table inet nfqknock` shows the set first
// with the first ports of the current open and close sequences (and their
// timeouts), and the sources that knocked one in knocking4/knocking6, each
// with the set's timeout (--timeout plus 2 s) counting down; a client that
// only connected to another port is not there.
func TestFilterListing(t *testing.T) {
	for _, fam := range filterFams {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.addClientAddrs(t, fam.second)
			e.start()
			open, close := e.sequences()
			if !e.reachable(fam.second, fam.server, freePort) {
				t.Fatalf("the free port does not answer")
			}
			e.knock(fam.client, fam.server, open[:3]) // knocking, not opened
			list, err := e.nft("list", "table", "inet", "nfqknock")
			if err != nil {
				t.Fatalf("nft list table: %v: %s", err, list)
			}
			t.Logf("nft list table inet nfqknock:\n%s", list)
			first := setBlock(list, "first")
			for _, want := range []string{"type inet_service", "flags timeout", "elements = {"} {
				if !strings.Contains(first, want) {
					t.Errorf("set first lacks %q:\n%s", want, first)
				}
			}
			for _, p := range firstPortsOf(open, close) {
				if !regexp.MustCompile(`[{ ]` + strconv.Itoa(int(p)) + ` timeout \S+ expires `).MatchString(first) {
					t.Errorf("set first lacks the first port %d with its timeout:\n%s", p, first)
				}
			}
			knocking := setBlock(list, fam.knocking)
			for _, want := range []string{"flags dynamic,timeout", "timeout 12s", "size 65536"} {
				if !strings.Contains(knocking, want) {
					t.Errorf("set %s lacks %q:\n%s", fam.knocking, want, knocking)
				}
			}
			if !regexp.MustCompile(`[{ ]` + regexp.QuoteMeta(fam.client.String()) + ` expires \S+`).MatchString(knocking) {
				t.Errorf("set %s lacks the knocking client %v with its expiry:\n%s", fam.knocking, fam.client, knocking)
			}
			if els := elementsOf(knocking); slices.Contains(els, fam.second.String()) {
				t.Errorf("set %s holds %v, which never knocked: %v", fam.knocking, fam.second, els)
			}
			if els := elementsOf(setBlock(list, fam.allow)); len(els) != 0 {
				t.Errorf("set %s holds %v after a partial knock", fam.allow, els)
			}
			for _, want := range []string{"th dport @first update @" + fam.knocking, "saddr @" + fam.knocking + " update @" + fam.knocking} {
				if !strings.Contains(list, want) {
					t.Errorf("the table lacks %q", want)
				}
			}
			// The first ports are the hour's secret: without CAP_NET_ADMIN
			// nobody reads them (docs/operations.md, "How it works").
			nobody := netns.Command(e.pair.Server, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
				"nft", "list", "set", "inet", "nfqknock", "first")
			if out, err := nobody.CombinedOutput(); err == nil || !strings.Contains(string(out), "Operation not permitted") {
				t.Errorf("an unprivileged user listed the set first: %v: %s", err, out)
			}
		})
	}
}

// TestFilterFloodLimit shows the per-source limit of the kernel filter and
// the limit docs/operations.md names ("Flood"): a source that knocked a first port and then sends
// 300 bare SYNs as fast as it can (far over 250/s) lands in flood4/flood6;
// the daemon sees at most the burst of its SYNs, and a knock of the open
// sequence from that address, within the 10 s it stays there, opens
// nothing. Another source opens meanwhile.
func TestFilterFloodLimit(t *testing.T) {
	for _, fam := range filterFams {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.addClientAddrs(t, fam.second)
			d := e.start("-v")
			open, _ := e.sequences()
			s, err := testutil.NewSYNSender(e.pair.Client)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			const burst = 300
			for i := range burst {
				port := uint16(20000 + i) // none of them completes a sequence
				if i == 0 {
					port = open[0] // a first port: the source is knocking from here on
				}
				syn := testutil.SYN{Src: fam.client, Dst: fam.server, SrcPort: uint16(30000 + i), DstPort: port, Seq: uint32(1000 + i)}
				if err := s.Send(syn); err != nil {
					t.Fatalf("send: %v", err)
				}
			}
			flood, err := e.nft("list", "set", "inet", "nfqknock", fam.flood)
			if err != nil || !slices.Contains(elementsOf(flood), fam.client.String()) {
				t.Fatalf("after %d SYNs at full speed, %s is not in %s: %v\n%s", burst, fam.client, fam.flood, err, flood)
			}
			seen := d.knocksSeen(fam.client, burst)
			t.Logf("%d SYNs sent at full speed; the daemon saw %d; %s holds the source", burst, seen, fam.flood)
			if seen > 80 { // the burst of 64, and what came before the rate was measured
				t.Errorf("the daemon saw %d of %d SYNs of a source over the rate", seen, burst)
			}
			e.knock(fam.client, fam.server, open)
			if e.reachable(fam.client, fam.server, guardPort) || d.opened(fam.client) {
				t.Errorf("a source in %s opened: its knocks should go unseen for 10 s", fam.flood)
			}
			e.knock(fam.second, fam.server, open)
			if !e.reachable(fam.second, fam.server, guardPort) {
				t.Errorf("another source did not open while %s was in %s", fam.client, fam.flood)
			}
		})
	}
}
