package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// Environment variables that hold the secrets.
const (
	envOpenSecret  = "NFQKNOCK_OPEN_SECRET"
	envCloseSecret = "NFQKNOCK_CLOSE_SECRET"
)

// maxSecretFile bounds what is read from a secret file.
const maxSecretFile = 64 << 10

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
		return usagef("no open secret: "+how, "--open-secret", envOpenSecret, "an open=")
	}
	if needClose && s.close == "" {
		return usagef("no close secret: "+how, "--close-secret", envCloseSecret, "a close=")
	}
	return nil
}

// readSecretFile reads a secret file: lines "open=SECRET" and "close=SECRET";
// blank lines and lines starting with # are skipped; spaces around the key
// and the secret are trimmed. Like ssh with a private key, it refuses a file
// that group or others may read or write.
func readSecretFile(name string) (secrets, error) {
	f, err := os.Open(name)
	if err != nil {
		return secrets{}, usagef("--secret-file %s: %v", shellQuote(name), unwrapPathError(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return secrets{}, usagef("--secret-file %s: %v", shellQuote(name), unwrapPathError(err))
	}
	if !fi.Mode().IsRegular() {
		return secrets{}, usagef("--secret-file %s: not a regular file", shellQuote(name))
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return secrets{}, usagef("--secret-file %s: permissions %04o are too open (want 0600)", shellQuote(name), perm)
	}
	s, err := parseSecrets(io.LimitReader(f, maxSecretFile))
	if err != nil {
		return secrets{}, usagef("--secret-file %s: %v", shellQuote(name), err)
	}
	return s, nil
}

// parseSecrets parses the content of a secret file.
func parseSecrets(r io.Reader) (secrets, error) {
	var s secrets
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			return secrets{}, fmt.Errorf("line %d: want open=SECRET or close=SECRET", n)
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		var dst *string
		switch key {
		case "open":
			dst = &s.open
		case "close":
			dst = &s.close
		default:
			return secrets{}, fmt.Errorf("line %d: unknown key %q (want open or close)", n, key)
		}
		if val == "" {
			return secrets{}, fmt.Errorf("line %d: empty %s secret", n, key)
		}
		if *dst != "" {
			return secrets{}, fmt.Errorf("line %d: second %s secret", n, key)
		}
		*dst = val
	}
	if err := sc.Err(); err != nil {
		return secrets{}, fmt.Errorf("read: %w", err)
	}
	return s, nil
}

// unwrapPathError drops the operation and path of an *os.PathError, which
// the caller's message already names.
func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
