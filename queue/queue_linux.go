package queue

// A Queue: its configuration, its state and its counters. Binding is in
// bind_linux.go, reading in read_linux.go (paced by pace_linux.go),
// verdicts in verdict_linux.go, the task mailbox in tasks_linux.go.

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

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
