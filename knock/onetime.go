package knock

import (
	"strconv"
	"time"
)

// OneTimeNonces is how many one-time sequences each secret has in a
// period: a one-time client picks its nonce at random in
// [0, OneTimeNonces), and the daemon precomputes every one of them.
const OneTimeNonces = 1024

// OneTimeSequence returns the one-time port sequence of secret for the
// period starting at periodStart and nonce (< OneTimeNonces):
//
//   - port 0 is port 0 of Sequence(d, secret, periodStart, r), shared by
//     every nonce of the period (so that the kernel filter's first-port set
//     holds one port per secret and period, not one per nonce);
//   - port i, 0 < i < n, is (256*E[2i] + E[2i+1]) mod (End-Start) + Start
//     with E = digest(secret || decimal(periodStart) || "/" || decimal(nonce)).
//
// Its result is nil when d is unknown, r is empty or nonce is out of range.
func OneTimeSequence(d Digest, secret string, periodStart int64, nonce uint32, r Range) []uint16 {
	if !d.valid() || r.End <= r.Start || nonce >= OneTimeNonces {
		return nil
	}
	buf := make([]byte, 0, len(secret)+32)
	out := make([]uint16, d.SeqLen())
	oneTimeInto(out, &buf, d, secret, periodStart, nonce, r)
	return out
}

// oneTimeInto writes the one-time sequence into out (len d.SeqLen()), using
// *buf as scratch space. It allocates only when *buf is too small.
func oneTimeInto(out []uint16, buf *[]byte, d Digest, secret string, periodStart int64, nonce uint32, r Range) {
	sequenceInto(out, buf, d, secret, periodStart, r)
	first := out[0]
	b := append((*buf)[:0], secret...)
	b = strconv.AppendInt(b, periodStart, 10)
	b = append(b, '/')
	b = strconv.AppendUint(b, uint64(nonce), 10)
	*buf = b
	portsInto(out, d, b, r)
	out[0] = first
}

// OneTimeSequences returns the one-time open and close sequences of the
// period holding t for the two nonces.
func (p Params) OneTimeSequences(t time.Time, openNonce, closeNonce uint32) (open, close []uint16) {
	ps := p.PeriodStart(t)
	return OneTimeSequence(p.Digest, p.OpenSecret, ps, openNonce, p.Range),
		OneTimeSequence(p.Digest, p.CloseSecret, ps, closeNonce, p.Range)
}
