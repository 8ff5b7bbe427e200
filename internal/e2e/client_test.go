package e2e

// The client against the built daemon: nfqknock show and --version as
// nfqknockd prints them, and nfqknock doctor against a guard.

import (
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// doctorPort is the port that the daemon guards in the doctor tests.
const doctorPort = 7022

// TestShowMatchesDaemon: `nfqknock show` prints what the built
// `nfqknockd -s` prints for the same sequence flags (each with --at, so
// that no rotation falls between the two runs).
func TestShowMatchesDaemon(t *testing.T) {
	daemon := testutil.Build(t, daemonPkg, "")
	client := testutil.Build(t, clientPkg, "")
	for _, flags := range [][]string{
		{"-o", "123", "-c", "321", "--at", "2025-11-04T12:34:56Z"},
		{"-d", "sha256", "--range", "1000-2000", "-o", "a", "-c", "b", "--at", "1700000000"},
		{"-d", "SHA384", "-a", "10", "-b", "20", "--open-secret=x y", "--close-secret=z'q", "--period", "10m", "--at", "1762259696"},
		{"--digest", "sha512", "--start", "1024", "--end", "49151", "-o", "a", "-c", "b", "--local-hour", "--at", "2026-03-29T01:30:00+01:00"},
	} {
		want, err := exec.Command(daemon, append([]string{"-s"}, flags...)...).Output()
		if err != nil {
			t.Fatalf("nfqknockd -s %q: %v", flags, err)
		}
		code, stdout, stderr := runBin(t, client, nil, append([]string{"show"}, flags...)...)
		if code != 0 || stdout != string(want) || stderr != "" {
			t.Errorf("show %q = %d, %q, %q; nfqknockd -s printed %q", flags, code, stdout, stderr, want)
		}
	}
}

// TestVersionSameAsDaemon: both commands, built with the -ldflags of the
// Makefile's LDFLAGS line (its $(VERSION) replaced), print the same version
// string: the one stamped.
func TestVersionSameAsDaemon(t *testing.T) {
	const stamp = "v9.8.7-versiontest"
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	var ldflags string
	for line := range strings.SplitSeq(string(mk), "\n") {
		if rest, ok := strings.CutPrefix(line, "LDFLAGS"); ok {
			if _, v, ok := strings.Cut(rest, ":="); ok {
				ldflags = strings.ReplaceAll(strings.TrimSpace(v), "$(VERSION)", stamp)
			}
		}
	}
	if !strings.Contains(ldflags, "-X ") || !strings.Contains(ldflags, stamp) {
		t.Fatalf("Makefile: no LDFLAGS := ... -X ...=$(VERSION) line (got %q)", ldflags)
	}
	for _, name := range []string{"nfqknockd", "nfqknock"} {
		bin := testutil.Build(t, "../../cmd/"+name, ldflags)
		out, err := exec.Command(bin, "--version").Output()
		if want := name + " " + stamp + "\n"; err != nil || string(out) != want {
			t.Errorf("%s --version (-ldflags %q) = %q, %v; want %q", name, ldflags, out, err, want)
		}
	}
}

// startGuard starts the built nfqknockd in the server namespace of a new
// env, guarding doctorPort with the secrets "wire open" and "wire close"
// and the range 10000-60000, and a listener on doctorPort for both
// families.
func startGuard(t *testing.T) *env {
	t.Helper()
	testutil.NeedNft(t)
	e := newEnv(t)
	for _, fam := range families {
		e.listen(netip.AddrPortFrom(fam.server, doctorPort))
	}
	d := e.spawnArgs(nil, "--guard", strconv.Itoa(doctorPort), "--range", "10000-60000", "-o", "wire open", "-c", "wire close")
	waitFor(t, d, 10*time.Second, "table of nfqknockd", func() bool {
		_, err := e.nft("list", "set", "inet", "nfqknock", "allow4")
		return err == nil
	})
	return e
}

// TestDoctor: doctor HOST PORT names the right likely cause first for each
// way a knock fails, and says OK when it opens, over IPv4 and IPv6.
func TestDoctor(t *testing.T) {
	client := testutil.Build(t, clientPkg, "")
	good := []string{"--range", "10000-60000", "--connect-timeout", "1s", "-o", "wire open", "-c", "wire close"}
	tests := []struct {
		name   string
		args   []string // the client's flags
		egress bool     // drop the knocks in the client namespace
		code   int
		want   string // in stdout's result line (0) or first cause (1)
	}{
		{"happy path", good, false, 0, "OK: knocking opens"},
		{"wrong secret", []string{"--range", "10000-60000", "--connect-timeout", "1s", "-o", "not the open secret", "-c", "wire close"}, false, 1, "the secrets differ"},
		{"wrong range", []string{"--connect-timeout", "1s", "-o", "wire open", "-c", "wire close"}, false, 1, "range: this client knocks with the default 1-65535"},
		// --test-clock-skew: the client's hidden test hook.
		{"clock off by two hours", append([]string{"--test-clock-skew", "2h"}, good...), false, 1, "clock: this client's clock is about 2h ahead of the server's"},
		{"egress filter", good, true, 1, "egress firewall"},
	}
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					e := startGuard(t)
					if tt.egress {
						if out, err := netns.Nft(e.pair.Client, "table inet egress {\n chain out {\n  type filter hook output priority 0; policy accept;\n"+
							"  tcp flags syn / syn,ack tcp dport != "+strconv.Itoa(doctorPort)+" drop\n }\n}\n", "-f", "-"); err != nil {
							t.Fatalf("nft -f: %v: %s", err, out)
						}
					}
					args := append([]string{"doctor", fam.flag}, tt.args...)
					args = append(args, fam.server.String(), strconv.Itoa(doctorPort))
					code, stdout, stderr := runIn(t, e.pair.Client, append([]string{client}, args...))
					if testing.Verbose() {
						t.Logf("%q:\n%s", args, stdout)
					}
					got := testutil.FirstCause(stdout)
					if tt.code == 0 {
						got = stdout
					}
					wantErr := ""
					if tt.code == 1 {
						wantErr = "nfqknock: doctor " + netip.AddrPortFrom(fam.server, doctorPort).String() + ": knocking did not open it\n"
					}
					if code != tt.code || !strings.Contains(got, tt.want) || stderr != wantErr {
						t.Errorf("%q = %d, stderr %q; want %d, %q and %q in:\n%s", args, code, stderr, tt.code, wantErr, tt.want, stdout)
					}
				})
			}
		})
	}
}
