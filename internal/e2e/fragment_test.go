package e2e

// SYNs split into IP fragments against the guard (see host_test.go).

import (
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/fragsyn"
)

// probeWait is how long a fragsyn probe waits for an answer. Answers come in
// well under a millisecond; only probes that get nothing wait this long.
const probeWait = 1500 * time.Millisecond

// probePort gives each probe a source port of its own.
var probePort atomic.Uint32

// probe sends pr from a fresh source port, whole (first 0) or as two
// fragments with first bytes of TCP in the first, and returns the answer.
func probe(t *testing.T, pr fragsyn.Probe, first int) fragsyn.Reply {
	t.Helper()
	pr.SrcPort = uint16(40000 + probePort.Add(1)%20000)
	pr.FirstTCPBytes = first
	var r fragsyn.Reply
	var err error
	how := "whole"
	if first == 0 {
		r, err = pr.Whole(probeWait)
	} else {
		how = strconv.Itoa(first) + " TCP bytes in the first fragment"
		r, err = pr.Fragmented(probeWait)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s -> [%s]:%d, SYN %s: %v", pr.Src, pr.Dst, pr.DstPort, how, r)
	return r
}

// guardedDrops returns the packets counted by the drop rule of the chain
// guarded.
func (e *env) guardedDrops() int {
	e.t.Helper()
	out, err := e.nft("list", "chain", "inet", "nfqknock", "guarded")
	if err != nil {
		e.t.Fatalf("nft list chain guarded: %v: %s", err, out)
	}
	m := regexp.MustCompile(`counter packets (\d+)`).FindStringSubmatch(out)
	if m == nil {
		e.t.Fatalf("no counter in the chain guarded:\n%s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestFragmentedSYN: a SYN split into two IP fragments, the first holding
// only 8 (or 16) bytes of TCP, from a source that never knocked, gets no
// SYN-ACK from a guarded port, local or published by DNAT; the same SYNs to
// an unguarded port, or from an opened source, get one (so the probe would
// see a SYN-ACK if the guard let it by).
func TestFragmentedSYN(t *testing.T) {
	t.Run("local", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.addStranger6()
		e.start()
		// The server namespace has no table but the daemon's: no
		// conntrack, so no defragmentation at prerouting. The guard sees
		// the fragments one by one, before the kernel reassembles them
		// for local delivery (docs/design.md, "Chain `guard` and chain
		// `guarded`", rule 3): it must
		// drop the IPv4 first fragment, whose 8 TCP bytes have the ports
		// but no flags.
		if out, err := e.nft("list", "tables"); err != nil || strings.TrimSpace(out) != "table inet nfqknock" {
			t.Fatalf("the server namespace's tables: %v %q; want the daemon's alone", err, out)
		}
		for _, fam := range families {
			pr := fragsyn.Probe{NS: e.pair.Client, Src: stranger(fam.server), Dst: fam.server, DstPort: freePort}
			// Controls: the unguarded port answers every form of SYN
			// that reaches it. On IPv6 the kernel itself drops a first
			// fragment without the whole TCP header (RFC 7112), so only
			// the split at 24 bytes reaches it.
			splits := []int{0, 8, 16}
			if fam.server.Is6() {
				splits = []int{0, 24}
			}
			for _, first := range splits {
				if r := probe(t, pr, first); r.Kind != fragsyn.SynAck {
					t.Errorf("%s: unguarded port %d, first TCP bytes %d (0: whole): %v, want a SYN-ACK", fam.name, freePort, first, r)
				}
			}
			before := e.guardedDrops()
			pr.DstPort = guardPort
			splits = []int{0, 8, 16}
			if fam.server.Is6() {
				splits = []int{0, 8, 16, 24}
			}
			for _, first := range splits {
				if r := probe(t, pr, first); r.Kind == fragsyn.SynAck {
					t.Errorf("%s: guarded port %d, first TCP bytes %d (0: whole): a SYN-ACK to a source that never knocked", fam.name, guardPort, first)
				}
			}
			// The guard itself dropped three of them: on IPv4 the whole
			// SYN and both first fragments (the second fragments, without
			// a TCP header, pass and wait for reassembly in vain); on
			// IPv6 the whole SYN and the first fragments of 16 and 24
			// bytes, which carry the flags (the kernel drops the one of 8
			// bytes after prerouting, answering ICMPv6 parameter problem).
			drops := e.guardedDrops() - before
			t.Logf("%s: the guard dropped %d packets", fam.name, drops)
			if drops < 3 {
				t.Errorf("%s: the guard dropped %d packets of the probes to port %d, want 3", fam.name, drops, guardPort)
			}
		}
	})

	t.Run("published", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.addStranger6()
		e.publish()
		d := e.start("--guard", strconv.Itoa(publishedPort))
		// The nat table brings conntrack, whose defragmentation
		// reassembles at prerouting before the guard: the guard sees the
		// whole SYN.
		open, _ := e.sequences()
		for _, fam := range families {
			pr := fragsyn.Probe{NS: e.pair.Client, Src: stranger(fam.server), Dst: fam.server, DstPort: publishedPort}
			for _, first := range []int{0, 8, 16, 24} {
				if r := probe(t, pr, first); r.Kind == fragsyn.SynAck {
					t.Errorf("%s: published port %d, first TCP bytes %d (0: whole): a SYN-ACK to a source that never knocked", fam.name, publishedPort, first)
				}
			}
			// Control: once the client has knocked, the same probes
			// from it reach the listener behind the server.
			e.knock(fam.client, fam.server, open)
			if !e.reachable(fam.client, fam.server, publishedPort) {
				t.Fatalf("%s: published port not open after the open sequence; stderr:\n%s", fam.name, d.stderr)
			}
			pr.Src = fam.client
			splits := []int{0, 8, 16}
			if fam.server.Is6() {
				splits = []int{0, 24}
			}
			for _, first := range splits {
				if r := probe(t, pr, first); r.Kind != fragsyn.SynAck {
					t.Errorf("%s: opened client to the published port %d, first TCP bytes %d (0: whole): %v, want a SYN-ACK", fam.name, publishedPort, first, r)
				}
			}
		}
	})
}
