package main

// The secrets in force: the one part of the daemon's configuration that
// changes while it runs. The config (config.go) is what the command line
// and the files said at start, and nothing writes it after parseFlags; a
// reload (SIGHUP) re-reads the secrets and puts a new liveSecrets in force
// in place of the old (service.live), whole.

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/nfqknockd/nfqknockd/knock"
)

// liveSecrets are secrets in force: the users whose sequences open and
// where their secrets came from. config.startSecrets makes the first from
// the config; each reload that reads a good file makes the next with
// withUsers. A value is never changed once made, so that a reader takes
// the one in force with a single service.secrets() and needs no lock.
type liveSecrets struct {
	// users are the users whose sequences open, never empty: those of the
	// access file, or one nameless user with the one pair of secrets.
	users []knock.User
	// openFrom and closeFrom say where each secret came from (see
	// loadSecrets); both are the access file's source with one. A reload
	// re-reads the same source: they never change.
	openFrom, closeFrom secretSource
	// file is the file the sources name in the log: the --access-file
	// path with an access file, else the --secret-file path.
	file string
}

// startSecrets returns the secrets the command line and the files gave at
// start: the first in force.
func (c *config) startSecrets() *liveSecrets {
	s := &liveSecrets{users: c.users(), openFrom: c.OpenFrom, closeFrom: c.CloseFrom, file: c.SecretFile}
	if c.OpenFrom.isAccess() {
		s.file = c.AccessFile
	}
	return s
}

// withUsers returns the secrets of a reload: users, from the sources of s.
func (s *liveSecrets) withUsers(users []knock.User) *liveSecrets {
	n := *s
	n.users = users
	return &n
}

// from says where the secrets came from, for the start and reload lines:
// one phrase when both came from the same place ("--secret-file
// /etc/nfqknockd/secrets"), else "open: SOURCE, close: SOURCE".
func (s *liveSecrets) from() string {
	if s.openFrom.isAccess() {
		return s.accessSummary()
	}
	if s.openFrom == s.closeFrom {
		return s.openFrom.describe(s.file)
	}
	one := func(src secretSource) string {
		if src == fromDefault {
			return "the C daemon's public default"
		}
		return src.describe(s.file)
	}
	return "open: " + one(s.openFrom) + ", close: " + one(s.closeFrom)
}

// accessSummary describes the users for the start line: "--access-file
// /etc/nfqknockd/access (2 users: alice, bob)".
func (s *liveSecrets) accessSummary() string {
	names := make([]string, len(s.users))
	for i, u := range s.users {
		names[i] = u.Name
	}
	return fmt.Sprintf("%s (%d users: %s)", s.openFrom.describe(s.file), len(s.users), strings.Join(names, ", "))
}

// minSecretLen is the length in characters under which a secret gets a
// warning at start.
const minSecretLen = 12

// placeholder begins the secrets of packaging/secrets.example
// (CHANGE-ME-open-secret, CHANGE-ME-close-secret), which an admin may
// uncomment without changing them.
const placeholder = "CHANGE-ME"

// isPlaceholder reports whether s is a placeholder of the example file, or
// begins like one (in any case).
func isPlaceholder(s string) bool {
	return len(s) >= len(placeholder) && strings.EqualFold(s[:len(placeholder)], placeholder)
}

// startWarnings returns what the daemon should warn about at start and
// after a reload, one line each: the secrets in force s
// (liveSecrets.warnings), and a knock range so narrow that the sequences
// can be swept. No warning shows a secret or a port of a sequence.
func (c *config) startWarnings(s *liveSecrets) []string {
	w := s.warnings()
	if msg := knock.RangeWarning(c.Params.Range, c.Params.Digest); msg != "" {
		w = append(w, msg)
	} else if msg := knock.TeamWarning(c.Params.Range, c.Params.Digest, len(s.users), c.OneTime); msg != "" {
		w = append(w, msg)
	}
	return w
}

// warnings returns the warnings about the secrets, one line each: the
// public default secrets, secrets on the command line, and an explicit
// secret that is short, the example file's placeholder or a public
// default.
func (s *liveSecrets) warnings() []string {
	var w []string
	switch {
	case s.openFrom == fromDefault && s.closeFrom == fromDefault:
		w = append(w, "the secrets are the C daemon's public defaults: anyone can compute the sequences; give --secret-file")
	case s.openFrom == fromArgv && s.closeFrom == fromArgv:
		w = append(w, "secrets on the command line can be read by every local user (/proc/PID/cmdline); prefer --secret-file or the systemd credential "+credentialName)
	case s.openFrom == fromArgv || s.closeFrom == fromArgv:
		name := "open"
		if s.closeFrom == fromArgv {
			name = "close"
		}
		w = append(w, "the "+name+" secret on the command line can be read by every local user (/proc/PID/cmdline); prefer --secret-file or the systemd credential "+credentialName)
	}
	for _, u := range s.users {
		w = append(w, s.secretWarnings(u)...)
	}
	return w
}

// secretWarnings returns the warnings about the secrets of user u (the
// one nameless user without an access file): the example file's
// placeholder, a public default, or a short secret.
func (s *liveSecrets) secretWarnings(u knock.User) []string {
	var w []string
	for _, sec := range []struct {
		name, secret string
		from         secretSource
	}{
		{"open", u.OpenSecret, s.openFrom},
		{"close", u.CloseSecret, s.closeFrom},
	} {
		if sec.from == fromDefault {
			continue
		}
		what := fmt.Sprintf("the %s secret (from %s)", sec.name, sec.from.describe(s.file))
		if u.Name != "" {
			what = fmt.Sprintf("the %s secret of user %s (from %s)", sec.name, u.Name, sec.from.describe(s.file))
		}
		const fix = "set a long random one, e.g. from `head -c 24 /dev/urandom | base64`"
		switch {
		case isPlaceholder(sec.secret):
			w = append(w, what+" is the placeholder of the example secrets file: anyone who read it can compute the sequences; "+fix)
		case sec.secret == knock.DefaultOpenSecret || sec.secret == knock.DefaultCloseSecret:
			w = append(w, what+" is a public default of the C daemon: anyone can compute the sequences; "+fix)
		case utf8.RuneCountInString(sec.secret) < minSecretLen:
			w = append(w, fmt.Sprintf("%s is shorter than %d characters: it may be guessed, and the sequences with it; %s", what, minSecretLen, fix))
		}
	}
	return w
}
