package queue

// The read loop: recvmmsg(2) batches, parsed in place, handed to the
// handler, with the pacer deciding when to read again.

import (
	"context"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Sizes of a read batch: at most batchLen datagrams per recvmmsg(2), each
// into a buffer of bufLen bytes (a queued-packet message with CopyRange bytes
// of payload takes about 400).
const (
	batchLen = 64
	bufLen   = 4096
)

// yieldEvery is how often Run passes through the Go scheduler (see Run):
// well under the 10ms after which the runtime preempts a goroutine.
const yieldEvery = 4 * time.Millisecond

// mmsghdr is struct mmsghdr of recvmmsg(2); Go lays it out as C does.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
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
