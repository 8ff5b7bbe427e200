package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/nfqknockd/nfqknockd/cmd/internal/cli"
	"github.com/nfqknockd/nfqknockd/knock"
)

// The client config: one section per host, so that a ProxyCommand needs no
// flags.
//
//	# comment
//	[*]                      # every host
//	digest = sha256
//	[server.example.org]     # the host as given on the command line (ssh's %h)
//	range = 10000-60000
//	secret-file = ~/.config/nfqknock/work-secrets
//	one-time = yes
//
// A key is the long name of a flag; a host's section wins over [*], and
// the command line over both.

// maxConfig bounds the size of the config file.
const maxConfig = 64 << 10

// configKeys are the flags that a section may set: those that belong to a
// host. Secrets do not belong in a config (secret-file does), nor do
// --at, -a and -b (range does).
var configKeys = []string{"digest", "range", "period", "local-hour", "secret-file", "one-time",
	"ipv4", "ipv6", "gap", "knock-timeout", "connect-timeout", "spa", "spa-ports", "spa-duration", "spa-address"}

// boolKeys are the keys that take yes or no.
var boolKeys = []string{"local-hour", "one-time", "ipv4", "ipv6"}

// group returns the group of a config key or flag name: a key of the
// config gives way to any flag of its group on the command line, and a
// host's section replaces the whole group of [*].
func group(name string) string {
	switch name {
	case "start", "end", "range":
		return "range"
	case "ipv4", "ipv6":
		return "family"
	}
	return name
}

// setting is one "key = value" line of the config.
type setting struct {
	key, value string
	line       int
}

// section is one [HOST] or [*] of the config and its settings, in order.
type section struct {
	host     string // "*" for every host
	line     int
	settings []setting
}

// clientConfig is a parsed config file.
type clientConfig struct {
	path     string // the file, for the messages
	sections []section
}

// configError is bad input in the config file: "FILE: line N: WHAT".
func configError(path string, err error) *cli.UsageError {
	return &cli.UsageError{Msg: path + ": " + err.Error()}
}

// loadConfig reads the config file path. A missing file is no error when
// the file was not named (mustExist false): the result is then an empty
// config. Its errors are *cli.UsageError: bad input, exit status 2.
func loadConfig(path string, mustExist bool) (*clientConfig, error) {
	c := &clientConfig{path: path}
	bad := func(err error) error {
		if mustExist {
			return style.Bad("--config", path, pathReason(err))
		}
		return configError(path, errors.New(pathReason(err)))
	}
	f, err := os.Open(path)
	if err != nil {
		if !mustExist && errors.Is(err, fs.ErrNotExist) {
			return c, nil
		}
		return nil, bad(err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfig+1))
	if err != nil {
		return nil, bad(err)
	}
	if c.sections, err = parseConfig(bytes.NewReader(b)); err != nil {
		return nil, configError(path, err)
	}
	return c, nil
}

// pathReason returns the reason of an *fs.PathError without the operation
// and the path, which the message names already.
func pathReason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// parseConfig parses a config file and checks each value as its flag
// would. A "#" at the start of a line or after a space or tab starts a
// comment. Errors are one line, "line N: what is wrong".
func parseConfig(r io.Reader) ([]section, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxConfig+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxConfig {
		return nil, fmt.Errorf("longer than %d KiB", maxConfig>>10)
	}
	if b, err = knock.Text(b); err != nil {
		return nil, err
	}
	var sections []section
	var cur *section
	for i, raw := range strings.Split(string(b), "\n") {
		n := i + 1
		line := strings.TrimSpace(stripComment(raw))
		switch {
		case line == "":
		case strings.HasPrefix(line, "["):
			s, err := parseHeader(line, n, sections)
			if err != nil {
				return nil, err
			}
			sections = append(sections, s)
			cur = &sections[len(sections)-1]
		default:
			s, err := parseSetting(line, n, cur)
			if err != nil {
				return nil, err
			}
			cur.settings = append(cur.settings, s)
		}
	}
	return sections, nil
}

// stripComment cuts line at a "#" that starts the line or follows a space
// or tab.
func stripComment(line string) string {
	for i := 0; i < len(line); i++ {
		if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			return line[:i]
		}
	}
	return line
}

// parseHeader parses the section header "[HOST]" or "[*]" on line n.
func parseHeader(line string, n int, before []section) (section, error) {
	name, ok := strings.CutSuffix(line[1:], "]")
	name = strings.TrimSpace(name)
	if !ok || strings.ContainsAny(name, "[] \t") || !printable(name) {
		return section{}, fmt.Errorf("line %d: want [HOST] or [*]", n)
	}
	if name == "" {
		return section{}, fmt.Errorf("line %d: empty host in []", n)
	}
	for _, s := range before {
		if strings.EqualFold(s.host, name) {
			return section{}, fmt.Errorf("line %d: second section [%s] (the first is at line %d)", n, name, s.line)
		}
	}
	return section{host: name, line: n}, nil
}

// parseSetting parses "key = value" on line n of the section cur (nil
// before the first header) and checks the value.
func parseSetting(line string, n int, cur *section) (setting, error) {
	key, value, ok := strings.Cut(line, "=")
	if !ok {
		return setting{}, fmt.Errorf("line %d: want KEY = VALUE or [HOST]", n)
	}
	s := setting{key: strings.TrimSpace(key), value: strings.TrimSpace(value), line: n}
	if !slices.Contains(configKeys, s.key) {
		return setting{}, fmt.Errorf("line %d: unknown key %q", n, s.key)
	}
	if cur == nil {
		return setting{}, fmt.Errorf("line %d: %s outside a section: begin with [HOST] or [*]", n, s.key)
	}
	if s.value == "" {
		return setting{}, fmt.Errorf("line %d: %s: empty value", n, s.key)
	}
	for _, o := range cur.settings {
		if o.key == s.key {
			return setting{}, fmt.Errorf("line %d: second %s in [%s] (the first is at line %d)", n, s.key, cur.host, o.line)
		}
		if group(o.key) == "family" && group(s.key) == "family" && isYes(o.value) && isYes(s.value) {
			return setting{}, fmt.Errorf("line %d: %s: conflicts with %s at line %d: give either", n, s.key, o.key, o.line)
		}
	}
	if err := checkValue(s); err != nil {
		return setting{}, fmt.Errorf("line %d: %w", n, err)
	}
	return s, nil
}

// printable reports whether s holds no control characters, so that it can
// be shown in a message.
func printable(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f })
}

// isYes reports whether a yes-or-no value says yes.
func isYes(v string) bool {
	b, err := parseYes(v)
	return err == nil && b
}

// parseYes parses a value of a boolKey: yes, no, true, false, on, off, 1
// or 0, any case.
func parseYes(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "yes", "true", "on", "1":
		return true, nil
	case "no", "false", "off", "0":
		return false, nil
	}
	return false, errors.New("must be yes or no")
}

// checkValue checks the value of s as its flag would take it, on a flag set
// of its own.
func checkValue(s setting) error {
	if s.key == "secret-file" {
		return nil // a path: its file is checked when it is read
	}
	var o options
	var v flagValues
	return setFlag(newFlagSet(&o, &v), s)
}

// setFlag sets the flag of s on fs. Its error is "KEY VALUE: reason".
func setFlag(fs *pflag.FlagSet, s setting) error {
	value := s.value
	if slices.Contains(boolKeys, s.key) {
		b, err := parseYes(value)
		if err != nil {
			return fmt.Errorf("%s %s: %w", s.key, style.Quote(s.value), err)
		}
		value = fmt.Sprint(b)
	}
	if err := fs.Set(s.key, value); err != nil {
		var inv *pflag.InvalidValueError
		if errors.As(err, &inv) && errors.Unwrap(inv) != nil {
			err = errors.Unwrap(inv) // the reason of the value's Set
		}
		return fmt.Errorf("%s %s: %w", s.key, style.Quote(s.value), err)
	}
	return nil
}

// forHost returns the settings for host: those of [*], each group of which
// a section of the host ("" for none: show) replaces.
func (c *clientConfig) forHost(host string) []setting {
	var all, mine []setting
	for _, s := range c.sections {
		switch {
		case s.host == "*":
			all = s.settings
		case host != "" && strings.EqualFold(s.host, host):
			mine = s.settings
		}
	}
	out := slices.DeleteFunc(slices.Clone(all), func(a setting) bool {
		return slices.ContainsFunc(mine, func(m setting) bool { return group(m.key) == group(a.key) })
	})
	return append(out, mine...)
}

// applyConfig sets, from the settings of the config for o.host, each flag
// that the command line did not give, nor any flag of its group, and
// records where each came from (o.origin). secret-file is kept aside, its
// path resolved relative to the config's directory.
func (o *options) applyConfig(c *clientConfig, fs *pflag.FlagSet, s sys) error {
	for _, st := range c.forHost(o.host) {
		if given := slices.ContainsFunc(configKeys, func(k string) bool { return group(k) == group(st.key) && fs.Changed(k) }) ||
			(group(st.key) == "range" && (fs.Changed("start") || fs.Changed("end"))); given {
			continue
		}
		o.origin[st.key] = st
		if st.key == "secret-file" {
			o.secretFile = s.resolve(st.value, filepath.Dir(c.path))
			continue
		}
		if err := setFlag(fs, st); err != nil {
			return configError(c.path, fmt.Errorf("line %d: %w", st.line, err))
		}
	}
	o.configPath = c.path
	return nil
}

// badValue returns the error for the value raw of flag name: a flag error
// "--NAME RAW: REASON", or, when the config gave the value, "FILE: line N:
// KEY RAW: REASON".
func (o *options) badValue(name, raw, reason string) *cli.UsageError {
	if st, ok := o.origin[name]; ok {
		return configError(o.configPath, fmt.Errorf("line %d: %s %s: %s", st.line, name, style.Quote(raw), reason))
	}
	return style.BadFlag(name, raw, reason)
}
