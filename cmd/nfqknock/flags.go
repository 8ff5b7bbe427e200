package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/nfqknockd/nfqknockd/cmd/internal/cli"
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
	// testSkewFlag is the hidden flag that shifts the client's clock: a
	// test hook (doctor's clock diagnosis), not for users.
	testSkewFlag = "test-clock-skew"
	maxSkew      = 365 * 24 * time.Hour
)

var (
	errHelp    = errors.New("help requested")
	errVersion = errors.New("version requested")
)

// options is the parsed command line.
type options struct {
	cmd    string // show, open, close, proxy, doctor
	host   string // "" for a show without HOST
	port   uint16 // proxy and doctor
	family string // "ip", "ip4" or "ip6"
	params knock.Params
	at     time.Time // show only; zero = now

	gap, knockTimeout, connectTimeout time.Duration

	oneTime bool // --one-time
	verbose bool // -v: say what is done on stderr
	// skew shifts this client's clock for the sequences it knocks: the
	// hidden --test-clock-skew, with which the tests knock with a clock off
	// by hours.
	skew   time.Duration
	nonces nonceSource // the nonces of --one-time
	spa    spaOptions  // --spa and what its packets ask

	// Set by the client config: the secret file it names (resolved), the
	// config file, and the setting that gave each flag.
	secretFile string
	configPath string
	origin     map[string]setting
	// from tells, for doctor, where the sequence settings and the secrets
	// came from: "--range", "config line 3", "default"...
	from map[string]string
}

// flagValues are the values of the flags, as parsed by their pflag.Value.
type flagValues struct {
	start, end              cli.PortValue
	rng                     rangeValue
	period                  *cli.DurationValue
	at                      cli.AtValue
	localHour               bool
	openSecret, closeSecret string
	secretFile, config      string
	ipv4, ipv6              bool
	help, version           bool
}

// style words the usage errors of nfqknock: printed as one line
// "nfqknock: FLAG VALUE: REASON", exit status 2. It leaves "[]~" unquoted
// too.
var style = cli.Style{Safe: cli.ShellSafe + "[]~"}

// rangeValue is a knock range whose default the help does not show: -a and
// -b show it.
type rangeValue struct{ cli.RangeValue }

// String returns "": no default in the help.
func (v *rangeValue) String() string { return "" }

// duration returns a flag value for a Go duration in [min, max] (max 0: no
// bound); whole seconds when whole is set.
func duration(d *time.Duration, min, max time.Duration, whole bool) *cli.DurationValue {
	return &cli.DurationValue{D: d, Min: min, Max: max, Whole: whole, Hint: "50ms, 10s or 1h", Short: true}
}

// newFlagSet defines the flags of nfqknock. The sequence flags have the
// names, short names, meanings and defaults of the daemon's.
func newFlagSet(o *options, v *flagValues) *pflag.FlagSet {
	fs := pflag.NewFlagSet("nfqknock", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.Usage = func() {}
	o.params = knock.Params{Digest: knock.MD5, Range: knock.FullRange, Period: knock.DefaultPeriod}
	v.start = cli.PortValue{P: &o.params.Range.Start}
	v.end = cli.PortValue{P: &o.params.Range.End}
	v.rng = rangeValue{cli.RangeValue{R: &o.params.Range}}
	v.period = duration(&o.params.Period, time.Second, 0, true)
	v.at = cli.AtValue{T: &o.at}
	o.gap, o.knockTimeout, o.connectTimeout = defaultGap, defaultKnockTimeout, defaultConnectTimeout

	fs.VarP(&cli.DigestValue{D: &o.params.Digest}, "digest", "d", "`DIGEST` of the sequences: md5, sha256, sha384 or sha512 (as the daemon's -d)")
	fs.VarP(&v.start, "start", "a", "first `PORT` of the knock range (as the daemon's -a)")
	fs.VarP(&v.end, "end", "b", "last `PORT` of the knock range (as the daemon's -b)")
	fs.Var(&v.rng, "range", "knock range `START-END`, instead of -a and -b")
	fs.Var(v.period, "period",
		"the sequences change every `DURATION` (as the daemon's --period)")
	cli.BoolFlag(fs, &v.localHour, "local-hour", "", "periods are hours of the local time zone, as in the C daemon (as the daemon's --local-hour)")
	fs.Var(&v.at, "at", "show: the sequences at `TIME` (RFC 3339 or Unix seconds) instead of now")
	fs.VarP(&cli.SecretValue{S: &v.openSecret}, "open-secret", "o", "open `SECRET`; other users can read it in the process list: prefer "+envOpenSecret+" or --secret-file")
	fs.VarP(&cli.SecretValue{S: &v.closeSecret}, "close-secret", "c", "close `SECRET` (same caveat; "+envCloseSecret+")")
	fs.StringVar(&v.secretFile, "secret-file", "", "read the secrets from `FILE`: lines open=SECRET and close=SECRET, # comments; only you may have access to it (chmod 600; on Windows: yourself, SYSTEM and Administrators)")
	cli.BoolFlag(fs, &o.oneTime, "one-time", "", "knock one-time sequences, for a daemon run with --one-time: a fresh random nonce for each open and close (show: the sequences of a fresh nonce)")
	fs.StringVar(&v.config, "config", "", "read the client config from `FILE` instead of "+defaultConfigHelp)
	cli.BoolFlag(fs, &v.ipv4, "ipv4", "4", "use IPv4 only")
	cli.BoolFlag(fs, &v.ipv6, "ipv6", "6", "use IPv6 only")
	fs.Var(duration(&o.gap, 0, maxGap, false), "gap", "pause of `DURATION` between two knocks")
	fs.Var(duration(&o.knockTimeout, time.Millisecond, maxKnockTimeout, false), "knock-timeout",
		"each knock, a TCP connect attempt, is abandoned after `DURATION`; below 1s, so that the kernel never retransmits its SYN")
	fs.Var(duration(&o.connectTimeout, time.Millisecond, maxConnectTimeout, false), "connect-timeout",
		"proxy: keep trying to connect for `DURATION` after knocking open")
	spaFlags(fs, &o.spa)
	cli.BoolFlag(fs, &o.verbose, "verbose", "v", "say on stderr which address and family were chosen, the ports knocked and the timing")
	fs.Var(&cli.DurationValue{D: &o.skew, Min: -maxSkew, Max: maxSkew, Hint: "2h or -90m", Short: true}, testSkewFlag, "test hook: shift this client's clock by `DURATION` for the sequences it knocks")
	_ = fs.MarkHidden(testSkewFlag)
	cli.BoolFlag(fs, &v.help, "help", "h", "print this help and exit")
	cli.BoolFlag(fs, &v.version, "version", "", "print the version and exit")
	return fs
}

// usage returns the text of --help.
func usage() string {
	var b strings.Builder
	b.WriteString(`Usage:
  nfqknock [flags] show [HOST]        print the current OPEN: and CLOSE: sequences, as nfqknockd -s
                                      (with HOST: with the settings of its config section)
  nfqknock [flags] open HOST          knock the open sequence at HOST (--spa: send an SPA packet)
  nfqknock [flags] close HOST         knock the close sequence at HOST (--spa: send an SPA packet)
  nfqknock [flags] proxy HOST PORT    knock open, carry stdin and stdout to HOST:PORT, knock close
                                      (--spa: open and close by SPA)
                                      (ssh: ProxyCommand nfqknock proxy %h %p)
  nfqknock [flags] doctor HOST PORT   check step by step that knocking opens PORT of HOST, knock
                                      close, and name the likely cause when it does not

The digest, range and period flags must be the daemon's. Show and proxy need
both secrets, open the open one, close the close one. A flag wins over the
environment (` + envOpenSecret + `, ` + envCloseSecret + `), the environment
over the secret file: --secret-file, else the config's secret-file, else
` + defaultSecretsHelp + ` when it exists.

The client config, ` + defaultConfigHelp + `, sets flags per host:
  [*]                   every host
  digest = sha256
  [server.example.org]  HOST as given (ssh's %h); wins over [*]
  range = 10000-60000
  secret-file = ~/.config/nfqknock/work-secrets
  one-time = yes
Keys: ` + strings.Join(configKeys[:6], ", ") + `,
` + strings.Join(configKeys[6:11], ", ") + `,
` + strings.Join(configKeys[11:], ", ") + `. A flag on the command line wins.` + xdgHelp + `

With --spa (spa = PORT in the config), open, close and proxy send one
single-packet authorization (SPA) instead of knocking: UDP to PORT (bare
--spa: 62201), three copies 5ms apart, sealed with a key derived from the
open secret, the only secret they then need; --spa-ports, --spa-duration
and --spa-address say what it asks. The daemon's --period must match, the
clocks within its --spa-window (2m). show and doctor are about knock
sequences: they refuse --spa and ignore the config's spa keys.

With --one-time, a random nonce may be one already knocked this period:
with k opens so far in the period, the chance is k/1024, and the daemon
refuses it as a replay. proxy then knocks again with a new nonce.

With -v, open, close and proxy print on stderr the address and family chosen,
each port knocked with its send time after the first knock, the gap, the
knock timeout and the total; with --spa, the UDP port, what the packet asks
and the send time of each copy (never a secret).

Exit status: 0 done, 1 network failure (one line naming the host; doctor:
the knock did not open PORT), 2 bad input (an unknown host too).

Flags:
`)
	var (
		o options
		v flagValues
	)
	fs := newFlagSet(&o, &v)
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		name, text := pflag.UnquoteUsage(f)
		left := "      --" + f.Name
		if f.Shorthand != "" {
			left = "  -" + f.Shorthand + ", --" + f.Name
		}
		if f.NoOptDefVal != "" && f.Value.Type() != "boolfunc" {
			left += "[=" + name + "]" // --spa[=PORT]
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

// parseArgs parses the command line and the client config. getenv reads
// the secret variables and the variables that locate the default files.
// Bad input is a *cli.UsageError; --help and --version are errHelp and
// errVersion.
func parseArgs(args []string, getenv func(string) string) (*options, error) {
	return parseArgsOn(args, sys{getenv: getenv, goos: runtime.GOOS})
}

// parseArgsOn is parseArgs on the system s.
func parseArgsOn(args []string, s sys) (*options, error) {
	o := &options{family: "ip", origin: map[string]setting{}, nonces: nonceSource{rand: rand.Reader}}
	var v flagValues
	fs := newFlagSet(o, &v)
	if err := fs.Parse(args); err != nil {
		return nil, style.Translate(err)
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
	dir, dirErr := s.configDir()
	cfgPath, named := filepath.Join(dir, configName), fs.Changed("config")
	if named {
		cfgPath = s.expandHome(v.config)
	}
	if named || dirErr == nil {
		c, err := loadConfig(cfgPath, named)
		if err != nil {
			return nil, err
		}
		if err := o.applyConfig(c, fs, s); err != nil {
			return nil, err
		}
	}
	if err := o.check(fs, &v); err != nil {
		return nil, err
	}
	src := o.secretSource(fs, &v, s, dir, dirErr)
	sec, err := loadSecrets(given(fs, "open-secret", &v.openSecret), given(fs, "close-secret", &v.closeSecret), src, s.getenv)
	if err != nil {
		return nil, err
	}
	need := o.cmd
	if o.spa.port != 0 {
		need = "open" // an SPA packet's key comes from the open secret
	}
	if err := sec.require(need, src); err != nil {
		return nil, err
	}
	o.params.OpenSecret, o.params.CloseSecret = sec.open, sec.close
	o.from = settingsFrom(fs, o, src, s.getenv)
	return o, nil
}

// parseCommand reads the command and its arguments.
func (o *options) parseCommand(args []string) error {
	const commands = "want show [HOST], open HOST, close HOST, proxy HOST PORT or doctor HOST PORT (see --help)"
	if len(args) == 0 {
		return &cli.UsageError{Msg: "no command: " + commands}
	}
	o.cmd = args[0]
	n, ok := map[string]int{"show": 1, "open": 1, "close": 1, "proxy": 2, "doctor": 2}[o.cmd]
	if !ok {
		return &cli.UsageError{Msg: style.Quote(o.cmd) + ": unknown command: " + commands}
	}
	if o.cmd == "show" && len(args) == 1 {
		n = 0 // show's HOST may be left out
	}
	if got := len(args) - 1; got != n {
		form := map[string]string{"show": "show [HOST]", "open": "open HOST", "close": "close HOST", "proxy": "proxy HOST PORT", "doctor": "doctor HOST PORT"}[o.cmd]
		return &cli.UsageError{Msg: fmt.Sprintf("%s: %d arguments: want %s", o.cmd, got, form)}
	}
	if n >= 1 {
		o.host = args[1]
		if o.host == "" {
			return &cli.UsageError{Msg: "HOST '': must not be empty"}
		}
	}
	if n == 2 {
		p, err := knock.ParsePort(args[2])
		if err != nil {
			return &cli.UsageError{Msg: "PORT " + style.Quote(args[2]) + ": " + err.Error()}
		}
		o.port = p
	}
	return nil
}

// check validates what involves several flags, as the daemon does.
func (o *options) check(fs *pflag.FlagSet, v *flagValues) error {
	if err := style.CheckRange(fs, &v.start, &v.end, &v.rng.RangeValue); err != nil {
		return err
	}
	if v.localHour {
		if o.params.Period != time.Hour {
			reason := "--local-hour needs a period of 1h"
			if _, ok := o.origin["local-hour"]; ok {
				reason = "local-hour needs a period of 1h"
			}
			return o.badValue("period", v.period.Raw, reason)
		}
		o.params.LocalHour, o.params.Location = true, time.Local
	}
	if fs.Changed("at") && o.cmd != "show" {
		return style.BadFlag("at", v.at.Raw, "only meaningful with show")
	}
	switch {
	case v.ipv4 && v.ipv6:
		return &cli.UsageError{Msg: "--ipv6 (-6): conflicts with --ipv4 (-4): give either"}
	case v.ipv4:
		o.family = "ip4"
	case v.ipv6:
		o.family = "ip6"
	}
	return o.checkSPA(fs)
}

// settingsFrom returns where digest, range, period and the secrets came
// from, for doctor.
func settingsFrom(fs *pflag.FlagSet, o *options, src secretSource, getenv func(string) string) map[string]string {
	from := map[string]string{}
	for _, name := range []string{"digest", "range", "period"} {
		switch st, ok := o.origin[name]; {
		case fs.Changed(name) || (name == "range" && (fs.Changed("start") || fs.Changed("end"))):
			from[name] = "command line"
		case ok:
			from[name] = fmt.Sprintf("%s, line %d", o.configPath, st.line)
		default:
			from[name] = "default"
		}
	}
	for _, sec := range []struct{ name, flag, env string }{{"open", "open-secret", envOpenSecret}, {"close", "close-secret", envCloseSecret}} {
		switch {
		case fs.Changed(sec.flag):
			from[sec.name] = "--" + sec.flag
		case getenv(sec.env) != "":
			from[sec.name] = sec.env
		default:
			from[sec.name] = src.path
		}
	}
	return from
}

// given returns s, the secret of the flag name, or nil when the flag was not
// given.
func given(fs *pflag.FlagSet, name string, s *string) *string {
	if !fs.Changed(name) {
		return nil
	}
	return s
}
