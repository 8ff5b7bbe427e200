package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/nfqknockd/nfqknockd/cmd/internal/cli"
	"github.com/nfqknockd/nfqknockd/knock"
)

// accessCredential is the systemd credential that holds the access file
// (LoadCredential=nfqknockd.access:/etc/nfqknockd/access).
const accessCredential = "nfqknockd.access"

// Where the users came from (config.OpenFrom and CloseFrom both say it,
// and liveSecrets.openFrom and closeFrom).
const (
	fromAccessFile       secretSource = "--access-file"
	fromAccessCredential secretSource = "the systemd credential " + accessCredential
)

// isAccess reports whether the secrets are the users of an access file.
func (s secretSource) isAccess() bool { return s == fromAccessFile || s == fromAccessCredential }

// secretFlags are the flags that give the one pair of secrets, which an
// access file replaces.
var secretFlags = []string{"open-secret", "close-secret", "secret-file"}

// loadAccess reads the users from --access-file, or else from the systemd
// credential nfqknockd.access when $CREDENTIALS_DIRECTORY holds it and no
// flag gives secrets. Without either it changes nothing, and the one pair
// of secrets applies (loadSecrets). Its errors name the file, the line and
// what is wrong, never a secret.
func loadAccess(c *config, fs *pflag.FlagSet, getenv func(string) string) error {
	var file *secretFile
	switch dir := getenv("CREDENTIALS_DIRECTORY"); {
	case fs.Changed("access-file"):
		if c.AccessFile == "" {
			return style.BadFlag("access-file", "", "file name is empty")
		}
		for _, name := range secretFlags {
			if fs.Changed(name) {
				return &cli.UsageError{Msg: "--access-file: cannot be combined with --" + name + ": each user's secrets are in the access file"}
			}
		}
		file = &secretFile{fromAccessFile, "--access-file", c.AccessFile}
	case dir != "" && !slices.ContainsFunc(secretFlags, fs.Changed):
		name := filepath.Join(dir, accessCredential)
		if _, err := os.Lstat(name); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		file = &secretFile{fromAccessCredential, "$CREDENTIALS_DIRECTORY", name}
	default:
		return nil
	}
	users, err := readAccessFile(file.name, file.src == fromAccessCredential, c.accessGuard())
	if err != nil {
		return style.Bad(file.what, file.name, err.Error())
	}
	c.Users, c.OpenFrom, c.CloseFrom = users, file.src, file.src
	return nil
}

// accessGuard returns the ports a user's ports= may name: the guarded
// ports; with -s and no --guard, every port (-s guards nothing).
func (c *config) accessGuard() []uint16 {
	if c.Show && len(c.Guard) == 0 {
		all := make([]uint16, 65535)
		for i := range all {
			all[i] = uint16(i + 1)
		}
		return all
	}
	return c.guardPorts()
}

// readAccessFile reads the access file name (knock.ParseAccess), refusing
// what the secret file's check refuses (cli.OpenPrivate: a mode that lets
// group or others at it, another owner than root or the daemon's user; for
// a systemd credential, cli.OpenCredential, which lets the group read).
// Its errors do not name the file: the caller's message does.
func readAccessFile(name string, credential bool, guard []uint16) ([]knock.User, error) {
	open := cli.OpenPrivate
	if credential {
		open = cli.OpenCredential
	}
	f, err := open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return knock.ParseAccess(f, guard)
}

// reloadAccess re-reads the access file for SIGHUP, with the checks of the
// start, and changes nothing in c: the caller applies the users.
func (c *config) reloadAccess(getenv func(string) string) ([]knock.User, error) {
	what, name := "--access-file", c.AccessFile
	if c.OpenFrom == fromAccessCredential {
		dir := getenv("CREDENTIALS_DIRECTORY")
		if dir == "" {
			return nil, errors.New("$CREDENTIALS_DIRECTORY is not set: cannot re-read the systemd credential " + accessCredential)
		}
		what, name = "$CREDENTIALS_DIRECTORY", filepath.Join(dir, accessCredential)
	}
	users, err := readAccessFile(name, c.OpenFrom == fromAccessCredential, c.accessGuard())
	if err != nil {
		return nil, style.Bad(what, name, err.Error())
	}
	return users, nil
}

// users returns the users whose sequences open at start: those of the
// access file, or one nameless user with the one pair of secrets. After
// start, the users in force are service.secrets().users.
func (c *config) users() []knock.User {
	if c.Users != nil {
		return c.Users
	}
	return []knock.User{{OpenSecret: c.Params.OpenSecret, CloseSecret: c.Params.CloseSecret}}
}

// showText is what -s prints: the C daemon's "OPEN: ...\nCLOSE: ...\n",
// or with an access file the same under a "[NAME]" line for each user.
func (c *config) showText(at time.Time) string {
	if c.Users == nil {
		return knock.FormatSequences(c.Params.Sequences(at))
	}
	var b strings.Builder
	for _, u := range c.Users {
		p := c.Params
		p.OpenSecret, p.CloseSecret = u.OpenSecret, u.CloseSecret
		b.WriteString("[" + u.Name + "]\n")
		b.WriteString(knock.FormatSequences(p.Sequences(at)))
	}
	return b.String()
}
