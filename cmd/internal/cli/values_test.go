package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/nfqknockd/nfqknockd/knock"
)

// setCase is one text given to a flag value's Set: want is what String
// returns after it, or the error.
type setCase struct {
	in, want, err string
}

// runSet sets each case on a fresh value from newValue and checks the
// result, the raw text where the value keeps it, and the type.
func runSet(t *testing.T, typ string, newValue func() (pflag.Value, *string), cases []setCase) {
	t.Helper()
	for _, c := range cases {
		v, raw := newValue()
		if got := v.Type(); got != typ {
			t.Errorf("Type() = %q, want %q", got, typ)
		}
		err := v.Set(c.in)
		switch {
		case c.err != "" && (err == nil || err.Error() != c.err):
			t.Errorf("%s Set(%q) = %v, want error %q", typ, c.in, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("%s Set(%q): %v", typ, c.in, err)
		case c.err == "" && v.String() != c.want:
			t.Errorf("%s Set(%q): String() = %q, want %q", typ, c.in, v.String(), c.want)
		case c.err == "" && raw != nil && *raw != c.in:
			t.Errorf("%s Set(%q): raw %q", typ, c.in, *raw)
		case c.err != "" && raw != nil && *raw != "":
			t.Errorf("%s Set(%q) failed but kept raw %q", typ, c.in, *raw)
		}
	}
}

func TestPortValue(t *testing.T) {
	runSet(t, "port", func() (pflag.Value, *string) {
		v := &PortValue{P: new(uint16)}
		return v, &v.Raw
	}, []setCase{
		{"1", "1", ""},
		{"65535", "65535", ""},
		{"022", "22", ""},
		{"0", "", "port must be 1..65535"},
		{"65536", "", "port must be 1..65535"},
		{"ssh", "", "port must be a number 1..65535"},
		{"", "", "port must be a number 1..65535"},
	})
}

func TestRangeValue(t *testing.T) {
	runSet(t, "range", func() (pflag.Value, *string) {
		v := &RangeValue{R: new(knock.Range)}
		return v, &v.Raw
	}, []setCase{
		{"1-65535", "1-65535", ""},
		{"1000-2000", "1000-2000", ""},
		{"0-100", "", "start: port must be 1..65535"},
		{"1000", "", "range must be START-END, for example 1-65535"},
		{"5-5", "", "start and end must differ: the sequence formula divides by end-start"},
	})
}

func TestDigestValue(t *testing.T) {
	const bad = "unknown digest: want md5, sha256, sha384 or sha512"
	runSet(t, "digest", func() (pflag.Value, *string) { return &DigestValue{D: new(knock.Digest)}, nil }, []setCase{
		{"md5", "md5", ""},
		{"SHA256", "sha256", ""},
		{"sha384", "sha384", ""},
		{"Sha512", "sha512", ""},
		{"sha1", "", bad},
		{"", "", bad},
	})
}

func TestSecretValue(t *testing.T) {
	var s string
	runSet(t, "secret", func() (pflag.Value, *string) { s = ""; return &SecretValue{S: &s}, nil }, []setCase{
		{"x", "", ""},
		{" spaced  secret ", "", ""},
		{"", "", "secret must not be empty"},
	})
	v := &SecretValue{S: &s}
	if err := v.Set("hidden"); err != nil || s != "hidden" || v.String() != "" {
		t.Errorf("Set(hidden): %v, stored %q, String %q", err, s, v.String())
	}
}

func TestDurationValue(t *testing.T) {
	daemon := func(min time.Duration, whole bool) func() (pflag.Value, *string) {
		return func() (pflag.Value, *string) {
			v := &DurationValue{D: new(time.Duration), Min: min, Whole: whole, Hint: "90s, 10m or 1h"}
			return v, &v.Raw
		}
	}
	client := func(min, max time.Duration) func() (pflag.Value, *string) {
		return func() (pflag.Value, *string) {
			v := &DurationValue{D: new(time.Duration), Min: min, Max: max, Hint: "50ms, 10s or 1h", Short: true}
			return v, &v.Raw
		}
	}
	runSet(t, "duration", daemon(time.Second, true), []setCase{
		{"1h", "1h0m0s", ""},
		{"10s", "10s", ""},
		{"0s", "", "must be at least 1s"},
		{"1500ms", "", "must be a whole number of seconds"},
		{"hourly", "", "not a duration: use for example 90s, 10m or 1h"},
	})
	runSet(t, "duration", daemon(0, false), []setCase{
		{"0", "0s", ""},
		{"1500ms", "1.5s", ""},
		{"-1s", "", "must be at least 0s"},
	})
	runSet(t, "duration", daemon(time.Minute, false), []setCase{
		{"59s", "", "must be at least 1m0s"},
	})
	runSet(t, "duration", client(0, 5*time.Second), []setCase{
		{"5s", "5s", ""},
		{"1h0m0s", "", "must be 0s..5s"},
		{"-1ms", "", "must be 0s..5s"},
		{"fast", "", "not a duration: use for example 50ms, 10s or 1h"},
	})
	runSet(t, "duration", client(time.Millisecond, time.Hour), []setCase{
		{"60m", "1h", ""},
		{"90m", "", "must be 1ms..1h"},
	})
	runSet(t, "duration", client(time.Minute, 0), []setCase{
		{"1h30m", "1h30m", ""},
		{"59s", "", "must be at least 1m"},
	})
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", time.Millisecond: "1ms", time.Second: "1s", time.Minute: "1m", time.Hour: "1h",
		90 * time.Minute: "1h30m", time.Hour + time.Second: "1h0m1s", 61 * time.Second: "1m1s", 1500 * time.Millisecond: "1.5s",
	} {
		if got := ShortDuration(d); got != want {
			t.Errorf("ShortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestAtValue(t *testing.T) {
	const bad = "not a time: use RFC 3339 (2025-11-04T12:34:56Z) or Unix seconds"
	var at time.Time
	cases := []struct {
		in   string
		want time.Time
		err  string
	}{
		{"1762259696", time.Unix(1762259696, 0), ""},
		{"-3600", time.Unix(-3600, 0), ""},
		{"2025-11-04T15:34:56+03:00", time.Unix(1762259696, 0), ""},
		{"2025-11-04T12:34:56.5Z", time.Unix(1762259696, 5e8), ""},
		{"yesterday", time.Time{}, bad},
		{"2025-11-04 12:34:56", time.Time{}, bad},
		{"", time.Time{}, bad},
	}
	for _, c := range cases {
		at = time.Time{}
		v := &AtValue{T: &at}
		err := v.Set(c.in)
		if c.err != "" {
			if err == nil || err.Error() != c.err || v.Raw != "" {
				t.Errorf("Set(%q) = %v, raw %q; want error %q", c.in, err, v.Raw, c.err)
			}
			continue
		}
		if err != nil || !at.Equal(c.want) || v.Raw != c.in || v.String() != "" || v.Type() != "time" {
			t.Errorf("Set(%q) = %v: %v, raw %q; want %v", c.in, err, at, v.Raw, c.want)
		}
	}
}

func TestBoolFlag(t *testing.T) {
	tests := []struct {
		args []string
		want bool
		err  string
	}{
		{nil, false, ""},
		{[]string{"-s"}, true, ""},
		{[]string{"--show"}, true, ""},
		{[]string{"--show=false"}, false, ""},
		{[]string{"-s", "--show=0"}, false, ""},
		{[]string{"--show=maybe"}, false, "--show maybe: must be true or false, or no value"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			fs.Usage = func() {}
			var b bool
			BoolFlag(fs, &b, "show", "s", "print and exit")
			err := fs.Parse(tt.args)
			if tt.err != "" {
				if err == nil || daemonStyle.Translate(err).Error() != tt.err {
					t.Fatalf("Parse = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || b != tt.want {
				t.Fatalf("Parse = %v, %v; want %v", err, b, tt.want)
			}
		})
	}
	// No value name and no [=true|false] in the help.
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	BoolFlag(fs, new(bool), "show", "s", "print and exit")
	if got, want := fs.FlagUsagesWrapped(0), "  -s, --show   print and exit\n"; got != want {
		t.Errorf("help %q, want %q", got, want)
	}
}
