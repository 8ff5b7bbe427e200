package knock

import (
	"bytes"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

const oneTimeFile = "../testdata/vectors/onetime.tsv"

// TestOneTimeVectors checks OneTimeSequence, Params.OneTimeSequences and a
// one-time Tracker against every row of the vectors that
// testdata/vectors/onetime.sh computed with openssl.
func TestOneTimeVectors(t *testing.T) {
	data, err := os.ReadFile(oneTimeFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) < 100 {
		t.Fatalf("%d lines", len(lines))
	}
	digests := map[Digest]bool{}
	for i, line := range lines[1:] {
		ln := i + 2
		c := strings.Split(line, "\t")
		if len(c) != 7 {
			t.Fatalf("onetime.tsv:%d: %d columns, want 7", ln, len(c))
		}
		d, err := ParseDigest(c[0])
		if err != nil {
			t.Fatalf("onetime.tsv:%d: %v", ln, err)
		}
		digests[d] = true
		r := Range{uint16(mustInt(t, ln, c[1])), uint16(mustInt(t, ln, c[2]))}
		secret, ps, nonce := c[3], mustInt(t, ln, c[4]), uint32(mustInt(t, ln, c[5]))
		want := mustPorts(t, ln, c[6])
		if len(want) != d.SeqLen() {
			t.Fatalf("onetime.tsv:%d: %d ports", ln, len(want))
		}
		if got := OneTimeSequence(d, secret, ps, nonce, r); !slices.Equal(got, want) {
			t.Errorf("onetime.tsv:%d: OneTimeSequence = %v, want %v", ln, got, want)
		}
		if first := Sequence(d, secret, ps, r)[0]; want[0] != first {
			t.Errorf("onetime.tsv:%d: port 0 is %d, the C sequence's is %d", ln, want[0], first)
		}
		p := Params{Digest: d, Range: r, OpenSecret: secret, CloseSecret: secret + " close", Period: time.Hour, Grace: time.Minute}
		at := time.Unix(ps+1800, 0)
		if ps%3600 != 0 {
			t.Fatalf("onetime.tsv:%d: period start %d is not an hour", ln, ps)
		}
		if open, _ := p.OneTimeSequences(at, nonce, 0); !slices.Equal(open, want) {
			t.Errorf("onetime.tsv:%d: OneTimeSequences = %v, want %v", ln, open, want)
		}
		// A one-time tracker opens with it, once.
		tr, err := NewTracker(TrackerConfig{Params: p, OneTime: true, MaxSources: 4})
		if err != nil {
			t.Fatal(err)
		}
		// In tiny ranges nonces share sequences: the tracker names the
		// lowest nonce, and when a close sequence is the same, the knock
		// again closes (the alternate rule).
		wantNonce, _ := lowestNonce(p.Digest, secret, ps, r, want)
		again := Replay
		if _, ok := lowestNonce(p.Digest, p.CloseSecret, ps, r, want); ok {
			again = Close
		}
		if wantNonce != nonce && r.End-r.Start > 3 {
			t.Errorf("onetime.tsv:%d: nonce %d has the sequence of nonce %d", ln, nonce, wantNonce)
		}
		k := &knocker{tr: tr, src: netip.MustParseAddr("10.1.2.3")}
		if v := k.verdict(t, want, at); v != (Verdict{Action: Open, Kind: Open, Seq: SeqID{Period: ps, Nonce: wantNonce}}) {
			t.Errorf("onetime.tsv:%d: the tracker gave %+v", ln, v)
		}
		if v := k.verdict(t, want, at); v.Action != again {
			t.Errorf("onetime.tsv:%d: again: %+v, want %v", ln, v, again)
		}
	}
	if len(digests) != 4 {
		t.Errorf("the vectors cover %d digests", len(digests))
	}
	// Out of range: nil.
	for _, nonce := range []uint32{OneTimeNonces, OneTimeNonces + 1, math.MaxUint32} {
		if s := OneTimeSequence(MD5, "x", 0, nonce, FullRange); s != nil {
			t.Errorf("nonce %d: %v", nonce, s)
		}
	}
	if s := OneTimeSequence(MD5, "x", 0, OneTimeNonces-1, FullRange); len(s) != 8 {
		t.Errorf("nonce %d: %v", OneTimeNonces-1, s)
	}
	if s := OneTimeSequence(Digest(9), "x", 0, 0, FullRange); s != nil {
		t.Errorf("unknown digest: %v", s)
	}
	if s := OneTimeSequence(MD5, "x", 0, 0, Range{5, 5}); s != nil {
		t.Errorf("empty range: %v", s)
	}
}

// lowestNonce returns the lowest nonce whose one-time sequence is seq.
func lowestNonce(d Digest, secret string, ps int64, r Range, seq []uint16) (uint32, bool) {
	for nonce := range uint32(OneTimeNonces) {
		if slices.Equal(OneTimeSequence(d, secret, ps, nonce, r), seq) {
			return nonce, true
		}
	}
	return 0, false
}

// TestOneTimeScript re-runs testdata/vectors/onetime.sh, when openssl is
// there, and compares its output with the committed onetime.tsv.
func TestOneTimeScript(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	if testing.Short() {
		t.Skip("slow: runs openssl a few hundred times")
	}
	cmd := exec.Command("sh", "onetime.sh")
	cmd.Dir = "../testdata/vectors"
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("onetime.sh: %v\n%s", err, stderr.String())
	}
	want, err := os.ReadFile(oneTimeFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, want) {
		t.Fatalf("onetime.sh output differs from %s (%d vs %d bytes); regenerate with: cd testdata/vectors && sh onetime.sh > onetime.tsv",
			oneTimeFile, len(out), len(want))
	}
}
