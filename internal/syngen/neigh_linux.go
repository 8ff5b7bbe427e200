package syngen

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ResolveMAC returns the MAC address of on-link neighbour dst on interface
// ifindex, in the network namespace of the calling thread (lock it there).
// When the kernel does not know it yet it sends one UDP datagram to dst
// (port 9, discard) to start ARP/NDP, and waits up to two seconds.
func ResolveMAC(dst netip.Addr, ifindex int) (net.HardwareAddr, error) {
	if err := checkTestNet(dst); err != nil {
		return nil, fmt.Errorf("resolve: %w", err)
	}
	probed := false
	for deadline := time.Now().Add(2 * time.Second); ; {
		mac, err := lookupNeigh(dst, ifindex)
		if err != nil {
			return nil, err
		}
		if mac != nil {
			return mac, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("resolve %v: no neighbour entry after ARP/NDP probe", dst)
		}
		if !probed {
			if err := probe(dst); err != nil {
				return nil, err
			}
			probed = true
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// probe sends one UDP datagram to dst:9 so that the kernel resolves dst.
func probe(dst netip.Addr) error {
	fam := unix.AF_INET6
	var sa unix.Sockaddr = &unix.SockaddrInet6{Port: 9, Addr: dst.As16()}
	if dst.Is4() {
		fam = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: 9, Addr: dst.As4()}
	}
	// Made with a raw syscall: it must live in this thread's namespace.
	fd, err := unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("probe socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Sendto(fd, []byte{0}, 0, sa); err != nil {
		return fmt.Errorf("probe %v: %w", dst, err)
	}
	return nil
}

// lookupNeigh dumps the neighbour table and returns dst's link address on
// ifindex, or nil when there is none (yet).
func lookupNeigh(dst netip.Addr, ifindex int) (net.HardwareAddr, error) {
	fam := unix.AF_INET
	if dst.Is6() {
		fam = unix.AF_INET6
	}
	rib, err := syscall.NetlinkRIB(unix.RTM_GETNEIGH, fam)
	if err != nil {
		return nil, fmt.Errorf("dump neighbours: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(rib)
	if err != nil {
		return nil, fmt.Errorf("parse neighbours: %w", err)
	}
	want := dst.AsSlice()
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWNEIGH || len(m.Data) < unix.SizeofNdMsg {
			continue
		}
		idx := int32(binary.NativeEndian.Uint32(m.Data[4:8]))
		state := binary.NativeEndian.Uint16(m.Data[8:10])
		if int(idx) != ifindex || state&(unix.NUD_INCOMPLETE|unix.NUD_FAILED|unix.NUD_NOARP) != 0 {
			continue
		}
		var addr, ll []byte
		for a := m.Data[unix.SizeofNdMsg:]; len(a) >= 4; {
			l := int(binary.NativeEndian.Uint16(a[0:2]))
			if l < 4 || l > len(a) {
				break
			}
			switch binary.NativeEndian.Uint16(a[2:4]) {
			case unix.NDA_DST:
				addr = a[4:l]
			case unix.NDA_LLADDR:
				ll = a[4:l]
			}
			a = a[min((l+3)&^3, len(a)):]
		}
		if len(ll) == 6 && string(addr) == string(want) {
			return net.HardwareAddr(append([]byte(nil), ll...)), nil
		}
	}
	return nil, nil
}
