package knock

import (
	"net/netip"
	"testing"
	"time"
)

// TestTrackerOneTime runs one tracker in one-time mode through a story:
// each step knocks a whole sequence from a source at an instant (or
// replaces the users) and expects a verdict.
func TestTrackerOneTime(t *testing.T) {
	p := testParams()
	users := testUsers(2) // alice is user 0, bob user 1
	alice, bob := users[0], users[1]
	const hour = int64(3600)
	L := t0.Unix() // the period starting at t0
	ot := func(u User, kind Action, label int64, nonce uint32) []uint16 {
		secret := u.OpenSecret
		if kind == Close {
			secret = u.CloseSecret
		}
		return OneTimeSequence(p.Digest, secret, label, nonce, p.Range)
	}
	open := func(u, nonce int, label int64) Verdict {
		return Verdict{Action: Open, Kind: Open, User: u, Seq: SeqID{Period: label, Nonce: uint32(nonce)}}
	}
	replay := func(kind Action, u, nonce int, label int64) Verdict {
		return Verdict{Action: Replay, Kind: kind, User: u, Seq: SeqID{Period: label, Nonce: uint32(nonce)}}
	}
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::2")
	mid := t0.Add(30 * time.Minute)
	rot := t0.Add(time.Hour)
	steps := []struct {
		name     string
		src      netip.Addr
		at       time.Time
		seq      []uint16
		setUsers []User
		want     Verdict
	}{
		{name: "alice opens with nonce 5", src: a, at: mid, seq: ot(alice, Open, L, 5), want: open(0, 5, L)},
		{name: "the same again from the same source", src: a, at: mid, seq: ot(alice, Open, L, 5), want: replay(Open, 0, 5, L)},
		{name: "the same from another source", src: b, at: mid, seq: ot(alice, Open, L, 5), want: replay(Open, 0, 5, L)},
		{name: "alice opens again at once with nonce 6", src: a, at: mid, seq: ot(alice, Open, L, 6), want: open(0, 6, L)},
		{name: "bob's nonce 5 is his own", src: b, at: mid, seq: ot(bob, Open, L, 5), want: open(1, 5, L)},
		{name: "alice closes with nonce 1023", src: a, at: mid, seq: ot(alice, Close, L, 1023),
			want: Verdict{Action: Close, Kind: Close, User: 0, Seq: SeqID{Period: L, Nonce: 1023}}},
		{name: "the close replayed from another source", src: b, at: mid, seq: ot(alice, Close, L, 1023), want: replay(Close, 0, 1023, L)},
		{name: "the close replayed after the close", src: a, at: mid, seq: ot(alice, Close, L, 1023), want: replay(Close, 0, 1023, L)},
		{name: "nonce 0", src: a, at: mid, seq: ot(alice, Open, L, 0), want: open(0, 0, L)},
		{name: "the C open sequence does not open", src: b, at: mid, seq: Sequence(p.Digest, alice.OpenSecret, L, p.Range)},
		{name: "nor the C close sequence", src: b, at: mid, seq: Sequence(p.Digest, bob.CloseSecret, L, p.Range)},
		{name: "alice's nonce 5 for the next period is not yet valid", src: a, at: mid, seq: ot(alice, Open, L+hour, 5)},

		// Around the rotation.
		{name: "the next period's nonce 7 within the grace before the rotation", src: a, at: rot.Add(-30 * time.Second),
			seq: ot(alice, Open, L+hour, 7), want: open(0, 7, L+hour)},
		{name: "this period's nonce 8 just before the rotation", src: a, at: rot.Add(-20 * time.Second),
			seq: ot(alice, Open, L, 8), want: open(0, 8, L)},
		{name: "after the rotation, the next period's nonce 7 is used", src: b, at: rot.Add(10 * time.Second),
			seq: ot(alice, Open, L+hour, 7), want: replay(Open, 0, 7, L+hour)},
		{name: "within the grace, a used sequence of the previous period is still a replay", src: b, at: rot.Add(20 * time.Second),
			seq: ot(alice, Open, L, 8), want: replay(Open, 0, 8, L)},
		{name: "within the grace, an unused one of the previous period opens", src: b, at: rot.Add(30 * time.Second),
			seq: ot(alice, Open, L, 9), want: open(0, 9, L)},
		{name: "the clock goes back before the rotation: the period's used sequences are kept", src: a, at: rot.Add(-10 * time.Second),
			seq: ot(alice, Open, L, 9), want: replay(Open, 0, 9, L)},
		{name: "after the grace the previous period is not accepted: nothing", src: b, at: rot.Add(2 * time.Minute),
			seq: ot(alice, Open, L, 8)},
		{name: "a period is kept until it is no longer accepted", src: b, at: rot.Add(time.Hour + 10*time.Second),
			seq: ot(alice, Open, L+hour, 7), want: replay(Open, 0, 7, L+hour)},
		{name: "a period no longer accepted", src: b, at: rot.Add(2*time.Hour + 10*time.Second), seq: ot(alice, Open, L+hour, 7)},
		{name: "then forgotten: after a jump back of the clock, it opens again", src: b, at: rot.Add(time.Hour + 10*time.Second),
			seq: ot(alice, Open, L+hour, 7), want: open(0, 7, L+hour)},

		// Reloads: a secret that stays keeps its used sequences.
		{name: "bob's nonce 3", src: b, at: mid, seq: ot(bob, Open, L, 3), want: open(1, 3, L)},
		{name: "alice's nonce 3", src: a, at: mid, seq: ot(alice, Open, L, 3), want: open(0, 3, L)},
		{name: "reload: alice and bob swap places, carol joins", setUsers: []User{bob, alice, {Name: "carol", OpenSecret: "c1", CloseSecret: "c2"}}},
		{name: "bob's nonce 3 is still used, bob is user 0", src: a, at: mid, seq: ot(bob, Open, L, 3), want: replay(Open, 0, 3, L)},
		{name: "alice's nonce 3 is still used, alice is user 1", src: a, at: mid, seq: ot(alice, Open, L, 3), want: replay(Open, 1, 3, L)},
		{name: "reload: alice's open secret changes", setUsers: []User{bob, {Name: "alice", OpenSecret: "new", CloseSecret: alice.CloseSecret}}},
		{name: "her new secret's nonce 3 opens", src: a, at: mid, seq: ot(User{OpenSecret: "new"}, Open, L, 3), want: open(1, 3, L)},
		{name: "her old one does nothing", src: b, at: mid, seq: ot(alice, Open, L, 4)},
	}
	tr := newUsersTracker(t, p, users, true, false)
	for i, st := range steps {
		if st.setUsers != nil {
			if err := tr.SetUsers(st.setUsers); err != nil {
				t.Fatalf("step %d (%s): %v", i, st.name, err)
			}
			continue
		}
		k := &knocker{tr: tr, src: st.src, sport: uint16(1000 * i)}
		if got := k.verdict(t, st.seq, st.at); got != st.want {
			t.Errorf("step %d (%s): %+v, want %+v", i, st.name, got, st.want)
		}
	}
}

// TestTrackerOneTimeTinyRange: in a range of one port every one-time
// sequence is the same: it opens, closes (the alternate rule) and is then
// used up for the period.
func TestTrackerOneTimeTinyRange(t *testing.T) {
	p := testParams()
	p.Range = Range{1000, 1001}
	tr := newUsersTracker(t, p, testUsers(3), true, false)
	L := t0.Unix()
	seq := OneTimeSequence(p.Digest, "anything", L, 77, p.Range)
	k := &knocker{tr: tr, src: src4}
	for _, want := range []Verdict{
		{Action: Open, Kind: Open, Seq: SeqID{Period: L}},
		{Action: Close, Kind: Close, Seq: SeqID{Period: L}},
		{Action: Replay, Kind: Open, Seq: SeqID{Period: L}},
	} {
		if got := k.verdict(t, seq, t0.Add(time.Minute*10)); got != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
	}
}
