package knock

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// MaxUsers bounds the users of an access file and of a Tracker: the
// tracker's memory and the work of a rotation grow with the users (see
// Tracker).
const MaxUsers = 256

// MaxUserName is the longest user name.
const MaxUserName = 32

// User is one user of an access file: a name, the secrets of the user's
// open and close sequences, and the guarded ports the user's open opens.
type User struct {
	// Name is 1..MaxUserName characters of A-Z a-z 0-9 _ . - (it goes into
	// log lines and nft element comments); the single user made from
	// Params has the empty name.
	Name        string
	OpenSecret  string
	CloseSecret string
	// Ports are the guarded ports the user may open, in the order of the
	// file and without duplicates; nil means every guarded port.
	Ports []uint16
	// SPAAddress lets the user's SPA packets name the address to open
	// instead of their source (spa-address = yes): behind a NAT, or for
	// another machine of the user's.
	SPAAddress bool
}

// ValidUserName reports whether s may name a user: 1..MaxUserName
// characters of A-Z a-z 0-9 _ . -.
func ValidUserName(s string) bool {
	if s == "" || len(s) > MaxUserName {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// ParseAccess parses an access file: one section per user,
//
//	# comment
//	[alice]
//	open = SECRET
//	close = SECRET
//	ports = 22, 443      # optional; default: every guarded port
//	spa-address = yes    # optional (yes or no; default no): an SPA packet may name the address to open
//
// A # at the start of a line or after a space or tab starts a comment;
// spaces around keys and values are trimmed; a secret may contain spaces
// inside, as in a secret file (ParseSecrets), so that a secret copied from
// one into the other is the same secret. Every user needs an open and a close secret, the two
// different, and no secret may belong to two users (their knocks would be
// indistinguishable). Ports must be in guard. The file holds at most
// MaxSecretFile bytes and MaxUsers users.
//
// An error reads "line N: what is wrong": it never quotes the file (a
// secret, or a secret typed in the wrong place), only line numbers and, for
// a port that is not guarded, the port.
func ParseAccess(r io.Reader, guard []uint16) ([]User, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if len(data) > MaxSecretFile {
		return nil, fmt.Errorf("larger than %d bytes", MaxSecretFile)
	}
	if data, err = Text(data); err != nil {
		return nil, err
	}
	p := accessParser{guard: guard}
	for n := 1; len(data) > 0; n++ {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		if err := p.line(n, string(line)); err != nil {
			return nil, err
		}
	}
	if err := p.end(); err != nil {
		return nil, err
	}
	if len(p.users) == 0 {
		return nil, errors.New("no user: want a [user] section with open and close secrets")
	}
	return p.users, nil
}

// accessParser is the state of ParseAccess.
type accessParser struct {
	guard   []uint16
	users   []User
	at      []int          // the line of each user's [name]
	keyAt   [numKeys]int   // the line of each key of the current user, 0 if absent
	secrets map[string]int // secret -> the line of its user's [name]
	names   map[string]int // name -> the line of its [name]
}

const (
	keyOpen = iota
	keyClose
	keyPorts
	keySPAAddress
	numKeys
)

var accessKeys = [numKeys]string{keyOpen: "open", keyClose: "close", keyPorts: "ports", keySPAAddress: "spa-address"}

// stripComment cuts line at a # that starts it or follows a space or tab.
func stripComment(line string) string {
	for i := 0; i < len(line); i++ {
		if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			return line[:i]
		}
	}
	return line
}

func (p *accessParser) line(n int, raw string) error {
	line := strings.TrimSpace(stripComment(raw))
	if line == "" {
		return nil
	}
	if line[0] == '[' {
		if line[len(line)-1] != ']' {
			return fmt.Errorf("line %d: malformed section (want [user])", n)
		}
		return p.section(n, strings.TrimSpace(line[1:len(line)-1]))
	}
	key, val, ok := strings.Cut(line, "=")
	if !ok {
		return fmt.Errorf("line %d: malformed line (want [user] or KEY = VALUE)", n)
	}
	key, val = strings.TrimSpace(key), strings.TrimSpace(val)
	k := slices.Index(accessKeys[:], key)
	if k < 0 {
		return fmt.Errorf("line %d: unknown key (want open, close, ports or spa-address)", n)
	}
	if len(p.users) == 0 {
		return fmt.Errorf("line %d: %s outside a [user] section", n, accessKeys[k])
	}
	if first := p.keyAt[k]; first != 0 {
		return fmt.Errorf("line %d: second %s in this section (first at line %d)", n, accessKeys[k], first)
	}
	p.keyAt[k] = n
	u := &p.users[len(p.users)-1]
	if k == keySPAAddress {
		switch val {
		case "yes":
			u.SPAAddress = true
		case "no":
		default:
			return fmt.Errorf("line %d: spa-address wants yes or no", n)
		}
		return nil
	}
	if k == keyPorts {
		ports, err := p.ports(n, val)
		if err != nil {
			return err
		}
		u.Ports = ports
		return nil
	}
	if val == "" {
		return fmt.Errorf("line %d: empty %s secret", n, accessKeys[k])
	}
	if at, ok := p.secrets[val]; ok {
		if at == p.at[len(p.at)-1] {
			return fmt.Errorf("line %d: the open and close secrets are the same", n)
		}
		return fmt.Errorf("line %d: the user of line %d has this secret (each user needs secrets of their own)", n, at)
	}
	p.secrets[val] = p.at[len(p.at)-1]
	if k == keyOpen {
		u.OpenSecret = val
	} else {
		u.CloseSecret = val
	}
	return nil
}

// section starts the section of user name at line n.
func (p *accessParser) section(n int, name string) error {
	if err := p.end(); err != nil {
		return err
	}
	if !ValidUserName(name) {
		return fmt.Errorf("line %d: invalid user name (want 1-%d characters of A-Z a-z 0-9 _ . -)", n, MaxUserName)
	}
	if p.names == nil {
		p.names, p.secrets = map[string]int{}, map[string]int{}
	}
	if first, ok := p.names[name]; ok {
		return fmt.Errorf("line %d: second section of the user of line %d", n, first)
	}
	if len(p.users) == MaxUsers {
		return fmt.Errorf("line %d: more than %d users", n, MaxUsers)
	}
	p.names[name] = n
	p.users = append(p.users, User{Name: name})
	p.at = append(p.at, n)
	p.keyAt = [numKeys]int{}
	return nil
}

// end checks the section that ends.
func (p *accessParser) end() error {
	if len(p.users) == 0 {
		return nil
	}
	u, at := &p.users[len(p.users)-1], p.at[len(p.at)-1]
	switch {
	case u.OpenSecret == "":
		return fmt.Errorf("line %d: user without an open secret", at)
	case u.CloseSecret == "":
		return fmt.Errorf("line %d: user without a close secret", at)
	}
	return nil
}

// ports parses the value of a ports key: guarded ports, comma-separated.
func (p *accessParser) ports(n int, val string) ([]uint16, error) {
	if val == "" {
		return nil, fmt.Errorf("line %d: empty port list (leave ports out for every guarded port)", n)
	}
	var out []uint16
	for elem := range strings.SplitSeq(val, ",") {
		port, err := ParsePort(strings.TrimSpace(elem))
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if !slices.Contains(p.guard, port) {
			return nil, fmt.Errorf("line %d: port %d is not guarded", n, port)
		}
		if slices.Contains(out, port) {
			return nil, fmt.Errorf("line %d: port %d twice", n, port)
		}
		out = append(out, port)
	}
	return out, nil
}
