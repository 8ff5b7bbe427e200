package queue

import (
	"testing"
	"time"
)

// TestPacer: sequences of reads (packets found by each) and how the reader
// waits after each.
func TestPacer(t *testing.T) {
	const (
		short = coalesceWait / 5 // a wait for packets shorter than coalesceWait
		long  = coalesceWait * 4
	)
	tests := []struct {
		name   string
		reads  []int
		waited time.Duration // of every wait for packets
		want   []pace
	}{
		{"idle: wait for packets", []int{0, 0}, long, []pace{waitPackets, waitPackets}},
		{"full batches: read again at once", []int{batchLen, batchLen, 10}, long,
			[]pace{readNow, readNow, waitPackets}},
		{"bursts far apart: no gathering", []int{20, 30, 0}, long,
			[]pace{waitPackets, waitPackets, waitPackets}},
		{"sparse packets: no gathering", []int{1, 1, 2}, long,
			[]pace{waitPackets, waitPackets, waitPackets}},
		{"close together: gather while gathering finds packets", []int{1, 5, 6, 0, 0}, short,
			[]pace{gather, gather, gather, waitPackets, waitPackets}},
		{"flood after a wake-up: gather", []int{30, batchLen, 10, 0}, short,
			[]pace{gather, readNow, gather, waitPackets}},
		{"flood: a full batch after a wake-up", []int{batchLen, 20, batchLen, 10}, short,
			[]pace{readNow, gather, readNow, gather}},
		{"gathering fills a batch", []int{2, batchLen, 40, 0}, short,
			[]pace{gather, readNow, gather, waitPackets}},
		{"a sleep that finds nothing stops gathering", []int{3, 0, 4}, short,
			[]pace{gather, waitPackets, gather}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := pacer{woken: true}
			for i, n := range tt.reads {
				if got := p.after(n, tt.waited); got != tt.want[i] {
					t.Fatalf("read %d (%d packets): got %d, want %d", i, n, got, tt.want[i])
				}
			}
		})
	}
}
