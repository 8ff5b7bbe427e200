package knock

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Range is the knock range of ports, Start..End inclusive, as the C
// daemon's -a and -b. The kernel queues SYNs to every port of it; the
// sequences themselves only use Start..End-1, because the formula takes the
// digest modulo End-Start.
type Range struct{ Start, End uint16 }

// FullRange is the default knock range of the C daemon.
var FullRange = Range{Start: 1, End: 65535}

// Errors of port parsing; the messages are meant to follow "flag value: ".
var (
	errPortNotNumber = errors.New("port must be a number 1..65535")
	errPortRange     = errors.New("port must be 1..65535")
	errRangeEqual    = errors.New("start and end must differ: the sequence formula divides by end-start")
)

// ParsePort parses one port number, 1..65535, in decimal.
func ParsePort(s string) (uint16, error) {
	if s == "" {
		return 0, errPortNotNumber
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errPortNotNumber
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 || n > 65535 {
		// Only a value too large for uint64 fails here: it is all digits.
		return 0, errPortRange
	}
	return uint16(n), nil
}

// ParseRange parses a knock range "START-END" (for example "1-65535"). Both
// ends are ports 1..65535 and START must be below END.
func ParseRange(s string) (Range, error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return Range{}, errors.New("range must be START-END, for example 1-65535")
	}
	start, err := ParsePort(a)
	if err != nil {
		return Range{}, fmt.Errorf("start: %w", err)
	}
	end, err := ParsePort(b)
	if err != nil {
		return Range{}, fmt.Errorf("end: %w", err)
	}
	r := Range{Start: start, End: end}
	if err := r.validate(); err != nil {
		return Range{}, err
	}
	return r, nil
}

func (r Range) validate() error {
	switch {
	case r.Start == 0 || r.End == 0:
		return errPortRange
	case r.Start == r.End:
		return errRangeEqual
	case r.Start > r.End:
		return fmt.Errorf("start %d is above end %d", r.Start, r.End)
	}
	return nil
}

// ParsePorts parses one port or a comma-separated list of ports
// ("22" or "22,443"), each 1..65535. The order is kept and duplicates are
// allowed.
func ParsePorts(s string) ([]uint16, error) {
	n := strings.Count(s, ",") + 1
	if n == 1 {
		p, err := ParsePort(s)
		if err != nil {
			return nil, err
		}
		return []uint16{p}, nil
	}
	ports := make([]uint16, 0, n)
	for elem := range strings.SplitSeq(s, ",") {
		p, err := ParsePort(elem)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", elem, err)
		}
		ports = append(ports, p)
	}
	return ports, nil
}

// Contains reports whether p lies in the range, Start..End inclusive.
func (r Range) Contains(p uint16) bool { return p >= r.Start && p <= r.End }

// String formats r as "START-END", the form ParseRange reads.
func (r Range) String() string {
	return strconv.Itoa(int(r.Start)) + "-" + strconv.Itoa(int(r.End))
}
