package knock

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const edgesFile = "../testdata/vectors/edges.tsv"

// TestEdgeVectors checks the vectors that testdata/vectors/gen.sh computed
// with openssl and awk around rotations and at the edges of the grace
// interval, through PeriodStart, Sequences and a Tracker.
func TestEdgeVectors(t *testing.T) {
	data, err := os.ReadFile(edgesFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) < 2 {
		t.Fatal("no vectors")
	}
	for i, line := range lines[1:] {
		ln := i + 2
		c := strings.Split(line, "\t")
		if len(c) != 19 {
			t.Fatalf("edges.tsv:%d: %d columns, want 19", ln, len(c))
		}
		num := func(s string) int64 { return mustInt(t, ln, s) }
		d, err := ParseDigest(c[2])
		if err != nil {
			t.Fatalf("edges.tsv:%d: %v", ln, err)
		}
		p := Params{
			Digest: d, Range: Range{uint16(num(c[3])), uint16(num(c[4]))},
			Period: time.Duration(num(c[5])) * time.Second, Grace: time.Duration(num(c[6])) * time.Second,
			OpenSecret: c[7], CloseSecret: c[8],
		}
		if c[1] != "UTC" {
			loc, err := time.LoadLocation(c[1])
			if err != nil {
				t.Fatalf("edges.tsv:%d: %v", ln, err)
			}
			p.LocalHour, p.Location = true, loc
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("edges.tsv:%d: %v", ln, err)
		}
		at := time.Unix(num(c[0]), 0)
		starts := [3]int64{num(c[10]), num(c[9]), num(c[11])} // prev, cur, next
		var seqs [6][]uint16                                  // prev open, prev close, cur..., next...
		for j := range seqs {
			seqs[j] = mustPorts(t, ln, c[12+j])
		}
		if got := p.PeriodStart(at); got != starts[1] {
			t.Errorf("edges.tsv:%d: PeriodStart = %d, want %d", ln, got, starts[1])
		}
		if got := p.PeriodStart(time.Unix(starts[1]-1, 0)); got != starts[0] {
			t.Errorf("edges.tsv:%d: previous PeriodStart = %d, want %d", ln, got, starts[0])
		}
		open, close := p.Sequences(at)
		if !slices.Equal(open, seqs[2]) || !slices.Equal(close, seqs[3]) {
			t.Errorf("edges.tsv:%d: Sequences =\n%swant\n%s", ln, FormatSequences(open, close), FormatSequences(seqs[2], seqs[3]))
		}
		for j, ps := range []int64{starts[0], starts[0], starts[1], starts[1], starts[2], starts[2]} {
			secret := p.OpenSecret
			if j%2 == 1 {
				secret = p.CloseSecret
			}
			if got := Sequence(d, secret, ps, p.Range); !slices.Equal(got, seqs[j]) {
				t.Errorf("edges.tsv:%d: Sequence(%d, %d) = %v, want %v", ln, j, ps, got, seqs[j])
			}
		}
		// Which sequences open (and close) at this instant.
		accept := map[string]int{"prev": 0, "next": 2}
		for period := range 3 {
			for kind, want := range []Action{Open, Close} {
				seq := seqs[2*period+kind]
				if period != 1 && (c[18] == "-" || accept[c[18]] != period) {
					want = None
				}
				tr := newTestTracker(t, p, 4)
				k := &knocker{tr: tr, src: netip.MustParseAddr("2001:db8::7")}
				got := last(k.knockAll(seq, at))
				if got != want && !(want == None && slices.Equal(seq, seqs[2+kind])) {
					t.Errorf("edges.tsv:%d (accept %s): sequence %d/%d gave %v, want %v", ln, c[18], period, kind, got, want)
				}
			}
		}
	}
}

// TestGenScript re-runs testdata/vectors/gen.sh, when openssl and GNU date
// are there, and compares its output with the committed edges.tsv.
func TestGenScript(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	if out, err := exec.Command("date", "-d", "@0", "+%s").Output(); err != nil || strings.TrimSpace(string(out)) != "0" {
		t.Skip("date is not GNU date")
	}
	if testing.Short() {
		t.Skip("slow: runs openssl a few hundred times")
	}
	cmd := exec.Command("sh", "gen.sh")
	cmd.Dir = "../testdata/vectors"
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gen.sh: %v\n%s", err, stderr.String())
	}
	want, err := os.ReadFile(edgesFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, want) {
		t.Fatalf("gen.sh output differs from %s (%d vs %d bytes); regenerate with: cd testdata/vectors && sh gen.sh > edges.tsv",
			edgesFile, len(out), len(want))
	}
	if n := bytes.Count(out, []byte("\n")); n < 10 {
		t.Fatalf("only %s lines", strconv.Itoa(n))
	}
}
