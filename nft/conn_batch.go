package nft

// Sending batches on the Conn's writing socket and reading the kernel's
// answers (the messages are built in batch.go).

import (
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// sendBatch sends msgs as one transaction on the Conn's writing socket and
// waits for the kernel's answer to each: the first error it reports, or
// nil. The caller holds c.mu.
//
// The socket lasts as long as the Conn: when the table is owned, it is the
// only socket the kernel lets change it. The kernel answers a batch before
// sendmsg returns, so answers left from an earlier batch that failed are
// read and dropped first.
func (c *Conn) sendBatch(msgs []netlink.Message) error {
	nl, err := c.writer()
	if err != nil {
		return err
	}
	drain(nl)
	full := make([]netlink.Message, 0, len(msgs)+2)
	full = append(full, batchMessage(unix.NFNL_MSG_BATCH_BEGIN))
	full = append(full, msgs...)
	full = append(full, batchMessage(unix.NFNL_MSG_BATCH_END))
	if _, err := nl.SendMessages(full); err != nil {
		return fmt.Errorf("send batch: %w", err)
	}
	acks := 0
	for _, m := range msgs {
		if m.Header.Flags&netlink.Acknowledge != 0 {
			acks++
		}
	}
	for acks > 0 {
		// Receive turns an error message into an error; the kernel sends
		// one answer (an ack or an error) per message of the batch.
		got, err := nl.Receive()
		if err != nil {
			return err
		}
		for _, m := range got {
			if m.Header.Type == netlink.Error {
				acks--
			}
		}
	}
	return nil
}

// drain reads and drops what is waiting on nl, without blocking: the
// answers to the rest of a batch that failed (the kernel answers every
// message of a batch, and sendBatch stops at the first error). A socket
// without a file descriptor (a test socket) is left alone.
func drain(nl *netlink.Conn) {
	rc, err := nl.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, 8192)
	_ = rc.Read(func(fd uintptr) bool {
		for {
			_, _, err := unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
			if err == unix.EAGAIN || err == unix.EBADF {
				return true
			}
		}
	})
}

// answerBuffer is the receive buffer of the writing socket. The kernel
// answers each message of a batch with a buffer of its own (an ack of
// about a kilobyte, all sent when the batch ends): a batch that carries
// 65,536 opened sources per family into the main and the backup table is
// some 300 messages, whose answers overflow the default buffer (208 KiB),
// and sendBatch would then see ENOBUFS for a batch that went through.
const answerBuffer = 4 << 20

// writer returns the Conn's writing socket, dialled on first use. The
// caller holds c.mu.
func (c *Conn) writer() (*netlink.Conn, error) {
	if c.nl != nil {
		return c.nl, nil
	}
	nl, err := c.rawDial()
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	_ = bigSendBuffer(nl)
	bigReadBuffer(nl, answerBuffer)
	c.nl = nl
	c.port.Store(nl.PID())
	return nl, nil
}

// sendRetry sends the batch that build returns, building and sending it
// again when the kernel's answer was lost (ENOBUFS), up to maxAttempts
// times: every batch we send is idempotent, or handles EEXIST itself.
func (c *Conn) sendRetry(msgs []netlink.Message) error {
	var err error
	for range maxAttempts {
		if err = c.sendBatch(msgs); err == nil || !isLostAnswer(err) {
			return err
		}
	}
	return err
}
