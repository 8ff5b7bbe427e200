package e2e

// Hostile cases of issue 20 against the kernel ruleset: a flood that fills
// the kernel filter's knocking sets (case 2), and a non-SYN packet of a new
// connection from a source that never knocked (case 3).

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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
// throughout: the knocks get to the daemon by the spill rules alone.
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
			t.Logf("%s: %d of %d clients opened with %s full (%d elements after the last try); spill rules queued %d SYNs",
				fam.name, opened, fillTries, fam.knocking, full, e.spillQueued(t))
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

// spillRE finds the counters of the spill rules of chain knocks.
var spillRE = regexp.MustCompile(`@spill[46][^\n]* counter packets (\d+)`)

// spillQueued returns the SYNs the spill rules queued (0 where there are
// none).
func (e *env) spillQueued(t *testing.T) int {
	t.Helper()
	out, err := e.nft("list", "chain", "inet", "nfqknock", "knocks")
	if err != nil {
		t.Fatalf("nft list chain knocks: %v: %s", err, out)
	}
	ms := spillRE.FindAllStringSubmatch(out, -1)
	sum := 0
	for _, m := range ms {
		n, _ := strconv.Atoi(m[1])
		sum += n
	}
	return sum
}

// conntrackTable stands for Docker or a stateful firewall: a ct expression
// of another table makes the kernel track the server namespace's
// connections; the chain out counts the RSTs the guarded and the free
// port send.
const conntrackTable = `table inet other {
	chain pre {
		type filter hook prerouting priority 0; policy accept;
		ct state established,related counter
	}
	chain out {
		type filter hook output priority 0; policy accept;
		tcp sport { %d, %d } tcp flags & rst == rst counter
	}
}`

// TestNewNonSYN (issue 20, case 3): with conntrack in use and
// net.ipv4.tcp_syncookies=2 (every SYN answered with a cookie, so an ACK
// carrying a guessed one would make a connection), a bare ACK from a
// source that never knocked to the guarded port is dropped by the guard
// and counted, while the same ACK to the free port reaches its listener
// (which answers with an RST). An opened client's established connection
// still carries data after its source is closed.
func TestNewNonSYN(t *testing.T) {
	for _, fam := range []struct {
		name             string
		server, stranger netip.Addr
	}{
		{"ipv4", netns.ServerIP4, strangerIP4},
		{"ipv6", netns.ServerIP6, stranger6},
	} {
		t.Run(fam.name, func(t *testing.T) {
			e := newEnv(t)
			if fam.stranger.Is6() {
				e.addStranger6()
			}
			cmd := netns.Command(e.pair.Server, "nft", "-f", "-")
			cmd.Stdin = strings.NewReader(fmt.Sprintf(conntrackTable, guardPort, freePort))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("nft -f (conntrack table): %v: %s", err, out)
			}
			if out, err := netns.Command(e.pair.Server, "sysctl", "-w", "net.ipv4.tcp_syncookies=2").CombinedOutput(); err != nil {
				t.Fatalf("sysctl: %v: %s", err, out)
			}
			none := netip.Addr{}
			// A connection conntrack tracks: the daemon sees it in use.
			if !e.reachable(none, fam.server, freePort) {
				t.Fatalf("free port not reachable")
			}
			d := e.start()
			if !strings.Contains(d.stderr.String(), " conntrack=true ") {
				t.Fatalf("the start line does not say conntrack=true:\n%s", d.stderr)
			}

			// The control: an ACK to the free port reaches its listener.
			rsts := e.rstsSent(t)
			e.sendACK(t, fam.stranger, fam.server, freePort)
			if !pollUntil(func() bool { return e.rstsSent(t) > rsts }) {
				t.Fatalf("no RST for a bare ACK to the free port: the test cannot see ACKs reach a listener")
			}
			rsts, drops := e.rstsSent(t), e.guardedDrops()
			e.sendACK(t, fam.stranger, fam.server, guardPort)
			if !pollUntil(func() bool { return e.guardedDrops() > drops }) {
				t.Errorf("a bare ACK from %s to the guarded port was not counted by the guard's drop (%d drops)", fam.stranger, e.guardedDrops())
			}
			if n := e.rstsSent(t); n != rsts {
				t.Errorf("a bare ACK from %s reached the guarded port's listener: %d RSTs sent, want %d", fam.stranger, n, rsts)
			}

			// An established connection of an opened source outlives the
			// close of its source.
			open, close := e.sequences()
			e.knock(none, fam.server, open)
			c, err := e.dial(none, fam.server, guardPort, dropTimeout)
			if err != nil {
				t.Fatalf("connect after the open knock: %v", err)
			}
			defer c.Close()
			echo := func(msg string) error {
				c.SetDeadline(time.Now().Add(2 * time.Second))
				if _, err := c.Write([]byte(msg)); err != nil {
					return err
				}
				b := make([]byte, len(msg))
				if _, err := io.ReadFull(c, b); err != nil {
					return err
				}
				if string(b) != msg {
					return fmt.Errorf("echo %q, want %q", b, msg)
				}
				return nil
			}
			if err := echo("before"); err != nil {
				t.Fatalf("echo before the close: %v", err)
			}
			e.knock(none, fam.server, close)
			if !d.waitLog("msg=close source=", 5*time.Second) {
				t.Fatalf("no close logged:\n%s", d.stderr)
			}
			if e.reachable(none, fam.server, guardPort) {
				t.Fatalf("a new connection reached the guarded port after the close")
			}
			if err := echo("after"); err != nil {
				t.Errorf("the established connection stopped carrying data after the close: %v", err)
			}
			if code := d.stop(syscall.SIGTERM); code != 0 {
				t.Errorf("exit status = %d", code)
			}
		})
	}
}

// pollUntil calls cond every 20 ms, up to 100 times, until it holds.
func pollUntil(cond func() bool) bool {
	for range 100 {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// rstsSent returns the RSTs the guarded and the free port sent (the chain
// out of conntrackTable).
func (e *env) rstsSent(t *testing.T) int {
	t.Helper()
	out, err := e.nft("list", "chain", "inet", "other", "out")
	if err != nil {
		t.Fatalf("nft list chain out: %v: %s", err, out)
	}
	m := regexp.MustCompile(`counter packets (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no counter in chain out:\n%s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// sendACK sends one bare TCP ACK, with a random sequence and
// acknowledgement number (a guessed SYN cookie), from src in the client
// namespace to dst:port, through a raw socket (the kernel writes the IP
// header; the TCP checksum is ours).
func (e *env) sendACK(t *testing.T, src, dst netip.Addr, port int) {
	t.Helper()
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], uint16(40000+rand.IntN(20000)))
	binary.BigEndian.PutUint16(tcp[2:], uint16(port))
	binary.BigEndian.PutUint32(tcp[4:], rand.Uint32())
	binary.BigEndian.PutUint32(tcp[8:], rand.Uint32())
	tcp[12] = 5 << 4 // data offset: 5 words
	tcp[13] = 0x10   // ACK
	binary.BigEndian.PutUint16(tcp[14:], 65535)
	binary.BigEndian.PutUint16(tcp[16:], tcpChecksum(src, dst, tcp))
	family, sa, da := unix.AF_INET6, unix.Sockaddr(&unix.SockaddrInet6{Addr: src.As16()}), unix.Sockaddr(&unix.SockaddrInet6{Addr: dst.As16()})
	if dst.Is4() {
		family, sa, da = unix.AF_INET, &unix.SockaddrInet4{Addr: src.As4()}, &unix.SockaddrInet4{Addr: dst.As4()}
	}
	err := netns.Do(e.pair.Client, func() error {
		fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
		if err != nil {
			return fmt.Errorf("raw socket: %w", err)
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, sa); err != nil {
			return fmt.Errorf("bind %s: %w", src, err)
		}
		if err := unix.Sendto(fd, tcp, 0, da); err != nil {
			return fmt.Errorf("send to %s: %w", dst, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("bare ACK: %v", err)
	}
}

// tcpChecksum is the checksum of segment tcp (its checksum field zero)
// from src to dst, over the pseudo-header of the family.
func tcpChecksum(src, dst netip.Addr, tcp []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src.AsSlice())
	add(dst.AsSlice())
	sum += unix.IPPROTO_TCP + uint32(len(tcp))
	add(tcp)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
