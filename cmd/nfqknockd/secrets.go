package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/spf13/pflag"

	"github.com/nfqknockd/nfqknockd/cmd/internal/cli"
	"github.com/nfqknockd/nfqknockd/knock"
)

// credentialName is the systemd credential that holds the secrets
// (LoadCredential=nfqknockd.secrets:/etc/nfqknockd/secrets).
const credentialName = "nfqknockd.secrets"

// secretSource says where one secret came from, for the start log line
// (never the secret itself). config.OpenFrom and config.CloseFrom hold one
// each; config.secretsFrom renders them.
type secretSource string

const (
	fromDefault    secretSource = "the C daemon's public defaults"
	fromArgv       secretSource = "the command line"
	fromFile       secretSource = "--secret-file"
	fromCredential secretSource = "the systemd credential " + credentialName
)

// isFile reports whether the secret came from a file (--secret-file or the
// credential), which SIGHUP re-reads.
func (s secretSource) isFile() bool { return s == fromFile || s == fromCredential }

// describe returns s for a log line; file is the --secret-file path.
func (s secretSource) describe(file string) string {
	if s == fromFile || s == fromAccessFile {
		return string(s) + " " + style.Quote(file)
	}
	return string(s)
}

// secretsFrom says where the secrets came from, for the start line: one
// phrase when both came from the same place ("--secret-file
// /etc/nfqknockd/secrets"), else "open: SOURCE, close: SOURCE".
func (c *config) secretsFrom() string {
	if c.OpenFrom.isAccess() {
		return c.accessSummary()
	}
	if c.OpenFrom == c.CloseFrom {
		return c.OpenFrom.describe(c.SecretFile)
	}
	one := func(s secretSource) string {
		if s == fromDefault {
			return "the C daemon's public default"
		}
		return s.describe(c.SecretFile)
	}
	return "open: " + one(c.OpenFrom) + ", close: " + one(c.CloseFrom)
}

// secretFile is the file that gives the secrets -o/-c do not: its source,
// the flag or variable that names it in errors, and its path.
type secretFile struct {
	src  secretSource
	what string // "--secret-file" or "$CREDENTIALS_DIRECTORY"
	name string
}

// loadSecrets fills the secrets that -o/-c did not give: from --secret-file
// when given, else from the systemd credential when $CREDENTIALS_DIRECTORY
// is set, else the C daemon's public defaults stay. It sets OpenFrom and
// CloseFrom, and refuses one secret without the other (the missing one
// would be a public default) and two equal secrets (checkSecrets).
func loadSecrets(c *config, fs *pflag.FlagSet, getenv func(string) string) error {
	c.OpenFrom, c.CloseFrom = fromDefault, fromDefault
	if fs.Changed("open-secret") {
		c.OpenFrom = fromArgv
	}
	if fs.Changed("close-secret") {
		c.CloseFrom = fromArgv
	}
	var file *secretFile
	switch dir := getenv("CREDENTIALS_DIRECTORY"); {
	case c.SecretFile != "":
		file = &secretFile{fromFile, "--secret-file", c.SecretFile}
	case dir != "" && (c.OpenFrom != fromArgv || c.CloseFrom != fromArgv):
		file = &secretFile{fromCredential, "$CREDENTIALS_DIRECTORY", filepath.Join(dir, credentialName)}
	}
	if file != nil {
		if err := c.readSecretFile(file); err != nil {
			return err
		}
	}
	return c.checkSecrets(file)
}

// readSecretFile reads f and takes from it the secrets that are still the
// defaults. Its errors name the file, never a secret.
func (c *config) readSecretFile(f *secretFile) error {
	read := cli.ReadSecretFile
	if f.src == fromCredential {
		read = cli.ReadCredentialFile // systemd 257 and later: mode 0440
	}
	open, close, err := read(f.name)
	if err != nil {
		return style.Bad(f.what, f.name, err.Error())
	}
	if c.OpenFrom == fromDefault && open != "" {
		c.Params.OpenSecret, c.OpenFrom = open, f.src
	}
	if c.CloseFrom == fromDefault && close != "" {
		c.Params.CloseSecret, c.CloseFrom = close, f.src
	}
	return nil
}

// Why a secret may not be left to its public default when the other is
// given.
const (
	whyOpen  = "give both (with the C daemon's public default open secret, anyone could open the guarded ports)"
	whyClose = "give both (with the C daemon's public default close secret, anyone could close the sources you open)"
	whyEqual = "give two different secrets (the open and close sequences would be the same)"
)

// checkSecrets checks the secrets and their sources: both come from the
// defaults, or both from explicit sources (flags, file); and they differ.
// file is the file that was read, or nil.
func (c *config) checkSecrets(file *secretFile) error {
	openDef, closeDef := c.OpenFrom == fromDefault, c.CloseFrom == fromDefault
	switch {
	case file != nil && openDef && closeDef:
		return style.Bad(file.what, file.name, "no open= and no close= line: give both secrets")
	case file != nil && openDef:
		return style.Bad(file.what, file.name, "no open= line and no --open-secret: "+whyOpen)
	case file != nil && closeDef:
		return style.Bad(file.what, file.name, "no close= line and no --close-secret: "+whyClose)
	case openDef && !closeDef:
		return &cli.UsageError{Msg: "--close-secret: given without --open-secret: " + whyOpen}
	case closeDef && !openDef:
		return &cli.UsageError{Msg: "--open-secret: given without --close-secret: " + whyClose}
	case c.Params.OpenSecret != c.Params.CloseSecret:
		return nil
	case c.OpenFrom == fromArgv && c.CloseFrom == fromArgv:
		return &cli.UsageError{Msg: "--close-secret: same as --open-secret: " + whyEqual}
	case c.OpenFrom == c.CloseFrom:
		return style.Bad(file.what, file.name, "open= and close= hold the same secret: "+whyEqual)
	case c.CloseFrom == fromArgv:
		return style.Bad(file.what, file.name, "open= holds the same secret as --close-secret: "+whyEqual)
	default:
		return style.Bad(file.what, file.name, "close= holds the same secret as --open-secret: "+whyEqual)
	}
}

// reloadSecrets re-reads, for SIGHUP, the secrets that came from a file at
// start (--secret-file, or the systemd credential in
// $CREDENTIALS_DIRECTORY): a secret from the command line stays. It applies
// the checks of the start (the file's mode, both secrets, two different
// ones) and changes nothing in c: the caller applies open and close. Its
// errors are one line that names the file, never a secret.
func (c *config) reloadSecrets(getenv func(string) string) (open, close string, err error) {
	var file *secretFile
	switch {
	case c.OpenFrom == fromFile || c.CloseFrom == fromFile:
		file = &secretFile{fromFile, "--secret-file", c.SecretFile}
	case c.OpenFrom == fromCredential || c.CloseFrom == fromCredential:
		dir := getenv("CREDENTIALS_DIRECTORY")
		if dir == "" {
			return "", "", errors.New("$CREDENTIALS_DIRECTORY is not set: cannot re-read the systemd credential " + credentialName)
		}
		file = &secretFile{fromCredential, "$CREDENTIALS_DIRECTORY", filepath.Join(dir, credentialName)}
	default:
		return "", "", fmt.Errorf("nothing to reload: the secrets come from %s; only --secret-file or the systemd credential %s is re-read",
			c.secretsFrom(), credentialName)
	}
	n := *c
	if n.OpenFrom.isFile() {
		n.Params.OpenSecret, n.OpenFrom = knock.DefaultOpenSecret, fromDefault
	}
	if n.CloseFrom.isFile() {
		n.Params.CloseSecret, n.CloseFrom = knock.DefaultCloseSecret, fromDefault
	}
	if err := n.readSecretFile(file); err != nil {
		return "", "", err
	}
	if err := n.checkSecrets(file); err != nil {
		return "", "", err
	}
	return n.Params.OpenSecret, n.Params.CloseSecret, nil
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

// startWarnings returns what the daemon should warn about at start (and
// after a reload), one line each: the public default secrets, secrets on
// the command line, an explicit secret that is short, the example file's
// placeholder or a public default, and a knock range so narrow that the
// sequences can be swept. No warning shows a secret or a port of a
// sequence.
func (c *config) startWarnings() []string {
	var w []string
	switch {
	case c.OpenFrom == fromDefault && c.CloseFrom == fromDefault:
		w = append(w, "the secrets are the C daemon's public defaults: anyone can compute the sequences; give --secret-file")
	case c.OpenFrom == fromArgv && c.CloseFrom == fromArgv:
		w = append(w, "secrets on the command line can be read by every local user (/proc/PID/cmdline); prefer --secret-file or the systemd credential "+credentialName)
	case c.OpenFrom == fromArgv || c.CloseFrom == fromArgv:
		name := "open"
		if c.CloseFrom == fromArgv {
			name = "close"
		}
		w = append(w, "the "+name+" secret on the command line can be read by every local user (/proc/PID/cmdline); prefer --secret-file or the systemd credential "+credentialName)
	}
	for _, u := range c.users() {
		w = append(w, c.secretWarnings(u)...)
	}
	if msg := knock.RangeWarning(c.Params.Range, c.Params.Digest); msg != "" {
		w = append(w, msg)
	} else if msg := knock.TeamWarning(c.Params.Range, c.Params.Digest, len(c.users()), c.OneTime); msg != "" {
		w = append(w, msg)
	}
	return w
}

// secretWarnings returns the warnings about the secrets of user u (the
// one nameless user without an access file): the example file's
// placeholder, a public default, or a short secret.
func (c *config) secretWarnings(u knock.User) []string {
	var w []string
	for _, s := range []struct {
		name, secret string
		from         secretSource
	}{
		{"open", u.OpenSecret, c.OpenFrom},
		{"close", u.CloseSecret, c.CloseFrom},
	} {
		if s.from == fromDefault {
			continue
		}
		what := fmt.Sprintf("the %s secret (from %s)", s.name, s.from.describe(c.SecretFile))
		if u.Name != "" {
			what = fmt.Sprintf("the %s secret of user %s (from %s)", s.name, u.Name, s.from.describe(c.AccessFile))
		}
		const fix = "set a long random one, e.g. from `head -c 24 /dev/urandom | base64`"
		switch {
		case isPlaceholder(s.secret):
			w = append(w, what+" is the placeholder of the example secrets file: anyone who read it can compute the sequences; "+fix)
		case s.secret == knock.DefaultOpenSecret || s.secret == knock.DefaultCloseSecret:
			w = append(w, what+" is a public default of the C daemon: anyone can compute the sequences; "+fix)
		case utf8.RuneCountInString(s.secret) < minSecretLen:
			w = append(w, fmt.Sprintf("%s is shorter than %d characters: it may be guessed, and the sequences with it; %s", what, minSecretLen, fix))
		}
	}
	return w
}
