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
	var s *sender
	if c.RawIP {
		s, err = newRawSender(c)
	} else {
		s, err = newPacketSender(c)
	}
	if err != nil {
		return Result{}, err
	}
	defer unix.Close(s.fd)
	return s.run(ctx, c)
}

// sender holds one socket and its batch of frames.
type sender struct {
	fd   int
	b    *builder
	off  int // where the bytes handed to the socket start in a frame
	bufs [][]byte
	iov  []unix.Iovec
	msgs []mmsghdr
	name unsafe.Pointer // the destination sockaddr of every message
	nlen uint32
	sll  unix.RawSockaddrLinklayer
	sa4  unix.RawSockaddrInet4
	sa6  unix.RawSockaddrInet6
}

// newPacketSender sends whole Ethernet frames on c.Iface through AF_PACKET,
// past the qdisc.
func newPacketSender(c Config) (*sender, error) {
	ifc, err := net.InterfaceByName(c.Iface)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", c.Iface, err)
	}
	if len(ifc.HardwareAddr) != 6 {
		return nil, fmt.Errorf("interface %s: not an Ethernet interface", c.Iface)
	}
	dstMAC := c.DstMAC
	if dstMAC == nil {
		if dstMAC, err = ResolveMAC(c.Dst, ifc.Index); err != nil {
			return nil, err
		}
	}
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
	s.name, s.nlen = unsafe.Pointer(&s.sll), unix.SizeofSockaddrLinklayer
	s.allocate(c.Batch)
	return s, nil
}

// newRawSender sends IP packets through an IPPROTO_RAW socket (the header
// is ours; the kernel routes each packet and resolves the next hop).
func newRawSender(c Config) (*sender, error) {
	// Resolve the next hop first: packets sent while it is unresolved
	// wait in a short queue and the overflow is lost without a word.
	ifc, err := net.InterfaceByName(c.Iface)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", c.Iface, err)
	}
	if _, err := ResolveMAC(c.Dst, ifc.Index); err != nil {
		return nil, err
	}
	fam := unix.AF_INET
	if c.Family() == 6 {
		fam = unix.AF_INET6
	}
	fd, err := unix.Socket(fam, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return nil, fmt.Errorf("raw socket: %w", err)
	}
	s := &sender{fd: fd, b: newBuilder(c, make(net.HardwareAddr, 6), make(net.HardwareAddr, 6)), off: ethLen}
	if fam == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_HDRINCL, 1); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("IPV6_HDRINCL: %w", err)
		}
		s.sa6 = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: c.Dst.As16()}
		s.name, s.nlen = unsafe.Pointer(&s.sa6), unix.SizeofSockaddrInet6
	} else {
		s.sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: c.Dst.As4()}
		s.name, s.nlen = unsafe.Pointer(&s.sa4), unix.SizeofSockaddrInet4
	}
	s.allocate(c.Batch)
	return s, nil
}

// allocate makes the batch: frames initialised from the template, one
// message per frame.
func (s *sender) allocate(batch int) {
	s.bufs = make([][]byte, batch)
	s.iov = make([]unix.Iovec, batch)
	s.msgs = make([]mmsghdr, batch)
	for i := range s.bufs {
		s.bufs[i] = make([]byte, s.b.size)
		s.b.init(s.bufs[i])
		s.iov[i].Base = &s.bufs[i][s.off]
		s.iov[i].SetLen(s.b.size - s.off)
		m := &s.msgs[i].hdr
		m.Name = (*byte)(s.name)
		m.Namelen = s.nlen
		m.Iov = &s.iov[i]
		m.SetIovlen(1)
	}
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
				s.iov[i].Base, s.iov[sent+i].Base = &s.bufs[i][s.off], &s.bufs[sent+i][s.off]
			}
		case errors.Is(err, unix.ENOBUFS):
			// The first frame was refused (device backlog full): it is
			// gone; the rest move to the front.
			res.Dropped++
			pending = int(n) - 1
			for i := 0; i < pending; i++ {
				s.bufs[i], s.bufs[1+i] = s.bufs[1+i], s.bufs[i]
				s.iov[i].Base, s.iov[1+i].Base = &s.bufs[i][s.off], &s.bufs[1+i][s.off]
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
