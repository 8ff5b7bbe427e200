package e2e

// The harness of the end-to-end tests: a server and a client namespace
// (internal/netns), echo listeners, connects and knocks with real TCP.

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

const (
	// The packages of the daemon and the client, which testutil.Build
	// builds.
	daemonPkg   = "../../cmd/nfqknockd"
	clientPkg   = "../../cmd/nfqknock"
	guardPort   = 2222 // guarded by the daemon in every e2e test
	freePort    = 8080 // never guarded: it must always answer
	openSecret  = "e2e open secret"
	closeSecret = "e2e close secret"
	dropTimeout = time.Second // a connect that gets no answer in this time was dropped
	// knockTimeout bounds each knock's connect attempt. nfqknock uses 50 ms;
	// the tests allow more, because on a loaded machine the dialer's
	// deadline can pass before connect(2) even sends the SYN, and a knock
	// is then missing (seen once in a full CI run). Only a dropped SYN
	// waits this long: a closed port answers with an RST at once.
	knockTimeout = 250 * time.Millisecond
)

// strangerIP4 is a second client address that never knocks.
var strangerIP4 = netip.MustParseAddr("10.200.0.3")

// stranger6 is the IPv6 twin of strangerIP4: a client address that never
// knocks (addStranger6 adds it).
var stranger6 = netip.MustParseAddr("fd00:200::3")

// tableLeft reports a table of ours in the host's namespace, which no test
// may leave. TestMain runs it after the tests, and testutil.Main looks for
// namespaces and daemon processes left.
func tableLeft() error {
	if out, err := exec.Command("nft", "list", "tables").Output(); err == nil && bytes.Contains(out, []byte("nfqknock")) {
		return errors.New("table left in the host namespace: " + string(out))
	}
	return nil
}

// env is a server namespace with echo listeners on guardPort and freePort
// (IPv4 and IPv6) and a client namespace, joined by veth.
type env struct {
	t    *testing.T
	pair *netns.Pair
	bin  string
	// stateDir is the test's --state-dir: the daemons of tests that run
	// at once must not share one.
	stateDir string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	bin := testutil.Build(t, daemonPkg, "")
	e := &env{t: t, pair: netns.NewPair(t), bin: bin, stateDir: t.TempDir()}
	if out, err := exec.Command("ip", "-n", e.pair.Client, "addr", "add", strangerIP4.String()+"/24", "dev", "veth0").CombinedOutput(); err != nil {
		t.Fatalf("add stranger address: %v: %s", err, out)
	}
	for _, a := range []netip.Addr{netns.ServerIP4, netns.ServerIP6} {
		for _, port := range []int{guardPort, freePort} {
			e.listen(netip.AddrPortFrom(a, uint16(port)))
		}
	}
	return e
}

// listen starts an echo server inside the server namespace.
func (e *env) listen(ap netip.AddrPort) {
	e.t.Helper()
	echoServer(e.t, e.pair.Server, ap, nil)
}

// echoServer listens on ap in namespace ns until the test ends and echoes
// every connection back; seen, when not nil, sees each connection as it is
// accepted.
func echoServer(t *testing.T, ns string, ap netip.AddrPort, seen func(net.Conn)) {
	t.Helper()
	var ln net.Listener
	err := netns.Do(ns, func() (err error) {
		ln, err = net.Listen("tcp", ap.String())
		return err
	})
	if err != nil {
		t.Fatalf("listen %s in %s: %v", ap, ns, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if seen != nil {
				seen(c)
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
}

// dial connects from the client namespace, from the address src when valid.
func (e *env) dial(src, dst netip.Addr, port int, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := netns.Do(e.pair.Client, func() (err error) {
		d := net.Dialer{Timeout: timeout}
		if src.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
		}
		c, err = d.Dial("tcp", netip.AddrPortFrom(dst, uint16(port)).String())
		return err
	})
	return c, err
}

// reachable reports whether a connect from src to dst:port succeeds; a
// timeout means dropped, any other error fails the test.
func (e *env) reachable(src, dst netip.Addr, port int) bool {
	e.t.Helper()
	c, err := e.dial(src, dst, port, dropTimeout)
	if err == nil {
		c.Close()
		return true
	}
	if isTimeout(err) {
		return false
	}
	e.t.Fatalf("connect %s -> [%s]:%d: unexpected error %v", src, dst, port, err)
	return false
}

// knock sends the sequence from src to dst: one connect attempt per port,
// abandoned after knockTimeout, as the client does.
func (e *env) knock(src, dst netip.Addr, ports []uint16) {
	e.t.Helper()
	for _, p := range ports {
		c, err := e.dial(src, dst, int(p), knockTimeout)
		if err == nil {
			c.Close()
		}
	}
}

// sequences runs `nfqknockd -s` with the test secrets and extra flags.
func (e *env) sequences(extra ...string) (open, close []uint16) {
	e.t.Helper()
	return e.sequencesOf(append([]string{"-o", openSecret, "-c", closeSecret}, extra...)...)
}

// sequencesOf runs `nfqknockd -s` with exactly args (the secrets among
// them) and returns the open and close sequences it prints.
func (e *env) sequencesOf(args ...string) (open, close []uint16) {
	e.t.Helper()
	args = append([]string{"-s"}, args...)
	out, err := exec.Command(e.bin, args...).Output()
	if err != nil {
		e.t.Fatalf("nfqknockd %s: %v", strings.Join(args, " "), err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, list, _ := strings.Cut(line, ":")
		var ports []uint16
		for _, f := range strings.Fields(list) {
			n, err := strconv.Atoi(f)
			if err != nil {
				e.t.Fatalf("nfqknockd -s printed %q", line)
			}
			ports = append(ports, uint16(n))
		}
		switch name {
		case "OPEN":
			open = ports
		case "CLOSE":
			close = ports
		}
	}
	if len(open) == 0 || len(close) == 0 {
		e.t.Fatalf("nfqknockd -s printed %q", out)
	}
	return open, close
}

// nft runs nft with args in the server namespace and returns its output.
func (e *env) nft(args ...string) (string, error) {
	out, err := netns.Command(e.pair.Server, "nft", args...).CombinedOutput()
	return string(out), err
}

var families = []struct {
	name           string
	server, client netip.Addr
	set            string
	flag           string // the client's
}{
	{"ipv4", netns.ServerIP4, netns.ClientIP4, "allow4", "-4"},
	{"ipv6", netns.ServerIP6, netns.ClientIP6, "allow6", "-6"},
}

// echo writes msg on c and expects it back.
func echo(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write on established connection: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo on established connection: got %q, %v", buf, err)
	}
}

// needNetcat fails the test when nc is not installed.
func needNetcat(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("nc"); err != nil {
		t.Fatalf("nc not installed (apt-get install netcat-openbsd): %v", err)
	}
}

// netcatOpens checks that the guarded port of server drops the client
// before any knock, and answers it once the client knocked open nc-style:
// `nc -z -w 1 HOST PORT` for each port.
func (e *env) netcatOpens(d *daemon, server netip.Addr, open []uint16) {
	e.t.Helper()
	none := netip.Addr{}
	if e.reachable(none, server, guardPort) {
		e.t.Fatalf("guarded port answered before any knock")
	}
	for _, p := range open {
		netns.Command(e.pair.Client, "nc", "-z", "-w", "1", server.String(), strconv.Itoa(int(p))).Run()
	}
	if !e.reachable(none, server, guardPort) {
		e.t.Fatalf("guarded port still dropped after an nc knock; stderr:\n%s", d.stderr)
	}
}
