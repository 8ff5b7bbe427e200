package main

// The report: its rows, the JSON document and the machine it ran on.

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
)

// row is the result for one source count. Pointers are null (n/a) when
// not measured.
type row struct {
	Sources int `json:"sources"`
	// FloodRate is the rate the floods of this row were sent at, SYN/s; 0:
	// the sender's full rate.
	FloodRate int `json:"flood_rate_syn_per_s"`
	// Sender is the generator's socket: IPPROTO_RAW or AF_PACKET.
	Sender string `json:"sender"`

	KernelOnlyRate  float64 `json:"kernel_only_rate_syn_per_s"`
	KernelOnlySent  uint64  `json:"kernel_only_sent"`
	KernelOnlyCount uint64  `json:"kernel_only_counted"`
	KernelOnlyS     float64 `json:"kernel_only_s"`

	FloodSent      *uint64  `json:"flood_sent,omitempty"`
	FloodS         *float64 `json:"flood_s,omitempty"`
	Arrivals       *uint64  `json:"arrivals_h,omitempty"`
	Answered       *uint64  `json:"answered,omitempty"`
	AnsweredRate   *float64 `json:"answered_rate_syn_per_s,omitempty"`
	AnsweredRatio  *float64 `json:"answered_over_kernel_only,omitempty"`
	Leaked         *int64   `json:"leaked,omitempty"`
	LeakedPct      *float64 `json:"leaked_pct,omitempty"`
	QueueDropped   *uint64  `json:"queue_dropped,omitempty"`
	UserDropped    *uint64  `json:"user_dropped,omitempty"`
	NetlinkDrops   *uint64  `json:"netlink_drops,omitempty"`
	QueuePeak      *uint64  `json:"queue_total_peak,omitempty"`
	DaemonReceived *uint64  `json:"daemon_received,omitempty"` // the daemon's own count at exit (part b)
	FixedRate      int      `json:"fixed_rate_syn_per_s,omitempty"`
	FixedS         *float64 `json:"fixed_s,omitempty"`
	FixedSent      *uint64  `json:"fixed_sent,omitempty"`
	FixedCapped    bool     `json:"fixed_capped,omitempty"`
	CPUPerMillion  *float64 `json:"cpu_s_per_million_syn,omitempty"`
	PeakRSSMiB     *float64 `json:"peak_rss_mib,omitempty"`
	AllocsPerPkt   *float64 `json:"allocs_per_packet"`
	DaemonWarnings []string `json:"daemon_warnings,omitempty"`
}

// report is the whole JSON document.
type report struct {
	Date    string  `json:"date"`
	Machine machine `json:"machine"`
	// Runs is how many runs these figures come from: one (run make bench
	// again for another).
	Runs   int    `json:"runs"`
	Daemon string `json:"daemon,omitempty"`
	// FilterArgs are the daemon's arguments in its default mode (the
	// kernel filter); DaemonArgs those of the flood rows (--queue-all).
	FilterArgs []string       `json:"filter_daemon_args,omitempty"`
	DaemonArgs []string       `json:"daemon_args,omitempty"`
	Family     int            `json:"family"`
	MSS        uint           `json:"mss"`
	Ports      string         `json:"ports"`
	FloodS     float64        `json:"flood_s"`
	FloodRate  int            `json:"flood_rate_cap,omitempty"`
	Sender     string         `json:"sender"`
	GoBench    []goBench      `json:"go_benchmarks,omitempty"`
	Connect    *connectResult `json:"connect_latency,omitempty"`
	Filter     []filterFlood  `json:"filter_floods,omitempty"`
	SPA        *spaResult     `json:"spa,omitempty"`
	TableCost  *tableCost     `json:"table_cost,omitempty"`
	Rows       []row          `json:"rows"`
	Latency    *latencyResult `json:"knock_to_open,omitempty"` // with --queue-all
	Targets    []target       `json:"targets,omitempty"`
	Notes      []string       `json:"notes,omitempty"`
}

type machine struct {
	CPUs   int    `json:"cpus"`
	Model  string `json:"cpu_model"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
}

// writeJSON writes the report to path as indented JSON.
func writeJSON(path string, rep *report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// describeMachine says what the bench runs on: CPUs, their model, the
// kernel and Go.
func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		b := make([]byte, 0, len(u.Release))
		for _, c := range u.Release {
			if c == 0 {
				break
			}
			b = append(b, byte(c))
		}
		m.Kernel = string(b)
	}
	return m
}
