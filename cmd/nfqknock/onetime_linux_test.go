package main

// One-time sequences on the wire (see netns_linux_test.go).

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/knock"
)

// oneTimeNonce returns the nonce whose one-time sequence of secret, in the
// period of before or after, is seq; ok is false when there is none.
func oneTimeNonce(seq []uint16, secret string, before, after time.Time) (nonce uint32, ok bool) {
	for _, at := range []time.Time{before, after} {
		ps := testParams.PeriodStart(at)
		for n := range uint32(knock.OneTimeNonces) {
			if fmt.Sprint(knock.OneTimeSequence(testParams.Digest, secret, ps, n, testParams.Range)) == fmt.Sprint(seq) {
				return n, true
			}
		}
	}
	return 0, false
}

// TestProxyOneTime: with --one-time, every open the proxy knocks, the first
// and each one again after a connect timed out, is the one-time open
// sequence of a nonce none of the others used, and the close is a one-time
// close sequence. With a --connect-timeout shorter than the first attempt
// (300ms), the proxy knocks open once more with a new nonce before it gives
// up: exactly two rounds. Here the port drops every SYN.
func TestProxyOneTime(t *testing.T) {
	const port = 7020
	p := netns.NewPair(t)
	nftDrop(t, p.Server, []uint16{port})
	for _, tt := range []struct {
		connectTimeout string
		minRounds      int
		maxRounds      int
	}{
		{"200ms", 2, 2},
		{"2s", 2, 100},
	} {
		t.Run(tt.connectTimeout, func(t *testing.T) {
			c := testutil.StartCapture(t, p.Server)
			before := time.Now()
			code, stdout, stderr := runIn(t, p.Client, strings.NewReader(""),
				append([]string{"proxy", "--one-time", "--connect-timeout", tt.connectTimeout, netns.ServerIP4.String(), strconv.Itoa(port)}, testSecrets...)...)
			after := time.Now()
			if want := "nfqknock: connect 10.200.0.1:7020: i/o timeout\n"; code != 1 || stdout != "" || stderr != want {
				t.Errorf("proxy = %d, %q, %q; want 1, no output, %q", code, stdout, stderr, want)
			}
			time.Sleep(settle)
			got := testutil.Knocks(t, c.From(netns.ClientIP4))
			n := testParams.Digest.SeqLen()
			nonces := map[uint32]bool{}
			rest := got
			for len(rest) >= n+1 && rest[n] == port {
				nonce, ok := oneTimeNonce(rest[:n], testParams.OpenSecret, before, after)
				if !ok {
					t.Fatalf("SYNs on the wire %v: %v is no one-time open sequence", got, rest[:n])
				}
				if nonces[nonce] {
					t.Fatalf("SYNs on the wire %v: nonce %d knocked twice", got, nonce)
				}
				nonces[nonce] = true
				rest = rest[n+1:]
			}
			if _, ok := oneTimeNonce(rest, testParams.CloseSecret, before, after); !ok {
				t.Fatalf("SYNs on the wire %v: the rest %v is no one-time close sequence", got, rest)
			}
			if len(nonces) < tt.minRounds || len(nonces) > tt.maxRounds {
				t.Fatalf("SYNs on the wire %v: %d rounds of a one-time open and a connect; want %d..%d", got, len(nonces), tt.minRounds, tt.maxRounds)
			}
			t.Logf("%d rounds of a one-time open (nonces %v) and a connect, then a one-time close", len(nonces), nonces)
		})
	}
}

// TestOneTimeKnockWire: `open --one-time` and `close --one-time` put a
// one-time sequence on the wire; two opens put two different ones.
func TestOneTimeKnockWire(t *testing.T) {
	p := netns.NewPair(t)
	c := testutil.StartCapture(t, p.Server)
	before := time.Now()
	for _, cmd := range []string{"open", "open", "close"} {
		code, stdout, stderr := runIn(t, p.Client, strings.NewReader(""), append([]string{cmd, "--one-time", "-4", netns.ServerIP4.String()}, testSecrets...)...)
		if code != 0 || stdout != "" || stderr != "" {
			t.Fatalf("%s = %d, %q, %q; want 0 and no output", cmd, code, stdout, stderr)
		}
	}
	after := time.Now()
	time.Sleep(settle)
	got := testutil.Knocks(t, c.From(netns.ClientIP4))
	n := testParams.Digest.SeqLen()
	if len(got) != 3*n {
		t.Fatalf("SYNs on the wire %v; want 3 sequences of %d", got, n)
	}
	o1, ok1 := oneTimeNonce(got[:n], testParams.OpenSecret, before, after)
	o2, ok2 := oneTimeNonce(got[n:2*n], testParams.OpenSecret, before, after)
	_, ok3 := oneTimeNonce(got[2*n:], testParams.CloseSecret, before, after)
	if !ok1 || !ok2 || !ok3 {
		t.Fatalf("SYNs on the wire %v; want two one-time opens and a one-time close", got)
	}
	if o1 == o2 {
		// Two processes draw apart: a 1 in 1024 chance to draw the same.
		t.Logf("two opens drew the same nonce %d (1 in %d)", o1, knock.OneTimeNonces)
	}
}
