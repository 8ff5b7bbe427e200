package main

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/knock"
)

// randomStream returns a random source that yields the 32-bit numbers vs,
// big-endian, as crypto/rand would yield bytes.
func randomStream(vs ...uint32) *bytes.Reader {
	b := make([]byte, 0, 4*len(vs))
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return bytes.NewReader(b)
}

// TestUniform: a number in [0, n), the incomplete tail of 2^32 drawn again.
func TestUniform(t *testing.T) {
	tests := []struct {
		n    uint32
		in   []uint32
		want uint32
	}{
		{1024, []uint32{5}, 5},
		{1024, []uint32{1024 + 7}, 7},
		{1024, []uint32{0xffffffff}, 1023}, // 1024 divides 2^32: no tail
		{1000, []uint32{0xffffffff, 1999}, 999},
		{1000, []uint32{4294967000 - 1, 3}, 999},
		{1000, []uint32{4294967000, 3}, 3}, // the tail starts at 2^32 - 2^32 % 1000
	}
	for _, tt := range tests {
		got, err := uniform(randomStream(tt.in...), tt.n)
		if err != nil || got != tt.want {
			t.Errorf("uniform(%v, %d) = %d, %v; want %d", tt.in, tt.n, got, err, tt.want)
		}
	}
	if _, err := uniform(randomStream(), 1024); err == nil {
		t.Error("uniform of an empty source: no error")
	}
}

// TestOneTimeOpens: with --one-time each open and each close is the
// one-time sequence of a fresh nonce; two opens in one period never use the
// same nonce, even when the random source repeats one.
func TestOneTimeOpens(t *testing.T) {
	o, err := parseArgs([]string{"proxy", "--one-time", "-d", "sha256", "--range", "1000-2000", "-o", "op", "-c", "cl", "h", "22"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	// Nonces 7, 7 again (used: drawn again), 300; closes 7, 1023.
	o.nonces.rand = randomStream(7, 7, 300, 7, 1023+1024*5)
	at := time.Unix(1762259696, 0)
	ps := o.params.PeriodStart(at)
	seq := func(secret string, nonce uint32) []uint16 {
		return knock.OneTimeSequence(knock.SHA256, secret, ps, nonce, knock.Range{Start: 1000, End: 2000})
	}
	var got [][]uint16
	for _, close := range []bool{false, false, true, true} {
		f := o.openSequence
		if close {
			f = o.closeSequence
		}
		s, err := f(at)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	want := [][]uint16{seq("op", 7), seq("op", 300), seq("cl", 7), seq("cl", 1023)}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("sequence %d = %v; want %v", i, got[i], want[i])
		}
	}
	if slices.Equal(got[0], got[1]) {
		t.Errorf("two opens knocked the same sequence %v", got[0])
	}
	// The C-compatible sequence is not one of them.
	cOpen, _ := o.params.Sequences(at)
	if slices.Equal(got[0][1:], cOpen[1:]) {
		t.Errorf("one-time open %v = the C sequence %v", got[0], cOpen)
	}
	// A new period: nonce 7 is fresh again.
	o.nonces.rand = randomStream(7)
	next := at.Add(time.Hour)
	if s, err := o.openSequence(next); err != nil || !slices.Equal(s, knock.OneTimeSequence(knock.SHA256, "op", o.params.PeriodStart(next), 7, knock.Range{Start: 1000, End: 2000})) {
		t.Errorf("open of the next period with nonce 7 = %v, %v", s, err)
	}
	// A source that repeats one nonce forever gives up.
	o.nonces.rand = bytes.NewReader(bytes.Repeat([]byte{0, 0, 0, 7}, 1000))
	if _, err := o.openSequence(at); err == nil || !strings.Contains(err.Error(), "no unused nonce") {
		t.Errorf("open from a source stuck at a used nonce: %v", err)
	}
}

// TestOneTimeShow: show --one-time prints the one-time sequences of fresh
// nonces, in nfqknockd -s's format; without it, the C sequences.
func TestOneTimeShow(t *testing.T) {
	args := []string{"show", "-o", "a", "-c", "b", "--at", "1762259696"}
	at := time.Unix(1762259696, 0)
	p := knock.Params{Digest: knock.MD5, Range: knock.FullRange, Period: knock.DefaultPeriod, OpenSecret: "a", CloseSecret: "b"}
	for _, oneTime := range []bool{false, true} {
		a := args
		want := knock.FormatSequences(p.Sequences(at))
		if oneTime {
			a = append(slices.Clone(args), "--one-time")
			want = knock.FormatSequences(p.OneTimeSequences(at, 12, 1000))
		}
		o, err := parseArgs(a, env(nil))
		if err != nil {
			t.Fatal(err)
		}
		o.nonces.rand = randomStream(12, 1000)
		if got, err := o.show(); err != nil || got != want {
			t.Errorf("%q: show = %q, %v; want %q", a, got, err, want)
		}
	}
}

// TestOneTimeFlag: --one-time, and one-time in the config, turn one-time
// sequences on; --one-time=false on the command line turns the config's off.
func TestOneTimeFlag(t *testing.T) {
	home := t.TempDir()
	cfg := home + "/config"
	if err := writeFile(cfg, "[ot]\none-time = yes\n"); err != nil {
		t.Fatal(err)
	}
	s := sys{env(map[string]string{"HOME": home}), "linux"}
	tests := []struct {
		args []string
		want bool
	}{
		{[]string{"open", "x"}, false},
		{[]string{"open", "--one-time", "x"}, true},
		{[]string{"open", "--config", cfg, "x"}, false},
		{[]string{"open", "--config", cfg, "ot"}, true},
		{[]string{"open", "--config", cfg, "--one-time=false", "ot"}, false},
	}
	for _, tt := range tests {
		o, err := parseArgsOn(append(slices.Clone(tt.args), "-o", "a"), s)
		if err != nil || o.oneTime != tt.want {
			t.Errorf("%q: one-time %v, %v; want %v", tt.args, o != nil && o.oneTime, err, tt.want)
		}
	}
}
