package main

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/nfqknockd/nfqknockd/knock"
)

// Defaults of the flags that are not the daemon's.
const (
	defaultGap            = 10 * time.Millisecond
	defaultKnockTimeout   = 50 * time.Millisecond
	defaultConnectTimeout = 5 * time.Second
	// maxKnockTimeout keeps a knock to one SYN: Linux retransmits an
	// unanswered SYN after 1s (TCP_TIMEOUT_INIT).
	maxKnockTimeout = time.Second
	// maxGap stays well below the daemon's default --timeout of 10s between
	// two knocks of one sequence.
	maxGap = 5 * time.Second
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

// flagValues holds the raw flag values; they are checked after parsing so that
// every error names the flag and the value in the same words.
type flagValues struct {
	digest, start, end, rng, period, at string
	localHour                           bool
	openSecret, closeSecret, secretFile string
	ipv4, ipv6                          bool
	gap, knockTimeout, connectTimeout   string
	help, version                       bool
}

// newFlagSet defines the flags of nfqknock into v.
func newFlagSet(v *flagValues) *pflag.FlagSet {
	fs := pflag.NewFlagSet("nfqknock", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.Usage = func() {}
	fs.StringVarP(&v.digest, "digest", "d", "md5", "`DIGEST` of the sequences: md5, sha256, sha384 or sha512 (as the daemon's -d)")
	fs.StringVarP(&v.start, "start", "a", "1", "first `PORT` of the knock range (as the daemon's -a)")
	fs.StringVarP(&v.end, "end", "b", "65535", "last `PORT` of the knock range (as the daemon's -b)")
	fs.StringVar(&v.rng, "range", "", "knock range `A-B`, instead of -a and -b")
	fs.StringVar(&v.period, "period", "1h", "rotation `PERIOD` of the sequences, a Go duration (as the daemon's --period)")
	fs.BoolVar(&v.localHour, "local-hour", false, "align periods to the start of the local hour, like the C daemon (as the daemon's --local-hour)")
	fs.StringVar(&v.at, "at", "", "show: the sequences at `TIME` (RFC 3339 or unix seconds) instead of now")
	fs.StringVarP(&v.openSecret, "open-secret", "o", "", "open `SECRET` (visible to other users in the process list: prefer the environment or --secret-file)")
	fs.StringVarP(&v.closeSecret, "close-secret", "c", "", "close `SECRET` (same caveat)")
	fs.StringVar(&v.secretFile, "secret-file", "", "read the secrets from `FILE`: lines open=SECRET and close=SECRET, # comments; mode 0600 or stricter")
	fs.BoolVarP(&v.ipv4, "ipv4", "4", false, "knock and connect over IPv4 only")
	fs.BoolVarP(&v.ipv6, "ipv6", "6", false, "knock and connect over IPv6 only")
	fs.StringVar(&v.gap, "gap", defaultGap.String(), "`PAUSE` between two knocks")
	fs.StringVar(&v.knockTimeout, "knock-timeout", defaultKnockTimeout.String(), "how long (`DURATION`) each knock, a TCP connect attempt, waits before it is abandoned; below 1s, so that its SYN is never retransmitted")
	fs.StringVar(&v.connectTimeout, "connect-timeout", defaultConnectTimeout.String(), "proxy: how long (`DURATION`) to keep trying to connect after knocking open")
	fs.BoolVarP(&v.help, "help", "h", false, "print this help and exit")
	fs.BoolVar(&v.version, "version", false, "print the version and exit")
	return fs
}

// usage returns the text of --help.
func usage() string {
	var b strings.Builder
	b.WriteString(`Usage:
  nfqknock [flags] show                 print the current OPEN: and CLOSE: sequences (as nfqknockd -s)
  nfqknock [flags] open HOST            knock the open sequence at HOST
  nfqknock [flags] close HOST           knock the close sequence at HOST
  nfqknock [flags] proxy HOST PORT      knock open, carry stdin/stdout to HOST:PORT, knock close
                                        (ssh: ProxyCommand nfqknock proxy --secret-file FILE %h %p)

The digest, range and period flags must match the daemon's. There is no
default secret: give both (show, proxy) or the one needed (open, close) with
--open-secret/--close-secret, NFQKNOCK_OPEN_SECRET/NFQKNOCK_CLOSE_SECRET or
--secret-file; a flag wins over the environment, the environment over the file.

Exit status: 0 done, 1 network failure, 2 bad input.

Flags:
`)
	var v flagValues
	fs := newFlagSet(&v)
	fs.VisitAll(func(f *pflag.Flag) {
		name, text := pflag.UnquoteUsage(f)
		left := "      --" + f.Name
		if f.Shorthand != "" {
			left = "  -" + f.Shorthand + ", --" + f.Name
		}
		if name != "" && f.Value.Type() != "bool" {
			left += " " + name
		}
		if f.DefValue != "" && f.Value.Type() != "bool" {
			text += " (default " + f.DefValue + ")"
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
	var v flagValues
	fs := newFlagSet(&v)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, errHelp
		}
		return nil, usagef("%v", err)
	}
	if v.help {
		return nil, errHelp
	}
	if v.version {
		return nil, errVersion
	}
	o := &options{family: "ip"}
	if err := o.parseCommand(fs.Args()); err != nil {
		return nil, err
	}
	if fs.Changed("at") && o.cmd != "show" {
		return nil, usagef("--at %s: only for show", v.at)
	}
	switch {
	case v.ipv4 && v.ipv6:
		return nil, usagef("-4 and -6: choose one")
	case v.ipv4:
		o.family = "ip4"
	case v.ipv6:
		o.family = "ip6"
	}
	if err := o.parseParams(fs, &v); err != nil {
		return nil, err
	}
	var err error
	if o.gap, err = parseDuration("--gap", v.gap, 0, maxGap); err != nil {
		return nil, err
	}
	if o.knockTimeout, err = parseDuration("--knock-timeout", v.knockTimeout, time.Millisecond, maxKnockTimeout-time.Millisecond); err != nil {
		return nil, err
	}
	if o.connectTimeout, err = parseDuration("--connect-timeout", v.connectTimeout, time.Millisecond, time.Hour); err != nil {
		return nil, err
	}
	if v.at != "" {
		if o.at, err = parseTime(v.at); err != nil {
			return nil, usagef("--at %s: %v", v.at, err)
		}
	}
	var flagOpen, flagClose *string
	if fs.Changed("open-secret") {
		flagOpen = &v.openSecret
	}
	if fs.Changed("close-secret") {
		flagClose = &v.closeSecret
	}
	s, err := loadSecrets(flagOpen, flagClose, v.secretFile, fs.Changed("secret-file"), getenv)
	if err != nil {
		return nil, err
	}
	if err := s.require(o.cmd); err != nil {
		return nil, err
	}
	o.params.OpenSecret, o.params.CloseSecret = s.open, s.close
	return o, nil
}

// parseCommand reads the subcommand and its arguments.
func (o *options) parseCommand(args []string) error {
	if len(args) == 0 {
		return usagef("no command: want show, open HOST, close HOST or proxy HOST PORT (see --help)")
	}
	o.cmd = args[0]
	want := map[string]int{"show": 0, "open": 1, "close": 1, "proxy": 2}
	n, ok := want[o.cmd]
	if !ok {
		return usagef("unknown command %q: want show, open, close or proxy", o.cmd)
	}
	if got := len(args) - 1; got != n {
		form := map[string]string{"show": "show", "open": "open HOST", "close": "close HOST", "proxy": "proxy HOST PORT"}[o.cmd]
		return usagef("%s: %d arguments, want %s", o.cmd, got, form)
	}
	if n >= 1 {
		o.host = args[1]
		if o.host == "" {
			return usagef("%s: empty HOST", o.cmd)
		}
	}
	if n == 2 {
		p, err := strconv.ParseUint(args[2], 10, 32)
		if err != nil || p < 1 || p > 65535 {
			return usagef("port %s: not a port number (1..65535)", args[2])
		}
		o.port = uint16(p)
	}
	return nil
}

// parseParams fills o.params (all but the secrets) from the sequence flags.
func (o *options) parseParams(fs *pflag.FlagSet, v *flagValues) error {
	p := &o.params
	d, err := knock.ParseDigest(v.digest)
	if err != nil {
		return usagef("--digest %s: %v", v.digest, err)
	}
	p.Digest = d
	if fs.Changed("range") {
		if fs.Changed("start") || fs.Changed("end") {
			return usagef("--range %s: give either --range or -a/-b, not both", v.rng)
		}
		if p.Range, err = knock.ParseRange(v.rng); err != nil {
			return usagef("--range %s: %v", v.rng, err)
		}
	} else {
		if _, err := knock.ParsePort(v.start); err != nil {
			return usagef("--start %s: %v", v.start, err)
		}
		if _, err := knock.ParsePort(v.end); err != nil {
			return usagef("--end %s: %v", v.end, err)
		}
		if p.Range, err = knock.ParseRange(v.start + "-" + v.end); err != nil {
			return usagef("--start %s --end %s: %v", v.start, v.end, err)
		}
	}
	if p.Period, err = parseDuration("--period", v.period, time.Second, 0); err != nil {
		return err
	}
	if p.Period%time.Second != 0 {
		return usagef("--period %s: must be a whole number of seconds", v.period)
	}
	if v.localHour {
		if p.Period != time.Hour {
			return usagef("--local-hour: needs --period 1h, not %s", v.period)
		}
		p.LocalHour, p.Location = true, time.Local
	}
	return nil
}

// parseDuration parses a Go duration ("50ms") given to flag name and checks
// it against [lo, hi] (hi 0: no upper bound).
func parseDuration(name, s string, lo, hi time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, usagef("%s %s: not a duration (like 50ms, 2s or 1h)", name, s)
	}
	if d < lo || (hi > 0 && d > hi) {
		if hi > 0 {
			return 0, usagef("%s %s: out of range %v..%v", name, s, lo, hi)
		}
		return 0, usagef("%s %s: must be at least %v", name, s, lo)
	}
	return d, nil
}

// parseTime parses an instant given as RFC 3339 or as unix seconds.
func parseTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("not an RFC 3339 time (2025-11-04T12:34:56Z) or unix seconds")
	}
	return t, nil
}
