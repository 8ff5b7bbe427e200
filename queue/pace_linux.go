package queue

// The pacer: after each read, whether to read at once, sleep to gather a
// flood's packets into one batch, or wait for packets.

import (
	"time"
)

// coalesceWait is how long Run sleeps, after a read that emptied the
// socket, before it reads again while packets come closer together than
// that: one wake-up of the reader, one read and one verdict for all the
// packets of the interval instead of one each. It bounds the delay it adds
// to any packet. A sleep that finds nothing stops the sleeps until packets
// come close together again (see pacer).
const coalesceWait = 500 * time.Microsecond

// gatherMin is the fewest packets one read must find for Run to sleep
// coalesceWait before the next: fewer is no flood, and a lone packet (a
// knock, with the kernel filter nearly every packet) is never delayed.
const gatherMin = 4

// pacer decides, after each read, how Run waits before the next one.
type pacer struct {
	coalesce bool // packets come close together: sleep coalesceWait before a read
	woken    bool // the last read followed a wait for packets
	short    int  // waits for packets in a row that took less than coalesceWait
}

// pace is what Run does before its next read.
type pace uint8

const (
	readNow     pace = iota // the batch was full: more may be waiting
	gather                  // wait coalesceWait, then read
	waitPackets             // the socket was empty: wait until packets come
)

// after returns what to do after a read of n datagrams (0: none there);
// waited is how long the last wait for packets took. The socket is empty
// after any read of fewer than batchLen. When packets came twice in a row
// within coalesceWait of the previous read, they come close together: from
// then on each read sleeps coalesceWait before it, until such a sleep finds
// nothing. Packets further apart are read as they come: a sleep would only
// add a wake-up that finds nothing; so are bursts (one wait within
// coalesceWait, in the middle of a burst, after a long one), and reads of
// fewer than gatherMin packets: the packet after a lone one is not held
// back.
func (p *pacer) after(n int, waited time.Duration) pace {
	switch {
	case n > 0 && p.woken:
		if waited < coalesceWait {
			p.short++
		} else {
			p.short = 0
		}
		p.coalesce = p.short >= 2
	case n == 0 && !p.woken:
		p.coalesce, p.short = false, 0
	}
	if n >= batchLen {
		p.woken = false
		return readNow
	}
	if p.coalesce && n >= gatherMin {
		p.woken = false
		return gather
	}
	p.woken = true
	return waitPackets
}
