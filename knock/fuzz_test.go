package knock

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// FuzzTracker decodes arbitrary bytes into knocks from many sources at many
// times (see fuzzStream) against a tracker with at most 1..8 sources, 1..3
// users, in C or one-time mode, and checks it against the plain model: the
// same verdicts, never more sources than the limit, the same sources in the
// end. No input may panic.
func FuzzTracker(f *testing.F) {
	f.Add([]byte{0, 0, 0})
	f.Add([]byte{0, 0xff, 0, 0, 0x40, 0, 0, 0x40, 0, 0, 0x40, 0, 0, 0x40, 0, 0, 0x40, 0, 0, 0x40, 0, 0, 0x40, 0, 0, 0x40, 0})
	f.Add([]byte{4, 0xe5, 0, 1, 0x41, 0, 1, 0x41, 0, 1, 0x41, 0, 1, 0x41, 0, 1, 0x41, 0, 1, 0x41, 0, 1, 0x41, 0, 1, 0x41, 0, 0x11, 0x41, 0})
	f.Add([]byte{0x10, 0x3f, 0, 0xcf, 0x10, 7, 0xef, 0x20, 8, 0xaf, 0x1f, 9, 0x6f, 0xc1, 0x23, 3, 0xe2, 0x33, 4, 0x0e, 0x05, 6})
	for _, cfg := range []byte{0, 2, 4, 7, 0xe} {
		stream := []byte{0x80, 0xe3, cfg}
		for i := range 300 {
			stream = append(stream, byte(i%5)|byte(i%11/10)<<5, 0x40+byte(i%3), byte(i))
			if i%37 == 0 {
				stream = append(stream, byte(i%5), 0x20+byte(i%32), byte(i*67))
			}
		}
		f.Add(stream)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 3*3000 {
			data = data[:3*3000]
		}
		fuzzStream(t, data)
	})
}

// FuzzParseRange: no input panics; an accepted range is in bounds and reads
// back the same from its String.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"1-65535", "1000-2000", "0-1", "5-5", "2-1", "1-65536", "a-b", "-", "", "01-02", "1--2", "99999999999999999999-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRange(s)
		if err != nil {
			if r != (Range{}) {
				t.Fatalf("ParseRange(%q) = %v with error %v", s, r, err)
			}
			return
		}
		if r.Start == 0 || r.Start >= r.End {
			t.Fatalf("ParseRange(%q) = %v: out of bounds", s, r)
		}
		if strings.Trim(s, "0123456789-") != "" || strings.Count(s, "-") != 1 {
			t.Fatalf("ParseRange(%q) accepted a non-range", s)
		}
		r2, err := ParseRange(r.String())
		if err != nil || r2 != r {
			t.Fatalf("round trip of %q: %v -> %q -> %v, %v", s, r, r.String(), r2, err)
		}
		if len(Sequence(MD5, "x", 0, r)) != 8 {
			t.Fatalf("no sequence for %v", r)
		}
	})
}

// FuzzParsePorts: no input panics; accepted ports are 1..65535, one per
// comma-separated element, and read back the same when joined again.
func FuzzParsePorts(f *testing.F) {
	for _, s := range []string{"22", "22,443", "0", "65535", "65536", "22,,443", ",", "", "ssh", "1,2,3,4,5,6,7,8,9,10", " 22", "0022"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ports, err := ParsePorts(s)
		if err != nil {
			if ports != nil {
				t.Fatalf("ParsePorts(%q) = %v with error %v", s, ports, err)
			}
			return
		}
		if len(ports) != strings.Count(s, ",")+1 {
			t.Fatalf("ParsePorts(%q) = %v: %d elements", s, ports, len(ports))
		}
		elems := make([]string, len(ports))
		for i, p := range ports {
			if p == 0 {
				t.Fatalf("ParsePorts(%q) = %v: port 0", s, ports)
			}
			elems[i] = strconv.Itoa(int(p))
		}
		again, err := ParsePorts(strings.Join(elems, ","))
		if err != nil || !slices.Equal(again, ports) {
			t.Fatalf("round trip of %q: %v -> %v, %v", s, ports, again, err)
		}
	})
}
