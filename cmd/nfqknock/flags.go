package main

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/pflag"

	"github.com/nfqknockd/nfqknockd/knock"
)

// Defaults and limits of the flags that are not the daemon's.
const (
	defaultGap            = 10 * time.Millisecond
	defaultKnockTimeout   = 50 * time.Millisecond
	defaultConnectTimeout = 5 * time.Second
	// maxKnockTimeout keeps a knock to one SYN: Linux retransmits an
	// unanswered SYN after 1s (TCP_TIMEOUT_INIT).
	maxKnockTimeout = 999 * time.Millisecond
	// maxGap stays well below the daemon's default --timeout of 10s between
	// two knocks of one sequence.
	maxGap            = 5 * time.Second
	maxConnectTimeout = time.Hour
)

var (
	errHelp    = errors.New("help requested")
	errVersion = errors.New("version requested")
)

// options is the parsed command line.
type options struct {
	cmd    string // show, open, close, proxy
	host   string
	port   uint16 // proxy only
	family string // "ip", "ip4" or "ip6"
	params knock.Params
	at     time.Time // show only; zero = now

	gap, knockTimeout, connectTimeout time.Duration
}

// flagValues are the values of the flags, as parsed by their pflag.Value.
type flagValues struct {
	start, end              portValue
	rng                     rangeValue
	period, at              string // raw text, for error messages
	localHour               bool
	openSecret, closeSecret secretValue
	secretFile              string
	ipv4, ipv6              bool
	help, version           bool
}

// newFlagSet defines the flags of nfqknock. The sequence flags have the
// names, short names, meanings and defaults of the daemon's.
func newFlagSet(o *options, v *flagValues) *pflag.FlagSet {
	fs := pflag.NewFlagSet("nfqknock", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.Usage = func() {}
	o.params = knock.Params{Digest: knock.MD5, Range: knock.FullRange, Period: knock.DefaultPeriod}
	v.start = portValue{p: &o.params.Range.Start}
	v.end = portValue{p: &o.params.Range.End}
	v.rng = rangeValue{r: &o.params.Range}
	o.gap, o.knockTimeout, o.connectTimeout = defaultGap, defaultKnockTimeout, defaultConnectTimeout

	fs.VarP(&digestValue{d: &o.params.Digest}, "digest", "d", "`DIGEST` of the sequences: md5, sha256, sha384 or sha512 (as the daemon's -d)")
	fs.VarP(&v.start, "start", "a", "first `PORT` of the knock range (as the daemon's -a)")
	fs.VarP(&v.end, "end", "b", "last `PORT` of the knock range (as the daemon's -b)")
	fs.Var(&v.rng, "range", "knock range `START-END`, instead of -a and -b")
	fs.Var(&durationValue{d: &o.params.Period, min: time.Second, whole: true, raw: &v.period}, "period",
		"the sequences change every `DURATION` (as the daemon's --period)")
	boolFlag(fs, &v.localHour, "local-hour", "", "periods are hours of the local time zone, as in the C daemon (as the daemon's --local-hour)")
	fs.Var(&atValue{t: &o.at, raw: &v.at}, "at", "show: the sequences at `TIME` (RFC 3339 or Unix seconds) instead of now")
	fs.VarP(&v.openSecret, "open-secret", "o", "open `SECRET`; other users can read it in the process list: prefer "+envOpenSecret+" or --secret-file")
	fs.VarP(&v.closeSecret, "close-secret", "c", "close `SECRET` (same caveat; "+envCloseSecret+")")
	fs.StringVar(&v.secretFile, "secret-file", "", "read the secrets from `FILE`: lines open=SECRET and close=SECRET, # comments; no access for group and others (chmod 600)")
	boolFlag(fs, &v.ipv4, "ipv4", "4", "use IPv4 only")
	boolFlag(fs, &v.ipv6, "ipv6", "6", "use IPv6 only")
	fs.Var(&durationValue{d: &o.gap, max: maxGap}, "gap", "pause of `DURATION` between two knocks")
	fs.Var(&durationValue{d: &o.knockTimeout, min: time.Millisecond, max: maxKnockTimeout}, "knock-timeout",
		"each knock, a TCP connect attempt, is abandoned after `DURATION`; below 1s, so that the kernel never retransmits its SYN")
	fs.Var(&durationValue{d: &o.connectTimeout, min: time.Millisecond, max: maxConnectTimeout}, "connect-timeout",
		"proxy: keep trying to connect for `DURATION` after knocking open")
	boolFlag(fs, &v.help, "help", "h", "print this help and exit")
	boolFlag(fs, &v.version, "version", "", "print the version and exit")
	return fs
}

// usage returns the text of --help.
func usage() string {
	var b strings.Builder
	b.WriteString(`Usage:
  nfqknock [flags] show               print the current OPEN: and CLOSE: sequences, as nfqknockd -s
  nfqknock [flags] open HOST          knock the open sequence at HOST
  nfqknock [flags] close HOST         knock the close sequence at HOST
  nfqknock [flags] proxy HOST PORT    knock open, carry stdin and stdout to HOST:PORT, knock close
                                      (ssh: ProxyCommand nfqknock proxy --secret-file FILE %h %p)

The digest, range and period flags must be the daemon's. There is no default
secret: show and proxy need both, open the open one, close the close one.
A flag wins over the environment (` + envOpenSecret + `, ` + envCloseSecret + `),
the environment over --secret-file.

Exit status: 0 done, 1 network failure, 2 bad input.

Flags:
`)
	var (
		o options
		v flagValues
	)
	fs := newFlagSet(&o, &v)
	fs.VisitAll(func(f *pflag.Flag) {
		name, text := pflag.UnquoteUsage(f)
		left := "      --" + f.Name
		if f.Shorthand != "" {
			left = "  -" + f.Shorthand + ", --" + f.Name
		}
		if f.NoOptDefVal == "" {
			left += " " + name
			if def := f.Value.String(); def != "" {
				text += " (default " + def + ")"
			}
		}
		fmt.Fprintf(&b, "%-34s %s\n", left, text)
	})
	return b.String()
}

// version returns the module version of the binary, "(devel)" in a checkout.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// parseArgs parses the command line. getenv reads the secret variables.
// Bad input is a *usageError; --help and --version are errHelp and errVersion.
func parseArgs(args []string, getenv func(string) string) (*options, error) {
	o := &options{family: "ip"}
	var v flagValues
	fs := newFlagSet(o, &v)
	if err := fs.Parse(args); err != nil {
		return nil, translate(err)
	}
	if v.help {
		return nil, errHelp
	}
	if v.version {
		return nil, errVersion
	}
	if err := o.parseCommand(fs.Args()); err != nil {
		return nil, err
	}
	if err := o.check(fs, &v); err != nil {
		return nil, err
	}
	s, err := loadSecrets(v.openSecret.given(), v.closeSecret.given(), v.secretFile, fs.Changed("secret-file"), getenv)
	if err != nil {
		return nil, err
	}
	if err := s.require(o.cmd); err != nil {
		return nil, err
	}
	o.params.OpenSecret, o.params.CloseSecret = s.open, s.close
	return o, nil
}

// parseCommand reads the command and its arguments.
func (o *options) parseCommand(args []string) error {
	const commands = "want show, open HOST, close HOST or proxy HOST PORT (see --help)"
	if len(args) == 0 {
		return &usageError{msg: "no command: " + commands}
	}
	o.cmd = args[0]
	n, ok := map[string]int{"show": 0, "open": 1, "close": 1, "proxy": 2}[o.cmd]
	if !ok {
		return &usageError{msg: shellQuote(o.cmd) + ": unknown command: " + commands}
	}
	if got := len(args) - 1; got != n {
		form := map[string]string{"show": "show", "open": "open HOST", "close": "close HOST", "proxy": "proxy HOST PORT"}[o.cmd]
		return &usageError{msg: fmt.Sprintf("%s: %d arguments: want %s", o.cmd, got, form)}
	}
	if n >= 1 {
		o.host = args[1]
		if o.host == "" {
			return &usageError{msg: "HOST '': must not be empty"}
		}
	}
	if n == 2 {
		p, err := knock.ParsePort(args[2])
		if err != nil {
			return &usageError{msg: "PORT " + shellQuote(args[2]) + ": " + err.Error()}
		}
		o.port = p
	}
	return nil
}

// check validates what involves several flags, as the daemon does.
func (o *options) check(fs *pflag.FlagSet, v *flagValues) error {
	r := o.params.Range
	switch {
	case fs.Changed("range") && (fs.Changed("start") || fs.Changed("end")):
		return badFlag("range", v.rng.raw, "conflicts with --start (-a) and --end (-b): give either")
	case fs.Changed("range"):
		// ParseRange checked it.
	case r.Start == r.End:
		name, raw := "end", v.end.raw
		if !fs.Changed("end") {
			name, raw = "start", v.start.raw
		}
		return badFlag(name, raw, "start and end must differ: the sequence formula divides by end-start")
	case r.Start > r.End && fs.Changed("end"):
		return badFlag("end", v.end.raw, fmt.Sprintf("end %d is below start %d", r.End, r.Start))
	case r.Start > r.End:
		return badFlag("start", v.start.raw, fmt.Sprintf("start %d is above end %d", r.Start, r.End))
	}
	if v.localHour {
		if o.params.Period != time.Hour {
			return badFlag("period", v.period, "--local-hour needs a period of 1h")
		}
		o.params.LocalHour, o.params.Location = true, time.Local
	}
	if fs.Changed("at") && o.cmd != "show" {
		return badFlag("at", v.at, "only meaningful with show")
	}
	switch {
	case v.ipv4 && v.ipv6:
		return &usageError{msg: "--ipv6 (-6): conflicts with --ipv4 (-4): give either"}
	case v.ipv4:
		o.family = "ip4"
	case v.ipv6:
		o.family = "ip6"
	}
	return nil
}

// usageError is bad input from the user: a flag, an argument, a secret or a
// host name. It is printed as one line "nfqknock: FLAG VALUE: REASON", and
// the exit status is 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// usagef returns a *usageError with a formatted message.
func usagef(format string, a ...any) error {
	return &usageError{msg: fmt.Sprintf(format, a...)}
}

// badFlag returns the error "--name VALUE: reason".
func badFlag(name, value, reason string) *usageError {
	return &usageError{msg: "--" + name + " " + shellQuote(value) + ": " + reason}
}

// shellQuote quotes s for a shell when it needs it, so that the value in an
// error message can be copied back.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	if !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		// bash's $'...': escapes keep the message on one line.
		q := strconv.Quote(s)
		q = strings.ReplaceAll(q[1:len(q)-1], `\"`, `"`)
		return "$'" + strings.ReplaceAll(q, "'", `\'`) + "'"
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.,:/+=@%[]~", c)) {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}

// translate turns an error of pflag into a *usageError worded as the
// daemon's.
func translate(err error) *usageError {
	var inv *pflag.InvalidValueError
	var missing *pflag.ValueRequiredError
	var unknown *pflag.NotExistError
	var syntax *pflag.InvalidSyntaxError
	switch {
	case errors.As(err, &inv):
		return badFlag(inv.GetFlag().Name, inv.GetValue(), errors.Unwrap(inv).Error())
	case errors.As(err, &missing):
		return &usageError{msg: "--" + missing.GetFlag().Name + ": needs a value"}
	case errors.As(err, &unknown):
		name := "--" + unknown.GetSpecifiedName()
		if unknown.GetSpecifiedShortnames() != "" {
			name = "-" + unknown.GetSpecifiedName()
		}
		return &usageError{msg: shellQuote(name) + ": unknown flag (see --help)"}
	case errors.As(err, &syntax):
		return &usageError{msg: shellQuote(syntax.GetSpecifiedFlag()) + ": bad flag syntax"}
	}
	return &usageError{msg: "command line: " + err.Error()}
}

// The flag values. Each parses and checks its own text in Set, so that
// pflag reports the reason; raw keeps the text for checks that involve
// several flags.

type portValue struct {
	p   *uint16
	raw string
}

func (v *portValue) Set(s string) error {
	p, err := knock.ParsePort(s)
	if err != nil {
		return err
	}
	*v.p, v.raw = p, s
	return nil
}
func (v *portValue) String() string { return strconv.Itoa(int(*v.p)) }
func (v *portValue) Type() string   { return "port" }

type rangeValue struct {
	r   *knock.Range
	raw string
}

func (v *rangeValue) Set(s string) error {
	r, err := knock.ParseRange(s)
	if err != nil {
		return err
	}
	*v.r, v.raw = r, s
	return nil
}
func (v *rangeValue) String() string { return "" } // -a and -b show the default
func (v *rangeValue) Type() string   { return "range" }

type digestValue struct{ d *knock.Digest }

func (v *digestValue) Set(s string) error {
	d, err := knock.ParseDigest(s)
	if err != nil {
		return errors.New("unknown digest: want md5, sha256, sha384 or sha512")
	}
	*v.d = d
	return nil
}
func (v *digestValue) String() string { return v.d.String() }
func (v *digestValue) Type() string   { return "digest" }

// secretValue never shows the secret. It rejects an empty one, and tells
// whether the flag was given.
type secretValue struct {
	s   string
	set bool
}

func (v *secretValue) Set(s string) error {
	if s == "" {
		return errors.New("secret must not be empty")
	}
	v.s, v.set = s, true
	return nil
}
func (v *secretValue) String() string { return "" }
func (v *secretValue) Type() string   { return "secret" }

// given returns the secret, or nil when the flag was not given.
func (v *secretValue) given() *string {
	if !v.set {
		return nil
	}
	return &v.s
}

// durationValue is a Go duration in [min, max] (max 0: no bound); whole
// seconds when whole is set.
type durationValue struct {
	d        *time.Duration
	min, max time.Duration
	whole    bool
	raw      *string
}

func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("not a duration: use for example 50ms, 10s or 1h")
	}
	if d < v.min || (v.max > 0 && d > v.max) {
		if v.max > 0 {
			return fmt.Errorf("must be %s..%s", shortDuration(v.min), shortDuration(v.max))
		}
		return fmt.Errorf("must be at least %s", shortDuration(v.min))
	}
	if v.whole && d%time.Second != 0 {
		return errors.New("must be a whole number of seconds")
	}
	*v.d = d
	if v.raw != nil {
		*v.raw = s
	}
	return nil
}
func (v *durationValue) String() string { return shortDuration(*v.d) }

// shortDuration formats d without zero minutes and seconds: "1h", not
// "1h0m0s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
func (v *durationValue) Type() string { return "duration" }

// atValue is an instant: RFC 3339 or Unix seconds, as the daemon's --at.
type atValue struct {
	t   *time.Time
	raw *string
}

func (v *atValue) Set(s string) error {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		*v.t, *v.raw = time.Unix(n, 0), s
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return errors.New("not a time: use RFC 3339 (2025-11-04T12:34:56Z) or Unix seconds")
	}
	*v.t, *v.raw = t, s
	return nil
}
func (v *atValue) String() string { return "" }
func (v *atValue) Type() string   { return "time" }

// switchValue is a flag without a value.
type switchValue struct{ b *bool }

func (v *switchValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("must be true or false, or no value")
	}
	*v.b = b
	return nil
}
func (v *switchValue) String() string   { return strconv.FormatBool(*v.b) }
func (v *switchValue) Type() string     { return "bool" }
func (v *switchValue) IsBoolFlag() bool { return true }

func boolFlag(fs *pflag.FlagSet, p *bool, name, short, usage string) {
	fs.VarPF(&switchValue{b: p}, name, short, usage).NoOptDefVal = "true"
}
