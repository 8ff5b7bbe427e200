package queue

// Verdicts: one NFQNL_MSG_VERDICT_BATCH message per read, which accepts
// every packet up to the last id.

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

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
