package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/nfqknockd/nfqknockd/knock"
)

// The flag values. Each parses and checks its own text in Set, so that
// pflag reports the reason; Raw keeps the text for later checks that
// involve several flags.

// PortValue is a TCP port 1..65535 (knock.ParsePort).
type PortValue struct {
	P   *uint16 // where the port goes
	Raw string  // the text of the last Set that succeeded
}

// Set parses s into *P.
func (v *PortValue) Set(s string) error {
	p, err := knock.ParsePort(s)
	if err != nil {
		return err
	}
	*v.P, v.Raw = p, s
	return nil
}

// String returns the port, the default in the help.
func (v *PortValue) String() string { return strconv.Itoa(int(*v.P)) }

// Type returns "port".
func (v *PortValue) Type() string { return "port" }

// RangeValue is a knock range START-END (knock.ParseRange).
type RangeValue struct {
	R   *knock.Range // where the range goes
	Raw string       // the text of the last Set that succeeded
}

// Set parses s into *R.
func (v *RangeValue) Set(s string) error {
	r, err := knock.ParseRange(s)
	if err != nil {
		return err
	}
	*v.R, v.Raw = r, s
	return nil
}

// String returns the range, the default in the help.
func (v *RangeValue) String() string { return v.R.String() }

// Type returns "range".
func (v *RangeValue) Type() string { return "range" }

// DigestValue is the digest of the sequences, any case (knock.ParseDigest).
type DigestValue struct {
	D *knock.Digest // where the digest goes
}

// Set parses s into *D.
func (v *DigestValue) Set(s string) error {
	d, err := knock.ParseDigest(s)
	if err != nil {
		return errors.New("unknown digest: want md5, sha256, sha384 or sha512")
	}
	*v.D = d
	return nil
}

// String returns the digest's name, the default in the help.
func (v *DigestValue) String() string { return v.D.String() }

// Type returns "digest".
func (v *DigestValue) Type() string { return "digest" }

// SecretValue is a secret: never empty, and never shown (String is empty,
// so that the help prints no default).
type SecretValue struct {
	S *string // where the secret goes
}

// Set stores s in *S, unless it is empty.
func (v *SecretValue) Set(s string) error {
	if s == "" {
		return errors.New("secret must not be empty")
	}
	*v.S = s
	return nil
}

// String returns "": the secret never shows.
func (v *SecretValue) String() string { return "" }

// Type returns "secret".
func (v *SecretValue) Type() string { return "secret" }

// DurationValue is a Go duration in [Min, Max] (Max 0: no upper bound);
// whole seconds when Whole is set.
type DurationValue struct {
	D        *time.Duration // where the duration goes
	Min, Max time.Duration
	Whole    bool
	// Hint ends the error for text that is not a duration: "not a
	// duration: use for example HINT", such as "90s, 10m or 1h".
	Hint string
	// Short prints durations (the default in the help, the bounds in the
	// errors) as ShortDuration does, "1h", instead of "1h0m0s".
	Short bool
	Raw   string // the text of the last Set that succeeded
}

// Set parses s into *D and checks the bounds.
func (v *DurationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("not a duration: use for example " + v.Hint)
	}
	if d < v.Min || (v.Max > 0 && d > v.Max) {
		if v.Max > 0 {
			return fmt.Errorf("must be %s..%s", v.format(v.Min), v.format(v.Max))
		}
		return fmt.Errorf("must be at least %s", v.format(v.Min))
	}
	if v.Whole && d%time.Second != 0 {
		return errors.New("must be a whole number of seconds")
	}
	*v.D, v.Raw = d, s
	return nil
}

// String returns the duration, the default in the help.
func (v *DurationValue) String() string { return v.format(*v.D) }

// Type returns "duration".
func (v *DurationValue) Type() string { return "duration" }

func (v *DurationValue) format(d time.Duration) string {
	if v.Short {
		return ShortDuration(d)
	}
	return d.String()
}

// ShortDuration formats d without zero minutes and seconds: "1h", not
// "1h0m0s".
func ShortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// AtValue is an instant: RFC 3339 or Unix seconds.
type AtValue struct {
	T   *time.Time // where the instant goes
	Raw string     // the text of the last Set that succeeded
}

// Set parses s into *T.
func (v *AtValue) Set(s string) error {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		*v.T, v.Raw = time.Unix(n, 0), s
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return errors.New("not a time: use RFC 3339 (2025-11-04T12:34:56Z) or Unix seconds")
	}
	*v.T, v.Raw = t, s
	return nil
}

// String returns "": the default, now, is in the usage text.
func (v *AtValue) String() string { return "" }

// Type returns "time".
func (v *AtValue) Type() string { return "time" }

// SwitchValue is a flag without a value (BoolFlag). pflag's own bool flags
// print as "--show[=true|false]" in the help; this one as "--show".
type SwitchValue struct {
	B *bool // where the switch goes
}

// Set parses an explicit --flag=true or --flag=false.
func (v *SwitchValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("must be true or false, or no value")
	}
	*v.B = b
	return nil
}

// String returns "true" or "false".
func (v *SwitchValue) String() string { return strconv.FormatBool(*v.B) }

// Type returns "boolfunc": no value name in the help.
func (v *SwitchValue) Type() string { return "boolfunc" }

// IsBoolFlag returns true: the flag takes no value.
func (v *SwitchValue) IsBoolFlag() bool { return true }

// BoolFlag defines a switch on fs: --name (or -short) sets *p.
func BoolFlag(fs *pflag.FlagSet, p *bool, name, short, usage string) {
	fs.VarPF(&SwitchValue{B: p}, name, short, usage).NoOptDefVal = "true"
}
