package main

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/nfqknockd/nfqknockd/cmd/internal/version"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/knock"
)

// run calls realMain and returns its exit status and outputs.
func run(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = realMain(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args  []string
		check func(c *config) error
	}{
		{[]string{"-p", "22"}, func(c *config) error {
			d := defaultConfig()
			d.Guard = []uint16{22}
			d.OpenFrom, d.CloseFrom = fromDefault, fromDefault
			if fmt.Sprint(c) != fmt.Sprint(d) {
				return fmt.Errorf("got %+v, want the defaults %+v", c, d)
			}
			if c.Params.Digest != knock.MD5 || c.Params.Range != knock.FullRange || c.Timeout != 10*time.Second ||
				c.OpenTimeout != time.Hour || c.MaxSources != 65536 || c.Queue != 100 || c.Queues != 1 ||
				c.MaxQueueLen != 2048 || c.Table != "nfqknock" || c.Params.Period != time.Hour ||
				c.Params.Grace != time.Minute || c.Params.OpenSecret != knock.DefaultOpenSecret ||
				c.Params.CloseSecret != knock.DefaultCloseSecret {
				return fmt.Errorf("defaults: %+v", c)
			}
			return nil
		}},
		{[]string{"-a", "1000", "-b", "2000", "-s"}, want(func(c *config) bool { return c.Params.Range == knock.Range{Start: 1000, End: 2000} })},
		{[]string{"--start=1000", "--end", "2000", "-s"}, want(func(c *config) bool { return c.Params.Range == knock.Range{Start: 1000, End: 2000} })},
		{[]string{"-b", "2000", "-s"}, want(func(c *config) bool { return c.Params.Range == knock.Range{Start: 1, End: 2000} })},
		{[]string{"--range", "1000-2000", "-s"}, want(func(c *config) bool { return c.Params.Range == knock.Range{Start: 1000, End: 2000} })},
		{[]string{"-p", "443", "-p", "22,8443", "--guard", "22", "-P", "8443", "--open-port=80,81"}, func(c *config) error {
			if !slices.Equal(c.Guard, []uint16{22, 443, 8443}) || !slices.Equal(c.Opened, []uint16{80, 81, 8443}) {
				return fmt.Errorf("guard %v, opened %v", c.Guard, c.Opened)
			}
			if g := c.guardPorts(); !slices.Equal(g, []uint16{22, 443}) {
				return fmt.Errorf("guardPorts %v", g)
			}
			return nil
		}},
		{[]string{"-t", "1", "-s"}, want(func(c *config) bool { return c.Timeout == time.Second })},
		{[]string{"-t", "600", "-s"}, want(func(c *config) bool { return c.Timeout == 600*time.Second })},
		{[]string{"-t", "1500ms", "-s"}, want(func(c *config) bool { return c.Timeout == 1500*time.Millisecond })},
		{[]string{"--timeout=10m", "-s"}, want(func(c *config) bool { return c.Timeout == 10*time.Minute })},
		{[]string{"-p", "22", "--metrics-file", "/tmp/nfqknockd.prom"}, want(func(c *config) bool { return c.MetricsFile == "/tmp/nfqknockd.prom" })},
		{[]string{"-p", "22", "--metrics-file", "nfqknockd.prom"}, want(func(c *config) bool { return c.MetricsFile == "nfqknockd.prom" })},
		{[]string{"-d", "SHA256", "-s"}, want(func(c *config) bool { return c.Params.Digest == knock.SHA256 })},
		{[]string{"--digest", "sha512", "-s"}, want(func(c *config) bool { return c.Params.Digest == knock.SHA512 })},
		{[]string{"-o123", "-c", "321", "-s"}, want(func(c *config) bool { return c.Params.OpenSecret == "123" && c.Params.CloseSecret == "321" })},
		{[]string{"-o", "-x-", "-c", " spaced  secret ", "-s"}, want(func(c *config) bool {
			return c.Params.OpenSecret == "-x-" && c.Params.CloseSecret == " spaced  secret "
		})},
		{[]string{"-q", "0", "-m", "1", "-s"}, want(func(c *config) bool { return c.Queue == 0 && c.MaxQueueLen == 1 })},
		{[]string{"-q", "65532", "--queues", "4", "-s"}, want(func(c *config) bool { return c.Queue == 65532 && c.Queues == 4 })},
		{[]string{"-m", "4294967295", "-s"}, want(func(c *config) bool { return c.MaxQueueLen == 1<<32-1 })},
		{[]string{"--max-sources", "1", "-s"}, want(func(c *config) bool { return c.MaxSources == 1 })},
		{[]string{"--table", "My-table_1", "-s"}, want(func(c *config) bool { return c.Table == "My-table_1" })},
		{[]string{"-s"}, want(func(c *config) bool { return c.LockDir == "/run/nfqknockd" && c.StateDir == "/var/lib/nfqknockd" })},
		{[]string{"--lock-dir", "/run/x/", "--state-dir", "/var/lib//y", "-s"}, want(func(c *config) bool { return c.LockDir == "/run/x" && c.StateDir == "/var/lib/y" })},
		{[]string{"--state-dir", "", "-s"}, want(func(c *config) bool { return c.StateDir == "" })},
		{[]string{"--table", strings.Repeat("t", 64), "-s"}, want(func(c *config) bool { return len(c.Table) == 64 })},
		{[]string{"--table", strings.Repeat("t", 248), "-s"}, want(func(c *config) bool { return len(c.Table) == 248 })},
		{[]string{"--table", "a.b", "-s"}, want(func(c *config) bool { return c.Table == "a.b" })},
		{[]string{"--table", "_t-1.x", "-s"}, want(func(c *config) bool { return c.Table == "_t-1.x" })},
		{[]string{"-p", "22", "--allow", "10.8.0.0/16,fd00:8::/48", "--allow", "192.0.2.7", "--allow=10.8.1.0/24,2001:db8::1",
			"--allow", "10.8.0.0/16", "--allow", "fd00:8::/48"}, func(c *config) error {
			want := "[10.8.0.0/16 192.0.2.7/32 2001:db8::1/128 fd00:8::/48]"
			if got := fmt.Sprint(c.Allow); got != want {
				return fmt.Errorf("Allow = %s, want %s", got, want)
			}
			return nil
		}},
		{[]string{"-p", "22"}, want(func(c *config) bool { return c.Allow == nil })},
		{[]string{"--period", "10s", "--grace", "3s", "-s"}, want(func(c *config) bool {
			return c.Params.Period == 10*time.Second && c.Params.Grace == 3*time.Second
		})},
		{[]string{"--period", "1h", "--grace", "0s", "-s"}, want(func(c *config) bool { return c.Params.Grace == 0 })},
		{[]string{"--period", "10s", "-s"}, want(func(c *config) bool { return c.Params.Period == 10*time.Second })},
		{[]string{"--local-hour", "-s"}, want(func(c *config) bool { return c.Params.LocalHour && c.Params.Location == time.Local })},
		{[]string{"--open-timeout", "0", "-p", "22"}, want(func(c *config) bool { return c.OpenTimeout == 0 })},
		{[]string{"--open-timeout", "90s", "-p", "22"}, want(func(c *config) bool { return c.OpenTimeout == 90*time.Second })},
		{[]string{"-fvi", "-p", "22"}, want(func(c *config) bool { return c.Foreground && c.Verbose && c.IPTables })},
		{[]string{"-fs"}, want(func(c *config) bool { return c.Foreground && c.Show })},
		{[]string{"-s", "--at", "1762259696"}, want(func(c *config) bool { return c.At.Equal(time.Unix(1762259696, 0)) })},
		{[]string{"-s", "--at", "-3600"}, want(func(c *config) bool { return c.At.Equal(time.Unix(-3600, 0)) })},
		{[]string{"-s", "--at=2025-11-04T15:34:56+03:00"}, want(func(c *config) bool { return c.At.Equal(time.Unix(1762259696, 0)) })},
		{[]string{"-s", "--at=2025-11-04T12:34:56.5Z"}, want(func(c *config) bool { return c.At.Equal(time.Unix(1762259696, 5e8)) })},
		{[]string{"--verbose=false", "--show=true"}, want(func(c *config) bool { return !c.Verbose && c.Show })},
		// Help and version need nothing else, and ignore what else is wrong.
		{[]string{"-h", "-a", "5", "-b", "5"}, want(func(c *config) bool { return c.Help })},
		{[]string{"--version", "stray"}, want(func(c *config) bool { return c.Version })},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			c, err := parseFlags(tt.args)
			if err != nil {
				t.Fatalf("parseFlags: %v", err)
			}
			if err := tt.check(c); err != nil {
				t.Error(err)
			}
		})
	}
}

func want(ok func(c *config) bool) func(c *config) error {
	return func(c *config) error {
		if !ok(c) {
			return fmt.Errorf("unexpected config %+v", c)
		}
		return nil
	}
}

// TestBadFlags checks that each bad command line prints exactly one line on
// stderr, nothing on stdout, and exits with status 2.
func TestBadFlags(t *testing.T) {
	for _, tt := range testutil.BadFlags() {
		t.Run(strings.Join(tt.Args, " "), func(t *testing.T) {
			code, stdout, stderr := run(tt.Args...)
			for i, a := range tt.Args[:max(len(tt.Args)-1, 0)] {
				if secret := tt.Args[i+1]; (a == "-o" || a == "-c" || a == "--open-secret" || a == "--close-secret") &&
					len(secret) >= 6 && strings.Contains(stderr, secret) {
					t.Errorf("stderr shows the secret %q: %q", secret, stderr)
				}
			}
			if code != 2 || stdout != "" || stderr != "nfqknockd: "+tt.Want+"\n" {
				t.Errorf("exit %d, stdout %q, stderr:\n%q\nwant exit 2, no stdout, stderr:\n%q", code, stdout, stderr, "nfqknockd: "+tt.Want+"\n")
			}
		})
	}
}

func TestHelp(t *testing.T) {
	fs, _ := newFlagSet(defaultConfig())
	for _, arg := range []string{"-h", "--help"} {
		code, stdout, stderr := run(arg)
		if code != 0 || stderr != "" {
			t.Fatalf("%s: exit %d, stderr %q", arg, code, stderr)
		}
		if !strings.HasPrefix(stdout, "Usage: nfqknockd") || !strings.HasSuffix(stdout, "\n") {
			t.Errorf("%s: %q", arg, stdout)
		}
		for _, secret := range []string{knock.DefaultOpenSecret, knock.DefaultCloseSecret} {
			if strings.Contains(stdout, secret) {
				t.Errorf("%s prints the default secret %q", arg, secret)
			}
		}
		// Every flag, and the default of every flag that takes a value.
		lines := strings.Split(stdout, "\n")
		fs.VisitAll(func(f *pflag.Flag) {
			name := "--" + f.Name
			if f.Shorthand != "" {
				name = "-" + f.Shorthand + ", --" + f.Name
			}
			i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(strings.TrimSpace(l), name+" ") })
			if i < 0 {
				t.Errorf("%s: no line for %s", arg, name)
				return
			}
			if f.NoOptDefVal == "" && !strings.Contains(lines[i], "(default") {
				t.Errorf("%s: no default in %q", arg, lines[i])
			}
		})
		for _, s := range []string{"(default 100)", "(default 2048)", "(default md5)", "(default 1-65535)",
			"(default 1h0m0s)", "(default 1m0s)", "(default 10s)", "(default 65536)", "(default nfqknock)",
			"(default 1)", "(default 65535)", "(default: the C daemon's public default)"} {
			if !strings.Contains(stdout, s) {
				t.Errorf("%s: help lacks %q", arg, s)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	code, stdout, stderr := run("--version")
	if code != 0 || stdout != "nfqknockd "+version.String()+"\n" || stderr != "" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestShowInProcess runs -s through realMain: exactly two lines.
func TestShowInProcess(t *testing.T) {
	code, stdout, stderr := run("-o", "123", "-c", "321", "-s", "--at", "2025-11-04T12:34:56Z")
	want := "OPEN: 37433 38217 37480 29083 4245 55876 50663 47306\nCLOSE: 20379 16119 18662 917 3666 22607 3883 7548\n"
	if code != 0 || stdout != want || stderr != "" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// Now: two lines of 8 ports each.
	code, stdout, _ = run("-s")
	if lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n"); code != 0 || len(lines) != 2 ||
		len(strings.Fields(lines[0])) != 9 || len(strings.Fields(lines[1])) != 9 {
		t.Errorf("-s: exit %d, %q", code, stdout)
	}
}
