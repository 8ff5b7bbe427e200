package queue

// Binding a queue: the netfilter netlink socket, its configuration
// messages, and the unbind at Close.

import (
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"time"

	nfqueue "github.com/florianl/go-nfqueue/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// CopyRange is how many bytes of each packet the kernel copies to the
// queue: enough for the largest IPv4 and TCP headers (60 + 60 bytes) and an
// IPv6 header with a few extension headers. The payload is never needed.
const CopyRange = 256

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
