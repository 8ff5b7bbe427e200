package main

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/nfqknockd/nfqknockd/cmd/internal/cli"
)

// Environment variables that hold the secrets.
const (
	envOpenSecret  = "NFQKNOCK_OPEN_SECRET"
	envCloseSecret = "NFQKNOCK_CLOSE_SECRET"
)

// secrets are the open and close secrets; "" means not given.
type secrets struct{ open, close string }

// secretSource is the secret file to read, and how the messages name it.
type secretSource struct {
	path string // "" when there is none
	// what names the file in a message, before its path: "--secret-file",
	// "FILE: line N: secret-file" (the config), or "" for the default file.
	what string
	// optional: a missing file is no error (the default file).
	optional bool
}

// secretSource returns the secret file of the command line (--secret-file,
// ~ expanded), else the config's (secret-file), else the default one in
// dir, which may be missing.
func (o *options) secretSource(fs *pflag.FlagSet, v *flagValues, s sys, dir string, dirErr error) secretSource {
	switch {
	case fs.Changed("secret-file"):
		return secretSource{path: s.expandHome(v.secretFile), what: "--secret-file"}
	case o.secretFile != "":
		st := o.origin["secret-file"]
		return secretSource{path: o.secretFile, what: fmt.Sprintf("%s: line %d: secret-file", o.configPath, st.line)}
	case dirErr == nil:
		return secretSource{path: filepath.Join(dir, secretFileName), optional: true}
	}
	return secretSource{}
}

// loadSecrets takes each secret from its flag (nil when the flag was not
// given; the flags reject empty secrets), else from its environment variable
// (an empty variable counts as unset), else from the secret file. A file
// named with --secret-file or in the config is always read and checked, even
// when flags give both secrets; so is the default file when it exists.
func loadSecrets(flagOpen, flagClose *string, file secretSource, getenv func(string) string) (secrets, error) {
	var s secrets
	if file.path != "" || file.what != "" {
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
// and proxy, the open one for open, the close one for close. The message
// says where a secret can come from, src the secret file.
func (s secrets) require(cmd string, src secretSource) error {
	needOpen := cmd != "close"
	needClose := cmd != "open"
	file := "--secret-file"
	switch {
	case src.what != "" && src.what != "--secret-file":
		file = src.path // the config's
	case src.what == "" && src.path != "":
		file = "--secret-file or " + src.path
	}
	const how = "no %s secret: give it with %s, %s or %s line in %s"
	if needOpen && s.open == "" {
		return cli.Usagef(how, "open", "--open-secret", envOpenSecret, "an open=", file)
	}
	if needClose && s.close == "" {
		return cli.Usagef(how, "close", "--close-secret", envCloseSecret, "a close=", file)
	}
	return nil
}

// readSecretFile reads a secret file in the daemon's format
// (knock.ParseSecrets); like ssh with a private key, it refuses a file that
// others may read or write (cli.ReadSecretFile). A missing optional file
// gives no secrets.
func readSecretFile(src secretSource) (secrets, error) {
	open, close, err := cli.ReadSecretFile(src.path)
	switch {
	case err == nil:
		return secrets{open: open, close: close}, nil
	case src.optional && errors.Is(err, fs.ErrNotExist):
		return secrets{}, nil
	case src.what == "":
		return secrets{}, configError(src.path, err) // "FILE: reason"
	case src.what == "--secret-file":
		return secrets{}, style.Bad(src.what, src.path, err.Error())
	}
	return secrets{}, &cli.UsageError{Msg: src.what + " " + style.Quote(src.path) + ": " + err.Error()}
}
