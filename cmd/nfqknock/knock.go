package main

import (
	"time"

	"github.com/nfqknockd/nfqknockd/knock"
)

// show returns the OPEN: and CLOSE: lines at o.at (now when unset), exactly
// as `nfqknockd -s` prints them; with --one-time, the one-time sequences of
// a fresh random nonce each.
func (o *options) show() (string, error) {
	at := o.at
	if at.IsZero() {
		at = o.now()
	}
	open, err := o.openSequence(at)
	if err != nil {
		return "", err
	}
	close, err := o.closeSequence(at)
	if err != nil {
		return "", err
	}
	return knock.FormatSequences(open, close), nil
}

// now returns the time of this client's clock, shifted by the hidden
// --test-clock-skew.
func (o *options) now() time.Time { return time.Now().Add(o.skew) }

// openSequence returns the open sequence at t: with --one-time, the one-time
// sequence of a fresh nonce.
func (o *options) openSequence(t time.Time) ([]uint16, error) {
	return o.sequence(false, o.params.OpenSecret, t)
}

// closeSequence returns the close sequence at t: with --one-time, the
// one-time sequence of a fresh nonce.
func (o *options) closeSequence(t time.Time) ([]uint16, error) {
	return o.sequence(true, o.params.CloseSecret, t)
}

// sequence returns the sequence of secret at t, a one-time one with
// --one-time.
func (o *options) sequence(close bool, secret string, t time.Time) ([]uint16, error) {
	p := o.params
	ps := p.PeriodStart(t)
	if !o.oneTime {
		return knock.Sequence(p.Digest, secret, ps, p.Range), nil
	}
	n, err := o.nonces.draw(close, ps)
	if err != nil {
		return nil, err
	}
	return knock.OneTimeSequence(p.Digest, secret, ps, n, p.Range), nil
}
