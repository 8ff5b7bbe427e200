package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nfqknockd/nfqknockd/knock"
	"github.com/spf13/pflag"
)

// credentialName is the systemd credential that holds the secrets
// (LoadCredential=nfqknockd.secrets:/etc/nfqknockd/secrets).
const credentialName = "nfqknockd.secrets"

// secretSource says where the secrets came from, for the start log line
// (never the secrets themselves).
type secretSource string

const (
	fromDefault    secretSource = "the C daemon's public defaults"
	fromArgv       secretSource = "the command line"
	fromFile       secretSource = "--secret-file"
	fromCredential secretSource = "the systemd credential " + credentialName
)

// loadSecrets fills the secrets that -o/-c did not give: from --secret-file
// when given, else from the systemd credential when $CREDENTIALS_DIRECTORY
// is set, else the C daemon's public defaults stay. A secret file must give
// both secrets unless -o/-c give the missing one.
func loadSecrets(c *config, fs *pflag.FlagSet, getenv func(string) string) error {
	openOnArgv, closeOnArgv := fs.Changed("open-secret"), fs.Changed("close-secret")
	c.SecretsFrom = fromDefault
	if openOnArgv || closeOnArgv {
		c.SecretsFrom = fromArgv
	}
	name, flagName := c.SecretFile, "--secret-file"
	src := fromFile
	if name == "" {
		dir := getenv("CREDENTIALS_DIRECTORY")
		if dir == "" || (openOnArgv && closeOnArgv) {
			return nil
		}
		name, flagName, src = filepath.Join(dir, credentialName), "$CREDENTIALS_DIRECTORY", fromCredential
	}
	open, close, err := readSecretFile(name)
	if err != nil {
		return &usageError{flag: flagName, value: name, hasValue: true, reason: err.Error()}
	}
	if !openOnArgv {
		if open == "" {
			return &usageError{flag: flagName, value: name, hasValue: true, reason: "no open= line (and no -o)"}
		}
		c.Params.OpenSecret = open
	}
	if !closeOnArgv {
		if close == "" {
			return &usageError{flag: flagName, value: name, hasValue: true, reason: "no close= line (and no -c)"}
		}
		c.Params.CloseSecret = close
	}
	if !openOnArgv || !closeOnArgv {
		c.SecretsFrom = src
	}
	return nil
}

// readSecretFile reads the secrets from name, refusing a file that group
// or others may read or write.
func readSecretFile(name string) (open, close string, err error) {
	f, err := os.Open(name)
	if err != nil {
		return "", "", pathErr(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", "", pathErr(err)
	}
	if err := knock.CheckSecretMode(fi.Mode()); err != nil {
		return "", "", err
	}
	return knock.ParseSecrets(f)
}

// pathErr drops the operation and path of an *fs.PathError: the message
// names the file already.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return fmt.Errorf("%w", err)
}
