package queue

import (
	"testing"
	"time"
)

// TestPacer: sequences of reads (packets found, and how long the wait for
// packets before took) and how the reader waits after each.
func TestPacer(t *testing.T) {
	const (
		short = coalesceWait / 5 // a wait for packets shorter than coalesceWait
		long  = coalesceWait * 4
	)
	type read struct {
		n      int
		waited time.Duration // of the last wait for packets
		want   pace
	}
	tests := []struct {
		name  string
		reads []read
	}{
		{"idle: wait for packets", []read{{0, long, waitPackets}, {0, long, waitPackets}}},
		{"full batches: read again at once", []read{
			{batchLen, long, readNow}, {batchLen, long, readNow}, {10, long, waitPackets}}},
		{"sparse packets: no gathering", []read{
			{1, long, waitPackets}, {1, long, waitPackets}, {2, long, waitPackets}}},
		{"bursts far apart, woken in the middle of one: no gathering", []read{
			{3, long, waitPackets}, {17, short, waitPackets}, {2, long, waitPackets}, {20, short, waitPackets}}},
		{"close together: gather from the second wake-up while gathering finds packets", []read{
			{4, short, waitPackets}, {4, short, gather}, {5, short, gather}, {6, short, gather},
			{0, short, waitPackets}, {0, short, waitPackets}, {4, short, waitPackets}, {4, short, gather}}},
		{"lone packets close together: never held back", []read{
			{1, short, waitPackets}, {1, short, waitPackets}, {3, short, waitPackets}, {1, short, waitPackets},
			{5, short, gather}, {1, short, waitPackets}}},
		{"flood: gather after wake-ups", []read{
			{30, short, waitPackets}, {30, short, gather}, {batchLen, short, readNow}, {10, short, gather},
			{0, short, waitPackets}}},
		{"flood: full batches after wake-ups", []read{
			{batchLen, short, readNow}, {20, short, waitPackets}, {batchLen, short, readNow}, {10, short, gather}}},
		{"a long wait stops gathering", []read{
			{4, short, waitPackets}, {4, short, gather}, {0, short, waitPackets}, {4, long, waitPackets},
			{4, short, waitPackets}}},
		{"a wake-up without packets (Do) changes nothing", []read{
			{4, short, waitPackets}, {0, short, waitPackets}, {4, short, gather}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := pacer{woken: true}
			for i, r := range tt.reads {
				if got := p.after(r.n, r.waited); got != r.want {
					t.Fatalf("read %d (%d packets after %v): got %d, want %d", i, r.n, r.waited, got, r.want)
				}
			}
		})
	}
}
