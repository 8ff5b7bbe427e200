package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

const testVersion = "v0.0.0-showtest"

// buildNfqknockd builds the command, with the version set through -ldflags
// as a release build does.
func buildNfqknockd(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	return testutil.Build(t, daemonPkg, "-X github.com/nfqknockd/nfqknockd/cmd/internal/version.stamp="+testVersion)
}

// runBin runs the binary with args and environment variables added to the
// test's, and returns its exit status and outputs.
func runBin(t *testing.T, bin string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("%s: %v", bin, err)
		}
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// TestShowBinary runs the built `nfqknockd -s --at` for every row of the C
// daemon's vectors, with the UTC rule and, in the row's zone (TZ), with
// --local-hour; and the commands of the issue.
func TestShowBinary(t *testing.T) {
	bin := buildNfqknockd(t)

	f, err := os.Open("../../testdata/c_vectors.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	rows := 0
	for line := 1; sc.Scan(); line++ {
		if line == 1 || sc.Text() == "" {
			continue
		}
		c := strings.Split(sc.Text(), "\t") // tabs only: secrets hold spaces
		if len(c) != 9 {
			t.Fatalf("c_vectors.tsv:%d: %d columns", line, len(c))
		}
		rows++
		unix, tz, digest, start, end, open, close := c[0], c[1], c[2], c[3], c[4], c[5], c[6]
		want := "OPEN: " + c[7] + "\nCLOSE: " + c[8] + "\n"
		args := []string{"-s", "--at", unix, "-a", start, "-b", end, "-d", digest, "--open-secret=" + open, "--close-secret=" + close}
		for _, local := range []bool{false, true} {
			a, env := args, []string{"TZ=UTC"}
			if local {
				a, env = append(args, "--local-hour"), []string{"TZ=" + tz}
			}
			code, stdout, stderr := runBin(t, bin, env, a...)
			if code != 0 || stdout != want || stderr != "" {
				t.Errorf("c_vectors.tsv:%d (%s, local hour %v): exit %d, stderr %q, stdout\n%swant\n%s",
					line, env[0], local, code, stderr, stdout, want)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if rows == 0 {
		t.Fatal("no vectors")
	}

	// The first row of the vectors, as the issue asks.
	code, stdout, _ := runBin(t, bin, nil, "-o", "123", "-c", "321", "-s", "--at", "2025-11-04T12:34:56Z")
	if want := "OPEN: 37433 38217 37480 29083 4245 55876 50663 47306\nCLOSE: 20379 16119 18662 917 3666 22607 3883 7548\n"; code != 0 || stdout != want {
		t.Errorf("first row: exit %d, stdout\n%swant\n%s", code, stdout, want)
	}

	// sha256 in 1000-2000: 16 ports in 1000..1999 per line.
	code, stdout, _ = runBin(t, bin, nil, "--range", "1000-2000", "-d", "sha256", "-o", "a", "-c", "b", "-s")
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "OPEN: ") || !strings.HasPrefix(lines[1], "CLOSE: ") {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
	for _, l := range lines {
		_, list, _ := strings.Cut(l, ": ")
		ports := strings.Split(list, " ")
		if len(ports) != 16 {
			t.Errorf("%d ports in %q", len(ports), l)
		}
		for _, p := range ports {
			if n, err := strconv.Atoi(p); err != nil || n < 1000 || n > 1999 {
				t.Errorf("port %q in %q", p, l)
			}
		}
	}

	// A bad flag: one line, status 2, no stdout.
	code, stdout, stderr := runBin(t, bin, nil, "-a", "5", "-b", "5", "-s")
	if code != 2 || stdout != "" || stderr != "nfqknockd: --end 5: start and end must differ: the sequence formula divides by end-start\n" {
		t.Errorf("-a 5 -b 5: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// The version set at build time.
	if code, stdout, _ := runBin(t, bin, nil, "--version"); code != 0 || stdout != "nfqknockd "+testVersion+"\n" {
		t.Errorf("--version: exit %d, %q", code, stdout)
	}
}

// TestShowLocalHourHalfHourZone: in Asia/Kolkata (+05:30) --local-hour
// follows the local hour, as the C daemon, and differs from the UTC rule.
func TestShowLocalHourHalfHourZone(t *testing.T) {
	bin := buildNfqknockd(t)
	// 2025-11-04 18:04:56 IST: the local hour began at 12:30 UTC (1762259400).
	args := []string{"-s", "--at", "1762259696", "-o", "123", "-c", "321"}
	_, utc, _ := runBin(t, bin, []string{"TZ=Asia/Kolkata"}, args...)
	_, local, _ := runBin(t, bin, []string{"TZ=Asia/Kolkata"}, append(args, "--local-hour")...)
	_, atLabel, _ := runBin(t, bin, []string{"TZ=UTC"}, "-s", "--at", "1762259400", "--period", "30m", "-o", "123", "-c", "321")
	if utc != "OPEN: 37433 38217 37480 29083 4245 55876 50663 47306\nCLOSE: 20379 16119 18662 917 3666 22607 3883 7548\n" {
		t.Errorf("UTC rule in Kolkata: %q", utc)
	}
	if local == utc || local != atLabel {
		t.Errorf("local hour in Kolkata: %q; want the sequences of period start 1762259400: %q", local, atLabel)
	}
}
