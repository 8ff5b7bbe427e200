package knock

import (
	"net/netip"
	"testing"
	"time"
)

// TestFirstPorts: the first ports offered at each instant around a
// rotation are exactly those of the sequences the tracker accepts then,
// and the set is renewed when the next period's sequences begin.
func TestFirstPorts(t *testing.T) {
	p := DefaultParams()
	p.OpenSecret, p.CloseSecret = "first open secret", "first close secret"
	p.Period, p.Grace = 10*time.Second, 3*time.Second
	rot := time.Unix(1_800_000_000, 0) // a multiple of 10 s
	first := func(q time.Time, secret string) uint16 {
		return Sequence(p.Digest, secret, q.Unix(), p.Range)[0]
	}
	prev, cur, nxt := rot.Add(-10*time.Second), rot, rot.Add(10*time.Second)
	tests := []struct {
		at       time.Time
		periods  []time.Time // whose sequences are accepted
		wantNext time.Time
	}{
		{rot.Add(-5 * time.Second), []time.Time{prev}, rot.Add(-3 * time.Second)},
		{rot.Add(-2999 * time.Millisecond), []time.Time{prev, cur}, rot.Add(7 * time.Second)},
		{rot.Add(-time.Millisecond), []time.Time{prev, cur}, rot.Add(7 * time.Second)},
		{rot, []time.Time{prev, cur}, rot.Add(7 * time.Second)},
		{rot.Add(2999 * time.Millisecond), []time.Time{prev, cur}, rot.Add(7 * time.Second)},
		{rot.Add(3 * time.Second), []time.Time{cur}, rot.Add(7 * time.Second)},
		{rot.Add(7001 * time.Millisecond), []time.Time{cur, nxt}, rot.Add(17 * time.Second)},
	}
	for _, tt := range tests {
		got, next := p.FirstPorts(tt.at, tt.at, 0)
		want := map[uint16]time.Time{}
		for _, q := range tt.periods {
			for _, s := range []string{p.OpenSecret, p.CloseSecret} {
				end := q.Add(13 * time.Second)
				if w, ok := want[first(q, s)]; !ok || w.Before(end) {
					want[first(q, s)] = end
				}
			}
		}
		gotMap := map[uint16]time.Time{}
		for _, f := range got {
			gotMap[f.Port] = f.Until
		}
		if len(gotMap) != len(want) {
			t.Errorf("at rot%+v: %v, want %v", tt.at.Sub(rot), gotMap, want)
			continue
		}
		for port, until := range want {
			if !gotMap[port].Equal(until) {
				t.Errorf("at rot%+v: port %d until %v, want %v", tt.at.Sub(rot), port, gotMap[port], until)
			}
		}
		if !next.Equal(tt.wantNext) {
			t.Errorf("at rot%+v: next %v, want rot%+v", tt.at.Sub(rot), next.Sub(rot), tt.wantNext.Sub(rot))
		}
		// Every sequence the tracker accepts at that instant starts with a
		// port of the set.
		tr, _ := NewTracker(TrackerConfig{Params: p, MaxSources: 4, Admit: true})
		for _, q := range tt.periods {
			seq := Sequence(p.Digest, p.OpenSecret, q.Unix(), p.Range)
			var a Action
			for i, port := range seq {
				a = tr.Knock(&Knock{Src: netip.MustParseAddr("10.0.0.1"), SrcPort: uint16(i), DstPort: port, Seq: uint32(i)}, tt.at).Action
			}
			if a != Open {
				t.Errorf("at rot%+v: the sequence of rot%+v does not open with admission", tt.at.Sub(rot), q.Sub(rot))
			}
			tr.Knock(&Knock{Src: netip.MustParseAddr("10.0.0.1"), SrcPort: 999, DstPort: 1, Seq: 999}, tt.at.Add(time.Minute))
		}
	}
}

// TestAdmission: with Admit, a source is tracked only from a knock to a
// first port on; a flood of other sources leaves the tracker empty.
func TestAdmission(t *testing.T) {
	p := DefaultParams()
	p.OpenSecret, p.CloseSecret = "admit open secret", "admit close secret"
	now := time.Date(2026, 11, 27, 10, 30, 0, 0, time.UTC)
	tr, err := NewTracker(TrackerConfig{Params: p, MaxSources: 8, Admit: true})
	if err != nil {
		t.Fatal(err)
	}
	open, _ := p.Sequences(now)
	firsts, _ := p.FirstPorts(now, now, p.Lead(DefaultTimeout))
	isFirst := map[uint16]bool{}
	for _, f := range firsts {
		isFirst[f.Port] = true
	}
	for i := range 1000 {
		port := uint16(1000 + i)
		if isFirst[port] {
			continue
		}
		src := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		tr.Knock(&Knock{Src: src, SrcPort: 1, DstPort: port, Seq: uint32(i)}, now)
	}
	if tr.Len() != 0 {
		t.Fatalf("%d sources tracked after knocks to no first port", tr.Len())
	}
	src := netip.MustParseAddr("10.0.0.1")
	var a Action
	for i, port := range open {
		a = tr.Knock(&Knock{Src: src, SrcPort: 2, DstPort: port, Seq: uint32(i + 1)}, now).Action
	}
	if a != Open || tr.Len() != 1 {
		t.Errorf("the open sequence: %v with %d tracked, want open with 1", a, tr.Len())
	}
}
