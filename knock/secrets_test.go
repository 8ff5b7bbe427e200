package knock

import (
	"io/fs"
	"strings"
	"testing"
)

func TestParseSecrets(t *testing.T) {
	tests := []struct {
		name, in, open, close, err string
	}{
		{"both", "open=a b\nclose=c\n", "a b", "c", ""},
		{"comments and spaces", "# mine\n\n  open = x=y \n\tclose=\"q\"\\\n", "x=y", "\"q\"\\", ""},
		{"only open", "open=o\n", "o", "", ""},
		{"empty file", "", "", "", ""},
		{"no equals", "open\n", "", "", "line 1: want open=SECRET or close=SECRET"},
		{"unknown key", "\nopn=x\n", "", "", "line 2: unknown key (want open or close; the key is not shown: it may be a mistyped secret)"},
		{"empty secret", "open=\n", "", "", "line 1: empty open secret"},
		{"twice", "close=a\nclose=b\n", "", "", "line 2: second close secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			open, close, err := ParseSecrets(strings.NewReader(tt.in))
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || open != tt.open || close != tt.close {
				t.Fatalf("got %q, %q, %v; want %q, %q", open, close, err, tt.open, tt.close)
			}
		})
	}
}

func TestCheckSecretMode(t *testing.T) {
	tests := []struct {
		mode fs.FileMode
		err  string
	}{
		{0o600, ""},
		{0o400, ""},
		{0o640, "permissions 0640 are too open (want 0600 or stricter)"},
		{0o604, "permissions 0604 are too open (want 0600 or stricter)"},
		{0o620, "permissions 0620 are too open (want 0600 or stricter)"},
		{fs.ModeDir | 0o700, "not a regular file"},
	}
	for _, tt := range tests {
		err := CheckSecretMode(tt.mode)
		if (err == nil) != (tt.err == "") || (err != nil && err.Error() != tt.err) {
			t.Errorf("CheckSecretMode(%v) = %v, want %q", tt.mode, err, tt.err)
		}
	}
}

// FuzzParseSecrets: any bytes parse or fail without panic; secrets that come
// back are trimmed, non-empty lines of the input.
func FuzzParseSecrets(f *testing.F) {
	for _, s := range []string{"open=a\nclose=b\n", "# c\n\n open = x \n", "open=\n", "close", "open=a\nopen=b", "\x00=\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		open, close, err := ParseSecrets(strings.NewReader(string(b)))
		if err != nil {
			if open != "" || close != "" {
				t.Fatalf("error %v with secrets returned", err)
			}
			return
		}
		for _, s := range []string{open, close} {
			if s != strings.TrimSpace(s) || strings.ContainsAny(s, "\n") {
				t.Fatalf("secret %q not trimmed to one line", s)
			}
		}
	})
}
