package knock

import (
	"errors"
	"slices"
	"time"
)

// SetSecrets replaces the open and close secrets (a reload): the sequences
// are computed anew at the next knock, and every source's window starts
// afresh, so that knocks made under the old secrets never complete a new
// sequence. The sources stay tracked. On error nothing changes.
func (t *Tracker) SetSecrets(open, close string) error {
	if open == "" || close == "" {
		return errors.New("knock tracker: secrets must not be empty")
	}
	t.params.OpenSecret, t.params.CloseSecret = open, close
	if need := max(len(open), len(close)) + 24; cap(t.buf) < need {
		t.buf = make([]byte, 0, need)
	}
	t.fromNs, t.untilNs = 0, 0 // the next knock computes the sequences
	for i := range t.ents {
		t.ents[i].meta &^= metaCount | metaOpened
	}
	return nil
}

// FirstPort is the first port of a valid sequence and the instant until
// which that sequence is accepted.
type FirstPort struct {
	Port  uint16
	Until time.Time
}

// FirstPorts returns the first ports of the open and close sequences
// accepted at now, each with the end of its acceptance (the end of its
// period plus the grace), and the instant at which the next period's
// sequences begin to be accepted (the grace before its start), when the set
// must be given their first ports. A port that starts two sequences appears
// once, with the later end. The kernel filter keeps these ports in a set,
// so that only sources that knocked one reach the daemon.
func (p Params) FirstPorts(now time.Time) (ports []FirstPort, next time.Time) {
	grace := p.Grace
	label, from, until := p.window(now)
	add := func(label, until int64) {
		end := time.Unix(until, 0).Add(grace)
		for _, secret := range []string{p.OpenSecret, p.CloseSecret} {
			port := Sequence(p.Digest, secret, label, p.Range)[0]
			i := slices.IndexFunc(ports, func(f FirstPort) bool { return f.Port == port })
			switch {
			case i < 0:
				ports = append(ports, FirstPort{Port: port, Until: end})
			case ports[i].Until.Before(end):
				ports[i].Until = end
			}
		}
	}
	add(label, until)
	if now.Before(time.Unix(from, 0).Add(grace)) {
		prevLabel, _, _ := p.window(time.Unix(from-1, 0))
		add(prevLabel, from)
	}
	next = time.Unix(until, 0).Add(-grace)
	if !now.Before(next) {
		nextLabel, _, nextUntil := p.window(time.Unix(until, 0))
		add(nextLabel, nextUntil)
		next = time.Unix(nextUntil, 0).Add(-grace)
	}
	return ports, next
}
