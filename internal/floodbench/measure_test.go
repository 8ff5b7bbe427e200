package main

import (
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/syngen"
)

func TestParseNetlinkDrops(t *testing.T) {
	const in = `sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode
ffff8f0e4a3c2000 0   4026531    00000000 0        0        0     2        0        1001
ffff8f0e4a3c3000 12  4026531    00000000 0        0        0     2        17       1002
ffff8f0e4a3c4000 12  555        00000000 0        0        0     2        1000     1003
ffff8f0e4a3c5000 12  4026532    00000000 0        0        0     2        3        1004
`
	tests := []struct {
		name  string
		ports map[uint32]bool
		want  uint64
	}{
		{"one socket, other protocols ignored", map[uint32]bool{4026531: true}, 17},
		{"two sockets", map[uint32]bool{4026531: true, 4026532: true}, 20},
		{"none", map[uint32]bool{1: true}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseNetlinkDrops([]byte(in), tt.ports)
			if err != nil || got != tt.want {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestParseCPUTicksAndHWM(t *testing.T) {
	stat := "4242 (nfq (knock) d) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 75 0 0 20 0 6 0 100 1000000 500 18446744073709551615\n"
	if got, err := parseCPUTicks([]byte(stat)); err != nil || got != 225 {
		t.Fatalf("parseCPUTicks = %d, %v; want 225", got, err)
	}
	if _, err := parseCPUTicks([]byte("4242 nfq S 1")); err == nil {
		t.Fatal("parseCPUTicks without parentheses: want an error")
	}
	status := "Name:\tnfqknockd\nVmPeak:\t  800000 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 10000 kB\n"
	if got, err := parseVmHWM([]byte(status)); err != nil || got != 12345*1024 {
		t.Fatalf("parseVmHWM = %d, %v; want %d", got, err, 12345*1024)
	}
	if _, err := parseVmHWM([]byte("Name:\tx\n")); err == nil {
		t.Fatal("parseVmHWM without VmHWM: want an error")
	}
}

func TestCounterSum(t *testing.T) {
	out := `table inet nfqknock {
	chain knocks {
		counter packets 1500 bytes 90000
		tcp flags syn / fin,syn,rst,ack counter packets 2 bytes 120
	}
}`
	if got, err := counterSum(out); err != nil || got != 1502 {
		t.Fatalf("counterSum = %d, %v; want 1502", got, err)
	}
	if _, err := counterSum("table inet x {}"); err == nil {
		t.Fatal("counterSum without counters: want an error")
	}
}

func TestParseGoBench(t *testing.T) {
	in := `goos: linux
goarch: amd64
pkg: github.com/nfqknockd/nfqknockd/knock
cpu: Intel(R) Xeon(R) Processor
BenchmarkKnock-2   	20000000	        61.5 ns/op	       0 B/op	       0 allocs/op
BenchmarkSequence/md5-2         	 1000000	      1020 ns/op
PASS
ok  	github.com/nfqknockd/nfqknockd/knock	3.1s
pkg: github.com/nfqknockd/nfqknockd/queue
BenchmarkParse-2   	50000000	        22.1 ns/op	       0 B/op	       0 allocs/op	  45.2 MB/s
BenchmarkBroken-2  	 notanumber
`
	got, err := parseGoBench(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	zero := 0.0
	want := []goBench{
		{Pkg: "github.com/nfqknockd/nfqknockd/knock", Name: "BenchmarkKnock-2", NsPerOp: 61.5, BytesOp: &zero, AllocsOp: &zero, Iteration: 20000000},
		{Pkg: "github.com/nfqknockd/nfqknockd/knock", Name: "BenchmarkSequence/md5-2", NsPerOp: 1020, Iteration: 1000000},
		{Pkg: "github.com/nfqknockd/nfqknockd/queue", Name: "BenchmarkParse-2", NsPerOp: 22.1, BytesOp: &zero, AllocsOp: &zero, Iteration: 50000000},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestQuantile(t *testing.T) {
	s := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	tests := []struct {
		q    float64
		want float64
	}{{0.5, 10}, {0.95, 19}, {1, 20}, {0, 1}}
	for _, tt := range tests {
		if got := quantile(s, tt.q); got != tt.want {
			t.Errorf("quantile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	if got := quantile([]float64{3}, 0.95); got != 3 {
		t.Errorf("quantile of one = %v, want 3", got)
	}
}

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr bool
		check   func(*options) bool
	}{
		{name: "defaults", check: func(o *options) bool {
			return o.daemon == "./bin/nfqknockd" && reflect.DeepEqual(o.sources, []int{1, 1000, 100000, 1000000}) &&
				o.ports.First == 10000 && o.ports.Last == 60000 && o.fixedRate == 20000 && o.tries == 20 && o.family == 4 &&
				o.floodRate == 0 && o.rawIP && o.otherRow && o.connects == 2000 && o.unguarded == 8080 &&
				o.rounds == 10 && o.knockGap == 100*time.Millisecond && o.filterSources == 1000000 && o.filterPorts == syngen.Ports{First: 1, Last: 65535} &&
				o.filterRows && o.queueAllRows
		}},
		{name: "bad filter ports", args: []string{"--filter-ports", "0-10"}, wantErr: true},
		{name: "unguarded port is the guarded one", args: []string{"--unguarded-port", "22"}, wantErr: true},
		{name: "more rounds than connects", args: []string{"--connects", "3", "--rounds", "4"}, wantErr: true},
		{name: "one sender only", args: []string{"--other-sender-row=false"},
			check: func(o *options) bool { return o.floodRate == 0 && !o.otherRow }},
		{name: "packet sender", args: []string{"--sender", "packet"}, check: func(o *options) bool { return !o.rawIP }},
		{name: "sources and daemon args", args: []string{"--sources", "5, 10", "--daemon-args", "--queues 2"},
			check: func(o *options) bool {
				return reflect.DeepEqual(o.sources, []int{5, 10}) && reflect.DeepEqual(o.daemonArgs, []string{"--queues", "2"})
			}},
		{name: "v6", args: []string{"--family", "6"}, check: func(o *options) bool { return o.family == 6 }},
		{name: "bad sources", args: []string{"--sources", "0"}, wantErr: true},
		{name: "bad ports", args: []string{"--ports", "60000-10000"}, wantErr: true},
		{name: "raw sender, capped", args: []string{"--sender", "raw", "--flood-rate", "250000"},
			check: func(o *options) bool { return o.rawIP && o.floodRate == 250000 }},
		{name: "bad sender", args: []string{"--sender", "udp"}, wantErr: true},
		{name: "bad family", args: []string{"--family", "5"}, wantErr: true},
		{name: "flood past the cap", args: []string{"--flood", "2m"}, wantErr: true},
		{name: "fixed min above max", args: []string{"--fixed-min", "30s", "--fixed-max", "20s"}, wantErr: true},
		{name: "stray argument", args: []string{"extra"}, wantErr: true},
		{name: "SPA defaults", check: func(o *options) bool {
			return o.spa && o.spaPort == 62201 && o.spaSources == 1000000 && o.spaCopies == 1
		}},
		{name: "SPA flags", args: []string{"--spa=false", "--spa-port", "443", "--spa-sources", "1000", "--spa-copies", "3"},
			check: func(o *options) bool { return !o.spa && o.spaPort == 443 && o.spaSources == 1000 && o.spaCopies == 3 }},
		{name: "SPA port 0", args: []string{"--spa-port", "0"}, wantErr: true},
		{name: "SPA copies 0", args: []string{"--spa-copies", "0"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOptions(tt.args, io.Discard)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if err == nil && !tt.check(o) {
				t.Fatalf("options %+v", o)
			}
		})
	}
}

func TestAllocsPerPacket(t *testing.T) {
	st := func(allocs, packets uint64) *allocStats { return &allocStats{allocs: allocs, packets: packets} }
	tests := []struct {
		name        string
		pre, a0, a1 *allocStats
		want        float64
		wantNil     bool
	}{
		{"round cost subtracted", st(1000, 0), st(1400, 0), st(1800, 1000), 0, false},
		{"allocations beyond the round", st(1000, 0), st(1400, 0), st(3400, 1000), 1.6, false},
		{"no calibration", nil, st(1400, 0), st(1900, 1000), 0.5, false},
		{"packets between the calibration rounds: not used", st(1000, 0), st(1400, 10), st(1900, 1010), 0.5, false},
		{"counter not yet moved", st(1000, 0), st(1000, 0), st(1000, 1000), 0, false},
		{"no packet", st(1000, 0), st(1400, 0), st(1800, 0), 0, true},
		{"daemon reports nothing", nil, nil, nil, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := allocsPerPacket(tt.pre, tt.a0, tt.a1)
			if (got == nil) != tt.wantNil || got != nil && *got != tt.want {
				t.Fatalf("allocsPerPacket = %v, want %v (nil %v)", fmtPtr(got, "%v"), tt.want, tt.wantNil)
			}
		})
	}
}

func TestRowLabel(t *testing.T) {
	rep := &report{Sender: "IPPROTO_RAW"}
	tests := []struct {
		r    row
		want string
	}{
		{row{Sources: 1000, Sender: "IPPROTO_RAW"}, "1000"},
		{row{Sources: 1000000, Sender: "AF_PACKET"}, "1000000, AF_PACKET sender"},
		{row{Sources: 5, FloodRate: 100, Sender: "IPPROTO_RAW"}, "5 at 100 SYN/s"},
		{row{Sources: 5, FloodRate: 100, Sender: "AF_PACKET"}, "5, AF_PACKET sender at 100 SYN/s"},
	}
	capped := &report{Sender: "AF_PACKET", FloodRate: 250000}
	if got, want := rowLabel(capped, row{Sources: 7, Sender: "IPPROTO_RAW"}), "7, IPPROTO_RAW sender at its full rate"; got != want {
		t.Errorf("rowLabel at full rate = %q, want %q", got, want)
	}
	for _, tt := range tests {
		if got := rowLabel(rep, tt.r); got != tt.want {
			t.Errorf("rowLabel(%+v) = %q, want %q", tt.r, got, tt.want)
		}
	}
}

func TestReceivedAtExit(t *testing.T) {
	log := `time=x level=INFO msg=started table="inet nfqknock"
time=x level=INFO msg="queue stats" received=1000 parse_errors=0 read_errors=0 verdict_errors=0
time=x level=INFO msg="queue stats" received=234 parse_errors=0 read_errors=0 verdict_errors=0
time=x level=INFO msg=stopped
`
	if n, ok := receivedAtExit(log); !ok || n != 1234 {
		t.Fatalf("receivedAtExit = %d, %v; want 1234, true", n, ok)
	}
	if _, ok := receivedAtExit("time=x msg=stopped\n"); ok {
		t.Fatal("receivedAtExit without stats lines: want false")
	}
}
