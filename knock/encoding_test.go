package knock

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf16"
)

// utf16LE encodes s as UTF-16 little-endian with its byte-order mark, as
// Windows PowerShell 5.1's > writes a file; bom false leaves the mark out.
func utf16LE(s string, bom bool) []byte {
	var b []byte
	if bom {
		b = append(b, 0xff, 0xfe)
	}
	for _, u := range utf16.Encode([]rune(s)) {
		b = append(b, byte(u), byte(u>>8))
	}
	return b
}

// TestEncodings: the secret, access and client config files are read as
// ASCII or UTF-8, with or without a UTF-8 byte-order mark; UTF-16, with or
// without its mark, is refused with ErrUTF16, whose message says how to
// save the file; the secrets come out the same as from the plain file.
func TestEncodings(t *testing.T) {
	const secrets = "open=correct horse\nclose=battery staple\n"
	const access = "[alice]\nopen = correct-horse\nclose = battery-staple\n"
	for _, tt := range []struct {
		name          string
		secrets, acc  []byte
		wantUTF16Fail bool
	}{
		{"ascii", []byte(secrets), []byte(access), false},
		{"utf-8 with bom", append([]byte{0xef, 0xbb, 0xbf}, secrets...), append([]byte{0xef, 0xbb, 0xbf}, access...), false},
		{"utf-16le with bom", utf16LE(secrets, true), utf16LE(access, true), true},
		{"utf-16le without bom", utf16LE(secrets, false), utf16LE(access, false), true},
		{"utf-16be bom", append([]byte{0xfe, 0xff}, secrets...), append([]byte{0xfe, 0xff}, access...), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			open, close, err := ParseSecrets(strings.NewReader(string(tt.secrets)))
			users, aerr := ParseAccess(strings.NewReader(string(tt.acc)), nil)
			if tt.wantUTF16Fail {
				if !errors.Is(err, ErrUTF16) || !errors.Is(aerr, ErrUTF16) {
					t.Fatalf("ParseSecrets: %v; ParseAccess: %v; want ErrUTF16", err, aerr)
				}
				if !strings.Contains(err.Error(), "Set-Content -Encoding ascii") {
					t.Errorf("the error does not say how to save the file: %v", err)
				}
				return
			}
			if err != nil || open != "correct horse" || close != "battery staple" {
				t.Errorf("ParseSecrets = %q, %q, %v", open, close, err)
			}
			if aerr != nil || len(users) != 1 || users[0].Name != "alice" {
				t.Errorf("ParseAccess = %+v, %v", users, aerr)
			}
		})
	}
}
