package knock

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// MaxSecretFile bounds what a secret file may hold.
const MaxSecretFile = 64 << 10

// ParseSecrets parses a secret file: lines "open=SECRET" and "close=SECRET";
// blank lines and lines starting with # are skipped; spaces around the key
// and the secret are trimmed. A secret missing from the file comes back
// empty. A UTF-8 byte-order mark is skipped, UTF-16 refused (Text). Errors
// name the line but never show a secret.
func ParseSecrets(r io.Reader) (open, close string, err error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSecretFile))
	if err != nil {
		return "", "", fmt.Errorf("read: %w", err)
	}
	if data, err = Text(data); err != nil {
		return "", "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			return "", "", fmt.Errorf("line %d: want open=SECRET or close=SECRET", n)
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		var dst *string
		switch key {
		case "open":
			dst = &open
		case "close":
			dst = &close
		default:
			return "", "", fmt.Errorf("line %d: unknown key (want open or close; the key is not shown: it may be a mistyped secret)", n)
		}
		if val == "" {
			return "", "", fmt.Errorf("line %d: empty %s secret", n, key)
		}
		if *dst != "" {
			return "", "", fmt.Errorf("line %d: second %s secret", n, key)
		}
		*dst = val
	}
	if err := sc.Err(); err != nil {
		return "", "", fmt.Errorf("read: %w", err)
	}
	return open, close, nil
}

// CheckSecretMode refuses, as ssh does for a private key, a secret file that
// is not a regular file or that group or others may read or write.
func CheckSecretMode(mode fs.FileMode) error {
	if !mode.IsRegular() {
		return fmt.Errorf("not a regular file")
	}
	if perm := mode.Perm(); perm&0o077 != 0 {
		return fmt.Errorf("permissions %04o are too open (want 0600 or stricter)", perm)
	}
	return nil
}
