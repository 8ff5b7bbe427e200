package queue

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	nfqueue "github.com/florianl/go-nfqueue/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Defaults of Config.
const (
	// DefaultMaxLen is the queue length used when Config.MaxLen is 0 (and
	// the daemon's default --max-queue-len). A longer queue holds more
	// packets than the caches do: a reader that falls behind then finds
	// every packet cold, answers a quarter fewer per second and never
	// catches up while the flood lasts (make bench with an AF_PACKET
	// flood: about 330k SYN/s answered with 10000, the C daemon's length,
	// 400-450k with 2048, and 0-0.3 % instead of 0-2.3 % leaked under the
	// IPPROTO_RAW flood). 2048 packets are 5 ms of a 400k SYN/s flood,
	// enough to ride out a scheduling delay. A receive buffer of
	// DefaultRcvBuf holds about 20,000 queued SYNs (measured), so a burst
	// fills the queue first, and the kernel keeps counting ids only for
	// packets the reader will see.
	DefaultMaxLen = 2048
	// DefaultRcvBuf is the receive buffer asked for when Config.RcvBuf is 0.
	DefaultRcvBuf = 8 << 20
)

// CopyRange is how many bytes of each packet the kernel copies to the
// queue: enough for the largest IPv4 and TCP headers (60 + 60 bytes) and an
// IPv6 header with a few extension headers. The payload is never needed.
const CopyRange = 256

// Sizes of a read batch: at most batchLen datagrams per recvmmsg(2), each
// into a buffer of bufLen bytes (a queued-packet message with CopyRange bytes
// of payload takes about 400).
const (
	batchLen = 64
	bufLen   = 4096
)

// coalesceWait is how long Run sleeps, after a read that emptied the
// socket, before it reads again while packets come closer together than
// that: one wake-up of the reader, one read and one verdict for all the
// packets of the interval instead of one each. It bounds the delay it adds
// to any packet. A sleep that finds nothing stops the sleeps until packets
// come close together again (see pacer).
const coalesceWait = 500 * time.Microsecond

// gatherMin is the fewest packets one read must find for Run to sleep
// coalesceWait before the next: fewer is no flood, and a lone packet (a
// knock, with the kernel filter nearly every packet) is never delayed.
const gatherMin = 4

// yieldEvery is how often Run passes through the Go scheduler (see Run):
// well under the 10ms after which the runtime preempts a goroutine.
const yieldEvery = 4 * time.Millisecond

// exchangeTimeout bounds the wait for the kernel's answer to a configuration
// message.
const exchangeTimeout = 5 * time.Second

// nfqueue configuration attributes and commands
// (linux/netfilter/nfnetlink_queue.h).
const (
	nfqaCfgCmd         = 1 // NFQA_CFG_CMD: struct nfqnl_msg_config_cmd
	nfqaCfgParams      = 2 // NFQA_CFG_PARAMS: struct nfqnl_msg_config_params
	nfqaCfgQueueMaxLen = 3 // NFQA_CFG_QUEUE_MAXLEN: __be32
	nfqaCfgMask        = 4 // NFQA_CFG_MASK: __be32
	nfqaCfgFlags       = 5 // NFQA_CFG_FLAGS: __be32

	cfgCmdBind     = 1 // NFQNL_CFG_CMD_BIND
	cfgCmdUnbind   = 2 // NFQNL_CFG_CMD_UNBIND
	cfgCmdPfUnbind = 4 // NFQNL_CFG_CMD_PF_UNBIND (a no-op since Linux 3.8)

	copyPacket   = 2 // NFQNL_COPY_PACKET
	cfgFFailOpen = 1 // NFQA_CFG_F_FAIL_OPEN
)

// ErrBound is wrapped by the error of Open when another socket (another
// process, or another Queue of this one) already holds the queue number.
var ErrBound = errors.New("already bound by another process")

// Config says which queue to bind and how.
type Config struct {
	// Num is the queue number, as in the rule's "queue num".
	Num uint16
	// Total is the number of queues of the daemon's fanout rule
	// ("queue num B-B+Total-1"). The daemon opens one Queue per queue
	// number, Num = B+i, and runs each in its own goroutine; Total only
	// appears in the log. 0 means 1.
	Total uint16
	// MaxLen is the most packets the kernel holds waiting for a verdict on
	// this queue; beyond it new packets pass unseen (fail-open). 0 means
	// DefaultMaxLen.
	MaxLen uint32
	// NetNS is an open file descriptor of the network namespace to bind
	// the queue in; 0 means the current one.
	NetNS int
	// RcvBuf is the receive buffer of the netlink socket in bytes, set with
	// SO_RCVBUFFORCE (or SO_RCVBUF, capped by net.core.rmem_max, without
	// CAP_NET_ADMIN). 0 means DefaultRcvBuf.
	RcvBuf int
	// Logger receives read and verdict errors (at most one line per second
	// each) and the start-up line; nil discards them.
	Logger *slog.Logger
}

// Stats are the counters of a Queue since Open. They only grow.
type Stats struct {
	// Received is the number of queued packets read.
	Received uint64
	// ParseErrors is the number of queued packets that did not parse (they
	// were accepted all the same) plus netlink messages that did not hold
	// together.
	ParseErrors uint64
	// ReadErrors is the number of failed reads of the socket (ENOBUFS ...).
	ReadErrors uint64
	// VerdictErrors is the number of verdict messages that could not be sent
	// or that the kernel refused.
	VerdictErrors uint64
	// Batches is the number of verdict batches sent.
	Batches uint64
}

// Queue is one bound NFQUEUE. Run reads it; Stats may be called from any
// goroutine; Close ends it.
type Queue struct {
	num, total uint16
	log        *slog.Logger
	nfq        *nfqueue.Nfqueue
	con        *netlink.Conn
	rc         syscall.RawConn

	// fd is a duplicate of the socket's descriptor that Run reads, waits on
	// (ppoll) and writes verdicts to with plain system calls, outside Go's
	// network poller: the reader's thread sleeps in the kernel and wakes
	// up itself when packets come, without the poller's hand-offs between
	// threads (several context switches per wake-up). efd is an eventfd
	// that wakes it for Do, Close and the end of the context. Both are
	// closed by Close once Run has ended; wakeMu guards efd against that.
	fd     int
	efd    int
	wakeMu sync.Mutex
	pfds   [2]unix.PollFd

	// Read and verdict state, owned by the goroutine in Run (or Close,
	// once Run has ended).
	msgs    []mmsghdr
	iovs    []unix.Iovec
	bufs    [][]byte // batchLen buffers of bufLen bytes
	dgrams  [][]byte // the datagrams of the current batch, into bufs
	pkt     Packet
	vbuf    [verdictLen]byte
	lastID  uint32
	readAt  time.Time // when the current batch was read
	readLog time.Time // when a read error was last logged
	vLog    time.Time // when a verdict error was last logged

	received, parseErrs, readErrs, verdictErrs, batches atomic.Uint64
	drops                                               dropCounter // see Drops

	runMu     sync.Mutex  // held by Run
	tasksMu   sync.Mutex  // guards tasks
	tasks     []func()    // run by Run between batches (see Do)
	hasTasks  atomic.Bool // tasks is not empty
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// mmsghdr is struct mmsghdr of recvmmsg(2); Go lays it out as C does.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// Open binds queue cfg.Num on a new netfilter netlink socket: packet copy
// mode with CopyRange bytes (headers only), fail-open (a full queue lets
// packets pass rather than dropping them), queue length cfg.MaxLen,
// NETLINK_NO_ENOBUFS and a receive buffer of cfg.RcvBuf. When another socket
// holds the queue it fails with an error that wraps ErrBound and touches
// nothing.
func Open(cfg Config) (*Queue, error) {
	if cfg.Total == 0 {
		cfg.Total = 1
	}
	if cfg.MaxLen == 0 {
		cfg.MaxLen = DefaultMaxLen
	}
	if cfg.RcvBuf == 0 {
		cfg.RcvBuf = DefaultRcvBuf
	}
	if cfg.RcvBuf < 0 {
		return nil, fmt.Errorf("queue %d: receive buffer %d bytes: must not be negative", cfg.Num, cfg.RcvBuf)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	nfq, err := nfqueue.Open(&nfqueue.Config{NetNS: cfg.NetNS, NfQueue: cfg.Num})
	if err != nil {
		return nil, fmt.Errorf("queue %d: open netfilter netlink socket: %w", cfg.Num, err)
	}
	q := &Queue{num: cfg.Num, total: cfg.Total, log: log, nfq: nfq, con: nfq.Con, fd: -1, efd: -1}
	if err := q.setup(cfg); err != nil {
		q.closeFds()
		nfq.Close() // closing the socket also unbinds the queue, if bound
		return nil, err
	}
	return q, nil
}

// setup configures the socket, binds and configures the queue, and
// allocates the read buffers.
func (q *Queue) setup(cfg Config) error {
	var err error
	if q.rc, err = q.con.SyscallConn(); err != nil {
		return fmt.Errorf("queue %d: raw socket: %w", q.num, err)
	}
	if err := q.con.SetOption(netlink.NoENOBUFS, true); err != nil {
		return fmt.Errorf("queue %d: set NETLINK_NO_ENOBUFS: %w", q.num, err)
	}
	rcvbuf, err := q.setRcvBuf(cfg.RcvBuf)
	if err != nil {
		return err
	}
	var derr error
	if err := q.rc.Control(func(fd uintptr) { q.fd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err == nil {
		err = derr
	}
	if err != nil {
		q.fd = -1
		return fmt.Errorf("queue %d: duplicate the socket: %w", q.num, err)
	}
	if q.efd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		q.efd = -1
		return fmt.Errorf("queue %d: eventfd: %w", q.num, err)
	}
	q.pfds = [2]unix.PollFd{{Fd: int32(q.efd), Events: unix.POLLIN}, {Fd: int32(q.fd), Events: unix.POLLIN}}

	q.allocate()

	var params [5]byte // struct nfqnl_msg_config_params { __be32 copy_range; __u8 copy_mode; } __packed
	be32(params[0:4], CopyRange)
	params[4] = copyPacket
	var maxlen, flags [4]byte
	be32(maxlen[:], cfg.MaxLen)
	be32(flags[:], cfgFFailOpen)
	// One message: the kernel binds, then applies the parameters, length
	// and flags in that order, all before it answers.
	err = q.exchange([]netlink.Attribute{
		{Type: nfqaCfgCmd, Data: []byte{cfgCmdBind, 0, 0, 0}},
		{Type: nfqaCfgParams, Data: params[:]},
		{Type: nfqaCfgQueueMaxLen, Data: maxlen[:]},
		{Type: nfqaCfgFlags, Data: flags[:]},
		{Type: nfqaCfgMask, Data: flags[:]},
	}, false)
	switch {
	case err == nil:
	case errors.Is(err, unix.EPERM):
		// The kernel says EPERM both when the queue belongs to another
		// socket and when we lack CAP_NET_ADMIN. A command that needs no
		// queue tells them apart.
		if perr := q.exchange([]netlink.Attribute{{Type: nfqaCfgCmd, Data: []byte{cfgCmdPfUnbind, 0, 0, unix.AF_INET}}}, false); perr != nil {
			return fmt.Errorf("bind queue %d: %w (CAP_NET_ADMIN is needed)", q.num, err)
		}
		return fmt.Errorf("queue %d is %w: %w", q.num, ErrBound, err)
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("queue %d is %w: %w", q.num, ErrBound, err)
	default:
		return fmt.Errorf("bind queue %d: %w", q.num, err)
	}
	q.log.Info("queue bound", "queue", q.num, "queues", q.total, "maxlen", cfg.MaxLen,
		"copy_range", CopyRange, "rcvbuf", rcvbuf)
	return nil
}

// setRcvBuf sets the receive buffer and returns the size the kernel uses
// for data (half of what SO_RCVBUF reports).
func (q *Queue) setRcvBuf(n int) (int, error) {
	var serr error
	got := 0
	err := q.rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
		if serr != nil {
			// Without CAP_NET_ADMIN: as much as net.core.rmem_max allows.
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		}
		if v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF); err == nil {
			got = v / 2
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return 0, fmt.Errorf("queue %d: set receive buffer to %d bytes: %w", q.num, n, err)
	}
	if got < n {
		q.log.Warn("queue receive buffer smaller than asked (raise net.core.rmem_max or grant CAP_NET_ADMIN)",
			"queue", q.num, "asked", n, "got", got)
	}
	return got, nil
}

// allocate makes the read buffers and the verdict message, once, so that the
// read loop allocates nothing.
func (q *Queue) allocate() {
	slab := make([]byte, batchLen*bufLen)
	q.msgs = make([]mmsghdr, batchLen)
	q.iovs = make([]unix.Iovec, batchLen)
	q.bufs = make([][]byte, batchLen)
	q.dgrams = make([][]byte, 0, batchLen)
	for i := range q.msgs {
		q.bufs[i] = slab[i*bufLen : (i+1)*bufLen : (i+1)*bufLen]
		q.iovs[i].Base = &q.bufs[i][0]
		q.iovs[i].SetLen(bufLen)
		q.msgs[i].hdr.Iov = &q.iovs[i]
		q.msgs[i].hdr.SetIovlen(1)
	}
	putVerdict(&q.vbuf, q.num, 0)
}

// closeFds closes the duplicate descriptor and the eventfd.
func (q *Queue) closeFds() {
	q.wakeMu.Lock()
	defer q.wakeMu.Unlock()
	for _, fd := range []*int{&q.fd, &q.efd} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// Run reads the queue in batches until ctx ends (it then returns nil) or
// the Queue is closed. For each packet that parses, handle is called
// synchronously, in the order the kernel queued them; p is valid only
// during the call. After each batch Run sends one NFQNL_MSG_VERDICT_BATCH
// that accepts every packet of the batch, so whatever handle did (add a
// source to an allow set) is done before the packet goes on. Packets that do
// not parse are accepted and counted. Read errors (ENOBUFS ...) are counted,
// logged at most once a second, and the loop goes on.
//
// Run reads up to batchLen packets at a time. After a read that found
// fewer, the socket was empty: it waits for packets in ppoll(2) without
// reading again. While packets come closer together than coalesceWait, it
// rather sleeps coalesceWait before each read, so that one wake-up, one read
// and one verdict serve all the packets of the interval (see pacer). A
// packet is delayed by at most coalesceWait beyond the time it takes to
// handle the batch before it.
//
// Only one Run may be active on a Queue at a time. A nil handle only counts.
func (q *Queue) Run(ctx context.Context, handle func(p *Packet)) error {
	if q.closed.Load() {
		return q.errClosed()
	}
	if handle == nil {
		handle = func(*Packet) {}
	}
	if !q.runMu.TryLock() {
		return fmt.Errorf("queue %d: Run is already running", q.num)
	}
	defer q.runMu.Unlock()
	// Close sets closed before it wakes Run: seen here, or the wake-up is
	// still ahead and ends the wait below.
	if q.closed.Load() {
		return q.errClosed()
	}
	stop := context.AfterFunc(ctx, q.wake)
	defer stop()
	pace := pacer{woken: true}
	var wait unix.Timespec
	var yielded time.Time
	var waited time.Duration // how long the last wait for packets took
	for {
		// The reader never parks: pass through the scheduler every few
		// milliseconds. A goroutine that the scheduler has not seen for
		// 10ms gets preemption signals, and its thread has its P taken
		// away while it waits in ppoll, every 20µs, which keeps the
		// runtime's monitor thread waking up. Not more often: each pass
		// also wakes an idle thread of the runtime for nothing.
		if now := time.Now(); now.Sub(yielded) >= yieldEvery {
			runtime.Gosched()
			yielded = now
		}
		if q.hasTasks.Load() {
			q.runTasks()
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case q.closed.Load():
			return q.errClosed()
		}
		n, err := q.step(handle)
		if err != nil {
			return err
		}
		switch pace.after(n, waited) {
		case gather:
			// Only the eventfd: let packets gather for coalesceWait.
			// A timer wake-up keeps the reader on its CPU (the socket's
			// wake-ups come from the CPU that queued the packet, and
			// may pull the reader there).
			wait = coalesceTimespec // ppoll writes back what is left
			err = q.poll(1, &wait)
		case waitPackets:
			t0 := time.Now()
			err = q.poll(2, nil)
			now := time.Now()
			waited = now.Sub(t0)
			if waited >= yieldEvery {
				// A long wait in ppoll is no stretch without the
				// scheduler: count from its end. Else every lone packet
				// after a quiet spell would pass through Gosched and wake
				// the runtime's monitor thread for nothing (it was most of
				// the daemon's CPU with the kernel filter, measured with
				// make bench). Short waits, under load, still yield every
				// yieldEvery.
				yielded = now
			}
		}
		if err != nil {
			return err
		}
	}
}

// pacer decides, after each read, how Run waits before the next one.
type pacer struct {
	coalesce bool // packets come close together: sleep coalesceWait before a read
	woken    bool // the last read followed a wait for packets
	short    int  // waits for packets in a row that took less than coalesceWait
}

// pace is what Run does before its next read.
type pace uint8

const (
	readNow     pace = iota // the batch was full: more may be waiting
	gather                  // wait coalesceWait, then read
	waitPackets             // the socket was empty: wait until packets come
)

// after returns what to do after a read of n datagrams (0: none there);
// waited is how long the last wait for packets took. The socket is empty
// after any read of fewer than batchLen. When packets came twice in a row
// within coalesceWait of the previous read, they come close together: from
// then on each read sleeps coalesceWait before it, until such a sleep finds
// nothing. Packets further apart are read as they come: a sleep would only
// add a wake-up that finds nothing; so are bursts (one wait within
// coalesceWait, in the middle of a burst, after a long one), and reads of
// fewer than gatherMin packets: the packet after a lone one is not held
// back.
func (p *pacer) after(n int, waited time.Duration) pace {
	switch {
	case n > 0 && p.woken:
		if waited < coalesceWait {
			p.short++
		} else {
			p.short = 0
		}
		p.coalesce = p.short >= 2
	case n == 0 && !p.woken:
		p.coalesce, p.short = false, 0
	}
	if n >= batchLen {
		p.woken = false
		return readNow
	}
	if p.coalesce && n >= gatherMin {
		p.woken = false
		return gather
	}
	p.woken = true
	return waitPackets
}

// coalesceTimespec is coalesceWait for ppoll.
var coalesceTimespec = unix.NsecToTimespec(int64(coalesceWait))

// poll waits in ppoll(2) on the first n of the eventfd and the socket, for
// at most timeout (nil: no limit), and empties the eventfd when it was
// written. It returns an error only when waiting cannot go on.
func (q *Queue) poll(n int, timeout *unix.Timespec) error {
	q.pfds[0].Revents, q.pfds[1].Revents = 0, 0
	_, _, e := unix.Syscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&q.pfds[0])), uintptr(n),
		uintptr(unsafe.Pointer(timeout)), 0, 0, 0)
	switch e {
	case 0, unix.EINTR:
	default:
		return fmt.Errorf("queue %d: ppoll: %w", q.num, e)
	}
	if q.pfds[0].Revents&unix.POLLIN != 0 {
		var b [8]byte
		unix.Syscall(unix.SYS_READ, uintptr(q.efd), uintptr(unsafe.Pointer(&b[0])), 8)
	}
	if q.pfds[1].Revents&(unix.POLLERR|unix.POLLNVAL) != 0 {
		return fmt.Errorf("queue %d: ppoll: socket error (events %#x)", q.num, q.pfds[1].Revents)
	}
	return nil
}

// ReadAt returns when the batch whose packets Run is handing to its handler
// was read: one clock reading serves the whole batch. It may only be called
// from the handler.
func (q *Queue) ReadAt() time.Time { return q.readAt }

// Do runs fn on the goroutine of Run, between two batches, so that fn may
// use whatever the packet handler uses without a lock. It wakes a Run
// waiting for packets; fn runs when Run next gets to it, or never if Run has
// ended. It may be called from any goroutine.
func (q *Queue) Do(fn func()) {
	q.tasksMu.Lock()
	q.tasks = append(q.tasks, fn)
	q.hasTasks.Store(true)
	q.tasksMu.Unlock()
	q.wake()
}

// runTasks runs the functions queued by Do.
func (q *Queue) runTasks() {
	q.tasksMu.Lock()
	tasks := q.tasks
	q.tasks = nil
	q.hasTasks.Store(false)
	q.tasksMu.Unlock()
	for _, fn := range tasks {
		fn()
	}
}

// wake ends a wait of Run in progress, or the next one, by writing to the
// eventfd.
func (q *Queue) wake() {
	q.wakeMu.Lock()
	defer q.wakeMu.Unlock()
	if q.efd < 0 {
		return
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(q.efd, one[:])
}

func (q *Queue) errClosed() error { return fmt.Errorf("queue %d: %w", q.num, net.ErrClosed) }

// step reads one batch without waiting, hands its packets to handle and
// answers it. It returns how many datagrams it read (0: the socket was
// empty, or the read failed and was counted), and an error only when
// reading cannot go on.
func (q *Queue) step(handle func(*Packet)) (int, error) {
	n, e := q.recv()
	switch e {
	case 0:
	case unix.EAGAIN:
		return 0, nil
	case unix.EBADF, unix.ENOTSOCK, unix.EFAULT, unix.EINVAL:
		return 0, fmt.Errorf("queue %d: recvmmsg: %w", q.num, e)
	default:
		c := q.readErrs.Add(1)
		if now := time.Now(); now.Sub(q.readLog) >= time.Second {
			q.readLog = now
			q.log.Warn("queue read error", "queue", q.num, "err", e, "read_errors", c)
		}
		return 0, nil
	}
	q.readAt = time.Now()
	q.dgrams = q.dgrams[:0]
	for i := range n {
		q.dgrams = append(q.dgrams, q.bufs[i][:min(int(q.msgs[i].len), bufLen)])
	}
	var r walkResult
	walkBatch(q.dgrams, &q.pkt, handle, &r)
	q.account(&r)
	if r.haveID {
		q.lastID = r.maxID
		q.verdict(r.maxID)
	}
	return n, nil
}

// account adds the counts of a batch to the Stats and logs refused
// verdicts.
func (q *Queue) account(r *walkResult) {
	if r.received != 0 {
		q.received.Add(r.received)
	}
	if e := r.parseErrs + r.malformed; e != 0 {
		q.parseErrs.Add(e)
	}
	if r.nlErrs != 0 {
		q.verdictError(r.nlErrs, unix.Errno(r.errno))
	}
}

// verdict accepts every queued packet up to id with one message, and
// counts it.
func (q *Queue) verdict(id uint32) {
	if err := q.writeVerdict(id); err != nil {
		q.verdictError(1, err)
		return
	}
	q.batches.Add(1)
}

// writeVerdict sends the message that accepts every queued packet up to
// id (an unconnected netlink socket sends to the kernel, port 0). A netlink
// message to the kernel is handled within the call: it never blocks.
func (q *Queue) writeVerdict(id uint32) error {
	be32(q.vbuf[28:32], id)
	for {
		_, _, e := unix.Syscall(unix.SYS_WRITE, uintptr(q.fd), uintptr(unsafe.Pointer(&q.vbuf[0])), uintptr(len(q.vbuf)))
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return e
	}
}

// verdictError counts n failed verdicts and logs at most once a second.
func (q *Queue) verdictError(n uint64, err error) {
	total := q.verdictErrs.Add(n)
	if now := time.Now(); now.Sub(q.vLog) >= time.Second {
		q.vLog = now
		q.log.Warn("queue verdict error", "queue", q.num, "err", err, "verdict_errors", total)
	}
}

// recv is one recvmmsg(2) of up to batchLen datagrams without waiting. It
// returns how many it read, or the error (EAGAIN: none there).
func (q *Queue) recv() (int, unix.Errno) {
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(q.fd), uintptr(unsafe.Pointer(&q.msgs[0])), uintptr(len(q.msgs)),
			unix.MSG_DONTWAIT, 0, 0)
		if e != unix.EINTR {
			return int(n), e
		}
	}
}

// Stats returns the counters. It is safe to call from any goroutine.
func (q *Queue) Stats() Stats {
	return Stats{
		Received:      q.received.Load(),
		ParseErrors:   q.parseErrs.Load(),
		ReadErrors:    q.readErrs.Load(),
		VerdictErrors: q.verdictErrs.Load(),
		Batches:       q.batches.Load(),
	}
}

// Close ends a Run in progress and waits for it, lets the packets still
// queued go on (accepted), unbinds the queue and closes the socket. From
// then on the rule's bypass flag lets packets pass. Close may be called from
// any goroutine, more than once.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		q.closed.Store(true)
		q.wake()
		q.runMu.Lock()
		defer q.runMu.Unlock()
		q.closeErr = q.shutdown()
	})
	return q.closeErr
}

// shutdown stops queueing (a queue length of 0 makes new packets pass by
// fail-open), accepts whatever is still queued, and unbinds.
func (q *Queue) shutdown() error {
	var errs []error
	var zero [4]byte
	if err := q.exchange([]netlink.Attribute{{Type: nfqaCfgQueueMaxLen, Data: zero[:]}}, true); err != nil {
		errs = append(errs, fmt.Errorf("queue %d: stop queueing: %w", q.num, err))
	}
	// Packets still queued have ids after the last one read; accept them
	// all: the kernel compares ids with wrap-around, and no queue holds a
	// billion packets.
	if err := q.writeVerdict(q.lastID + 1<<30); err != nil {
		errs = append(errs, fmt.Errorf("queue %d: accept the queued packets: %w", q.num, err))
	}
	if err := q.exchange([]netlink.Attribute{{Type: nfqaCfgCmd, Data: []byte{cfgCmdUnbind, 0, 0, 0}}}, true); err != nil {
		errs = append(errs, fmt.Errorf("unbind queue %d: %w", q.num, err))
	}
	q.closeFds()
	if err := q.nfq.Close(); err != nil {
		errs = append(errs, fmt.Errorf("queue %d: close socket: %w", q.num, err))
	}
	return errors.Join(errs...)
}

// exchange sends one NFQNL_MSG_CONFIG message for the queue and waits for
// the kernel's answer. Queued packets that arrive meanwhile are accepted
// once the answer is in, unless skipPackets is set (the caller accepts
// them itself).
func (q *Queue) exchange(attrs []netlink.Attribute, skipPackets bool) error {
	ad, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		return err
	}
	data := append([]byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, byte(q.num >> 8), byte(q.num)}, ad...)
	req, err := q.con.Send(netlink.Message{
		Header: netlink.Header{Type: msgConfig, Flags: netlink.Request | netlink.Acknowledge},
		Data:   data,
	})
	if err != nil {
		return err
	}
	if err := q.con.SetReadDeadline(time.Now().Add(exchangeTimeout)); err != nil {
		return err
	}
	defer q.con.SetReadDeadline(time.Time{})
	var r walkResult
	defer func() {
		if r.haveID && !skipPackets {
			q.lastID = r.maxID
			q.verdict(r.maxID)
		}
	}()
	for {
		msgs, err := q.con.Receive()
		if err != nil {
			// An error code in a message (a raw Errno, not a failed
			// system call) with another sequence number is the
			// kernel's answer to an earlier verdict.
			var oe *netlink.OpError
			if errors.As(err, &oe) && oe.Sequence != req.Header.Sequence {
				if _, ok := oe.Err.(syscall.Errno); ok {
					continue
				}
			}
			return err
		}
		for _, m := range msgs {
			switch {
			case m.Header.Type == netlink.Error && m.Header.Sequence == req.Header.Sequence:
				return nil
			case m.Header.Type == msgPacket:
				walkPacket(m.Data, nil, nil, &r)
			}
		}
	}
}

// be32 writes v big endian.
func be32(b []byte, v uint32) { b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v) }
