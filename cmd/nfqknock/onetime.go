package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/nfqknockd/nfqknockd/knock"
)

// maxDraws bounds the draws of one nonce: a draw is redone when it falls in
// the biased tail of the random numbers, or when this process used the nonce
// already in the period. Only a broken random source needs more.
const maxDraws = 64

// nonceSource draws the nonces of one-time sequences: uniform in
// [0, knock.OneTimeNonces), never one that this process knocked already in
// the same period for the same secret (the daemon would take it for a
// replay).
type nonceSource struct {
	rand io.Reader // crypto/rand.Reader; a fixed stream in the tests
	used map[usedNonce]bool
}

// usedNonce is a nonce knocked in a period, for the open or close secret.
type usedNonce struct {
	close  bool
	period int64
	nonce  uint32
}

// draw returns a fresh nonce for the open or close secret in the period
// that starts at periodStart, and marks it used.
func (s *nonceSource) draw(close bool, periodStart int64) (uint32, error) {
	if s.used == nil {
		s.used = map[usedNonce]bool{}
	}
	for range maxDraws {
		n, err := uniform(s.rand, knock.OneTimeNonces)
		if err != nil {
			return 0, err
		}
		k := usedNonce{close, periodStart, n}
		if !s.used[k] {
			s.used[k] = true
			return n, nil
		}
	}
	return 0, fmt.Errorf("random numbers: no unused nonce in %d draws", maxDraws)
}

// uniform reads a number uniform in [0, n) from r: a 32-bit number, drawn
// again while it falls in the last, incomplete run of n.
func uniform(r io.Reader, n uint32) (uint32, error) {
	limit := uint32((1 << 32) - (1<<32)%uint64(n)) // a multiple of n; 0 when n divides 2^32
	var b [4]byte
	for range maxDraws {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, fmt.Errorf("random numbers: %w", err)
		}
		v := binary.BigEndian.Uint32(b[:])
		if limit == 0 || v < limit {
			return v % n, nil
		}
	}
	return 0, errors.New("random numbers: out of range too often")
}
