package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/nft"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	netns.SweepStale()
	os.Exit(m.Run())
}

const testQueue = 100

// env is a server and a client namespace; the server has the project's
// ruleset, whose knock chain sends every bare SYN (ports 1-65535) to queue
// testQueue, with bypass.
type env struct {
	*netns.Pair
	fd int // the server namespace
}

func newEnv(t *testing.T) *env {
	t.Helper()
	p := netns.NewPair(t)
	fd, err := netns.Open(p.Server)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	c, err := nft.Dial(fd)
	if err != nil {
		t.Fatal(err)
	}
	// QueueAll: every bare SYN goes to the queue (no kernel filter).
	if _, err := c.Apply(nft.Spec{Start: 1, End: 65535, QueueNum: testQueue, QueueAll: true}); err != nil {
		t.Fatalf("install the queue rule: %v", err)
	}
	// Let the table's socket go now (the table stays, without owner): left
	// to the garbage collector, its finalizer would allocate in the middle
	// of TestSteadyStateAllocs.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return &env{Pair: p, fd: fd}
}

// open opens the test queue in the server namespace and closes it at the
// end of the test.
func (e *env) open(t *testing.T) *Queue {
	t.Helper()
	q, err := Open(Config{Num: testQueue, NetNS: e.fd, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// collector records the packets a Run hands over.
type collector struct {
	q    *Queue
	mu   sync.Mutex
	pkts []Packet
	ats  []time.Time // q.ReadAt() of each packet
}

func (c *collector) handle(p *Packet) {
	c.mu.Lock()
	c.pkts = append(c.pkts, *p)
	c.ats = append(c.ats, c.q.ReadAt())
	c.mu.Unlock()
}

// find waits up to 3 s for a packet that match accepts.
func (c *collector) find(match func(Packet) bool) (Packet, bool) {
	p, _, ok := c.findAt(match)
	return p, ok
}

// findAt is find, and also returns when the packet's batch was read.
func (c *collector) findAt(match func(Packet) bool) (Packet, time.Time, bool) {
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		c.mu.Lock()
		for i, p := range c.pkts {
			if match(p) {
				c.mu.Unlock()
				return p, c.ats[i], true
			}
		}
		c.mu.Unlock()
	}
	return Packet{}, time.Time{}, false
}

func (c *collector) count(match func(Packet) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, p := range c.pkts {
		if match(p) {
			n++
		}
	}
	return n
}

// run starts q.Run with a collector; the returned stop cancels it and
// checks that Run ended cleanly.
func run(t *testing.T, q *Queue) (*collector, func()) {
	t.Helper()
	c := &collector{q: q}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx, c.handle) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run after cancel = %v, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("Run did not end after its context was cancelled")
			}
		})
	}
	t.Cleanup(stop)
	return c, stop
}

// listen starts a TCP listener in the server namespace that accepts and
// closes connections, and returns its port.
func (e *env) listen(t *testing.T, ip netip.Addr) uint16 {
	t.Helper()
	var ln net.Listener
	err := netns.Do(e.Server, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(ip, 0).String())
		return err
	})
	if err != nil {
		t.Fatalf("listen in the server namespace: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	testutil.AcceptAndClose(ln)
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// dial connects from the client namespace and returns the local port.
func (e *env) dial(t *testing.T, ip netip.Addr, port uint16, control func(network, address string, c syscall.RawConn) error) (uint16, error) {
	t.Helper()
	local, _, err := e.dialInfo(ip, port, control)
	return local, err
}

// dialInfo connects from the client namespace and returns the local port and
// how many segments the connection sent again (SYN retransmissions).
func (e *env) dialInfo(ip netip.Addr, port uint16, control func(network, address string, c syscall.RawConn) error) (local uint16, retrans uint32, err error) {
	err = netns.Do(e.Client, func() error {
		d := net.Dialer{Timeout: 3 * time.Second, Control: control}
		c, err := d.Dial("tcp", netip.AddrPortFrom(ip, port).String())
		if err != nil {
			return err
		}
		defer c.Close()
		local = uint16(c.LocalAddr().(*net.TCPAddr).Port)
		rc, err := c.(*net.TCPConn).SyscallConn()
		if err != nil {
			return err
		}
		var ierr error
		if err := rc.Control(func(fd uintptr) {
			var info *unix.TCPInfo
			info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
			if ierr == nil {
				retrans = info.Total_retrans
			}
		}); err != nil {
			return err
		}
		return ierr
	})
	return local, retrans, err
}

// sendSYNs sends n bare SYNs with an MSS option from the client namespace
// through a raw socket: source port sport, sequence numbers seq, seq+1, ...
func (e *env) sendSYNs(t *testing.T, src, dst netip.Addr, sport, dport uint16, seq uint32, n int) {
	t.Helper()
	network := "ip4:tcp"
	if src.Is6() {
		network = "ip6:tcp"
	}
	err := netns.Do(e.Client, func() error {
		c, err := net.ListenPacket(network, src.String())
		if err != nil {
			return err
		}
		defer c.Close()
		to := &net.IPAddr{IP: dst.AsSlice()}
		for i := range n {
			if _, err := c.WriteTo(synSegment(src, dst, sport, dport, seq+uint32(i)), to); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send raw SYNs from the client: %v", err)
	}
}

// synSegment builds a TCP SYN with an MSS option and a valid checksum.
func synSegment(src, dst netip.Addr, sport, dport uint16, seq uint32) []byte {
	s := make([]byte, 24)
	binary.BigEndian.PutUint16(s[0:], sport)
	binary.BigEndian.PutUint16(s[2:], dport)
	binary.BigEndian.PutUint32(s[4:], seq)
	s[12] = 6 << 4
	s[13] = FlagSYN
	binary.BigEndian.PutUint16(s[14:], 64240)
	copy(s[20:], []byte{2, 4, 0x05, 0xb4})
	var ph []byte // pseudo-header
	ph = append(ph, src.AsSlice()...)
	ph = append(ph, dst.AsSlice()...)
	if src.Is4() {
		ph = append(ph, 0, protoTCP, 0, byte(len(s)))
	} else {
		ph = append(ph, 0, 0, 0, byte(len(s)), 0, 0, 0, protoTCP)
	}
	var sum uint32
	for _, b := range [][]byte{ph, s} {
		for i := 0; i < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(s[16:], ^uint16(sum))
	return s
}

// queueLine returns the fields of the queue's line in
// /proc/net/netfilter/nfnetlink_queue of the server namespace, or nil when
// the queue is not bound: queue number, peer port id, packets waiting, copy
// mode, copy range, dropped, user dropped, last id, 1.
func (e *env) queueLine(t *testing.T) []uint64 {
	t.Helper()
	var data []byte
	err := netns.Do(e.Server, func() (err error) {
		data, err = os.ReadFile("/proc/thread-self/net/netfilter/nfnetlink_queue")
		return err
	})
	if err != nil {
		t.Fatalf("read nfnetlink_queue: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || f[0] != strconv.Itoa(testQueue) {
			continue
		}
		v := make([]uint64, len(f))
		for i, s := range f {
			v[i], _ = strconv.ParseUint(s, 10, 64)
		}
		return v
	}
	return nil
}

// TestQueueSeesAndAccepts: connections reach a listener through the queue
// (the batch verdict accepts), handle sees each bare SYN with its fields
// over IPv4 and IPv6, and Close unbinds so that bypass lets traffic pass.
func TestQueueSeesAndAccepts(t *testing.T) {
	e := newEnv(t)
	q := e.open(t)
	if l := e.queueLine(t); l == nil {
		t.Fatal("queue not in nfnetlink_queue after Open")
	} else if l[3] != copyPacket || l[4] != CopyRange {
		t.Errorf("copy mode %d range %d, want %d and %d", l[3], l[4], copyPacket, CopyRange)
	}
	c, stop := run(t, q)

	for _, tc := range []struct {
		name      string
		srv, cli  netip.Addr
		rawSeq    uint32
		rawSource uint16
	}{
		{"IPv4", netns.ServerIP4, netns.ClientIP4, 0x11223344, 40000},
		{"IPv6", netns.ServerIP6, netns.ClientIP6, 0xfedcba98, 40001},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := e.listen(t, tc.srv)
			local, err := e.dial(t, tc.srv, port, nil)
			if err != nil {
				t.Fatalf("connect through the queue: %v", err)
			}
			p, ok := c.find(func(p Packet) bool { return p.SrcPort == local && p.DstPort == port })
			if !ok {
				t.Fatalf("handle never saw the SYN from port %d", local)
			}
			if p.Src != tc.cli || !p.BareSYN() {
				t.Errorf("SYN of the connect = %+v, want source %v, a bare SYN", p, tc.cli)
			}
			// A raw SYN whose sequence number the test knows.
			sent := time.Now()
			e.sendSYNs(t, tc.cli, tc.srv, tc.rawSource, port, tc.rawSeq, 1)
			p, at, ok := c.findAt(func(p Packet) bool { return p.SrcPort == tc.rawSource })
			want := Packet{Proto: ProtoTCP, Src: tc.cli, SrcPort: tc.rawSource, DstPort: port, Seq: tc.rawSeq, Flags: FlagSYN}
			if !ok || !reflect.DeepEqual(p, want) {
				t.Errorf("raw SYN seen as %+v (found %v), want %+v", p, ok, want)
			}
			// The handler's clock: when the batch was read, so after
			// the SYN was sent and before it was found.
			if found := time.Now(); ok && (at.Before(sent) || at.After(found)) {
				t.Errorf("ReadAt = %v, want between the send at %v and the find at %v", at, sent, found)
			}
		})
	}

	stop()
	s := q.Stats()
	if s.Received < 4 || s.Batches == 0 || s.ParseErrors != 0 || s.VerdictErrors != 0 || s.ReadErrors != 0 {
		t.Errorf("Stats = %+v, want at least 4 received, some batches, no errors", s)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if l := e.queueLine(t); l != nil {
		t.Errorf("queue still bound after Close: %v", l)
	}
	port := e.listen(t, netns.ServerIP4)
	if _, err := e.dial(t, netns.ServerIP4, port, nil); err != nil {
		t.Errorf("connect after Close (bypass): %v", err)
	}
}

// TestSecondOpenFails: a second socket cannot bind the same queue, says so
// clearly, and the first keeps working.
func TestSecondOpenFails(t *testing.T) {
	e := newEnv(t)
	q := e.open(t)
	c, _ := run(t, q)

	q2, err := Open(Config{Num: testQueue, NetNS: e.fd})
	if err == nil {
		q2.Close()
		t.Fatal("second Open of the same queue succeeded")
	}
	want := fmt.Sprintf("queue %d is already bound by another process", testQueue)
	if !errors.Is(err, ErrBound) || !strings.Contains(err.Error(), want) {
		t.Errorf("second Open: %v; want an error wrapping ErrBound that says %q", err, want)
	}

	port := e.listen(t, netns.ServerIP6)
	local, err := e.dial(t, netns.ServerIP6, port, nil)
	if err != nil {
		t.Fatalf("connect through the first queue after the failed second Open: %v", err)
	}
	if _, ok := c.find(func(p Packet) bool { return p.SrcPort == local }); !ok {
		t.Errorf("the first queue did not see the SYN after the failed second Open")
	}
}

// TestUnparsableAccepted: an IPv6 SYN whose headers do not fit in the copy
// range (a 256-byte destination options header) cannot be parsed; it is
// accepted and counted, and the loop goes on.
func TestUnparsableAccepted(t *testing.T) {
	e := newEnv(t)
	q := e.open(t)
	c, _ := run(t, q)
	port := e.listen(t, netns.ServerIP6)

	opts := make([]byte, 256)
	opts[1] = 256/8 - 1 // hdr ext len
	// One option over the rest: type 0x1e (RFC 4727 experiment, "skip if
	// unknown"); Linux refuses PadN longer than 7 bytes.
	opts[2], opts[3] = 0x1e, byte(256-4)
	bigDstOpts := func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.IPPROTO_IPV6, unix.IPV6_DSTOPTS, string(opts))
		})
		if err == nil {
			err = serr
		}
		return err
	}
	local, err := e.dial(t, netns.ServerIP6, port, bigDstOpts)
	if err != nil {
		t.Fatalf("connect with an unparsable SYN: %v", err)
	}
	if s := q.Stats(); s.ParseErrors == 0 {
		t.Errorf("Stats = %+v, want a parse error", s)
	}
	if n := c.count(func(p Packet) bool { return p.SrcPort == local }); n != 0 {
		t.Errorf("handle saw %d packets of the unparsable connection", n)
	}
	local, err = e.dial(t, netns.ServerIP6, port, nil)
	if err != nil {
		t.Fatalf("connect after the unparsable one: %v", err)
	}
	if _, ok := c.find(func(p Packet) bool { return p.SrcPort == local }); !ok {
		t.Errorf("handle did not see the SYN after the unparsable one")
	}
}

// TestCloseEndsRun: Close from another goroutine wakes Run, which returns
// net.ErrClosed; Run after Close fails the same way.
func TestCloseEndsRun(t *testing.T) {
	e := newEnv(t)
	q := e.open(t)
	done := make(chan error, 1)
	go func() { done <- q.Run(context.Background(), func(*Packet) {}) }()
	time.Sleep(50 * time.Millisecond) // let Run block in its read
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Run after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not end after Close")
	}
	if err := q.Run(context.Background(), func(*Packet) {}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Run on a closed queue = %v, want net.ErrClosed", err)
	}
	if err := q.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if l := e.queueLine(t); l != nil {
		t.Errorf("queue still bound after Close: %v", l)
	}
}

// TestCloseAcceptsQueued: packets queued but not read when Close runs are
// accepted, not dropped with the queue.
func TestCloseAcceptsQueued(t *testing.T) {
	e := newEnv(t)
	q := e.open(t)
	port := e.listen(t, netns.ServerIP4)
	// Nobody reads: the connect's SYN waits in the queue until Close.
	type result struct {
		retrans uint32
		err     error
	}
	res := make(chan result, 1)
	go func() {
		_, retrans, err := e.dialInfo(netns.ServerIP4, port, nil)
		res <- result{retrans, err}
	}()
	waitFor(t, "the SYN to be queued", func() bool { l := e.queueLine(t); return l != nil && l[2] > 0 })
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Accepted at Close, the first SYN is answered; a dropped one would
	// have to be sent again.
	r := <-res
	if r.err != nil {
		t.Fatalf("connect whose SYN was queued at Close: %v", r.err)
	}
	if r.retrans != 0 {
		t.Errorf("the client sent its SYN %d more times: the queued SYN was dropped at Close", r.retrans)
	}
}

// TestSteadyStateAllocs: reading, walking, parsing and answering a batch of
// real queued SYNs allocates nothing. testing.AllocsPerRun counts the
// allocations of the whole process, and now and then the runtime or another
// goroutine allocates during a measurement (1 in 20-30 runs here, at every
// commit): an allocation of the step itself would show in every attempt, so
// the fewest of three attempts counts.
func TestSteadyStateAllocs(t *testing.T) {
	e := newEnv(t)
	q := e.open(t)
	const runs, attempts = 5, 3
	const n = attempts * (runs + 1) * batchLen
	e.sendSYNs(t, netns.ClientIP4, netns.ServerIP4, 41000, 9, 1, n/2)
	e.sendSYNs(t, netns.ClientIP6, netns.ServerIP6, 41000, 9, 1, n/2)
	waitFor(t, "the SYNs to be queued", func() bool { l := e.queueLine(t); return l != nil && l[2] == n })
	seen, steps := 0, 0
	handle := func(p *Packet) {
		if p.DstPort == 9 {
			seen++
		}
	}
	var stepErr error
	fewest := -1.0
	for a := 0; a < attempts && fewest != 0; a++ {
		allocs := testing.AllocsPerRun(runs, func() {
			steps++
			if _, err := q.step(handle); err != nil && stepErr == nil {
				stepErr = err
			}
		})
		t.Logf("attempt %d: %v allocations per step", a+1, allocs)
		if fewest < 0 || allocs < fewest {
			fewest = allocs
		}
	}
	if stepErr != nil {
		t.Fatalf("step: %v", stepErr)
	}
	if fewest != 0 {
		t.Errorf("one read-walk-parse-verdict step allocates %v times (the fewest of the attempts), want 0", fewest)
	}
	s := q.Stats()
	if seen == 0 || uint64(seen) != s.Received || int(s.Batches) != steps {
		t.Errorf("handled %d SYNs, Stats %+v: want all received ones handled in %d batches", seen, s, steps)
	}
	t.Logf("%d packets in %d batches", seen, s.Batches)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestOpenWithoutCapability: without CAP_NET_ADMIN, Open says so instead of
// blaming another process. The test binary runs itself again as nobody, in
// the current namespace: nobody cannot bind a queue, so nothing changes.
func TestOpenWithoutCapability(t *testing.T) {
	if os.Getenv("QUEUE_TEST_NOCAP") == "1" {
		_, err := Open(Config{Num: testQueue})
		fmt.Printf("open error: %v\n", err)
		return
	}
	netns.RequireRoot(t)
	// The test binary lives in a directory only root can enter: copy it.
	dir, err := os.MkdirTemp("", "queue-nocap-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "queue.test")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestOpenWithoutCapability$")
	cmd.Env = append(os.Environ(), "QUEUE_TEST_NOCAP=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run the test as nobody: %v\n%s", err, out)
	}
	t.Logf("as nobody: %s", bytes.TrimSpace(out))
	if !strings.Contains(string(out), "open error: bind queue 100:") || !strings.Contains(string(out), "CAP_NET_ADMIN is needed") {
		t.Errorf("Open as nobody said:\n%s\nwant a bind error that names CAP_NET_ADMIN", out)
	}
}

// TestDoRunsOnReader: Do wakes a Run that waits for packets and runs its
// functions on Run's goroutine, one after another, and Run goes on reading.
func TestDoRunsOnReader(t *testing.T) {
	e := newEnv(t)
	q := e.open(t)
	defer q.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx, func(*Packet) {}) }()
	time.Sleep(50 * time.Millisecond) // let Run block in its read
	ran := make(chan int, 3)
	for i := range 3 {
		q.Do(func() { ran <- i })
	}
	for want := range 3 {
		select {
		case got := <-ran:
			if got != want {
				t.Fatalf("task %d ran as number %d", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("task %d did not run", want)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("Run ended after Do: %v", err)
	default:
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
}
