package main

// The event scheduler: which random event comes next, and when. Pure: a
// seeded generator in, the same events out, so that a run can be repeated
// from its seed.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// kind is one kind of event.
type kind int

// The kinds of event, in the order of the report.
const (
	evFlushRuleset  kind = iota // nft flush ruleset
	evDeleteTable               // nft delete table inet nfqknock
	evFlushTable                // nft flush table inet nfqknock
	evFlushSetGuard             // nft flush set inet nfqknock guard
	evHupNew                    // SIGHUP with new secrets
	evHupBroken                 // SIGHUP with a broken secret file
	evQuit                      // SIGQUIT, then a new daemon
	evKill                      // SIGKILL, then a new daemon
	evFlood1                    // a flood from one source
	evFloodMillion              // a flood from 1,000,000 spoofed sources
	evClient4                   // an IPv4 client: knock open, connect, knock close
	evClient6                   // the same over IPv6
	evOneTime                   // a one-time open, then its replay from another address
	numKinds
)

// kindNames are the names of the kinds in the report and in soak.json.
var kindNames = [numKinds]string{
	"nft_flush_ruleset", "nft_delete_table", "nft_flush_table", "nft_flush_set_guard",
	"sighup_new_secrets", "sighup_broken_file", "sigquit_restart", "sigkill_restart",
	"flood_1_source", "flood_1m_sources", "client_ipv4", "client_ipv6", "one_time_replay",
}

func (k kind) String() string {
	if k < 0 || k >= numKinds {
		return fmt.Sprintf("kind(%d)", int(k))
	}
	return kindNames[k]
}

// defaultWeights make clients the most frequent events (their success rate
// and latency need samples), the rest equally likely.
var defaultWeights = [numKinds]int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 2}

// event is one scheduled event: after Delay, Kind happens, with the
// parameters drawn for it.
type event struct {
	Delay time.Duration
	Kind  kind
	// Family is 4 or 6: of a flood's packets, of a one-time client.
	Family int
	// Flood is how long a flood lasts.
	Flood time.Duration
}

// scheduler draws events from a seeded generator.
type scheduler struct {
	rng        *rand.Rand
	min, max   time.Duration
	weights    [numKinds]int
	total      int
	floodRange [2]time.Duration
}

// newScheduler returns a scheduler whose delays are uniform in [min, max]
// and whose kinds follow weights (a kind of weight 0 never happens); floods
// last 2 to 5 s.
func newScheduler(seed uint64, min, max time.Duration, weights [numKinds]int) (*scheduler, error) {
	if min <= 0 || max < min {
		return nil, fmt.Errorf("event interval %v..%v: want 0 < min <= max", min, max)
	}
	s := &scheduler{
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		min: min, max: max, weights: weights,
		floodRange: [2]time.Duration{2 * time.Second, 5 * time.Second},
	}
	for k, w := range weights {
		if w < 0 {
			return nil, fmt.Errorf("weight of %v: %d is negative", kind(k), w)
		}
		s.total += w
	}
	if s.total == 0 {
		return nil, errors.New("every event weight is 0")
	}
	return s, nil
}

// next draws the next event.
func (s *scheduler) next() event {
	e := event{Delay: s.min + time.Duration(s.rng.Int64N(int64(s.max-s.min)+1))}
	n := s.rng.IntN(s.total)
	for k, w := range s.weights {
		if n < w {
			e.Kind = kind(k)
			break
		}
		n -= w
	}
	e.Family = 4 + 2*s.rng.IntN(2)
	lo, hi := s.floodRange[0], s.floodRange[1]
	e.Flood = lo + time.Duration(s.rng.Int64N(int64(hi-lo)+1))
	switch e.Kind {
	case evClient4:
		e.Family = 4
	case evClient6:
		e.Family = 6
	}
	return e
}

// parseWeights reads "kind=N,kind=N" over the default weights: a way to
// run a soak of some events only (--weights client_ipv4=0,...).
func parseWeights(s string) ([numKinds]int, error) {
	w := defaultWeights
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		name, num, ok := strings.Cut(f, "=")
		if !ok {
			return w, fmt.Errorf("weight %q: want KIND=N", f)
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 0 {
			return w, fmt.Errorf("weight %q: want a number >= 0 after =", f)
		}
		k := kindByName(name)
		if k < 0 {
			return w, fmt.Errorf("weight %q: unknown kind (want one of %s)", f, strings.Join(kindNames[:], ", "))
		}
		w[k] = n
	}
	return w, nil
}

// kindByName returns the kind named name, or -1.
func kindByName(name string) kind {
	for k, n := range kindNames {
		if n == name {
			return kind(k)
		}
	}
	return -1
}
