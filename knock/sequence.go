package knock

import (
	"crypto/sha512"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Defaults of the C daemon (secrets) and of nfqknockd (period, grace).
const (
	// DefaultOpenSecret is the C daemon's built-in open secret. It is public:
	// anyone who knows it can open a daemon that still uses it.
	DefaultOpenSecret = "helloworld123"
	// DefaultCloseSecret is the C daemon's built-in close secret.
	DefaultCloseSecret = "goodbyeworld123"
	// DefaultPeriod is how long a sequence stays current: one hour, as in C.
	DefaultPeriod = time.Hour
	// DefaultGrace is how long around a rotation the neighbouring period's
	// sequences are still (or already) accepted.
	DefaultGrace = time.Minute
)

// Params are the inputs of the sequences: everything a daemon and its
// clients must agree on.
type Params struct {
	Digest      Digest
	Range       Range
	OpenSecret  string
	CloseSecret string
	// Period is the rotation period, a whole number of seconds (default 1h).
	// Periods start at multiples of Period since the Unix epoch (UTC).
	Period time.Duration
	// Grace is how long after a rotation the previous period's sequences
	// stay valid, and how long before it the next period's already are
	// (default 1m). It must be below Period/2.
	Grace time.Duration
	// LocalHour selects the C daemon's rule: a period is the current hour
	// of the local time in Location (time.Local when nil). It equals the
	// UTC rule in every whole-hour time zone; it differs in half-hour zones
	// such as Asia/Kolkata. It needs Period == 1h.
	LocalHour bool
	Location  *time.Location
}

// DefaultParams returns the parameters of a C daemon started without flags:
// md5, range 1-65535, the public default secrets, a one-hour period, and a
// grace of one minute.
func DefaultParams() Params {
	return Params{
		Digest:      MD5,
		Range:       FullRange,
		OpenSecret:  DefaultOpenSecret,
		CloseSecret: DefaultCloseSecret,
		Period:      DefaultPeriod,
		Grace:       DefaultGrace,
	}
}

// Validate checks that p can produce sequences.
func (p Params) Validate() error {
	return p.validate(true)
}

// validateSequences checks everything but the secrets, which a Tracker's
// users replace.
func (p Params) validateSequences() error {
	return p.validate(false)
}

func (p Params) validate(secrets bool) error {
	if !p.Digest.valid() {
		return fmt.Errorf("digest %v: unknown", p.Digest)
	}
	if err := p.Range.validate(); err != nil {
		return fmt.Errorf("range %v: %w", p.Range, err)
	}
	if secrets && p.OpenSecret == "" {
		return errors.New("open secret: must not be empty")
	}
	if secrets && p.CloseSecret == "" {
		return errors.New("close secret: must not be empty")
	}
	if p.Period < time.Second || p.Period%time.Second != 0 {
		return fmt.Errorf("period %v: must be a positive whole number of seconds", p.Period)
	}
	if p.Grace < 0 || p.Grace >= p.Period/2 {
		return fmt.Errorf("grace %v: must be at least 0 and below half the period (%v)", p.Grace, p.Period/2)
	}
	if p.LocalHour && p.Period != time.Hour {
		return fmt.Errorf("period %v: the local-hour rule needs a period of 1h", p.Period)
	}
	return nil
}

// periodSeconds returns Period in seconds, falling back to the default for
// a Period that Validate would reject, so that no method divides by zero.
func (p Params) periodSeconds() int64 {
	s := int64(p.Period / time.Second)
	if s <= 0 {
		s = int64(DefaultPeriod / time.Second)
	}
	return s
}

// PeriodStart returns the start of the period holding t, in Unix seconds:
// the number whose decimal form is hashed with the secret.
//
// By default it is floor(t / Period) * Period. With LocalHour it is the start
// of the current hour of the local time in Location (the C daemon's
// localtime_r + mktime with minutes and seconds set to 0): t minus the
// minutes and seconds of the local clock, which is the same instant wherever
// the UTC offset is a whole number of hours.
func (p Params) PeriodStart(t time.Time) int64 {
	label, _, _ := p.window(t)
	return label
}

// window returns the period start (label) of the period holding t and the
// interval [from, until) of Unix seconds during which that period is
// current. The two differ from (label, label+Period) only with LocalHour
// across a change of UTC offset by a fraction of an hour.
func (p Params) window(t time.Time) (label, from, until int64) {
	s := t.Unix()
	if !p.LocalHour {
		ps := p.periodSeconds()
		label = floorDiv(s, ps) * ps
		return label, label, label + ps
	}
	loc := p.Location
	if loc == nil {
		loc = time.Local
	}
	lt := t.In(loc)
	_, off := lt.Zone()
	label = s - floorMod(s+int64(off), 3600)
	from, until = label, label+3600
	zs, ze := lt.ZoneBounds()
	if !zs.IsZero() && zs.Unix() > from {
		from = zs.Unix()
	}
	if !ze.IsZero() && ze.Unix() < until {
		until = ze.Unix()
	}
	return label, from, until
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

// Sequence returns the port sequence of secret for the period starting at
// periodStart: with D = digest(secret || decimal(periodStart)), port i is
// (256*D[2i] + D[2i+1]) mod (End-Start) + Start, for i < len(D)/2. It
// returns nil when d is unknown or r is empty (End <= Start).
func Sequence(d Digest, secret string, periodStart int64, r Range) []uint16 {
	if !d.valid() || r.End <= r.Start {
		return nil
	}
	buf := make([]byte, 0, len(secret)+20)
	out := make([]uint16, d.SeqLen())
	sequenceInto(out, &buf, d, secret, periodStart, r)
	return out
}

// sequenceInto writes the sequence into out (len d.SeqLen()), using *buf as
// scratch space. It allocates only when *buf is too small.
func sequenceInto(out []uint16, buf *[]byte, d Digest, secret string, periodStart int64, r Range) {
	b := append((*buf)[:0], secret...)
	b = strconv.AppendInt(b, periodStart, 10)
	*buf = b
	portsInto(out, d, b, r)
}

// portsInto writes the ports of digest(data) into out: port i is
// (256*D[2i] + D[2i+1]) mod (End-Start) + Start.
func portsInto(out []uint16, d Digest, data []byte, r Range) {
	var sum [sha512.Size]byte
	n := d.sum(&sum, data)
	span := int(r.End) - int(r.Start)
	for i := range n / 2 {
		v := int(sum[2*i])<<8 | int(sum[2*i+1])
		out[i] = uint16(v%span + int(r.Start))
	}
}

// Sequences returns the open and close sequences of the period holding t.
func (p Params) Sequences(t time.Time) (open, close []uint16) {
	ps := p.PeriodStart(t)
	return Sequence(p.Digest, p.OpenSecret, ps, p.Range), Sequence(p.Digest, p.CloseSecret, ps, p.Range)
}

// FormatSequences formats the two sequences as the C daemon's -s does:
// "OPEN: p1 p2 ...\nCLOSE: p1 p2 ...\n".
func FormatSequences(open, close []uint16) string {
	var b strings.Builder
	b.Grow(16 + 6*(len(open)+len(close)))
	b.WriteString("OPEN:")
	for _, p := range open {
		b.WriteByte(' ')
		b.WriteString(strconv.Itoa(int(p)))
	}
	b.WriteString("\nCLOSE:")
	for _, p := range close {
		b.WriteByte(' ')
		b.WriteString(strconv.Itoa(int(p)))
	}
	b.WriteByte('\n')
	return b.String()
}
