package knock

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the vectors name IANA zones; do not depend on the host's database
)

// cVector is one row of testdata/c_vectors.tsv, produced by running the C
// nfqknockd -s at a given instant in a given time zone.
type cVector struct {
	line        int
	unix        int64
	tz          string
	digest      string
	start, end  uint16
	open, close string // secrets
	openPorts   []uint16
	closePorts  []uint16
}

// readCVectors reads the vectors, splitting on tabs only: secrets may hold
// spaces, quotes and backslashes.
func readCVectors(t *testing.T) []cVector {
	t.Helper()
	f, err := os.Open("../testdata/c_vectors.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []cVector
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		if line == 1 || sc.Text() == "" {
			continue // header
		}
		col := strings.Split(sc.Text(), "\t")
		if len(col) != 9 {
			t.Fatalf("c_vectors.tsv:%d: %d columns, want 9", line, len(col))
		}
		v := cVector{line: line, tz: col[1], digest: col[2], open: col[5], close: col[6]}
		v.unix = mustInt(t, line, col[0])
		v.start = uint16(mustInt(t, line, col[3]))
		v.end = uint16(mustInt(t, line, col[4]))
		v.openPorts = mustPorts(t, line, col[7])
		v.closePorts = mustPorts(t, line, col[8])
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no vectors")
	}
	return out
}

func mustInt(t *testing.T, line int, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("line %d: %v", line, err)
	}
	return n
}

func mustPorts(t *testing.T, line int, s string) []uint16 {
	t.Helper()
	var out []uint16
	for f := range strings.FieldsSeq(s) {
		out = append(out, uint16(mustInt(t, line, f)))
	}
	return out
}

func equalPorts(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestCVectors checks every row of the C daemon's vectors through the knock
// API, with the UTC rule and with the C rule (LocalHour) in the row's zone:
// all the zones of the file are whole-hour zones, where both agree.
func TestCVectors(t *testing.T) {
	for _, v := range readCVectors(t) {
		d, err := ParseDigest(v.digest)
		if err != nil {
			t.Fatalf("line %d: %v", v.line, err)
		}
		loc, err := time.LoadLocation(v.tz)
		if err != nil {
			t.Fatalf("line %d: %v", v.line, err)
		}
		p := Params{
			Digest: d, Range: Range{v.start, v.end},
			OpenSecret: v.open, CloseSecret: v.close,
			Period: time.Hour, Grace: time.Minute,
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("line %d: %v", v.line, err)
		}
		at := time.Unix(v.unix, 0)
		for _, local := range []bool{false, true} {
			p.LocalHour, p.Location = local, loc
			open, close := p.Sequences(at)
			if !equalPorts(open, v.openPorts) || !equalPorts(close, v.closePorts) {
				t.Errorf("line %d (%s %s local=%v): got\n%swant\n%s", v.line, v.tz, v.digest, local,
					FormatSequences(open, close), FormatSequences(v.openPorts, v.closePorts))
			}
		}
		// The same through the exported Sequence with an explicit period start.
		ps := v.unix - v.unix%3600
		if got := Sequence(d, v.open, ps, Range{v.start, v.end}); !equalPorts(got, v.openPorts) {
			t.Errorf("line %d: Sequence(open) = %v, want %v", v.line, got, v.openPorts)
		}
		if n := d.SeqLen(); len(v.openPorts) != n || len(v.closePorts) != n {
			t.Errorf("line %d: %d/%d ports, SeqLen %d", v.line, len(v.openPorts), len(v.closePorts), n)
		}
	}
}
