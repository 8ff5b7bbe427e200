package main

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/spa"
)

// spaConfig is the client config of the SPA tests: [*] sends SPA to 443,
// work to the default port and asks ports, a duration and an address,
// knock uses knock sequences, and bad asks ports without SPA.
const spaConfig = `[*]
spa = 443
[work]
spa = yes
spa-ports = 22, 2222
spa-duration = 90s
spa-address = 2001:db8::7
[knock]
spa = no
[bad]
spa = no
spa-ports = 22
`

// writeSPAConfig writes spaConfig and returns its path.
func writeSPAConfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(path, []byte(spaConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSPAFlags: --spa and what a packet asks, from the command line and
// the config, the command line winning; show and doctor with the
// config's spa keys keep to knock sequences.
func TestSPAFlags(t *testing.T) {
	cfg := writeSPAConfig(t)
	tests := []struct {
		name string
		args []string
		want spaOptions
	}{
		{"no spa", []string{"open", "h"}, spaOptions{}},
		{"bare --spa", []string{"open", "--spa", "h"}, spaOptions{port: 62201}},
		{"--spa=PORT", []string{"close", "--spa=443", "h"}, spaOptions{port: 443}},
		{"--spa=yes", []string{"close", "--spa=yes", "h"}, spaOptions{port: 62201}},
		{"every ask", []string{"proxy", "--spa", "--spa-ports", "22,2222,22", "--spa-duration", "3s", "--spa-address", "198.51.100.7", "h", "22"},
			spaOptions{port: 62201, ports: []uint16{22, 2222}, duration: 3 * time.Second, address: netip.MustParseAddr("198.51.100.7")}},
		{"16 ports", []string{"open", "--spa", "--spa-ports", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16", "h"},
			spaOptions{port: 62201, ports: []uint16{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}}},
		{"a second --spa-ports replaces", []string{"open", "--spa", "--spa-ports", "1", "--spa-ports", "2", "h"}, spaOptions{port: 62201, ports: []uint16{2}}},
		{"config [*]", []string{"--config", cfg, "open", "other"}, spaOptions{port: 443}},
		{"config section", []string{"--config", cfg, "open", "WORK"},
			spaOptions{port: 62201, ports: []uint16{22, 2222}, duration: 90 * time.Second, address: netip.MustParseAddr("2001:db8::7")}},
		{"command line over config", []string{"--config", cfg, "open", "--spa=1000", "--spa-ports", "80", "--spa-duration", "1s", "--spa-address", "192.0.2.1", "work"},
			spaOptions{port: 1000, ports: []uint16{80}, duration: time.Second, address: netip.MustParseAddr("192.0.2.1")}},
		{"config spa = no", []string{"--config", cfg, "open", "knock"}, spaOptions{}},
		{"--spa=no over the config", []string{"--config", cfg, "open", "--spa=no", "other"}, spaOptions{}},
		{"show ignores the config", []string{"--config", cfg, "show", "work"}, spaOptions{}},
		{"doctor ignores the config", []string{"--config", cfg, "doctor", "work", "22"}, spaOptions{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"-o", "open s", "-c", "close s"}, tt.args...)
			o, err := parseArgs(args, func(string) string { return "" })
			if err != nil {
				t.Fatalf("parseArgs(%q): %v", args, err)
			}
			if g, w := o.spa, tt.want; g.port != w.port || !slices.Equal(g.ports, w.ports) || g.duration != w.duration || g.address != w.address {
				t.Errorf("parseArgs(%q): spa %+v, want %+v", args, g, w)
			}
		})
	}
}

// TestSPABadInput: every bad SPA input is one line on stderr, exit status
// 2, nothing sent.
func TestSPABadInput(t *testing.T) {
	cfg := writeSPAConfig(t)
	bad := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(bad, []byte("[*]\nspa-duration = 1.5s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"--spa-ports without --spa", []string{"open", "--spa-ports", "22", "h"}, "--spa-ports 22: only meaningful with --spa"},
		{"--spa-duration without --spa", []string{"close", "--spa-duration", "3s", "h"}, "--spa-duration 3s: only meaningful with --spa"},
		{"--spa-address without --spa", []string{"proxy", "--spa-address", "192.0.2.1", "h", "22"}, "--spa-address 192.0.2.1: only meaningful with --spa"},
		{"config spa-ports without spa", []string{"--config", cfg, "open", "bad"}, cfg + ": line 12: spa-ports 22: only meaningful with --spa"},
		{"config bad duration", []string{"--config", bad, "open", "h"}, bad + ": line 2: spa-duration 1.5s: must be a whole number of seconds"},
		{"port 0", []string{"open", "--spa=0", "h"}, "--spa 0: port must be 1..65535 (or no value: port 62201)"},
		{"port too big", []string{"open", "--spa=65536", "h"}, "--spa 65536: port must be 1..65535 (or no value: port 62201)"},
		{"port not a number", []string{"open", "--spa=ssh", "h"}, "--spa ssh: port must be a number 1..65535 (or no value: port 62201)"},
		{"ports: 0", []string{"open", "--spa", "--spa-ports", "22,0", "h"}, "--spa-ports 22,0: 0: port must be 1..65535"},
		{"ports: empty", []string{"open", "--spa", "--spa-ports", "", "h"}, "--spa-ports '': no port: give a comma list such as 22 or 22,443"},
		{"ports: 17", []string{"open", "--spa", "--spa-ports", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17", "h"},
			"--spa-ports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17: 17 ports: an SPA packet asks at most 16"},
		{"duration 0", []string{"open", "--spa", "--spa-duration", "0s", "h"}, "--spa-duration 0s: must be 1s..1193046h28m15s"},
		{"duration not whole", []string{"open", "--spa", "--spa-duration", "1500ms", "h"}, "--spa-duration 1500ms: must be a whole number of seconds"},
		{"duration not a duration", []string{"open", "--spa", "--spa-duration", "3", "h"}, "--spa-duration 3: not a duration: use for example 30s, 10m or 2h"},
		{"address not one", []string{"open", "--spa", "--spa-address", "nat.example.org", "h"}, "--spa-address nat.example.org: not an IP address: use for example 198.51.100.7 or 2001:db8::7"},
		{"address mapped", []string{"open", "--spa", "--spa-address", "::ffff:192.0.2.1", "h"}, "--spa-address ::ffff:192.0.2.1: IPv4-mapped: give the IPv4 address 192.0.2.1"},
		{"address unspecified 4", []string{"open", "--spa", "--spa-address", "0.0.0.0", "h"}, "--spa-address 0.0.0.0: unspecified: give the address to open"},
		{"address unspecified 6", []string{"open", "--spa", "--spa-address", "::", "h"}, "--spa-address ::: unspecified: give the address to open"},
		{"address with zone", []string{"open", "--spa", "--spa-address", "fe80::1%eth0", "h"}, "--spa-address fe80::1%eth0: has a zone: give a global address"},
		{"show --spa", []string{"show", "--spa"}, "--spa: show is about knock sequences, not SPA"},
		{"doctor --spa-ports", []string{"doctor", "--spa-ports", "22", "h", "22"}, "--spa-ports: doctor is about knock sequences, not SPA"},
		{"no open secret", []string{"close", "--spa", "-c", "close only", "h"},
			"no open secret: give it with --open-secret, NFQKNOCK_OPEN_SECRET or an open= line in --secret-file or "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if !strings.HasPrefix(tt.want, "no open secret") {
				args = append([]string{"-o", "open s"}, args...)
			}
			code, stdout, stderr := runArgs(t, args...)
			if code != exitUsage || stdout != "" || !strings.HasPrefix(stderr, "nfqknock: "+tt.want) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("%q = %d, %q, %q; want %d and the line %q", args, code, stdout, stderr, exitUsage, "nfqknock: "+tt.want)
			}
		})
	}
}

// udpListener listens on UDP at addr (port 0) and returns the socket and
// its port.
func udpListener(t *testing.T, addr string) (*net.UDPConn, uint16) {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(addr), 0)))
	if err != nil {
		t.Skipf("no UDP on %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c, uint16(c.LocalAddr().(*net.UDPAddr).Port)
}

// receive reads n datagrams from c, failing after 3 s.
func receive(t *testing.T, c *net.UDPConn, n int) [][]byte {
	t.Helper()
	var got [][]byte
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	for range n {
		buf := make([]byte, 2048)
		k, err := c.Read(buf)
		if err != nil {
			t.Fatalf("received %d datagrams, want %d: %v", len(got), n, err)
		}
		got = append(got, buf[:k])
	}
	return got
}

// TestSPAPacket: open and close --spa send one packet three times, 5 ms
// apart, which spa.NewOpener opens with the key of the same open secret
// and --period, carrying the action and what the flags ask; -v tells the
// steps and no secret. A clock 5 minutes off sends a packet the daemon's
// window refuses.
func TestSPAPacket(t *testing.T) {
	const secret = "spa open secret"
	tests := []struct {
		name   string
		addr   string
		args   []string
		period time.Duration
		want   spa.Message // Time not compared
		err    error       // of Open at the receiver's clock
		trace  []string    // in -v's output
	}{
		{name: "open", addr: "127.0.0.1", args: []string{"open"}, period: time.Hour, want: spa.Message{Action: spa.Open},
			trace: []string{"address 127.0.0.1, IPv4", "spa open: one 113-byte packet to 127.0.0.1, UDP port ", "asks to open the user's ports to the packet's source for the daemon's --open-timeout",
				"spa copy 1/3 at +0s: sent", "spa copy 3/3 at +", "spa open: 3 copies in "}},
		{name: "close over IPv6", addr: "::1", args: []string{"close", "-6"}, period: time.Hour, want: spa.Message{Action: spa.Close},
			trace: []string{"address ::1, IPv6", "spa close: one 113-byte packet to ::1", "asks to close the user's ports of the packet's source"}},
		{name: "every ask, period 10m", addr: "127.0.0.1", period: 10 * time.Minute,
			args:  []string{"open", "--period", "10m", "--spa-ports", "2222,22", "--spa-duration", "3s", "--spa-address", "2001:db8::7"},
			want:  spa.Message{Action: spa.Open, Ports: []uint16{2222, 22}, Duration: 3 * time.Second, Address: netip.MustParseAddr("2001:db8::7")},
			trace: []string{"asks to open ports 2222,22 to 2001:db8::7 for 3s"}},
		{name: "clock 5 minutes ahead", addr: "127.0.0.1", args: []string{"open", "--test-clock-skew", "5m"}, period: time.Hour,
			want: spa.Message{Action: spa.Open}, err: spa.ErrFuture},
		{name: "clock 5 minutes behind", addr: "127.0.0.1", args: []string{"close", "--test-clock-skew", "-5m"}, period: time.Hour,
			want: spa.Message{Action: spa.Close}, err: spa.ErrTooOld},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, port := udpListener(t, tt.addr)
			args := append([]string{"-v", "--spa=" + strconv.Itoa(int(port)), "-o", secret, "-c", "close secret"}, tt.args...)
			args = append(args, tt.addr)
			code, stdout, stderr := runArgs(t, args...)
			if code != exitOK || stdout != "" {
				t.Fatalf("%q = %d, %q, %q; want 0", args, code, stdout, stderr)
			}
			got := receive(t, c, spaCopies)
			for i, p := range got {
				if !bytes.Equal(p, got[0]) || len(p) != spa.PacketLen {
					t.Errorf("copy %d: %d bytes, equal to the first: %v", i+1, len(p), bytes.Equal(p, got[0]))
				}
			}
			op := spa.NewOpener([]*spa.Key{spa.NewKey("another user's secret"), spa.NewKey(secret)}, tt.period, 2*time.Minute)
			var m spa.Message
			user, _, err := op.Open(got[0], time.Now(), &m)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Open: %v, want %v", err, tt.err)
			}
			if err == nil && (user != 1 || m.Action != tt.want.Action || !slices.Equal(m.Ports, tt.want.Ports) ||
				m.Duration != tt.want.Duration || m.Address != tt.want.Address || time.Since(m.Time).Abs() > 5*time.Second) {
				t.Errorf("Open: user %d, %+v; want user 1, %+v now", user, m, tt.want)
			}
			for _, w := range append(tt.trace, "UDP port "+strconv.Itoa(int(port))) {
				if !strings.Contains(stderr, w) {
					t.Errorf("-v output lacks %q:\n%s", w, stderr)
				}
			}
			if strings.Contains(stderr, "secret") || strings.Contains(strings.ToLower(stderr), "nonce") {
				t.Errorf("-v output names a secret or the nonce:\n%s", stderr)
			}
			if testing.Verbose() {
				t.Logf("%q:\n%s", args, stderr)
			}
		})
	}
}

// TestSPAFreshNonces: every packet has a nonce of its own, so the daemon
// takes each, and one run's copies are the same packet.
func TestSPAFreshNonces(t *testing.T) {
	c, port := udpListener(t, "127.0.0.1")
	for range 2 {
		if code, _, stderr := runArgs(t, "open", "--spa="+strconv.Itoa(int(port)), "-o", "s", "127.0.0.1"); code != 0 {
			t.Fatalf("open --spa: %d, %s", code, stderr)
		}
	}
	got := receive(t, c, 2*spaCopies)
	if !bytes.Equal(got[0], got[2]) || bytes.Equal(got[0][9:33], got[3][9:33]) {
		t.Errorf("nonces: the copies of one run must be equal, two runs' nonces differ")
	}
}

// TestSPAProxy: proxy --spa sends an open packet, carries the session to
// the TCP port, and sends a close packet when it ends.
func TestSPAProxy(t *testing.T) {
	c, port := udpListener(t, "127.0.0.1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		b, _ := readAll(conn)
		conn.Write(b)
	}()
	tcpPort := ln.Addr().(*net.TCPAddr).Port
	var stdout, stderr bytes.Buffer
	args := []string{"proxy", "--spa=" + strconv.Itoa(int(port)), "-o", "s", "127.0.0.1", strconv.Itoa(tcpPort)}
	if code := run(args, strings.NewReader("ssh bytes"), &stdout, &stderr); code != 0 || stdout.String() != "ssh bytes" {
		t.Fatalf("%q = %d, stdout %q, stderr %q; want 0 and the bytes echoed", args, code, stdout.String(), stderr.String())
	}
	got := receive(t, c, 2*spaCopies)
	op := spa.NewOpener([]*spa.Key{spa.NewKey("s")}, time.Hour, 2*time.Minute)
	for i, want := range []spa.Action{spa.Open, spa.Close} {
		var m spa.Message
		if _, _, err := op.Open(got[i*spaCopies], time.Now(), &m); err != nil || m.Action != want {
			t.Errorf("packet %d: %v, action %v; want %v", i+1, err, m.Action, want)
		}
	}
}

// readAll reads c until EOF.
func readAll(c net.Conn) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(c)
	return b.Bytes(), err
}
