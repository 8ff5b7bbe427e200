package main

// The daemon's own gauges in the metrics file: goroutines and memory, read
// from runtime/metrics, so that a leak shows before it costs the host.

import rtmetrics "runtime/metrics"

// runtimeSample is the runtime's part of a metrics sample.
type runtimeSample struct {
	goroutines uint64
	heapLive   uint64 // bytes of heap objects the last collection marked live
	held       uint64 // bytes mapped from the system, less those released
}

// runtimeNames are the runtime/metrics read for a runtimeSample, in the
// order readRuntime uses them.
var runtimeNames = []string{
	"/sched/goroutines:goroutines",
	"/gc/heap/live:bytes",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
}

// readRuntime reads the runtime's gauges. A metric this Go does not have
// reads as 0.
func readRuntime() runtimeSample {
	s := make([]rtmetrics.Sample, len(runtimeNames))
	for i, n := range runtimeNames {
		s[i].Name = n
	}
	rtmetrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() != rtmetrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	return runtimeSample{goroutines: v(0), heapLive: v(1), held: v(2) - min(v(3), v(2))}
}
