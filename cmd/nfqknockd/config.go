package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/pflag"

	"github.com/nfqknockd/nfqknockd/knock"
)

// config is the parsed command line.
type config struct {
	// Params are the sequence parameters: -d, -a/-b or --range, -o, -c,
	// --period, --grace, --local-hour (Location is time.Local then).
	Params knock.Params
	// Timeout (-t) is the longest gap between two knocks of a sequence.
	Timeout time.Duration
	// OpenTimeout (--open-timeout) is how long an opened source stays
	// allowed; 0 means until it knocks the close sequence.
	OpenTimeout time.Duration
	// MaxSources (--max-sources) bounds the sources tracked.
	MaxSources int
	// Guard (-p/--guard) are the guarded ports as given, sorted, without
	// duplicates; guardPorts() removes the Opened ones.
	Guard []uint16
	// Opened (-P/--open-port) are ports never guarded, sorted, without
	// duplicates (the C daemon's "opened" ports).
	Opened []uint16
	// Queue (-q) is the first NFQUEUE number, Queues (--queues) how many
	// consecutive queues are used, MaxQueueLen (-m) the kernel queue length.
	Queue       uint16
	Queues      uint16
	MaxQueueLen uint32
	// Table (--table) is the name of the nftables inet table.
	Table string
	// Foreground (-f) and IPTables (-i) are accepted for compatibility with
	// the C daemon and change nothing: nfqknockd always runs in the
	// foreground and always manages its own table.
	Foreground bool
	IPTables   bool
	// Verbose (-v) logs every knock.
	Verbose bool
	// SecretFile (--secret-file) holds open= and close= lines; SecretsFrom
	// says where the secrets came from (see loadSecrets).
	SecretFile  string
	SecretsFrom secretSource
	// Show (-s) prints the sequences at At (--at), or now when At is zero,
	// and exits.
	Show bool
	At   time.Time
	// Help (-h) and Version (--version) print and exit.
	Help    bool
	Version bool
}

// Limits of the flags.
const (
	maxTimeout  = 600 * time.Second // -t, as the C daemon
	maxQueues   = 64                // --queues
	maxTableLen = 64                // --table
)

// defaultConfig returns the configuration of a command line without flags.
func defaultConfig() *config {
	return &config{
		Params:      knock.DefaultParams(),
		Timeout:     knock.DefaultTimeout,
		OpenTimeout: time.Hour,
		MaxSources:  knock.DefaultMaxSources,
		Queue:       100,
		Queues:      1,
		MaxQueueLen: 10000,
		Table:       "nfqknock",
	}
}

// guardPorts returns the ports to guard: Guard without the Opened ports,
// which the C daemon lets through even when they are also guarded.
func (c *config) guardPorts() []uint16 {
	var out []uint16
	for _, p := range c.Guard {
		if !slices.Contains(c.Opened, p) {
			out = append(out, p)
		}
	}
	return out
}

// trackerConfig returns the configuration of the knock tracker.
func (c *config) trackerConfig() knock.TrackerConfig {
	return knock.TrackerConfig{Params: c.Params, Timeout: c.Timeout, MaxSources: c.MaxSources}
}

// usageError is a bad command line: printed as one line
// "nfqknockd: FLAG VALUE: REASON", exit status 2.
type usageError struct {
	flag     string // "--guard", "-z", or a stray argument
	value    string
	hasValue bool
	reason   string
}

func (e *usageError) Error() string {
	if !e.hasValue {
		return e.flag + ": " + e.reason
	}
	return e.flag + " " + shellQuote(e.value) + ": " + e.reason
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
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.,:/+=@%", c)) {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}

func badFlag(name, value, reason string) *usageError {
	return &usageError{flag: "--" + name, value: value, hasValue: true, reason: reason}
}

// The flag values. Each parses and checks its own text in Set, so that
// pflag reports the reason; raw keeps the text for later checks that
// involve several flags.

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

// portsValue collects ports from repeated flags and comma lists.
type portsValue struct{ p *[]uint16 }

func (v *portsValue) Set(s string) error {
	ports, err := knock.ParsePorts(s)
	if err != nil {
		return err
	}
	*v.p = append(*v.p, ports...)
	return nil
}

func (v *portsValue) String() string {
	s := make([]string, len(*v.p))
	for i, p := range *v.p {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ",")
}
func (v *portsValue) Type() string { return "ports" }

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
func (v *rangeValue) String() string { return v.r.String() }
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

// secretValue never shows the secret: its String is empty, so the help
// does not print the default.
type secretValue struct{ s *string }

func (v *secretValue) Set(s string) error {
	if s == "" {
		return errors.New("secret must not be empty")
	}
	*v.s = s
	return nil
}
func (v *secretValue) String() string { return "" }
func (v *secretValue) Type() string   { return "secret" }

// timeoutValue reads whole seconds 1..600, as the C daemon's -t, or a Go
// duration from 1s to 600s.
type timeoutValue struct{ d *time.Duration }

func (v *timeoutValue) Set(s string) error {
	bad := errors.New("timeout must be 1..600 seconds, or a duration from 1s to 600s")
	var d time.Duration
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 1 || n > int64(maxTimeout/time.Second) {
			return bad
		}
		d = time.Duration(n) * time.Second
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d < time.Second || d > maxTimeout {
			return bad
		}
	}
	*v.d = d
	return nil
}
func (v *timeoutValue) String() string { return v.d.String() }
func (v *timeoutValue) Type() string   { return "seconds" }

// durationValue is a Go duration of at least min; whole seconds when
// whole is set.
type durationValue struct {
	d     *time.Duration
	min   time.Duration
	whole bool
	raw   string
}

func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("not a duration: use for example 90s, 10m or 1h")
	}
	if d < v.min {
		return fmt.Errorf("must be at least %v", v.min)
	}
	if v.whole && d%time.Second != 0 {
		return errors.New("must be a whole number of seconds")
	}
	*v.d, v.raw = d, s
	return nil
}
func (v *durationValue) String() string { return v.d.String() }
func (v *durationValue) Type() string   { return "duration" }

// uintValue is an unsigned number min..max.
type uintValue struct {
	n        *uint64
	min, max uint64
	raw      string
}

func (v *uintValue) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n < v.min || n > v.max {
		return fmt.Errorf("must be a number %d..%d", v.min, v.max)
	}
	*v.n, v.raw = n, s
	return nil
}
func (v *uintValue) String() string { return strconv.FormatUint(*v.n, 10) }
func (v *uintValue) Type() string   { return "number" }

type tableValue struct{ s *string }

func (v *tableValue) Set(s string) error {
	if err := validTable(s); err != nil {
		return err
	}
	*v.s = s
	return nil
}
func (v *tableValue) String() string { return *v.s }
func (v *tableValue) Type() string   { return "name" }

// validTable checks a table name: 1..64 letters, digits, '_' and '-',
// starting with a letter.
func validTable(s string) error {
	bad := fmt.Errorf("table name must be 1..%d letters, digits, '_' or '-', starting with a letter", maxTableLen)
	if s == "" || len(s) > maxTableLen {
		return bad
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if i == 0 && !letter || !letter && !(c >= '0' && c <= '9' || c == '_' || c == '-') {
			return bad
		}
	}
	return nil
}

// atValue is an instant: RFC 3339 or Unix seconds.
type atValue struct {
	t   *time.Time
	raw string
}

func (v *atValue) Set(s string) error {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		*v.t, v.raw = time.Unix(n, 0), s
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return errors.New("not a time: use RFC 3339 (2025-11-04T12:34:56Z) or Unix seconds")
	}
	*v.t, v.raw = t, s
	return nil
}
func (v *atValue) String() string { return "" }
func (v *atValue) Type() string   { return "time" }

// switchValue is a flag without a value (false by default). pflag's own
// bool flags print as "--show[=true|false]" in the help; this one as
// "--show".
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
func (v *switchValue) Type() string     { return "boolfunc" } // no value name in the help
func (v *switchValue) IsBoolFlag() bool { return true }

func boolFlag(fs *pflag.FlagSet, p *bool, name, short, usage string) {
	fs.VarPF(&switchValue{b: p}, name, short, usage).NoOptDefVal = "true"
}

// flagValues are the values that later checks need to look at.
type flagValues struct {
	start, end              *portValue
	rng                     *rangeValue
	queue, queues           *uintValue
	period, grace, openTime *durationValue
	at                      *atValue
	copyBack                func() // stores the numbers parsed into the config
}

// newFlagSet defines every flag on a fresh set, bound to c.
func newFlagSet(c *config) (*pflag.FlagSet, *flagValues) {
	fs := pflag.NewFlagSet("nfqknockd", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.SortFlags = false
	v := &flagValues{
		start:    &portValue{p: &c.Params.Range.Start},
		end:      &portValue{p: &c.Params.Range.End},
		rng:      &rangeValue{r: &c.Params.Range},
		period:   &durationValue{d: &c.Params.Period, min: time.Second, whole: true},
		grace:    &durationValue{d: &c.Params.Grace},
		openTime: &durationValue{d: &c.OpenTimeout},
		at:       &atValue{t: &c.At},
	}
	queue, queues, maxLen, maxSrc := uint64(c.Queue), uint64(c.Queues), uint64(c.MaxQueueLen), uint64(c.MaxSources)
	v.queue = &uintValue{n: &queue, min: 0, max: 65535}
	v.queues = &uintValue{n: &queues, min: 1, max: maxQueues}
	maxLenV := &uintValue{n: &maxLen, min: 1, max: 1<<32 - 1}
	maxSrcV := &uintValue{n: &maxSrc, min: 1, max: knock.MaxSourcesLimit}

	boolFlag(fs, &c.Help, "help", "h", "print this help and exit")
	boolFlag(fs, &c.Version, "version", "", "print the version and exit")
	boolFlag(fs, &c.Show, "show", "s", "print the current OPEN: and CLOSE: port sequences (for scripts) and exit")
	fs.Var(v.at, "at", "with -s: show the sequences at `TIME` instead of now: RFC 3339 or Unix seconds (default: now)")

	fs.VarP(&portsValue{p: &c.Guard}, "guard", "p", "guard TCP `PORT`s: only sources that knocked may connect; repeatable, or a comma list such as 22,443 (default: none)")
	fs.VarP(&portsValue{p: &c.Opened}, "open-port", "P", "never guard TCP `PORT`s, even when given with --guard; repeatable, or a comma list (default: none)")
	fs.VarP(v.start, "start", "a", "first `PORT` of the knock range")
	fs.VarP(v.end, "end", "b", "last `PORT` of the knock range")
	fs.Var(v.rng, "range", "knock range `START-END`, instead of -a and -b")
	fs.VarP(&digestValue{d: &c.Params.Digest}, "digest", "d", "`DIGEST` of the sequences: md5, sha256, sha384 or sha512 (8, 16, 24 or 32 ports)")
	fs.VarP(&secretValue{s: &c.Params.OpenSecret}, "open-secret", "o", "open `SECRET` (default: the C daemon's public default)")
	fs.VarP(&secretValue{s: &c.Params.CloseSecret}, "close-secret", "c", "close `SECRET` (default: the C daemon's public default)")
	fs.StringVar(&c.SecretFile, "secret-file", "", "read the secrets from `FILE`: lines open=SECRET and close=SECRET, mode 0600; -o/-c win over it. Without it and -o/-c, the systemd credential "+credentialName+" in $CREDENTIALS_DIRECTORY is read when set (default: none)")
	fs.VarP(&timeoutValue{d: &c.Timeout}, "timeout", "t", "longest gap between two knocks: `SECONDS` 1..600, or a duration such as 10s")
	fs.Var(v.period, "period", "the sequences change every `DURATION` (whole seconds), at multiples of it since 1970-01-01 UTC")
	fs.Var(v.grace, "grace", "accept the previous (next) period's sequences this `DURATION` after (before) a change; below half the period")
	boolFlag(fs, &c.Params.LocalHour, "local-hour", "", "periods are hours of the local time zone, as in the C daemon (differs from UTC in half-hour zones); needs --period 1h")
	fs.Var(v.openTime, "open-timeout", "a source that knocked stays allowed for `DURATION`; 0 means until it knocks the close sequence")
	fs.Var(maxSrcV, "max-sources", fmt.Sprintf("track at most `N` knocking sources (1..%d); the least recently seen is forgotten", knock.MaxSourcesLimit))
	fs.VarP(v.queue, "queue", "q", "netfilter queue `NUMBER` 0..65535")
	fs.Var(v.queues, "queues", fmt.Sprintf("use `N` queues (1..%d) from --queue on, one reader each; the kernel sends each source to one of them by address hash", maxQueues))
	fs.VarP(maxLenV, "max-queue-len", "m", "netfilter queue length in packets (`N` >= 1)")
	fs.Var(&tableValue{s: &c.Table}, "table", fmt.Sprintf("`NAME` of the nftables inet table (1..%d letters, digits, '_', '-')", maxTableLen))
	boolFlag(fs, &c.Foreground, "foreground", "f", "accepted for compatibility: nfqknockd always runs in the foreground")
	boolFlag(fs, &c.IPTables, "iptables", "i", "accepted for compatibility: nfqknockd always manages its own nftables table")
	boolFlag(fs, &c.Verbose, "verbose", "v", "log every knock")

	// The numbers live in uint64s while parsing: copy them back.
	v.copyBack = func() {
		c.Queue, c.Queues, c.MaxQueueLen, c.MaxSources = uint16(queue), uint16(queues), uint32(maxLen), int(maxSrc)
	}
	return fs, v
}

// usageText returns the help: every flag with its default.
func usageText() string {
	fs, _ := newFlagSet(defaultConfig())
	var b strings.Builder
	b.WriteString(`Usage: nfqknockd [flags]

nfqknockd guards TCP ports until a client knocks a secret sequence of ports.
The sequences change every period (an hour by default) and are the C
nfqknockd's: the same flags, the same sequences.

Flags:
`)
	b.WriteString(fs.FlagUsagesWrapped(0))
	b.WriteString(`
Signals:
  SIGINT, SIGTERM  remove the nftables table and exit
  SIGUSR1          log the opened sources
  SIGUSR2          log the knocking sources

Examples:
  nfqknockd -p 22 -o abracadabra -c ahalaymahalay -d sha256
      guard sshd; knock the sequences that -s prints
  nfqknockd -o abracadabra -c ahalaymahalay -d sha256 -s
      print the current sequences as OPEN: ... and CLOSE: ... lines
`)
	return b.String()
}

// parseFlags parses the command line. Its errors are *usageError.
func parseFlags(args []string) (*config, error) {
	c := defaultConfig()
	fs, v := newFlagSet(c)
	if err := fs.Parse(args); err != nil {
		return nil, translate(err)
	}
	v.copyBack()
	if c.Help || c.Version {
		return c, nil
	}
	if fs.NArg() > 0 {
		return nil, &usageError{flag: shellQuote(fs.Arg(0)), reason: "unexpected argument (nfqknockd takes flags only)"}
	}
	if err := check(c, fs, v); err != nil {
		return nil, err
	}
	return c, nil
}

// check validates what involves several flags.
func check(c *config, fs *pflag.FlagSet, v *flagValues) error {
	r := c.Params.Range
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
	if c.Params.Grace >= c.Params.Period/2 && c.Show && !fs.Changed("grace") {
		c.Params.Grace = 0 // -s does not use the grace: a short --period alone is fine
	}
	if c.Params.Grace >= c.Params.Period/2 {
		if fs.Changed("grace") {
			return badFlag("grace", v.grace.raw, fmt.Sprintf("must be below half the period (%v)", c.Params.Period/2))
		}
		return badFlag("period", v.period.raw, fmt.Sprintf("must be more than twice the grace (%v): give a shorter --grace", c.Params.Grace))
	}
	if c.Params.LocalHour {
		if c.Params.Period != time.Hour {
			return badFlag("period", v.period.raw, "--local-hour needs a period of 1h")
		}
		c.Params.Location = time.Local
	}
	if int(c.Queue)+int(c.Queues)-1 > 65535 {
		return badFlag("queues", v.queues.raw, fmt.Sprintf("queues %d..%d go past 65535", c.Queue, int(c.Queue)+int(c.Queues)-1))
	}
	if fs.Changed("at") && !c.Show {
		return badFlag("at", v.at.raw, "only meaningful with -s (--show)")
	}
	if !c.Show && len(c.Guard) == 0 {
		return &usageError{flag: "--guard", reason: "no port to guard: give at least one, for example -p 22"}
	}
	slices.Sort(c.Guard)
	c.Guard = slices.Compact(c.Guard)
	slices.Sort(c.Opened)
	c.Opened = slices.Compact(c.Opened)
	if fs.Changed("secret-file") && c.SecretFile == "" {
		return badFlag("secret-file", "", "file name is empty")
	}
	if err := loadSecrets(c, fs, os.Getenv); err != nil {
		return err
	}
	if err := c.Params.Validate(); err != nil { // should not happen after the checks above
		return &usageError{flag: "command line", reason: err.Error()}
	}
	return nil
}

// translate turns an error of pflag into a usageError.
func translate(err error) *usageError {
	var inv *pflag.InvalidValueError
	var missing *pflag.ValueRequiredError
	var unknown *pflag.NotExistError
	var syntax *pflag.InvalidSyntaxError
	switch {
	case errors.As(err, &inv):
		return badFlag(inv.GetFlag().Name, inv.GetValue(), errors.Unwrap(inv).Error())
	case errors.As(err, &missing):
		return &usageError{flag: "--" + missing.GetFlag().Name, reason: "needs a value"}
	case errors.As(err, &unknown):
		name := "--" + unknown.GetSpecifiedName()
		if unknown.GetSpecifiedShortnames() != "" {
			name = "-" + unknown.GetSpecifiedName()
		}
		return &usageError{flag: shellQuote(name), reason: "unknown flag (see --help)"}
	case errors.As(err, &syntax):
		return &usageError{flag: shellQuote(syntax.GetSpecifiedFlag()), reason: "bad flag syntax"}
	}
	return &usageError{flag: "command line", reason: err.Error()}
}
