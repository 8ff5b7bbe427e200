package knock

import (
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testUsers returns n users with secrets of their own.
func testUsers(n int) []User {
	users := make([]User, n)
	for i := range users {
		s := strconv.Itoa(i)
		users[i] = User{Name: "user" + s, OpenSecret: "open secret " + s, CloseSecret: "close secret " + s}
	}
	return users
}

// seqOf returns the C-compatible sequence of u's kind (Open or Close) for
// the period holding at.
func seqOf(p Params, u User, kind Action, at time.Time) []uint16 {
	secret := u.OpenSecret
	if kind == Close {
		secret = u.CloseSecret
	}
	return Sequence(p.Digest, secret, p.PeriodStart(at), p.Range)
}

// verdict knocks ports at now and returns the verdict of the last knock,
// failing if an earlier one did something.
func (k *knocker) verdict(t *testing.T, ports []uint16, now time.Time) Verdict {
	t.Helper()
	var v Verdict
	for i, port := range ports {
		k.sport++
		k.seq += 7919
		v = k.tr.Knock(&Knock{Src: k.src, SrcPort: k.sport, DstPort: port, Seq: k.seq}, now)
		if i < len(ports)-1 && v != (Verdict{}) {
			t.Fatalf("knock %d of %d: %+v", i+1, len(ports), v)
		}
	}
	return v
}

func newUsersTracker(t testing.TB, p Params, users []User, oneTime, admit bool) *Tracker {
	t.Helper()
	tr, err := NewTracker(TrackerConfig{Params: p, Users: users, OneTime: oneTime, Admit: admit, MaxSources: 64})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestTrackerUsers: each user opens and closes with their own secrets
// only, and the verdict names the user.
func TestTrackerUsers(t *testing.T) {
	p := testParams()
	p.OpenSecret, p.CloseSecret = "", "" // the users' secrets only
	users := testUsers(2)
	now := t0.Add(20 * time.Minute)
	ps := p.PeriodStart(now)
	mixed := slices.Concat(seqOf(p, users[0], Open, now)[:4], seqOf(p, users[1], Open, now)[4:])
	tests := []struct {
		name string
		seq  []uint16
		want Verdict
	}{
		{"alice opens", seqOf(p, users[0], Open, now), Verdict{Action: Open, Kind: Open, User: 0, Seq: SeqID{Period: ps}}},
		{"alice closes", seqOf(p, users[0], Close, now), Verdict{Action: Close, Kind: Close, User: 0, Seq: SeqID{Period: ps}}},
		{"bob opens", seqOf(p, users[1], Open, now), Verdict{Action: Open, Kind: Open, User: 1, Seq: SeqID{Period: ps}}},
		{"bob closes", seqOf(p, users[1], Close, now), Verdict{Action: Close, Kind: Close, User: 1, Seq: SeqID{Period: ps}}},
		{"half alice, half bob", mixed, Verdict{}},
		{"the secrets of Params", Sequence(p.Digest, "123", ps, p.Range), Verdict{}},
		{"bob's open of the next period", seqOf(p, users[1], Open, now.Add(time.Hour)), Verdict{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newUsersTracker(t, p, users, false, false)
			k := &knocker{tr: tr, src: src4}
			if got := k.verdict(t, tt.seq, now); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	// A sequence that is one user's close and another's open (ParseAccess
	// refuses such users) alternates, as open == close in a tiny range.
	swapped := append(testUsers(2), User{Name: "swapped", OpenSecret: users[0].CloseSecret, CloseSecret: users[0].OpenSecret})
	tr := newUsersTracker(t, p, swapped, false, false)
	k := &knocker{tr: tr, src: src6}
	for _, want := range []Verdict{{Action: Open, Kind: Open, User: 2, Seq: SeqID{Period: ps}}, {Action: Close, Kind: Close, User: 0, Seq: SeqID{Period: ps}}} {
		if got := k.verdict(t, seqOf(p, users[0], Close, now), now); got != want {
			t.Errorf("user 0's close, user 2's open: %+v, want %+v", got, want)
		}
	}
}

// TestSetUsers: a removed user no longer opens, a new one does, and bad
// users leave the old ones in force.
func TestSetUsers(t *testing.T) {
	p := testParams()
	now := t0.Add(20 * time.Minute)
	all := testUsers(3)
	for _, oneTime := range []bool{false, true} {
		t.Run("one-time="+strconv.FormatBool(oneTime), func(t *testing.T) {
			tr := newUsersTracker(t, p, all[:2], oneTime, false)
			open := func(u User, nonce uint32) []uint16 {
				if oneTime {
					return OneTimeSequence(p.Digest, u.OpenSecret, p.PeriodStart(now), nonce, p.Range)
				}
				return seqOf(p, u, Open, now)
			}
			k := &knocker{tr: tr, src: src4}
			if v := k.verdict(t, open(all[0], 1), now); v.Action != Open || v.User != 0 {
				t.Fatalf("user 0 before: %+v", v)
			}
			// Remove user 0, keep user 1 (now index 0), add user 2.
			if err := tr.SetUsers([]User{all[1], all[2]}); err != nil {
				t.Fatal(err)
			}
			if v := k.verdict(t, open(all[0], 2), now); v != (Verdict{}) {
				t.Errorf("removed user: %+v", v)
			}
			if v := k.verdict(t, open(all[1], 2), now); v.Action != Open || v.User != 0 {
				t.Errorf("kept user: %+v, want Open by user 0", v)
			}
			if v := k.verdict(t, open(all[2], 2), now); v.Action != Open || v.User != 1 {
				t.Errorf("new user: %+v, want Open by user 1", v)
			}
			for _, bad := range [][]User{nil, {}, {{OpenSecret: "x"}}, {{Name: "a b", OpenSecret: "x", CloseSecret: "y"}}, testUsers(MaxUsers + 1)} {
				if err := tr.SetUsers(bad); err == nil {
					t.Errorf("SetUsers(%d users) succeeded", len(bad))
				}
			}
			if v := k.verdict(t, open(all[2], 3), now); v.Action != Open || v.User != 1 {
				t.Errorf("after refused SetUsers: %+v, want Open by user 1", v)
			}
			if err := tr.SetSecrets(all[0].OpenSecret, all[0].CloseSecret); err != nil {
				t.Fatal(err)
			}
			if v := k.verdict(t, open(all[0], 4), now); v.Action != Open || v.User != 0 {
				t.Errorf("after SetSecrets: %+v, want Open by user 0", v)
			}
		})
	}
}

func TestNewTrackerUsersErrors(t *testing.T) {
	p := testParams()
	noSecrets := p
	noSecrets.OpenSecret, noSecrets.CloseSecret = "", ""
	if _, err := NewTracker(TrackerConfig{Params: noSecrets, Users: testUsers(1)}); err != nil {
		t.Errorf("users without the secrets of Params: %v", err)
	}
	badRange := p
	badRange.Range = Range{5, 5}
	for name, cfg := range map[string]TrackerConfig{
		"empty users":       {Params: p, Users: []User{}},
		"too many users":    {Params: p, Users: testUsers(MaxUsers + 1)},
		"empty secret":      {Params: p, Users: []User{{Name: "a", OpenSecret: "x"}}},
		"bad name":          {Params: p, Users: []User{{Name: "a/b", OpenSecret: "x", CloseSecret: "y"}}},
		"bad range":         {Params: badRange, Users: testUsers(1)},
		"no secrets at all": {Params: noSecrets},
		"nonces":            {Params: p, nonces: 3},
	} {
		if _, err := NewTracker(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	tr, err := NewTracker(TrackerConfig{Params: p, Users: testUsers(MaxUsers), OneTime: true, MaxSources: 1})
	if err != nil {
		t.Fatalf("%d users: %v", MaxUsers, err)
	}
	t.Logf("%d users, one-time: %d bytes of tables", MaxUsers, tr.cat.memory())
}

// TestAdmitUsers: with admission, each user's sequences open (their first
// ports admit a source), and a source whose first knock is to no user's
// first port is not tracked.
func TestAdmitUsers(t *testing.T) {
	p := testParams()
	users := testUsers(5)
	now := t0.Add(40 * time.Minute)
	for _, oneTime := range []bool{false, true} {
		tr := newUsersTracker(t, p, users, oneTime, true)
		firsts, _ := UsersFirstPorts(p, users, now, now, p.Lead(DefaultTimeout))
		isFirst := map[uint16]bool{}
		for _, f := range firsts {
			isFirst[f.Port] = true
		}
		if len(isFirst) < 10 {
			t.Fatalf("%d first ports for 5 users", len(isFirst))
		}
		for i := range 2000 {
			if port := uint16(1 + i*31); !isFirst[port] {
				tr.Knock(&Knock{Src: netip.AddrFrom4([4]byte{10, 7, byte(i >> 8), byte(i)}), SrcPort: 1, DstPort: port, Seq: 1}, now)
			}
		}
		if tr.Len() != 0 {
			t.Fatalf("one-time %v: %d sources tracked after knocks to no first port", oneTime, tr.Len())
		}
		for u, user := range users {
			for _, kind := range []Action{Open, Close} {
				seq := seqOf(p, user, kind, now)
				if oneTime {
					secret := user.OpenSecret
					if kind == Close {
						secret = user.CloseSecret
					}
					seq = OneTimeSequence(p.Digest, secret, p.PeriodStart(now), uint32(u), p.Range)
				}
				k := &knocker{tr: tr, src: netip.AddrFrom4([4]byte{10, 8, byte(u), byte(kind)})}
				if v := k.verdict(t, seq, now); v.Action != kind || v.User != u {
					t.Errorf("one-time %v: user %d %v: %+v", oneTime, u, kind, v)
				}
			}
		}
		if tr.Len() != 10 {
			t.Errorf("one-time %v: %d sources tracked, want the 10 that knocked", oneTime, tr.Len())
		}
	}
}

// TestUsersFirstPorts: the first ports of several users are the union of
// each user's, with the latest end for a port that two share, and the same
// next instant.
func TestUsersFirstPorts(t *testing.T) {
	p := testParams()
	p.Period, p.Grace = 10*time.Second, 3*time.Second
	users := testUsers(4)
	users[3].OpenSecret = users[0].OpenSecret // the same first ports as user 0's open
	rot := time.Unix(1_800_000_000, 0)
	for _, at := range []time.Time{rot.Add(-5 * time.Second), rot, rot.Add(2 * time.Second), rot.Add(8 * time.Second)} {
		got, next := UsersFirstPorts(p, users, at, at.Add(time.Second), 2*time.Second)
		want := map[uint16]time.Time{}
		var wantNext time.Time
		for i, u := range users {
			q := p
			q.OpenSecret, q.CloseSecret = u.OpenSecret, u.CloseSecret
			ports, n := q.FirstPorts(at, at.Add(time.Second), 2*time.Second)
			if i > 0 && !n.Equal(wantNext) {
				t.Fatalf("the users' next instants differ: %v, %v", n, wantNext)
			}
			wantNext = n
			for _, f := range ports {
				if w, ok := want[f.Port]; !ok || w.Before(f.Until) {
					want[f.Port] = f.Until
				}
			}
		}
		gotMap := map[uint16]time.Time{}
		for _, f := range got {
			if _, dup := gotMap[f.Port]; dup {
				t.Fatalf("port %d twice", f.Port)
			}
			gotMap[f.Port] = f.Until
		}
		if !maps.EqualFunc(gotMap, want, time.Time.Equal) || !next.Equal(wantNext) {
			t.Errorf("at rot%+v: %v next %v, want %v next %v", at.Sub(rot), gotMap, next, want, wantNext)
		}
		if len(want) < 2*3 {
			t.Errorf("at rot%+v: only %d ports", at.Sub(rot), len(want))
		}
	}
	// nil users: the user of p's secrets, as FirstPorts.
	a, an := UsersFirstPorts(p, nil, rot, rot, 0)
	b, bn := p.FirstPorts(rot, rot, 0)
	if !slices.Equal(a, b) || !an.Equal(bn) {
		t.Errorf("nil users: %v %v, FirstPorts %v %v", a, an, b, bn)
	}
}

// TestTrackerUsersAllocs: knocks allocate nothing with 8 users in one-time
// mode and admission, across rotations and through matches and replays.
func TestTrackerUsersAllocs(t *testing.T) {
	p := testParams()
	p.Digest = SHA256
	users := testUsers(8)
	tr := newUsersTracker(t, p, users, true, true)
	addrs := make([]netip.Addr, 256)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
	}
	// The sequences knocked, computed beforehand: 16 an hour.
	var seqs [4][16][]uint16
	for h := range seqs {
		for m := range seqs[h] {
			at := t0.Add(time.Duration(h) * time.Hour)
			seqs[h][m] = OneTimeSequence(p.Digest, users[m%8].OpenSecret, p.PeriodStart(at), uint32(m), p.Range)
		}
	}
	now := t0
	var i int
	opens, replays := 0, 0
	allocs := testing.AllocsPerRun(3000, func() {
		i++
		if i%1000 == 0 {
			now = now.Add(time.Hour) // rotate
		}
		if i%100 == 0 { // a whole sequence, twice: open, then replay
			for j, port := range seqs[i/1000][i/200%16] {
				k := Knock{Src: addrs[i%len(addrs)], SrcPort: uint16(j), DstPort: port, Seq: uint32(i + j)}
				switch tr.Knock(&k, now).Action {
				case Open:
					opens++
				case Replay:
					replays++
				}
			}
			return
		}
		k := Knock{Src: addrs[i%len(addrs)], SrcPort: uint16(i), DstPort: uint16(i*7919) | 1, Seq: uint32(i)}
		tr.Knock(&k, now)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per knock", allocs)
	}
	if opens < 10 || replays < 10 {
		t.Errorf("only %d opens and %d replays", opens, replays)
	}
}

func TestVerdictString(t *testing.T) {
	if Replay.String() != "replay" || !strings.HasPrefix(Action(9).String(), "Action(") {
		t.Errorf("%q %q", Replay, Action(9))
	}
}
