package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/knock"
)

// TestParseConfig: what a config file may hold, and every way one is
// refused, with the line.
func TestParseConfig(t *testing.T) {
	tests := []struct {
		name, text string
		want       []section // when err is ""
		err        string
	}{
		{name: "empty"},
		{name: "comments only", text: "# nothing\n\n   # indented\n"},
		{name: "sections", text: "# c\n[*]\ndigest = sha256\n[server.example.org]   # comment\nrange=10000-60000\n  period = 30m \nsecret-file = ~/s#x\none-time = yes\n",
			want: []section{
				{host: "*", line: 2, settings: []setting{{"digest", "sha256", 3}}},
				{host: "server.example.org", line: 4, settings: []setting{
					{"range", "10000-60000", 5}, {"period", "30m", 6}, {"secret-file", "~/s#x", 7}, {"one-time", "yes", 8}}},
			}},
		{name: "every key", text: "[h]\ndigest=md5\nrange=1-2\nperiod=1h\nlocal-hour=no\nsecret-file=s\none-time=off\nipv4=1\nipv6=0\ngap=0s\nknock-timeout=20ms\nconnect-timeout=1m\n",
			want: []section{{host: "h", line: 1, settings: []setting{{"digest", "md5", 2}, {"range", "1-2", 3}, {"period", "1h", 4},
				{"local-hour", "no", 5}, {"secret-file", "s", 6}, {"one-time", "off", 7}, {"ipv4", "1", 8}, {"ipv6", "0", 9},
				{"gap", "0s", 10}, {"knock-timeout", "20ms", 11}, {"connect-timeout", "1m", 12}}}}},
		{name: "IPv6 host, CRLF", text: "[fd00::1]\r\nipv6 = YES\r\n",
			want: []section{{host: "fd00::1", line: 1, settings: []setting{{"ipv6", "YES", 2}}}}},
		{name: "a section without settings", text: "[a]\n[b]\n",
			want: []section{{host: "a", line: 1}, {host: "b", line: 2}}},

		{name: "unknown key", text: "[*]\n\nfoo = 1\n", err: `line 3: unknown key "foo"`},
		{name: "a secret is no key", text: "[*]\nopen = s3cret\n", err: `line 2: unknown key "open"`},
		{name: "start is no key", text: "[*]\nstart = 1\n", err: `line 2: unknown key "start"`},
		{name: "key case", text: "[*]\nDigest = md5\n", err: `line 2: unknown key "Digest"`},
		{name: "outside a section", text: "digest = md5\n", err: "line 1: digest outside a section: begin with [HOST] or [*]"},
		{name: "no =", text: "[*]\none-time\n", err: "line 2: want KEY = VALUE or [HOST]"},
		{name: "empty value", text: "[*]\ndigest =  # none\n", err: "line 2: digest: empty value"},
		{name: "bad header", text: "[a\n", err: "line 1: want [HOST] or [*]"},
		{name: "header with space", text: "[a b]\n", err: "line 1: want [HOST] or [*]"},
		{name: "header with text after", text: "[a] x\n", err: "line 1: want [HOST] or [*]"},
		{name: "empty header", text: "[ ]\n", err: "line 1: empty host in []"},
		{name: "second section", text: "[a]\n[*]\n[A]\n", err: "line 3: second section [A] (the first is at line 1)"},
		{name: "second key", text: "[a]\nperiod=1h\ngap=1ms\nperiod=2h\n", err: "line 4: second period in [a] (the first is at line 2)"},
		{name: "ipv4 and ipv6", text: "[a]\nipv4=yes\nipv6=true\n", err: "line 3: ipv6: conflicts with ipv4 at line 2: give either"},
		{name: "bad digest", text: "[*]\ndigest = sha1\n", err: "line 2: digest sha1: unknown digest: want md5, sha256, sha384 or sha512"},
		{name: "bad range", text: "[*]\nrange = 5-5\n", err: "line 2: range 5-5: start and end must differ: the sequence formula divides by end-start"},
		{name: "bad period", text: "[*]\nperiod = 1500ms\n", err: "line 2: period 1500ms: must be a whole number of seconds"},
		{name: "bad bool", text: "[x]\none-time = maybe\n", err: "line 2: one-time maybe: must be yes or no"},
		{name: "bad timeout", text: "[x]\nknock-timeout = 2s\n", err: "line 2: knock-timeout 2s: must be 1ms..999ms"},
		{name: "value quoted", text: "[x]\ngap = 'a b'\n", err: `line 2: gap ''\''a b'\''': not a duration: use for example 50ms, 10s or 1h`},
		{name: "error in another host's section", text: "[a]\n[b]\ngap = x\n", err: "line 3: gap x: not a duration: use for example 50ms, 10s or 1h"},
		{name: "too long", text: "#" + strings.Repeat("x", maxConfig), err: "longer than 64 KiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig(strings.NewReader(tt.text))
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("parseConfig = %v; want %q", err, tt.err)
				}
				return
			}
			if err != nil || !slices.EqualFunc(got, tt.want, func(a, b section) bool {
				return a.host == b.host && a.line == b.line && slices.Equal(a.settings, b.settings)
			}) {
				t.Fatalf("parseConfig = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// TestClientConfig: the config gives the flags of a host, [*] those of every
// host; the host's section wins over [*] (a whole group: range, or the
// family), the command line over both; secret-file is relative to the
// config's directory and may start with ~/; the default secret file is read
// when it exists.
func TestClientConfig(t *testing.T) {
	home := t.TempDir()
	cfgDir := filepath.Join(home, ".config", "nfqknock")
	write := func(path, text string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(cfgDir, "config"), `# test config
[*]
digest = sha256
range = 10000-60000
ipv6 = yes
[work.example.org]
range = 2000-3000
secret-file = work-secrets
one-time = yes
ipv4 = yes
[Home.Example.Org]
secret-file = ~/home-secrets
period = 10m
gap = 0s
knock-timeout = 20ms
connect-timeout = 1m
[lh]
local-hour = yes
`, 0o644)
	write(filepath.Join(cfgDir, "secrets"), "open=default open\nclose=default close\n", 0o600)
	write(filepath.Join(cfgDir, "work-secrets"), "open=work open\nclose=work close\n", 0o600)
	write(filepath.Join(home, "home-secrets"), "open=home open\nclose=home close\n", 0o600)
	other := filepath.Join(home, "other")
	write(other, "[*]\nperiod = 2h\n", 0o644)
	s := sys{env(map[string]string{"HOME": home}), "linux"}

	type want struct {
		digest   knock.Digest
		rng      knock.Range
		period   time.Duration
		family   string
		oneTime  bool
		open     string
		gap      time.Duration
		knockTO  time.Duration
		connTO   time.Duration
		localHrs bool
	}
	base := want{knock.SHA256, knock.Range{Start: 10000, End: 60000}, time.Hour, "ip6", false, "default open",
		defaultGap, defaultKnockTimeout, defaultConnectTimeout, false}
	with := func(f func(w *want)) want { w := base; f(&w); return w }
	tests := []struct {
		name string
		args []string
		want want
	}{
		{"[*] for another host", []string{"open", "other.example.org"}, base},
		{"[*] for show", []string{"show"}, base},
		{"[*] for show of a host without a section", []string{"show", "other.example.org"}, base},
		{"host section for show HOST", []string{"show", "work.example.org"}, with(func(w *want) {
			w.rng, w.oneTime, w.open, w.family = knock.Range{Start: 2000, End: 3000}, true, "work open", "ip4"
		})},
		{"host section for doctor", []string{"doctor", "Work.Example.Org", "22"}, with(func(w *want) {
			w.rng, w.oneTime, w.open, w.family = knock.Range{Start: 2000, End: 3000}, true, "work open", "ip4"
		})},
		{"host section over [*]", []string{"proxy", "work.example.org", "22"}, with(func(w *want) {
			w.rng, w.oneTime, w.open, w.family = knock.Range{Start: 2000, End: 3000}, true, "work open", "ip4"
		})},
		{"host case-insensitive, ~/ in secret-file", []string{"open", "home.example.org"}, with(func(w *want) {
			w.period, w.open, w.gap, w.knockTO, w.connTO = 10*time.Minute, "home open", 0, 20*time.Millisecond, time.Minute
		})},
		{"local-hour", []string{"open", "lh"}, with(func(w *want) { w.localHrs = true })},
		{"flags win", []string{"proxy", "-d", "md5", "--range", "1-2", "--one-time=false", "-o", "flag open", "work.example.org", "22"},
			with(func(w *want) {
				w.digest, w.rng, w.family, w.open = knock.MD5, knock.Range{Start: 1, End: 2}, "ip4", "flag open"
			})},
		{"-a and -b win over range", []string{"open", "-a", "5", "-b", "6", "x"}, with(func(w *want) { w.rng = knock.Range{Start: 5, End: 6} })},
		{"-4 wins over ipv6", []string{"open", "-4", "x"}, with(func(w *want) { w.family = "ip4" })},
		{"-6 wins over ipv4", []string{"open", "-6", "work.example.org"}, with(func(w *want) {
			w.rng, w.oneTime, w.open, w.family = knock.Range{Start: 2000, End: 3000}, true, "work open", "ip6"
		})},
		{"--secret-file wins", []string{"open", "--secret-file", "~/home-secrets", "work.example.org"}, with(func(w *want) {
			w.rng, w.oneTime, w.open, w.family = knock.Range{Start: 2000, End: 3000}, true, "home open", "ip4"
		})},
		{"--config", []string{"show", "--config", other}, with(func(w *want) {
			w.digest, w.rng, w.period, w.family = knock.MD5, knock.FullRange, 2*time.Hour, "ip"
		})},
		{"--config with ~/", []string{"show", "--config", "~/other"}, with(func(w *want) {
			w.digest, w.rng, w.period, w.family = knock.MD5, knock.FullRange, 2*time.Hour, "ip"
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(slices.Clone(tt.args), "-c", "c")
			o, err := parseArgsOn(args, s)
			if err != nil {
				t.Fatalf("%q: %v", args, err)
			}
			got := want{o.params.Digest, o.params.Range, o.params.Period, o.family, o.oneTime, o.params.OpenSecret,
				o.gap, o.knockTimeout, o.connectTimeout, o.params.LocalHour}
			if got != tt.want {
				t.Fatalf("%q:\n got %+v\nwant %+v", args, got, tt.want)
			}
		})
	}
}

// TestShowHost: `show HOST` prints the sequences of the settings of HOST's
// section of the config, `show` those of [*].
func TestShowHost(t *testing.T) {
	dir := t.TempDir()
	secrets := testutil.WriteFile(t, dir, "work-secrets", "open=work open\nclose=work close\n", 0o600)
	cfg := testutil.WriteFile(t, dir, "config", "[*]\ndigest = sha256\nrange = 10000-60000\n[work.example.org]\nrange = 2000-3000\nsecret-file = "+secrets+"\n", 0o644)
	const at = "2026-12-07T04:00:00Z"
	when, _ := time.Parse(time.RFC3339, at)
	all := knock.Params{Digest: knock.SHA256, Range: knock.Range{Start: 10000, End: 60000}, Period: time.Hour, OpenSecret: "o", CloseSecret: "c"}
	work := all
	work.Range, work.OpenSecret, work.CloseSecret = knock.Range{Start: 2000, End: 3000}, "work open", "work close"
	for _, tt := range []struct {
		args []string
		p    knock.Params
	}{
		{[]string{"show", "-o", "o", "-c", "c"}, all},
		{[]string{"show", "-o", "o", "-c", "c", "other.example.org"}, all},
		{[]string{"show", "work.example.org"}, work},
		{[]string{"show", "WORK.example.org"}, work},
	} {
		code, stdout, stderr := runArgs(t, append(tt.args, "--config", cfg, "--at", at)...)
		want := knock.FormatSequences(tt.p.Sequences(when))
		if code != 0 || stdout != want || stderr != "" {
			t.Errorf("%q = %d, %q, %q; want 0, %q", tt.args, code, stdout, stderr, want)
		}
	}
}

// TestClientConfigErrors: bad input in or about the config is one line
// naming the file and the line, exit status 2.
func TestClientConfigErrors(t *testing.T) {
	home := t.TempDir()
	cfg := filepath.Join(home, ".config", "nfqknock", "config")
	if err := os.MkdirAll(filepath.Dir(cfg), 0o700); err != nil {
		t.Fatal(err)
	}
	s := sys{env(map[string]string{"HOME": home}), "linux"}
	missing := filepath.Join(home, "missing")
	tests := []struct {
		name, config string // config "" : none written
		args         []string
		want         string
	}{
		{"unknown key", "[*]\ndigest = md5\nfoo = bar\n", []string{"show"}, cfg + `: line 3: unknown key "foo"`},
		{"bad value", "[*]\n\nperiod = soon\n", []string{"show"}, cfg + ": line 3: period soon: not a duration: use for example 50ms, 10s or 1h"},
		{"local-hour without 1h", "[*]\nperiod = 30m\n[h]\nlocal-hour = yes\n", []string{"open", "h"},
			cfg + ": line 2: period 30m: local-hour needs a period of 1h"},
		{"--local-hour with the config's period", "[*]\nperiod = 30m\n", []string{"show", "--local-hour"},
			cfg + ": line 2: period 30m: --local-hour needs a period of 1h"},
		{"the config's local-hour with --period", "[*]\nlocal-hour = yes\n", []string{"show", "--period", "2h"},
			"--period 2h: local-hour needs a period of 1h"},
		{"missing secret-file", "[h]\nsecret-file = nope\n", []string{"open", "h"},
			cfg + ": line 2: secret-file " + filepath.Join(filepath.Dir(cfg), "nope") + ": no such file or directory"},
		{"missing --config", "", []string{"show", "--config", missing}, "--config " + missing + ": no such file or directory"},
		{"--config a directory", "", []string{"show", "--config", home}, "--config " + home + ": is a directory"},
		{"config a directory", "dir", []string{"show"}, cfg + ": is a directory"},
		{"no default secret file", "", []string{"show"},
			"no open secret: give it with --open-secret, NFQKNOCK_OPEN_SECRET or an open= line in --secret-file or " + filepath.Join(filepath.Dir(cfg), "secrets")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.RemoveAll(cfg)
			switch tt.config {
			case "":
			case "dir":
				if err := os.Mkdir(cfg, 0o700); err != nil {
					t.Fatal(err)
				}
			default:
				if err := os.WriteFile(cfg, []byte(tt.config), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			args := tt.args
			if !strings.HasPrefix(tt.want, "no open secret") && !strings.Contains(tt.config, "secret-file") {
				args = append(slices.Clone(args), "-o", "o", "-c", "c")
			}
			_, err := parseArgsOn(args, s)
			var out strings.Builder
			if code := report(err, &out); code != 2 || out.String() != "nfqknock: "+tt.want+"\n" {
				t.Fatalf("%q: exit %d, %q; want 2, %q", args, code, out.String(), "nfqknock: "+tt.want+"\n")
			}
		})
	}
}

// TestDefaultSecretFile: the default secret file is read when it exists,
// and refused like any other when others may read it.
func TestDefaultSecretFile(t *testing.T) {
	xdg := t.TempDir()
	path := filepath.Join(xdg, "nfqknock", "secrets")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("open=d open\nclose=d close\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := sys{env(map[string]string{"HOME": "/nonexistent", "XDG_CONFIG_HOME": xdg}), "linux"}
	o, err := parseArgsOn([]string{"show"}, s)
	if err != nil || o.params.OpenSecret != "d open" || o.params.CloseSecret != "d close" {
		t.Fatalf("show with the default secret file: %+v, %v", o, err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	_, err = parseArgsOn([]string{"show", "-o", "a", "-c", "b"}, s)
	if want := path + ": permissions 0640 are too open (want 0600 or stricter)"; err == nil || err.Error() != want {
		t.Fatalf("show with a default secret file of mode 0640: %v; want %q", err, want)
	}
}

// FuzzClientConfig: parseConfig never panics; what it accepts, every host
// of it applies without an error (the values were checked), and what it
// refuses is one line that starts with "line N: " or is the size limit.
func FuzzClientConfig(f *testing.F) {
	f.Add("[*]\ndigest = sha256\n[server.example.org]\nrange = 10000-60000\nperiod = 1h\nsecret-file = ~/s\none-time = yes\n")
	f.Add("[a]\nipv4 = yes\nipv6 = no\ngap = 0s # c\nknock-timeout=999ms\nconnect-timeout = 1h\nlocal-hour = on\n")
	f.Add("[a]\n[A]\n")
	f.Add("x = 1\n")
	f.Fuzz(func(t *testing.T, text string) {
		sections, err := parseConfig(strings.NewReader(text))
		if err != nil {
			msg := err.Error()
			if strings.Contains(msg, "\n") || !(strings.HasPrefix(msg, "line ") || strings.HasPrefix(msg, "longer than")) {
				t.Fatalf("error %q: want one line starting with \"line N: \"", msg)
			}
			return
		}
		c := &clientConfig{path: "/cfg/config", sections: sections}
		for _, s := range append(sections, section{host: ""}) {
			o := &options{host: s.host, origin: map[string]setting{}}
			var v flagValues
			fs := newFlagSet(o, &v)
			if err := o.applyConfig(c, fs, sys{env(nil), "linux"}); err != nil {
				t.Fatalf("host %q: %v", s.host, err)
			}
		}
	})
}

// TestClientConfigEncoding: a config file saved as UTF-16 (PowerShell
// 5.1's >) is refused with knock.ErrUTF16; one with a UTF-8 byte-order
// mark is read.
func TestClientConfigEncoding(t *testing.T) {
	text := "[*]\nrange = 2000-3000\n"
	var utf16 []byte
	utf16 = append(utf16, 0xff, 0xfe)
	for _, c := range []byte(text) {
		utf16 = append(utf16, c, 0)
	}
	if _, err := parseConfig(bytes.NewReader(utf16)); !errors.Is(err, knock.ErrUTF16) {
		t.Errorf("UTF-16 config: %v, want knock.ErrUTF16", err)
	}
	s, err := parseConfig(bytes.NewReader(append([]byte{0xef, 0xbb, 0xbf}, text...)))
	if err != nil || len(s) != 1 || s[0].host != "*" {
		t.Errorf("UTF-8 config with a byte-order mark: %+v, %v", s, err)
	}
}
