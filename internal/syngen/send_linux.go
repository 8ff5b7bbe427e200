package syngen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"time"
	"unsafe"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr of <sys/socket.h> (Go pads it like C does).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// Run sends c from inside namespace ns (entered on a thread of its own, see
// netns.Do) and returns what it sent.
func Run(ctx context.Context, ns string, c Config) (Result, error) {
	if err := c.Validate(); err != nil {
		return Result{}, err
	}
	var res Result
	err := netns.Do(ns, func() error {
		var err error
		res, err = Send(ctx, c)
		return err
	})
	return res, err
}

// Send sends c from the network namespace of the calling thread: the caller
// must have locked its OS thread into the client namespace (netns.Do does);
// Run does all that. It returns when the duration, the count or ctx ends.
func Send(ctx context.Context, c Config) (Result, error) {
	c, err := c.validated()
	if err != nil {
		return Result{}, err
	}
	runtime.LockOSThread() // the socket must be made in this thread's namespace
	defer runtime.UnlockOSThread()
	ifc, err := net.InterfaceByName(c.Iface)
	if err != nil {
		return Result{}, fmt.Errorf("interface %s: %w", c.Iface, err)
	}
	if len(ifc.HardwareAddr) != 6 {
		return Result{}, fmt.Errorf("interface %s: not an Ethernet interface", c.Iface)
	}
	dstMAC := c.DstMAC
	if dstMAC == nil {
		if dstMAC, err = ResolveMAC(c.Dst, ifc.Index); err != nil {
			return Result{}, err
		}
	}
	s, err := newSender(c, ifc, dstMAC)
	if err != nil {
		return Result{}, err
	}
	defer unix.Close(s.fd)
	return s.run(ctx, c)
}

// sender holds one AF_PACKET socket and its batch of frames.
type sender struct {
	fd   int
	b    *builder
	bufs [][]byte
	iov  []unix.Iovec
	msgs []mmsghdr
	sll  unix.RawSockaddrLinklayer
}

func newSender(c Config, ifc *net.Interface, dstMAC net.HardwareAddr) (*sender, error) {
	proto := uint16(unix.ETH_P_IP)
	if c.Family() == 6 {
		proto = unix.ETH_P_IPV6
	}
	// Protocol 0: the socket sends only, it never receives a packet.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("PACKET_QDISC_BYPASS: %w", err)
	}
	s := &sender{fd: fd, b: newBuilder(c, ifc.HardwareAddr, dstMAC)}
	s.sll = unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: htons(proto),
		Ifindex: int32(ifc.Index), Halen: 6}
	copy(s.sll.Addr[:], dstMAC)
	s.bufs = make([][]byte, c.Batch)
	s.iov = make([]unix.Iovec, c.Batch)
	s.msgs = make([]mmsghdr, c.Batch)
	for i := range s.bufs {
		s.bufs[i] = make([]byte, s.b.size)
		s.b.init(s.bufs[i])
		s.iov[i].Base = &s.bufs[i][0]
		s.iov[i].SetLen(s.b.size)
		m := &s.msgs[i].hdr
		m.Name = (*byte)(unsafe.Pointer(&s.sll))
		m.Namelen = unix.SizeofSockaddrLinklayer
		m.Iov = &s.iov[i]
		m.SetIovlen(1)
	}
	return s, nil
}

// run is the send loop: fill up to one batch, sendmmsg, pace.
func (s *sender) run(ctx context.Context, c Config) (Result, error) {
	var res Result
	start := time.Now()
	deadline := start.Add(c.Duration)
	done := ctx.Done()
	batch := uint64(len(s.bufs))
	pending := 0 // frames filled but not yet taken by the kernel
	for {
		select {
		case <-done:
			res.Elapsed = time.Since(start)
			return res, nil
		default:
		}
		now := time.Now()
		if !now.Before(deadline) || c.Count != 0 && res.Sent+res.Dropped >= c.Count {
			res.Elapsed = now.Sub(start)
			return res, nil
		}
		n := batch
		if c.Count != 0 {
			n = min(n, c.Count-res.Sent-res.Dropped)
		}
		if c.Rate > 0 {
			due := uint64(now.Sub(start).Seconds() * float64(c.Rate))
			have := res.Sent + res.Dropped
			if due <= have {
				// Ahead of schedule: sleep until the next packet is due.
				next := start.Add(time.Duration(float64(have+1) / float64(c.Rate) * float64(time.Second)))
				time.Sleep(min(time.Until(next), deadline.Sub(now)))
				continue
			}
			n = min(n, due-have)
		}
		for i := pending; i < int(n); i++ {
			s.b.next(s.bufs[i])
		}
		if pending > int(n) {
			n = uint64(pending) // never lose a filled frame (count cut, see below)
		}
		sent, err := s.sendmmsg(int(n))
		switch {
		case err == nil:
			res.Sent += uint64(sent)
			// Frames not taken move to the front for the next call.
			pending = int(n) - sent
			for i := 0; i < pending; i++ {
				s.bufs[i], s.bufs[sent+i] = s.bufs[sent+i], s.bufs[i]
				s.iov[i].Base, s.iov[sent+i].Base = &s.bufs[i][0], &s.bufs[sent+i][0]
			}
		case errors.Is(err, unix.ENOBUFS):
			// The first frame was refused (device backlog full): it is
			// gone; the rest move to the front.
			res.Dropped++
			pending = int(n) - 1
			for i := 0; i < pending; i++ {
				s.bufs[i], s.bufs[1+i] = s.bufs[1+i], s.bufs[i]
				s.iov[i].Base, s.iov[1+i].Base = &s.bufs[i][0], &s.bufs[1+i][0]
			}
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN):
			pending = int(n)
		default:
			res.Elapsed = time.Since(start)
			return res, fmt.Errorf("sendmmsg: %w", err)
		}
	}
}

// sendmmsg sends the first n frames and returns how many the kernel took.
func (s *sender) sendmmsg(n int) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.msgs[0])),
		uintptr(n), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
