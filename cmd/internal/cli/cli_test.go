package cli

import (
	"errors"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/nfqknockd/nfqknockd/knock"
)

var (
	daemonStyle = Style{Safe: ShellSafe}
	clientStyle = Style{Safe: ShellSafe + "[]~"}
)

func TestQuote(t *testing.T) {
	tests := []struct {
		in, daemon, client string
	}{
		{"", "''", "''"},
		{"abc", "abc", "abc"},
		{"a b", "'a b'", "'a b'"},
		{"it's", `'it'\''s'`, `'it'\''s'`},
		{"22,443", "22,443", "22,443"},
		{"-1", "-1", "-1"},
		{"a_b.c:d/e+f=g@h%i", "a_b.c:d/e+f=g@h%i", "a_b.c:d/e+f=g@h%i"},
		{"[fd00::1]", "'[fd00::1]'", "[fd00::1]"},
		{"~/secrets", "'~/secrets'", "~/secrets"},
		{"é", "'é'", "'é'"},
		{"$HOME", "'$HOME'", "'$HOME'"},
		{"\r", `$'\r'`, `$'\r'`},
		{"a\nb'c\"", `$'a\nb\'c"'`, `$'a\nb\'c"'`},
		{"\xff", `$'\xff'`, `$'\xff'`},
		{"a\tb", `$'a\tb'`, `$'a\tb'`},
		{"a\u2028b", `$'a\u2028b'`, `$'a\u2028b'`},
	}
	for _, tt := range tests {
		if got := daemonStyle.Quote(tt.in); got != tt.daemon {
			t.Errorf("daemon Quote(%q) = %s, want %s", tt.in, got, tt.daemon)
		}
		if got := clientStyle.Quote(tt.in); got != tt.client {
			t.Errorf("client Quote(%q) = %s, want %s", tt.in, got, tt.client)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		err  *UsageError
		want string
	}{
		{"Usagef", Usagef("%s: %d arguments", "show", 1), "show: 1 arguments"},
		{"Bad", daemonStyle.Bad("$CREDENTIALS_DIRECTORY", "/run/x y", "no such file"), "$CREDENTIALS_DIRECTORY '/run/x y': no such file"},
		{"BadFlag", daemonStyle.BadFlag("start", "0", "port must be 1..65535"), "--start 0: port must be 1..65535"},
		{"BadFlag empty", daemonStyle.BadFlag("table", "", "bad"), "--table '': bad"},
		{"BadFlag client", clientStyle.BadFlag("at", "[x]", "bad"), "--at [x]: bad"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// newSet returns a flag set with a switch -s, a port -a and a digest -d.
func newSet() *pflag.FlagSet {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.Usage = func() {}
	var (
		show bool
		port uint16
		d    knock.Digest
	)
	BoolFlag(fs, &show, "show", "s", "show")
	fs.VarP(&PortValue{P: &port}, "start", "a", "port")
	fs.VarP(&DigestValue{D: &d}, "digest", "d", "digest")
	return fs
}

func TestTranslate(t *testing.T) {
	tests := []struct {
		args           []string
		daemon, client string
	}{
		{[]string{"-a", "0"}, "--start 0: port must be 1..65535", ""},
		{[]string{"--start=a b"}, "--start 'a b': port must be a number 1..65535", ""},
		{[]string{"-d", "sha1"}, "--digest sha1: unknown digest: want md5, sha256, sha384 or sha512", ""},
		{[]string{"--show=maybe"}, "--show maybe: must be true or false, or no value", ""},
		{[]string{"-a"}, "--start: needs a value", ""},
		{[]string{"--bogus"}, "--bogus: unknown flag (see --help)", ""},
		{[]string{"--bogus=1"}, "--bogus: unknown flag (see --help)", ""},
		{[]string{"-z"}, "-z: unknown flag (see --help)", ""},
		{[]string{"-sz"}, "-z: unknown flag (see --help)", ""},
		{[]string{"--b\nx"}, `$'--b\nx': unknown flag (see --help)`, ""},
		{[]string{"--[x]"}, "'--[x]': unknown flag (see --help)", "--[x]: unknown flag (see --help)"},
		{[]string{"---x"}, "---x: bad flag syntax", ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			err := newSet().Parse(tt.args)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.client == "" {
				tt.client = tt.daemon
			}
			if got := daemonStyle.Translate(err).Error(); got != tt.daemon {
				t.Errorf("daemon: %q, want %q", got, tt.daemon)
			}
			if got := clientStyle.Translate(err).Error(); got != tt.client {
				t.Errorf("client: %q, want %q", got, tt.client)
			}
		})
	}
	if got := daemonStyle.Translate(errors.New("odd")).Error(); got != "command line: odd" {
		t.Errorf("other error: %q", got)
	}
}

func TestCheckRange(t *testing.T) {
	const differ = "start and end must differ: the sequence formula divides by end-start"
	tests := []struct {
		args []string
		want string // "" = accepted
		r    knock.Range
	}{
		{nil, "", knock.FullRange},
		{[]string{"-a", "1000", "-b", "2000"}, "", knock.Range{Start: 1000, End: 2000}},
		{[]string{"-b", "2000"}, "", knock.Range{Start: 1, End: 2000}},
		{[]string{"--range", "5-6"}, "", knock.Range{Start: 5, End: 6}},
		{[]string{"--range", "1-100", "-a", "2"}, "--range 1-100: conflicts with --start (-a) and --end (-b): give either", knock.Range{}},
		{[]string{"-b", "100", "--range", "1-100"}, "--range 1-100: conflicts with --start (-a) and --end (-b): give either", knock.Range{}},
		{[]string{"-a", "100", "-b", "50"}, "--end 50: end 50 is below start 100", knock.Range{}},
		{[]string{"-b", "50", "-a", "100"}, "--end 50: end 50 is below start 100", knock.Range{}},
		{[]string{"-a", "5", "-b", "05"}, "--end 05: " + differ, knock.Range{}},
		{[]string{"-a", "65535"}, "--start 65535: " + differ, knock.Range{}},
		{[]string{"-b", "1"}, "--end 1: " + differ, knock.Range{}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			r := knock.FullRange
			start, end, rng := &PortValue{P: &r.Start}, &PortValue{P: &r.End}, &RangeValue{R: &r}
			fs.VarP(start, "start", "a", "")
			fs.VarP(end, "end", "b", "")
			fs.Var(rng, "range", "")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := daemonStyle.CheckRange(fs, start, end, rng)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("CheckRange: %v", err)
			case tt.want == "" && r != tt.r:
				t.Fatalf("range %v, want %v", r, tt.r)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Fatalf("CheckRange = %v, want %q", err, tt.want)
			case tt.want != "" && !errors.As(err, new(*UsageError)):
				t.Fatalf("CheckRange = %T, want a *UsageError", err)
			}
		})
	}
}
