package queue

import (
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// dropCounter extends the socket's 32-bit drop counter to 64 bits.
type dropCounter struct {
	mu    sync.Mutex
	raw   uint32 // the kernel's counter when last read
	total uint64
}

// Drops returns the number of queued packets the kernel could not hand to
// the socket because its receive buffer was full: the socket's drop
// counter (SK_MEMINFO_DROPS of SO_MEMINFO). The queue is fail-open, so
// those packets passed unseen; the kernel counts them nowhere else (its
// queue_dropped and user_dropped counters in
// /proc/net/netfilter/nfnetlink_queue stay 0 on a fail-open queue). The
// packets that pass because the queue already holds MaxLen packets are not
// counted here, nor by the kernel's queue. Drops may be called from any
// goroutine until Close.
func (q *Queue) Drops() (uint64, error) {
	var mem [unix.SK_MEMINFO_VARS]uint32
	var errno unix.Errno
	err := q.rc.Control(func(fd uintptr) {
		n := uint32(unsafe.Sizeof(mem))
		_, _, errno = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&mem[0])), uintptr(unsafe.Pointer(&n)), 0)
	})
	if err == nil && errno != 0 {
		err = errno
	}
	if err != nil {
		return 0, fmt.Errorf("queue %d: socket drops: %w", q.num, err)
	}
	d := &q.drops
	d.mu.Lock()
	defer d.mu.Unlock()
	raw := mem[unix.SK_MEMINFO_DROPS]
	d.total += uint64(raw - d.raw) // modulo 2^32: a wrap adds the right amount
	d.raw = raw
	return d.total, nil
}
