package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/nfqknockd/nfqknockd/cmd/internal/cli"
	"github.com/nfqknockd/nfqknockd/knock"
	"github.com/nfqknockd/nfqknockd/nft"
	"github.com/nfqknockd/nfqknockd/queue"
)

// config is the parsed command line, with what the files it names said at
// start. Nothing writes it after parseFlags returns, so that the daemon's
// goroutines read it without a lock. The secrets (Params.OpenSecret and
// Params.CloseSecret, Users) are those of the start: a reload (SIGHUP)
// puts others in force in service.live (live.go), never here.
type config struct {
	// Params are the sequence parameters: -d, -a/-b or --range, -o, -c,
	// --period, --grace, --local-hour (Location is time.Local then). Its
	// secrets are those of the start, for -s and the first in force.
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
	// Allow (--allow) are the source prefixes never guarded (a management
	// network, a VPN): masked, sorted (IPv4 first), without duplicates
	// and without a prefix inside another (nft.NormalizeAllow).
	Allow []netip.Prefix
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
	// QueueAll (--queue-all) queues every bare SYN of the range to the
	// daemon, as the C daemon did, instead of only those of sources that
	// knocked a first port (the kernel filter).
	QueueAll bool
	// SecretFile (--secret-file) holds open= and close= lines. OpenFrom
	// and CloseFrom say where each secret came from (see loadSecrets);
	// liveSecrets.from renders them for the start line.
	SecretFile string
	OpenFrom   secretSource
	CloseFrom  secretSource
	// AccessFile (--access-file) holds one section per user, with the
	// user's secrets and ports; Users are its users at start (nil without
	// one: the one pair of secrets of Params applies, see users()).
	AccessFile string
	Users      []knock.User
	// OneTime (--one-time) accepts only one-time sequences, each once.
	OneTime bool
	// SPA are the flags of single-packet authorization (flags_spa.go).
	SPA spaConfig
	// LockDir (--lock-dir) holds the lock of the table (lock.go);
	// StateDir (--state-dir) the file of the used one-time sequences, with
	// --one-time ("" for none: the table's set alone keeps them).
	LockDir  string
	StateDir string
	// MetricsFile (--metrics-file) receives the counters in the
	// Prometheus text format (metrics.go); "" for none.
	MetricsFile string
	// OnEvent (--on-event) is run on each open, close, revoke, replay and
	// repair (hooks.go); "" for none.
	OnEvent string
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
	maxTimeout = 600 * time.Second // -t, as the C daemon
	maxQueues  = 64                // --queues
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
		MaxQueueLen: queue.DefaultMaxLen,
		Table:       "nfqknock",
		LockDir:     defaultLockDir,
		StateDir:    defaultStateDir,
		SPA:         spaConfig{Window: defaultSPAWindow},
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

// trackerConfig returns the configuration of the knock tracker, with the
// users of the start: the daemon makes its trackers before any reload.
func (c *config) trackerConfig() knock.TrackerConfig {
	return knock.TrackerConfig{
		Params: c.Params, Timeout: c.Timeout, MaxSources: c.MaxSources, Admit: !c.QueueAll,
		Users: c.users(), OneTime: c.OneTime,
	}
}

// style words the usage errors of nfqknockd: printed as one line
// "nfqknockd: FLAG VALUE: REASON", exit status 2.
var style = cli.Style{Safe: cli.ShellSafe}

// duration returns a flag value for a Go duration of at least min; whole
// seconds when whole is set.
func duration(d *time.Duration, min time.Duration, whole bool) *cli.DurationValue {
	return &cli.DurationValue{D: d, Min: min, Whole: whole, Hint: "90s, 10m or 1h"}
}

// The flag values of nfqknockd alone; the shared ones are in package cli.
// Each parses and checks its own text in Set, so that pflag reports the
// reason; raw keeps the text for later checks that involve several flags.

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

// tableValue is a table name that nft.ValidTableName accepts, the one
// check of table names; its error is the reason.
type tableValue struct{ s *string }

func (v *tableValue) Set(s string) error {
	if err := nft.ValidTableName(s); err != nil {
		return err
	}
	*v.s = s
	return nil
}
func (v *tableValue) String() string { return *v.s }
func (v *tableValue) Type() string   { return "name" }

// flagValues are the values that later checks need to look at.
type flagValues struct {
	start, end              *cli.PortValue
	rng                     *cli.RangeValue
	queue, queues           *uintValue
	period, grace, openTime *cli.DurationValue
	at                      *cli.AtValue
	spaWindow               *cli.DurationValue
	copyBack                func() // stores the numbers parsed into the config
}

// newFlagSet defines every flag on a fresh set, bound to c.
func newFlagSet(c *config) (*pflag.FlagSet, *flagValues) {
	fs := pflag.NewFlagSet("nfqknockd", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.SortFlags = false
	v := &flagValues{
		start:    &cli.PortValue{P: &c.Params.Range.Start},
		end:      &cli.PortValue{P: &c.Params.Range.End},
		rng:      &cli.RangeValue{R: &c.Params.Range},
		period:   duration(&c.Params.Period, time.Second, true),
		grace:    duration(&c.Params.Grace, 0, false),
		openTime: duration(&c.OpenTimeout, 0, false),
		at:       &cli.AtValue{T: &c.At},
	}
	queue, queues, maxLen, maxSrc := uint64(c.Queue), uint64(c.Queues), uint64(c.MaxQueueLen), uint64(c.MaxSources)
	v.queue = &uintValue{n: &queue, min: 0, max: 65535}
	v.queues = &uintValue{n: &queues, min: 1, max: maxQueues}
	maxLenV := &uintValue{n: &maxLen, min: 1, max: 1<<32 - 1}
	maxSrcV := &uintValue{n: &maxSrc, min: 1, max: knock.MaxSourcesLimit}

	cli.BoolFlag(fs, &c.Help, "help", "h", "print this help and exit")
	cli.BoolFlag(fs, &c.Version, "version", "", "print the version and exit")
	cli.BoolFlag(fs, &c.Show, "show", "s", "print the current OPEN: and CLOSE: port sequences (for scripts) and exit")
	fs.Var(v.at, "at", "with -s: show the sequences at `TIME` instead of now: RFC 3339 or Unix seconds (default: now)")

	fs.VarP(&portsValue{p: &c.Guard}, "guard", "p", "guard TCP `PORT`s: only sources that knocked may connect; repeatable, or a comma list such as 22,443 (default: none)")
	fs.VarP(&portsValue{p: &c.Opened}, "open-port", "P", "never guard TCP `PORT`s, even when given with --guard; repeatable, or a comma list (default: none)")
	fs.Var(&allowValue{p: &c.Allow}, "allow", "never guard sources in `CIDR` (repeatable, or a comma list), e.g. a management network or VPN: 10.8.0.0/16,fd00:8::/48 (default: none)")
	fs.VarP(v.start, "start", "a", "first `PORT` of the knock range")
	fs.VarP(v.end, "end", "b", "last `PORT` of the knock range")
	fs.Var(v.rng, "range", "knock range `START-END`, instead of -a and -b")
	fs.VarP(&cli.DigestValue{D: &c.Params.Digest}, "digest", "d", "`DIGEST` of the sequences: md5, sha256, sha384 or sha512 (8, 16, 24 or 32 ports)")
	fs.VarP(&cli.SecretValue{S: &c.Params.OpenSecret}, "open-secret", "o", "open `SECRET` (default: the C daemon's public default)")
	fs.VarP(&cli.SecretValue{S: &c.Params.CloseSecret}, "close-secret", "c", "close `SECRET` (default: the C daemon's public default)")
	fs.StringVar(&c.SecretFile, "secret-file", "", "read the secrets from `FILE`: lines open=SECRET and close=SECRET, mode 0600; -o/-c win over it. Without it and -o/-c, the systemd credential "+credentialName+" in $CREDENTIALS_DIRECTORY is read when set (default: none)")
	fs.StringVar(&c.AccessFile, "access-file", "", "read the users from `FILE` instead: sections [NAME] with open=, close= and optional ports= (default: every guarded port), mode 0600; not with -o, -c or --secret-file. Without it and those flags, the systemd credential "+accessCredential+" is read when present (default: none)")
	cli.BoolFlag(fs, &c.OneTime, "one-time", "", fmt.Sprintf("accept only one-time sequences (nfqknock --one-time): each client picks one of %d per secret and period, and each opens or closes once; a reuse is logged as a replay", knock.OneTimeNonces))
	v.spaWindow = spaFlags(fs, &c.SPA)
	fs.VarP(&timeoutValue{d: &c.Timeout}, "timeout", "t", "longest gap between two knocks: `SECONDS` 1..600, or a duration such as 10s")
	fs.Var(v.period, "period", "the sequences change every `DURATION` (whole seconds), at multiples of it since 1970-01-01 UTC")
	fs.Var(v.grace, "grace", "accept the previous (next) period's sequences this `DURATION` after (before) a change; below half the period")
	cli.BoolFlag(fs, &c.Params.LocalHour, "local-hour", "", "periods are hours of the local time zone, as in the C daemon (differs from UTC in half-hour zones); needs --period 1h")
	fs.Var(v.openTime, "open-timeout", "a source that knocked stays allowed for `DURATION`; 0 means until it knocks the close sequence")
	fs.Var(maxSrcV, "max-sources", fmt.Sprintf("track at most `N` knocking sources (1..%d); the least recently seen is forgotten", knock.MaxSourcesLimit))
	fs.VarP(v.queue, "queue", "q", "netfilter queue `NUMBER` 0..65535")
	fs.Var(v.queues, "queues", fmt.Sprintf("use `N` queues (1..%d) from --queue on, one reader each; the kernel sends each source to one of them by address hash", maxQueues))
	fs.VarP(maxLenV, "max-queue-len", "m", "netfilter queue length in packets (`N` >= 1)")
	fs.Var(&tableValue{s: &c.Table}, "table", "`NAME` of the nftables inet table: 1..255 letters, digits, '_', '-' and '.', starting with a letter or '_'")
	cli.BoolFlag(fs, &c.Foreground, "foreground", "f", "accepted for compatibility: nfqknockd always runs in the foreground")
	cli.BoolFlag(fs, &c.IPTables, "iptables", "i", "accepted for compatibility: nfqknockd always manages its own nftables table")
	cli.BoolFlag(fs, &c.QueueAll, "queue-all", "", "queue every new connection to the knock range to the daemon, as the C daemon did; by default the kernel queues only sources that knocked the first port of a valid sequence")
	fs.Var(&dirValue{s: &c.LockDir}, "lock-dir", "hold the lock that keeps a second nfqknockd off the table in `DIR`, a directory only root or the daemon's user can write in (made 0700 when missing; the unit's RuntimeDirectory)")
	fs.Var(&dirValue{s: &c.StateDir, none: true}, "state-dir", "with --one-time, keep the used one-time sequences in `DIR`/TABLE.spent, so that a stop and a start or a reboot does not make them usable again: a directory only root or the daemon's user can write in (made 0700 when missing; the unit's StateDirectory); \"\" keeps them in the table only, which a stop or a reboot loses")
	fs.Var(&hookValue{s: &c.OnEvent}, "on-event", "run `PROGRAM` (an absolute path that only root or the daemon's user may change) on each open, close, revoke, replay and repair, without capabilities, at most 10s, the event in NFQKNOCK_* variables; never waits: events are dropped when it falls behind (default: none)")
	fs.Var(&metricsFileValue{s: &c.MetricsFile}, "metrics-file", "write the counters to `FILE` every 10s and at exit, in the Prometheus text format, for node_exporter's textfile collector: name it *.prom, in a directory the collector reads (default: none)")
	cli.BoolFlag(fs, &c.Verbose, "verbose", "v", "log the source of every knock (never its port: the ports are the sequence)")

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
       nfqknockd check [flags]
       nfqknockd status [--json] [--table NAME] [--lock-dir DIR]
       nfqknockd revoke ADDR | --user NAME [--json] [--table NAME] [--lock-dir DIR]

nfqknockd guards TCP ports until a client knocks a secret sequence of ports.
The sequences change every period (an hour by default) and are the C
nfqknockd's: the same flags, the same sequences.

check reads the flags, the secrets and the access file as a start would,
prints the settings of the start line and every warning, and exits 0, or 2
with one line naming what is wrong. It touches neither the kernel nor a file.

status asks the running daemon (root or its user only) for the opened
sources, the knocking count, the table and the counters; revoke closes a
source, or what a user opened, at once. Both talk to the control socket
next to the lock in --lock-dir; with no daemon, status shows what a table
left behind holds.

Flags:
`)
	b.WriteString(fs.FlagUsagesWrapped(0))
	b.WriteString(`
Signals:
  SIGINT, SIGTERM  stop: delete the nftables table and exit
  SIGQUIT          restart: exit 0 and leave the table guarding, with the
                   opened sources, for the next daemon to take over
  SIGHUP           reload: re-read the secrets (--secret-file, --access-file
                   or the systemd credential); a bad file changes nothing;
                   the sources opened by a removed user are closed
  SIGUSR1          log the opened sources
  SIGUSR2          log the knocking sources

Examples:
  nfqknockd -p 22 --secret-file /etc/nfqknockd/secrets -d sha256
      guard sshd; knock the sequences that -s prints (the file holds
      open = ... and close = ..., mode 0600: see
      /etc/nfqknockd/secrets.example)
  nfqknockd --secret-file /etc/nfqknockd/secrets -d sha256 -s
      print the current sequences as OPEN: ... and CLOSE: ... lines
`)
	return b.String()
}

// parseFlags parses the command line. Its errors are *cli.UsageError.
func parseFlags(args []string) (*config, error) {
	c := defaultConfig()
	fs, v := newFlagSet(c)
	if err := fs.Parse(args); err != nil {
		return nil, style.Translate(err)
	}
	v.copyBack()
	if c.Help || c.Version {
		return c, nil
	}
	if fs.NArg() > 0 {
		return nil, cli.Usagef("%s: unexpected argument (nfqknockd takes flags only)", style.Quote(fs.Arg(0)))
	}
	if err := check(c, fs, v); err != nil {
		return nil, err
	}
	return c, nil
}

// check validates what involves several flags.
func check(c *config, fs *pflag.FlagSet, v *flagValues) error {
	if err := style.CheckRange(fs, v.start, v.end, v.rng); err != nil {
		return err
	}
	if c.Params.Grace >= c.Params.Period/2 && c.Show && !fs.Changed("grace") {
		c.Params.Grace = 0 // -s does not use the grace: a short --period alone is fine
	}
	if c.Params.Grace >= c.Params.Period/2 {
		if fs.Changed("grace") {
			return style.BadFlag("grace", v.grace.Raw, fmt.Sprintf("must be below half the period (%v)", c.Params.Period/2))
		}
		return style.BadFlag("period", v.period.Raw, fmt.Sprintf("must be more than twice the grace (%v): give a shorter --grace", c.Params.Grace))
	}
	if c.Params.LocalHour {
		if c.Params.Period != time.Hour {
			return style.BadFlag("period", v.period.Raw, "--local-hour needs a period of 1h")
		}
		c.Params.Location = time.Local
	}
	if int(c.Queue)+int(c.Queues)-1 > 65535 {
		return style.BadFlag("queues", v.queues.raw, fmt.Sprintf("queues %d..%d go past 65535", c.Queue, int(c.Queue)+int(c.Queues)-1))
	}
	if err := checkSPA(c, fs, v.spaWindow); err != nil {
		return err
	}
	if fs.Changed("at") && !c.Show {
		return style.BadFlag("at", v.at.Raw, "only meaningful with -s (--show)")
	}
	if !c.Show && len(c.Guard) == 0 {
		return &cli.UsageError{Msg: "--guard: no port to guard: give at least one, for example -p 22"}
	}
	slices.Sort(c.Guard)
	c.Guard = slices.Compact(c.Guard)
	slices.Sort(c.Opened)
	c.Opened = slices.Compact(c.Opened)
	allow, err := nft.NormalizeAllow(c.Allow)
	if err != nil {
		return fmt.Errorf("--allow: %w", err) // parseAllow refused them already
	}
	c.Allow = allow
	if fs.Changed("secret-file") && c.SecretFile == "" {
		return style.BadFlag("secret-file", "", "file name is empty")
	}
	if err := loadAccess(c, fs, os.Getenv); err != nil {
		return err
	}
	if c.Users == nil {
		if err := loadSecrets(c, fs, os.Getenv); err != nil {
			return err
		}
	}
	if err := c.Params.Validate(); err != nil { // should not happen after the checks above
		return &cli.UsageError{Msg: "command line: " + err.Error()}
	}
	return nil
}
