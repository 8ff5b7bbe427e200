package main

import (
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/nfqknockd/nfqknockd/cmd/internal/cli"
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
	open, close, err := cli.ReadSecretFile(name)
	if err != nil {
		return style.Bad(flagName, name, err.Error())
	}
	if !openOnArgv {
		if open == "" {
			return style.Bad(flagName, name, "no open= line (and no -o)")
		}
		c.Params.OpenSecret = open
	}
	if !closeOnArgv {
		if close == "" {
			return style.Bad(flagName, name, "no close= line (and no -c)")
		}
		c.Params.CloseSecret = close
	}
	if !openOnArgv || !closeOnArgv {
		c.SecretsFrom = src
	}
	return nil
}
