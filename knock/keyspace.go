package knock

import "fmt"

// The key space: how many sequences a knock range and a digest allow, and
// when that is few enough for a sweep of the range to hit one.

// minSequences is the number of possible sequences under which the knock
// range gets a warning: 2^40.
const minSequences = 1 << 40

// digests are the digests from the shortest sequences to the longest.
var digests = []Digest{MD5, SHA256, SHA384, SHA512}

// sequenceCount returns width^n, or minSequences when it is that much or
// more.
func sequenceCount(width uint64, n int) uint64 {
	p := uint64(1)
	for range n {
		if p *= width; p >= minSequences {
			return minSequences
		}
	}
	return p
}

// RangeWarning returns the warning for a knock range that allows fewer
// than 2^40 sequences of digest d, or "". A sequence port is start + x mod
// (end-start): end-start values a port. The warning says how wide the
// range must be, or which longer digest (the daemon's -d) would do; it
// shows no secret and no port of a sequence.
func RangeWarning(r Range, d Digest) string {
	n := d.SeqLen()
	if r.End <= r.Start || n == 0 {
		return ""
	}
	width := uint64(r.End - r.Start)
	count := sequenceCount(width, n)
	if count >= minSequences {
		return ""
	}
	minWidth := uint64(2)
	for sequenceCount(minWidth, n) < minSequences {
		minWidth++
	}
	fix := fmt.Sprintf("make end-start at least %d", minWidth)
	for _, longer := range digests {
		if longer.SeqLen() > n && sequenceCount(width, longer.SeqLen()) >= minSequences {
			fix += ", or use -d " + longer.String()
			break
		}
	}
	return fmt.Sprintf("the knock range makes the sequences guessable: end-start is %d, so %s sequences of %d ports number only %d^%d = %d, fewer than 2^40: one sweep of about as many knocks (a de Bruijn sequence) hits the open sequence; %s",
		width, d, n, width, n, count, fix)
}

// TeamWarning returns the warning for a knock range r wide enough for one
// pair of secrets of digest d but not for the open sequences valid at once
// with users users and, with oneTime, OneTimeNonces nonces each (a sweep
// hits any of them), or "".
func TeamWarning(r Range, d Digest, users int, oneTime bool) string {
	valid := uint64(users)
	if oneTime {
		valid *= OneTimeNonces
	}
	n := d.SeqLen()
	if valid <= 1 || r.End <= r.Start {
		return ""
	}
	width := uint64(r.End - r.Start)
	count := uint64(1)
	for range n {
		if count *= width; count >= minSequences*valid {
			return ""
		}
	}
	return fmt.Sprintf("the knock range is narrow for %d users%s: %d open sequences are valid at once, so a sweep hits one in about %d^%d / %d = %d knocks, fewer than 2^40; widen the range or use a longer digest",
		users, map[bool]string{true: " with one-time sequences", false: ""}[oneTime], valid, width, n, valid, count/valid)
}
