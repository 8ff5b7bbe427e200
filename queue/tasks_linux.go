package queue

// The task mailbox: functions run on the reader's goroutine between
// batches (Do), and the eventfd that wakes it.

import (
	"encoding/binary"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// Do runs fn on the goroutine of Run, between two batches, so that fn may
// use whatever the packet handler uses without a lock. It wakes a Run
// waiting for packets; fn runs when Run next gets to it, or never if Run has
// ended. It may be called from any goroutine.
func (q *Queue) Do(fn func()) {
	q.tasksMu.Lock()
	q.tasks = append(q.tasks, fn)
	q.hasTasks.Store(true)
	q.tasksMu.Unlock()
	q.wake()
}

// runTasks runs the functions queued by Do.
func (q *Queue) runTasks() {
	q.tasksMu.Lock()
	tasks := q.tasks
	q.tasks = nil
	q.hasTasks.Store(false)
	q.tasksMu.Unlock()
	for _, fn := range tasks {
		fn()
	}
}

// wake ends a wait of Run in progress, or the next one, by writing to the
// eventfd.
func (q *Queue) wake() {
	q.wakeMu.Lock()
	defer q.wakeMu.Unlock()
	if q.efd < 0 {
		return
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(q.efd, one[:])
}

func (q *Queue) errClosed() error { return fmt.Errorf("queue %d: %w", q.num, net.ErrClosed) }
