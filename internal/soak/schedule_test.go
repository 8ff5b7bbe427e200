package main

import (
	"strings"
	"testing"
	"time"
)

// TestSchedulerRepeats: the same seed gives the same events; another seed
// other events.
func TestSchedulerRepeats(t *testing.T) {
	draw := func(seed uint64) []event {
		s, err := newScheduler(seed, 200*time.Millisecond, 3*time.Second, defaultWeights)
		if err != nil {
			t.Fatal(err)
		}
		var es []event
		for range 200 {
			es = append(es, s.next())
		}
		return es
	}
	a, b, c := draw(42), draw(42), draw(43)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("seed 42, event %d: %+v, then %+v", i, a[i], b[i])
		}
	}
	same := 0
	for i := range a {
		if a[i] == c[i] {
			same++
		}
	}
	if same == len(a) {
		t.Error("seeds 42 and 43 gave the same 200 events")
	}
}

// TestSchedulerDraws: delays and flood lengths stay in their bounds, kinds
// of weight 0 never come, the others all do, clients have their family.
func TestSchedulerDraws(t *testing.T) {
	tests := []struct {
		name     string
		weights  string
		min, max time.Duration
		never    []kind
	}{
		{"defaults", "", 200 * time.Millisecond, 3 * time.Second, nil},
		{"no clients", "client_ipv4=0,client_ipv6=0,one_time_replay=0", time.Second, time.Second, []kind{evClient4, evClient6, evOneTime}},
		{"floods only", "nft_flush_ruleset=0,nft_delete_table=0,nft_flush_table=0,nft_flush_set_guard=0,sighup_new_secrets=0,sighup_broken_file=0,sigquit_restart=0,sigkill_restart=0,client_ipv4=0,client_ipv6=0,one_time_replay=0",
			time.Millisecond, 2 * time.Millisecond, []kind{evFlushRuleset, evDeleteTable, evFlushTable, evFlushSetGuard, evHupNew, evHupBroken, evQuit, evKill, evClient4, evClient6, evOneTime}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := parseWeights(tc.weights)
			if err != nil {
				t.Fatal(err)
			}
			s, err := newScheduler(1, tc.min, tc.max, w)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[kind]int{}
			for range 5000 {
				e := s.next()
				seen[e.Kind]++
				if e.Delay < tc.min || e.Delay > tc.max {
					t.Fatalf("delay %v outside %v..%v", e.Delay, tc.min, tc.max)
				}
				if e.Flood < 2*time.Second || e.Flood > 5*time.Second {
					t.Fatalf("flood of %v outside 2s..5s", e.Flood)
				}
				if e.Family != 4 && e.Family != 6 || e.Kind == evClient4 && e.Family != 4 || e.Kind == evClient6 && e.Family != 6 {
					t.Fatalf("%v with family %d", e.Kind, e.Family)
				}
			}
			for _, k := range tc.never {
				if seen[k] > 0 {
					t.Errorf("%v (weight 0) came %d times", k, seen[k])
				}
			}
			for k := range numKinds {
				if w[k] > 0 && seen[k] == 0 {
					t.Errorf("%v (weight %d) never came in 5000 events", k, w[k])
				}
			}
		})
	}
}

// TestSchedulerRefuses: bad intervals and weights are refused.
func TestSchedulerRefuses(t *testing.T) {
	var zero [numKinds]int
	neg := defaultWeights
	neg[evKill] = -1
	tests := []struct {
		name     string
		min, max time.Duration
		w        [numKinds]int
		want     string
	}{
		{"zero min", 0, time.Second, defaultWeights, "want 0 < min"},
		{"max below min", 2 * time.Second, time.Second, defaultWeights, "want 0 < min"},
		{"all zero", time.Second, time.Second, zero, "every event weight is 0"},
		{"negative", time.Second, time.Second, neg, "negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newScheduler(1, tc.min, tc.max, tc.w)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestParseWeights: good and bad --weights.
func TestParseWeights(t *testing.T) {
	tests := []struct {
		in      string
		kind    kind
		want    int
		wantErr string
	}{
		{"", evClient4, defaultWeights[evClient4], ""},
		{"client_ipv4=7", evClient4, 7, ""},
		{" sigkill_restart=0 , ", evKill, 0, ""},
		{"client_ipv4", 0, 0, "want KIND=N"},
		{"client_ipv4=-1", 0, 0, "want a number"},
		{"client_ipv4=x", 0, 0, "want a number"},
		{"nosuch=1", 0, 0, "unknown kind"},
	}
	for _, tc := range tests {
		w, err := parseWeights(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseWeights(%q): error %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || w[tc.kind] != tc.want {
			t.Errorf("parseWeights(%q): %v weight %d, %v; want %d", tc.in, tc.kind, w[tc.kind], err, tc.want)
		}
	}
}

// TestKindNames: every kind has a name, and names come back to kinds.
func TestKindNames(t *testing.T) {
	for k := range numKinds {
		if kindByName(k.String()) != k {
			t.Errorf("kind %d: name %q does not come back", k, k.String())
		}
	}
	if kindByName("nosuch") != -1 {
		t.Error(`kindByName("nosuch") is not -1`)
	}
}
