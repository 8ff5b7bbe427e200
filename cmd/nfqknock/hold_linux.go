package main

import (
	"encoding/binary"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// hold keeps the sockets of knocks that timed out open, silent, until
// holdLimit after their SYN, to learn of an ICMP error (host or network
// unreachable, administratively prohibited) that arrives after the knock
// timeout.
//
// A socket in SYN_SENT that receives such an error ends with it: SO_ERROR
// tells it. When the error arrives while the process holds the socket's
// lock (as in a connect that the error overtakes, seen with IPv6 in a
// network namespace), Linux keeps it only as a soft error that nothing
// reads; IP_RECVERR (IPV6_RECVERR) also queues it on the socket's error
// queue, where check finds it. Closing a socket in SYN_SENT sends nothing,
// and each is closed before the kernel's first SYN retransmission (1s), so
// a knock stays one SYN.
//
// The net.Dialer closes its own descriptor when the attempt times out:
// control keeps a duplicate, which holds the socket open.
type hold struct {
	mu   sync.Mutex
	last int // the duplicate of the current attempt's socket; -1 for none
	held []*heldSocket
}

// heldSocket is the socket of a knock that timed out.
type heldSocket struct {
	fd    int // -1 once closed
	timer *time.Timer
}

func newHold() *hold { return &hold{last: -1} }

// control is the net.Dialer's Control: before the connect, it asks for the
// socket's ICMP errors and keeps a duplicate of it. A failure only means
// that the socket is not kept: the knock goes on.
func (h *hold) control(network, address string, c syscall.RawConn) error {
	_ = c.Control(func(fd uintptr) {
		level, opt := unix.IPPROTO_IP, unix.IP_RECVERR
		if strings.HasSuffix(network, "6") {
			level, opt = unix.IPPROTO_IPV6, unix.IPV6_RECVERR
		}
		if unix.SetsockoptInt(int(fd), level, opt, 1) != nil {
			return
		}
		dup, err := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return
		}
		h.mu.Lock()
		h.last = dup
		h.mu.Unlock()
	})
	return nil
}

// release ends the current attempt, whose SYN left at sent: its socket is
// kept until holdLimit after sent when the attempt timed out, and closed
// otherwise.
func (h *hold) release(timedOut bool, sent time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fd := h.last
	h.last = -1
	if fd < 0 {
		return
	}
	left := time.Until(sent.Add(holdLimit))
	if !timedOut || left <= 0 {
		unix.Close(fd)
		return
	}
	s := &heldSocket{fd: fd}
	s.timer = time.AfterFunc(left, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		s.shut()
	})
	h.held = append(h.held, s)
}

// shut closes the socket once; h.mu is held.
func (s *heldSocket) shut() {
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
}

// holding reports whether a socket is still kept.
func (h *hold) holding() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.held {
		if s.fd >= 0 {
			return true
		}
	}
	return false
}

// checkSlice bounds one poll: the timers that close the sockets wait for
// it.
const checkSlice = 10 * time.Millisecond

// check returns the first ICMP error that a kept socket received, waiting
// for one up to wait (0: a look, no wait) or until no socket is kept. The
// error reads as a connect's ("connect: no route to host"). A late reset
// (ECONNREFUSED) is no error: the host answered.
func (h *hold) check(wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		more, err := h.poll(min(checkSlice, max(time.Until(deadline), 0)))
		if err != nil || !more || time.Until(deadline) <= 0 {
			return err
		}
	}
}

// poll polls the kept sockets for up to d and returns the first error
// found, and whether a socket is still kept.
func (h *hold) poll(d time.Duration) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var fds []unix.PollFd
	var socks []*heldSocket
	for _, s := range h.held {
		if s.fd >= 0 {
			fds = append(fds, unix.PollFd{Fd: int32(s.fd)}) // POLLERR and POLLHUP need no asking
			socks = append(socks, s)
		}
	}
	if len(fds) == 0 {
		return false, nil
	}
	n, err := unix.Poll(fds, int(d/time.Millisecond))
	if err != nil || n == 0 {
		return true, nil // EINTR, or nothing yet
	}
	for i, p := range fds {
		if p.Revents == 0 {
			continue
		}
		errno := socketError(socks[i].fd)
		socks[i].shut()
		socks[i].timer.Stop()
		if errno != 0 && errno != unix.ECONNREFUSED {
			return true, os.NewSyscallError("connect", errno)
		}
	}
	return true, nil
}

// socketError returns the error of a socket that poll reported: its
// SO_ERROR, else the first one on its error queue; 0 for none.
func socketError(fd int) syscall.Errno {
	if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && v != 0 {
		return syscall.Errno(v)
	}
	oob := make([]byte, 512)
	_, oobn, _, _, err := unix.Recvmsg(fd, make([]byte, 1), oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
	if err != nil {
		return 0
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if (m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_RECVERR) ||
			(m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_RECVERR) {
			if len(m.Data) >= 4 {
				// struct sock_extended_err begins with ee_errno.
				return syscall.Errno(binary.NativeEndian.Uint32(m.Data[:4]))
			}
		}
	}
	return 0
}

// close closes every kept socket.
func (h *hold) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last >= 0 {
		unix.Close(h.last)
		h.last = -1
	}
	for _, s := range h.held {
		s.timer.Stop()
		s.shut()
	}
	h.held = nil
}
