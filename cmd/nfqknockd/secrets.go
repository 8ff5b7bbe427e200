package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/nfqknockd/nfqknockd/cmd/internal/cli"
	"github.com/nfqknockd/nfqknockd/knock"
)

// credentialName is the systemd credential that holds the secrets
// (LoadCredential=nfqknockd.secrets:/etc/nfqknockd/secrets).
const credentialName = "nfqknockd.secrets"

// secretSource says where one secret came from, for the start log line
// (never the secret itself). config.OpenFrom and config.CloseFrom hold one
// each, and so do liveSecrets.openFrom and closeFrom; liveSecrets.from
// renders them.
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
			c.startSecrets().from(), credentialName)
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
