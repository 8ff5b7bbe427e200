package main

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/knock"
)

// TestMain removes namespaces that crashed test runs left, runs the tests,
// and fails the run if a test left a namespace behind. The tests find the
// client's default files in an empty directory of their own, never the
// user's. (The tests of the built client are in internal/e2e.)
func TestMain(m *testing.M) { testutil.Main(m, testutil.ClientConfigDir()) }

// runArgs calls run with args and empty stdin and returns the exit status,
// stdout and stderr.
func runArgs(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// vector is one row of testdata/c_vectors.tsv, produced by the C daemon.
type vector struct {
	unix                    string
	tz, digest, start, end  string
	openSecret, closeSecret string
	open, close             string
}

// readVectors reads testdata/c_vectors.tsv (fields split on tabs only: the
// secrets hold spaces, quotes and backslashes).
func readVectors(t *testing.T) []vector {
	t.Helper()
	f, err := os.Open("../../testdata/c_vectors.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var vs []vector
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if n == 1 {
			continue // header
		}
		c := strings.Split(sc.Text(), "\t")
		if len(c) != 9 {
			t.Fatalf("c_vectors.tsv line %d: %d fields, want 9", n, len(c))
		}
		vs = append(vs, vector{c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatal("c_vectors.tsv: no rows")
	}
	return vs
}

// TestShowFirstVector: `nfqknock show -o 123 -c 321 --at 2025-11-04T12:34:56Z`
// prints what the C daemon printed for that hour (the first vector).
func TestShowFirstVector(t *testing.T) {
	v := readVectors(t)[0]
	code, stdout, stderr := runArgs(t, "show", "-o", "123", "-c", "321", "--at", "2025-11-04T12:34:56Z")
	want := "OPEN: " + v.open + "\nCLOSE: " + v.close + "\n"
	if code != 0 || stdout != want || stderr != "" {
		t.Fatalf("show = %d, %q, stderr %q; want 0, %q", code, stdout, stderr, want)
	}
}

// TestShowVectors runs every C vector through `nfqknock show` with the
// daemon's flags. All rows are in whole-hour zones, where the default UTC
// rule equals the C rule.
func TestShowVectors(t *testing.T) {
	for i, v := range readVectors(t) {
		t.Run(strconv.Itoa(i+2), func(t *testing.T) {
			code, stdout, stderr := runArgs(t, "show", "-d", v.digest, "-a", v.start, "-b", v.end,
				"--open-secret="+v.openSecret, "--close-secret="+v.closeSecret, "--at", v.unix)
			want := "OPEN: " + v.open + "\nCLOSE: " + v.close + "\n"
			if code != 0 || stdout != want || stderr != "" {
				t.Fatalf("row %+v: show = %d, %q, stderr %q; want 0, %q", v, code, stdout, stderr, want)
			}
		})
	}
}

// TestShowFlags checks that the sequence flags reach the sequences: the
// output equals knock's for the same parameters.
func TestShowFlags(t *testing.T) {
	at := "1762259696"
	base := knock.Params{Digest: knock.MD5, Range: knock.FullRange, OpenSecret: "a", CloseSecret: "b", Period: knock.DefaultPeriod}
	with := func(f func(p *knock.Params)) knock.Params { p := base; f(&p); return p }
	tests := []struct {
		name string
		args []string
		want knock.Params
	}{
		{"defaults", nil, base},
		{"sha256 upper case", []string{"-d", "SHA256"}, with(func(p *knock.Params) { p.Digest = knock.SHA256 })},
		{"long digest", []string{"--digest", "sha512"}, with(func(p *knock.Params) { p.Digest = knock.SHA512 })},
		{"-a -b", []string{"-a", "1000", "-b", "2000"}, with(func(p *knock.Params) { p.Range = knock.Range{Start: 1000, End: 2000} })},
		{"--range", []string{"--range", "1000-2000"}, with(func(p *knock.Params) { p.Range = knock.Range{Start: 1000, End: 2000} })},
		{"--period", []string{"--period", "10m", "--at", "1762259696"}, with(func(p *knock.Params) { p.Period = 10 * 60e9 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"show", "-o", "a", "-c", "b", "--at", at}, tt.args...)
			code, stdout, stderr := runArgs(t, args...)
			ts := time.Unix(1762259696, 0)
			want := knock.FormatSequences(tt.want.Sequences(ts))
			if code != 0 || stdout != want || stderr != "" {
				t.Fatalf("%v = %d, %q, stderr %q; want 0, %q", args, code, stdout, stderr, want)
			}
		})
	}
}

// TestHelp: --help and -h print the usage to stdout and exit 0, --version
// prints the version.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"show", "--help"}, {"--help", "frob"}} {
		code, stdout, stderr := runArgs(t, args...)
		if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "Usage:") {
			t.Errorf("%v = %d, stdout %q, stderr %q; want 0 and the usage", args, code, stdout, stderr)
		}
		for _, flag := range []string{"--digest", "--start", "--end", "--range", "--period", "--local-hour", "--at",
			"--open-secret", "--close-secret", "--secret-file", "--one-time", "--config", "k/1024", "--ipv4", "--ipv6", "--gap", "--knock-timeout", "--connect-timeout",
			"NFQKNOCK_OPEN_SECRET", "proxy HOST PORT"} {
			if !strings.Contains(stdout, flag) {
				t.Errorf("usage lacks %s", flag)
			}
		}
	}
	code, stdout, stderr := runArgs(t, "--version")
	if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "nfqknock ") {
		t.Errorf("--version = %d, %q, %q", code, stdout, stderr)
	}
}

// TestArgErrors: bad input prints exactly one line naming the flag or value
// on stderr, nothing on stdout, and exits 2.
func TestArgErrors(t *testing.T) {
	dir := t.TempDir()
	open := testutil.WriteFile(t, dir, "open", "open=x\nclose=y\n", 0o644)
	sec := []string{"-o", "x", "-c", "y"}
	tests := []struct {
		args []string
		want string
	}{
		{nil, "no command: want show [HOST], open HOST, close HOST, proxy HOST PORT or doctor HOST PORT (see --help)"},
		{[]string{"frob"}, "frob: unknown command: want show [HOST], open HOST, close HOST, proxy HOST PORT or doctor HOST PORT (see --help)"},
		{[]string{"show", "host", "extra"}, "show: 2 arguments: want show [HOST]"},
		{[]string{"doctor", "host"}, "doctor: 1 arguments: want doctor HOST PORT"},
		{[]string{"doctor", "host", "ssh"}, "PORT ssh: port must be a number 1..65535"},
		{[]string{"open"}, "open: 0 arguments: want open HOST"},
		{[]string{"close", "a", "b"}, "close: 2 arguments: want close HOST"},
		{[]string{"proxy", "host"}, "proxy: 1 arguments: want proxy HOST PORT"},
		{[]string{"proxy", "10.0.0.1", "0"}, "PORT 0: port must be 1..65535"},
		{[]string{"proxy", "10.0.0.1", "65536"}, "PORT 65536: port must be 1..65535"},
		{[]string{"proxy", "10.0.0.1", "ssh"}, "PORT ssh: port must be a number 1..65535"},
		{[]string{"open", ""}, "HOST '': must not be empty"},
		{[]string{"--frob", "show"}, "--frob: unknown flag (see --help)"},
		{[]string{"-x", "show"}, "-x: unknown flag (see --help)"},
		{[]string{"show", "-o"}, "--open-secret: needs a value"},
		{[]string{"show", "--gap"}, "--gap: needs a value"},
		{[]string{"show", "-d", "sha1"}, "--digest sha1: unknown digest: want md5, sha256, sha384 or sha512"},
		{[]string{"show", "-a", "0"}, "--start 0: port must be 1..65535"},
		{[]string{"show", "-b", "65536"}, "--end 65536: port must be 1..65535"},
		{[]string{"show", "-a", "x"}, "--start x: port must be a number 1..65535"},
		{[]string{"show", "-a", "5", "-b", "5"}, "--end 5: start and end must differ: the sequence formula divides by end-start"},
		{[]string{"show", "-a", "65535"}, "--start 65535: start and end must differ: the sequence formula divides by end-start"},
		{[]string{"show", "-a", "6", "-b", "5"}, "--end 5: end 5 is below start 6"},
		{[]string{"show", "-a", "70000"}, "--start 70000: port must be 1..65535"},
		{[]string{"show", "--range", "5"}, "--range 5: range must be START-END, for example 1-65535"},
		{[]string{"show", "--range", "1-70000"}, "--range 1-70000: end: port must be 1..65535"},
		{[]string{"show", "--range", "1-2", "-a", "1"}, "--range 1-2: conflicts with --start (-a) and --end (-b): give either"},
		{[]string{"show", "--period", "1"}, "--period 1: not a duration: use for example 50ms, 10s or 1h"},
		{[]string{"show", "--period", "0s"}, "--period 0s: must be at least 1s"},
		{[]string{"show", "--period", "1500ms"}, "--period 1500ms: must be a whole number of seconds"},
		{[]string{"show", "--local-hour", "--period", "30m"}, "--period 30m: --local-hour needs a period of 1h"},
		{[]string{"show", "--at", "yesterday"}, "--at yesterday: not a time: use RFC 3339 (2025-11-04T12:34:56Z) or Unix seconds"},
		{[]string{"open", "10.0.0.1", "--at", "0"}, "--at 0: only meaningful with show"},
		{[]string{"show", "-4", "-6"}, "--ipv6 (-6): conflicts with --ipv4 (-4): give either"},
		{[]string{"show", "--ipv4=maybe"}, "--ipv4 maybe: must be true or false, or no value"},
		{[]string{"show", "--gap", "-1ms"}, "--gap -1ms: must be 0s..5s"},
		{[]string{"show", "--gap", "fast"}, "--gap fast: not a duration: use for example 50ms, 10s or 1h"},
		{[]string{"show", "--knock-timeout", "1s"}, "--knock-timeout 1s: must be 1ms..999ms"},
		{[]string{"show", "--knock-timeout", "0"}, "--knock-timeout 0: must be 1ms..999ms"},
		{[]string{"show", "--connect-timeout", "0s"}, "--connect-timeout 0s: must be 1ms..1h"},
		{[]string{"open", "bad..host"}, "HOST bad..host: unknown host (no such host)"},
		{[]string{"open", "bad host"}, "HOST 'bad host': unknown host (no such host)"},
		{[]string{"open", "-6", "10.0.0.1"}, "HOST 10.0.0.1: not an IPv6 address"},
		{[]string{"open", "-4", "fd00::1"}, "HOST fd00::1: not an IPv4 address"},
		{[]string{"show", "--secret-file", open}, "--secret-file " + open + ": permissions 0644 are too open (want 0600 or stricter)"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			args := tt.args
			if !strings.Contains(tt.want, "secret") {
				args = append(append([]string{}, args...), sec...)
				if len(tt.args) > 0 && (tt.args[len(tt.args)-1] == "-o" || tt.args[len(tt.args)-1] == "--gap") {
					args = tt.args // a flag without its value must stay last
				}
			}
			code, stdout, stderr := runArgs(t, args...)
			want := "nfqknock: " + tt.want + "\n"
			if code != 2 || stdout != "" || stderr != want {
				t.Errorf("%q = %d, stdout %q, stderr %q; want 2, stderr %q", args, code, stdout, stderr, want)
			}
		})
	}
}
