package main

// The daemon's memory: the start's garbage handed back, and a collector
// that keeps the heap close to what the daemon holds.

import (
	"os"
	"runtime/debug"
)

// gcPercent is the daemon's GOGC unless its environment sets one. Almost
// all of the daemon's heap is the knock trackers, allocated once at start
// for --max-sources (4 MiB for 65,536 sources) and holding no pointers, so
// a collection costs little. Go's default of 100 lets the heap grow by as
// much again in garbage (the netlink messages of reloads, repairs and the
// table's watch) before a collection: the daemon's RSS climbed for minutes
// after each start by up to 4 MiB (make soak). 10 bounds that garbage to
// a tenth of the live heap; the per-packet path does not allocate
// (BenchmarkWalkBatch, BenchmarkKnock*: 0 allocs/op), so the collections
// follow the events, not the packets.
const gcPercent = 10

// settleMemory runs once the daemon has started. A takeover reads the
// table's sets (the opened sources, the used one-time sequences) and
// decodes each element several times, leaving garbage that grows with the
// sets (internal/soak/spentrss.sh: a peak of about 7 KiB per used one-time
// sequence): that memory goes back to the system now, rather than the
// start's peak staying the daemon's size for its whole life (make soak
// measured +39 % of RSS over 10 minutes of restarts with one-time opens
// without it). Then the collector is set to gcPercent.
func settleMemory() {
	debug.FreeOSMemory()
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
}
