package testutil

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseQueues(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []QueueStat
		wantErr bool
	}{
		{name: "empty", in: ""},
		{
			name: "two queues",
			in: "  100  4026531 0 2 65531 0 7 123456 1\n" +
				"  101  4026532 5 2 65531 3 0 99 1\n",
			want: []QueueStat{
				{Num: 100, PortID: 4026531, Total: 0, Dropped: 0, UserDropped: 7, IDSeq: 123456},
				{Num: 101, PortID: 4026532, Total: 5, Dropped: 3, UserDropped: 0, IDSeq: 99},
			},
		},
		{name: "short line", in: "100 1 2 3\n", wantErr: true},
		{name: "not a number", in: "100 x 0 2 65531 0 0 1 1\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseQueues([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestParseSPACounters reads the key id rule, the rate rules (summed) and
// the queue rule of chain spa, and refuses a chain without its four counters.
func TestParseSPACounters(t *testing.T) {
	const chain = `table inet nfqknock {
	chain spa {
		@th,72,64 != @spakeys counter packets 9000 bytes 9 drop comment "nfqknockd spa: not a key id of now"
		ip saddr update @sparate4 { ip saddr limit rate over 10/second burst 20 packets } counter packets 700 bytes 99 drop comment "nfqknockd: spa: a source over the rate"
		ip6 saddr update @sparate6 { ip6 saddr limit rate over 10/second burst 20 packets } counter packets 5 bytes 9 drop comment "nfqknockd: spa: a source over the rate"
		counter packets 42 bytes 4746 queue flags bypass to 100 comment "nfqknockd: spa"
	}
}`
	tests := []struct {
		name           string
		out            string
		key, rate, que uint64
		wantErr        bool
	}{
		{name: "chain", out: chain, key: 9000, rate: 705, que: 42},
		{name: "no counters", out: "table inet nfqknock {\n}", wantErr: true},
		{name: "a counter missing", out: strings.Replace(chain, "counter packets 42 bytes 4746 ", "", 1), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseSPACounters(tt.out)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (c.Key != tt.key || c.Rate != tt.rate || c.Queue != tt.que) {
				t.Errorf("key %d rate %d queue %d, want %d %d %d", c.Key, c.Rate, c.Queue, tt.key, tt.rate, tt.que)
			}
		})
	}
}
