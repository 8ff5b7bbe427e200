package knock

import (
	"net/netip"
	"testing"
	"time"
)

// TestSetSecrets: after a reload the old sequence no longer opens, the new
// one does, and knocks made before the reload do not count.
func TestSetSecrets(t *testing.T) {
	p := DefaultParams()
	p.OpenSecret, p.CloseSecret = "old open secret", "old close secret"
	tr, err := NewTracker(TrackerConfig{Params: p, MaxSources: 16})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	src := netip.MustParseAddr("10.0.0.1")
	seq := uint32(0)
	knock := func(ports []uint16) Action {
		var last Action
		for _, port := range ports {
			seq++
			now = now.Add(10 * time.Millisecond)
			last = tr.Knock(&Knock{Src: src, SrcPort: 40000, DstPort: port, Seq: seq}, now).Action
		}
		return last
	}
	oldOpen, _ := p.Sequences(now)
	if got := knock(oldOpen[:len(oldOpen)-1]); got != None {
		t.Fatalf("half the old sequence: %v", got)
	}
	if err := tr.SetSecrets("a much longer new open secret than before", "new close secret"); err != nil {
		t.Fatal(err)
	}
	// The last port of the old sequence completes nothing: the window was reset.
	if got := knock(oldOpen[len(oldOpen)-1:]); got != None {
		t.Errorf("the old sequence's last knock after the reload: %v", got)
	}
	if got := knock(oldOpen); got != None {
		t.Errorf("the whole old sequence after the reload: %v, want None", got)
	}
	np := p
	np.OpenSecret, np.CloseSecret = "a much longer new open secret than before", "new close secret"
	newOpen, newClose := np.Sequences(now)
	if got := knock(newOpen); got != Open {
		t.Errorf("the new open sequence: %v, want Open", got)
	}
	if got := knock(newClose); got != Close {
		t.Errorf("the new close sequence: %v, want Close", got)
	}
	if err := tr.SetSecrets("", "x"); err == nil {
		t.Errorf("SetSecrets with an empty secret: no error")
	}
}

// TestRetransmissionAfterGap: a SYN with the source port and sequence
// number of the source's previous knock is a retransmission only within
// the timeout; after a longer gap the window starts afresh and it counts
// as a knock (the kernel filter may have hidden the knocks in between).
func TestRetransmissionAfterGap(t *testing.T) {
	p := DefaultParams()
	p.OpenSecret, p.CloseSecret = "gap open secret", "gap close secret"
	now := time.Date(2026, 11, 27, 10, 30, 0, 0, time.UTC)
	open, _ := p.Sequences(now)
	src := netip.MustParseAddr("10.0.0.1")
	for _, tt := range []struct {
		gap  time.Duration
		want Action
	}{
		// A retransmission: ignored, the first knock counts and the rest
		// follows within the timeout of it.
		{5 * time.Second, Open},
		// After the timeout: a new first knock (ignored as a
		// retransmission, the rest would begin a window without it).
		{11 * time.Second, Open},
	} {
		tr, err := NewTracker(TrackerConfig{Params: p, MaxSources: 4})
		if err != nil {
			t.Fatal(err)
		}
		at := now
		tr.Knock(&Knock{Src: src, SrcPort: 7, DstPort: open[0], Seq: 7}, at)
		at = at.Add(tt.gap)
		var a Action
		a = tr.Knock(&Knock{Src: src, SrcPort: 7, DstPort: open[0], Seq: 7}, at).Action
		for i, port := range open[1:] {
			at = at.Add(10 * time.Millisecond)
			a = tr.Knock(&Knock{Src: src, SrcPort: uint16(100 + i), DstPort: port, Seq: uint32(100 + i)}, at).Action
		}
		if a != tt.want {
			t.Errorf("the first knock repeated after %v, then the rest: %v, want %v", tt.gap, a, tt.want)
		}
	}
}

// TestPrepare: Prepare computes the period's sequences, so that the knock
// that completes a sequence finds them; a second Prepare in the same period
// changes nothing, and the sequences still open.
func TestPrepare(t *testing.T) {
	p := DefaultParams()
	p.OpenSecret, p.CloseSecret = "prepare-open", "prepare-close"
	tr, err := NewTracker(TrackerConfig{Params: p})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_100, 0)
	tr.Prepare(now)
	from, until := tr.fromNs, tr.untilNs
	if from != 1_699_999_200*1e9 || until != 1_700_002_800*1e9 {
		t.Fatalf("after Prepare the tracker holds [%d, %d), want the hour of %v", from, until, now)
	}
	tr.Prepare(now.Add(time.Minute))
	if tr.fromNs != from || tr.untilNs != until {
		t.Errorf("a second Prepare in the period rotated again")
	}
	open, _ := p.Sequences(now)
	src := netip.MustParseAddr("10.0.0.1")
	var v Verdict
	for i, port := range open {
		v = tr.Knock(&Knock{Src: src, SrcPort: 1000, DstPort: port, Seq: uint32(i)}, now.Add(time.Duration(i)*time.Millisecond))
	}
	if v.Action != Open {
		t.Errorf("the open sequence after Prepare gave %v", v.Action)
	}
	if allocs := testing.AllocsPerRun(10, func() { tr.Prepare(now) }); allocs != 0 {
		t.Errorf("Prepare in a prepared period allocates %v", allocs)
	}
}
