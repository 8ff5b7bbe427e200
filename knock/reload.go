package knock

import "errors"

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
