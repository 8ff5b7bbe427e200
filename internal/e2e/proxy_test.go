package e2e

// The built client as ssh runs it, ended by ssh's SIGHUP.

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/knock"
)

// TestProxyHangup: ssh ends its ProxyCommand with SIGHUP. The built client
// then still knocks close, and exits 0 without a word.
func TestProxyHangup(t *testing.T) {
	netns.RequireRoot(t)
	bin := testutil.Build(t, clientPkg, "")
	const port = 7000
	p := netns.NewPair(t)
	accepted := make(chan struct{}, 1)
	echoServer(t, p.Server, netip.AddrPortFrom(netns.ServerIP4, port), func(net.Conn) { accepted <- struct{}{} })
	c := testutil.StartCapture(t, p.Server)
	cmd := netns.Command(p.Client, bin, "proxy", netns.ServerIP4.String(), strconv.Itoa(port), "--open-secret="+openSecret, "--close-secret="+closeSecret)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	before := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-accepted:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the proxy did not connect; stderr %q", stderr.String())
	}
	// `ip netns exec` execs the client, so the pid is the client's.
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	after := time.Now()
	if err != nil || stdout.Len() != 0 || stderr.Len() != 0 {
		t.Fatalf("proxy after SIGHUP: %v, stdout %q, stderr %q; want exit 0 and no output", err, stdout.String(), stderr.String())
	}
	got := testutil.Knocks(t, c.From(netns.ClientIP4))
	closes := closesAround(before, after)
	n := len(closes[0])
	if len(got) < n || !slices.ContainsFunc(closes, func(w []uint16) bool { return slices.Equal(got[len(got)-n:], w) }) {
		t.Fatalf("SYNs on the wire %v; want the close sequence %v last", got, closes[0])
	}
}

// closesAround returns the client's default close sequences (md5,
// 1-65535, hourly) of the harness's secrets in the periods of before and
// after; a test that ran across a rotation accepts either.
func closesAround(before, after time.Time) [][]uint16 {
	p := knock.Params{Digest: knock.MD5, Range: knock.FullRange, OpenSecret: openSecret, CloseSecret: closeSecret, Period: knock.DefaultPeriod}
	var closes [][]uint16
	for _, at := range []time.Time{before, after} {
		_, c := p.Sequences(at)
		closes = append(closes, c)
	}
	return closes
}
