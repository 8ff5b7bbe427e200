package main

import "github.com/nfqknockd/nfqknockd/cmd/internal/cli"

// Environment variables that hold the secrets.
const (
	envOpenSecret  = "NFQKNOCK_OPEN_SECRET"
	envCloseSecret = "NFQKNOCK_CLOSE_SECRET"
)

// secrets are the open and close secrets; "" means not given.
type secrets struct{ open, close string }

// loadSecrets takes each secret from its flag (nil when the flag was not
// given; the flags reject empty secrets), else from its environment variable
// (an empty variable counts as unset), else from the secret file. A file
// named with --secret-file is always read and checked, even when flags give
// both secrets.
func loadSecrets(flagOpen, flagClose *string, file string, fileGiven bool, getenv func(string) string) (secrets, error) {
	var s secrets
	if fileGiven {
		var err error
		if s, err = readSecretFile(file); err != nil {
			return secrets{}, err
		}
	}
	if v := getenv(envOpenSecret); v != "" {
		s.open = v
	}
	if v := getenv(envCloseSecret); v != "" {
		s.close = v
	}
	if flagOpen != nil {
		s.open = *flagOpen
	}
	if flagClose != nil {
		s.close = *flagClose
	}
	return s, nil
}

// require checks that the secrets that cmd needs are there: both for show
// and proxy, the open one for open, the close one for close.
func (s secrets) require(cmd string) error {
	needOpen := cmd != "close"
	needClose := cmd != "open"
	const how = "give it with %s, %s or %s line in --secret-file (nfqknock has no default secret)"
	if needOpen && s.open == "" {
		return cli.Usagef("no open secret: "+how, "--open-secret", envOpenSecret, "an open=")
	}
	if needClose && s.close == "" {
		return cli.Usagef("no close secret: "+how, "--close-secret", envCloseSecret, "a close=")
	}
	return nil
}

// readSecretFile reads a secret file in the daemon's format
// (knock.ParseSecrets); like ssh with a private key, it refuses a file that
// group or others may read or write (knock.CheckSecretMode).
func readSecretFile(name string) (secrets, error) {
	open, close, err := cli.ReadSecretFile(name)
	if err != nil {
		return secrets{}, style.Bad("--secret-file", name, err.Error())
	}
	return secrets{open: open, close: close}, nil
}
