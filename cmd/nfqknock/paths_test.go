package main

import (
	"os"
	"path/filepath"
	"testing"
)

// env returns a getenv over m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// TestConfigDir: the directory of the client's files on each system.
func TestConfigDir(t *testing.T) {
	tests := []struct {
		goos string
		env  map[string]string
		want string // "" for an error
	}{
		{"linux", map[string]string{"HOME": "/home/a"}, "/home/a/.config/nfqknock"},
		{"linux", map[string]string{"HOME": "/home/a", "XDG_CONFIG_HOME": "/xdg"}, "/xdg/nfqknock"},
		{"linux", map[string]string{"HOME": "/home/a", "XDG_CONFIG_HOME": "rel"}, "/home/a/.config/nfqknock"},
		{"freebsd", map[string]string{"HOME": "/home/a"}, "/home/a/.config/nfqknock"},
		{"darwin", map[string]string{"HOME": "/Users/a"}, "/Users/a/.config/nfqknock"},
		{"darwin", map[string]string{"HOME": "/Users/a", "XDG_CONFIG_HOME": "/x"}, "/x/nfqknock"},
		{"windows", map[string]string{"AppData": `C:\Users\a\AppData\Roaming`, "HOME": "/ignored"}, filepath.Join(`C:\Users\a\AppData\Roaming`, "nfqknock")},
		{"linux", map[string]string{}, ""},
		{"windows", map[string]string{"USERPROFILE": `C:\Users\a`}, ""},
	}
	for _, tt := range tests {
		got, err := sys{env(tt.env), tt.goos}.configDir()
		if tt.goos != "windows" {
			tt.want = filepath.FromSlash(tt.want) // the separator of the system that runs the test
		}
		if got != tt.want || (err != nil) != (tt.want == "") {
			t.Errorf("%s %v: configDir = %q, %v; want %q", tt.goos, tt.env, got, err, tt.want)
		}
	}
}

// TestExpandHome: a leading ~/ (~\ on Windows) or a lone ~ is the home
// directory; nothing else changes.
func TestExpandHome(t *testing.T) {
	unix := sys{env(map[string]string{"HOME": "/home/a"}), "linux"}
	win := sys{env(map[string]string{"USERPROFILE": `C:\Users\a`, "HOME": "/nope"}), "windows"}
	none := sys{env(nil), "linux"}
	tests := []struct {
		s          sys
		path, want string
	}{
		{unix, "~/.config/nfqknock/secrets", "/home/a/.config/nfqknock/secrets"},
		{unix, "~", "/home/a"},
		{unix, "~/", "/home/a"},
		{unix, "~bob/x", "~bob/x"},
		{unix, "/etc/~/x", "/etc/~/x"},
		{unix, "x/~/y", "x/~/y"},
		{unix, `~\x`, `~\x`},
		{unix, "", ""},
		{none, "~/x", "~/x"},
		{win, `~\secrets`, filepath.Join(`C:\Users\a`, "secrets")},
		{win, "~/secrets", filepath.Join(`C:\Users\a`, "secrets")},
		{win, "~", `C:\Users\a`},
	}
	for _, tt := range tests {
		if tt.s.goos != "windows" && tt.path != tt.want {
			tt.want = filepath.FromSlash(tt.want)
		}
		if got := tt.s.expandHome(tt.path); got != tt.want {
			t.Errorf("%s: expandHome(%q) = %q; want %q", tt.s.goos, tt.path, got, tt.want)
		}
	}
	if got, want := unix.resolve("s", "/cfg"), filepath.FromSlash("/cfg/s"); got != want {
		t.Errorf("resolve(s, /cfg) = %q; want %q", got, want)
	}
	if got, want := unix.resolve("~/s", "/cfg"), filepath.FromSlash("/home/a/s"); got != want {
		t.Errorf("resolve(~/s, /cfg) = %q; want %q", got, want)
	}
	if got, want := unix.resolve("/abs", "/cfg"), "/abs"; got != want {
		t.Errorf("resolve(/abs, /cfg) = %q; want %q", got, want)
	}
}

// writeFile writes text to path, mode 0600.
func writeFile(path, text string) error { return os.WriteFile(path, []byte(text), 0o600) }
