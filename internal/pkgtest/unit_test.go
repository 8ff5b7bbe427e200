package pkgtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// maxExposure is the highest `systemd-analyze security` exposure the unit
// may have.
const maxExposure = 2.5

// repoUnit reads and parses packaging/nfqknockd.service.
func repoUnit(t *testing.T) (string, unitFile) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), "packaging", "nfqknockd.service"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := parseUnit(string(b))
	if err != nil {
		t.Fatalf("nfqknockd.service: %v", err)
	}
	return string(b), u
}

// TestUnitHardening checks the settings the unit must have, one by one:
// each is a promise docs/packaging.md and nfqknockd(8) make.
func TestUnitHardening(t *testing.T) {
	text, u := repoUnit(t)
	want := []struct{ key, value string }{
		{"Type", "notify"},
		{"NotifyAccess", "main"},
		{"ExecStart", "/usr/sbin/nfqknockd $NFQKNOCKD_ARGS"},
		{"EnvironmentFile", "/etc/default/nfqknockd"},
		{"LoadCredential", "nfqknockd.secrets:/etc/nfqknockd/secrets"},
		{"Restart", "on-failure"},
		{"KillSignal", "SIGTERM"},
		{"RestartKillSignal", "SIGQUIT"},
		{"ExecReload", "/bin/kill -HUP $MAINPID"},
		{"DynamicUser", "yes"},
		{"AmbientCapabilities", "CAP_NET_ADMIN"},
		{"CapabilityBoundingSet", "CAP_NET_ADMIN"},
		{"NoNewPrivileges", "yes"},
		{"PrivateUsers", "no"},
		{"ProtectSystem", "strict"},
		{"ProtectHome", "yes"},
		{"PrivateTmp", "yes"},
		{"PrivateDevices", "yes"},
		{"DevicePolicy", "closed"},
		{"ProtectKernelTunables", "yes"},
		{"ProtectKernelModules", "yes"},
		{"ProtectKernelLogs", "yes"},
		{"ProtectControlGroups", "yes"},
		{"ProtectClock", "yes"},
		{"ProtectHostname", "yes"},
		{"ProtectProc", "invisible"},
		{"ProcSubset", "pid"},
		{"RestrictNamespaces", "yes"},
		{"RestrictRealtime", "yes"},
		{"RestrictSUIDSGID", "yes"},
		{"LockPersonality", "yes"},
		{"MemoryDenyWriteExecute", "yes"},
		{"KeyringMode", "private"},
		{"RemoveIPC", "yes"},
		{"UMask", "0077"},
		{"RestrictAddressFamilies", "AF_NETLINK AF_UNIX"},
		{"IPAddressDeny", "any"},
		{"SystemCallArchitectures", "native"},
		{"MemoryMax", "64M"},
		// The lock and the used one-time sequences, in directories of
		// the daemon's alone.
		{"RuntimeDirectory", "nfqknockd"},
		{"RuntimeDirectoryMode", "0700"},
		{"StateDirectory", "nfqknockd"},
		{"StateDirectoryMode", "0700"},
	}
	for _, w := range want {
		if got := u.last("Service", w.key); got != w.value {
			t.Errorf("[Service] %s=%q, want %q", w.key, got, w.value)
		}
	}
	if got := u["Service"]["SystemCallFilter"]; len(got) == 0 || got[0] != "@system-service" {
		t.Errorf("SystemCallFilter= %q, want an allow list starting with @system-service", got)
	}
	if got := u.last("Install", "WantedBy"); got != "multi-user.target" {
		t.Errorf("[Install] WantedBy=%q", got)
	}
	// The comments must tell the admin why Restart= is safe, and what a
	// restart and an upgrade keep.
	for _, s := range []string{"survives a crash", "locks nobody out", "upgrade keep the guard"} {
		if !strings.Contains(text, s) {
			t.Errorf("the unit's comments do not say %q", s)
		}
	}
}

// TestUnitVerify runs `systemd-analyze verify` on a copy of the unit whose
// ExecStart is the freshly built daemon (verify needs the binary to exist),
// with the .deb's drop-in.
func TestUnitVerify(t *testing.T) {
	needCommand(t, "systemd-analyze", "systemd")
	bin := filepath.Join(binDir(t), "nfqknockd")
	text, _ := repoUnit(t)
	text = strings.Replace(text, "ExecStart=/usr/sbin/nfqknockd ", "ExecStart="+bin+" ", 1)
	dir := t.TempDir()
	unit := filepath.Join(dir, "nfqknockd.service")
	if err := os.WriteFile(unit, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	// With the .deb's drop-in, which verify reads beside the unit.
	if err := os.Mkdir(filepath.Join(dir, "nfqknockd.service.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "nfqknockd.service.d", dropInSource), []byte(repoDropIn(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	// --man=no: the man page is not installed yet (TestDebInstall checks
	// the installed unit with its man page).
	out, err := run(t, time.Minute, dir, nil, "systemd-analyze", "verify", "--man=no", unit)
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestUnitSecurity rates the unit with `systemd-analyze security
// --offline=yes` (it reads the file; PID 1 need not be systemd).
func TestUnitSecurity(t *testing.T) {
	needCommand(t, "systemd-analyze", "systemd")
	dir := filepath.Join(root(t), "packaging")
	score := exposure(t, dir, "nfqknockd.service")
	t.Logf("systemd-analyze security: overall exposure %.1f (at most %.1f)", score, maxExposure)
}

var exposureLine = regexp.MustCompile(`Overall exposure level for (\S+): ([0-9.]+) `)

// exposure runs `systemd-analyze security --offline=yes unit` in dir and
// returns the overall exposure, failing the test above maxExposure.
func exposure(t *testing.T, dir, unit string, extra ...string) float64 {
	t.Helper()
	args := append([]string{"security", "--offline=yes", "--no-pager"}, extra...)
	out, err := run(t, time.Minute, dir, nil, "systemd-analyze", append(args, unit)...)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	m := exposureLine.FindStringSubmatch(lines[len(lines)-1])
	if m == nil {
		t.Fatalf("systemd-analyze security: %v; no exposure line at the end:\n%s", err, out)
	}
	if m[1] != "nfqknockd.service" {
		t.Errorf("rated %s, want nfqknockd.service", m[1])
	}
	score, perr := strconv.ParseFloat(m[2], 64)
	if perr != nil {
		t.Fatalf("exposure %q: %v", m[2], perr)
	}
	// Its exit status is non-zero when the score is above a threshold (none
	// given here) or the unit is bad.
	if err != nil {
		t.Errorf("systemd-analyze security: %v\n%s", err, out)
	}
	if score > maxExposure {
		t.Errorf("exposure %.1f, want at most %.1f:\n%s", score, maxExposure, out)
	}
	return score
}

// TestDefaultFile checks /etc/default/nfqknockd as shipped: it parses as
// systemd parses an EnvironmentFile, its NFQKNOCKD_ARGS are flags the
// daemon accepts, and it holds no secret.
func TestDefaultFile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "packaging", "nfqknockd.default"))
	if err != nil {
		t.Fatal(err)
	}
	env, err := parseEnvFile(string(b))
	if err != nil {
		t.Fatalf("nfqknockd.default: %v", err)
	}
	if len(env) != 1 || env["NFQKNOCKD_ARGS"] != "--guard 22" {
		t.Errorf("nfqknockd.default sets %q, want only NFQKNOCKD_ARGS=\"--guard 22\"", env)
	}
	_, u := repoUnit(t)
	argv, err := expandExecStart(u.last("Service", "ExecStart"), env)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range argv {
		if a == "-o" || a == "-c" || strings.HasPrefix(a, "--open-secret") || strings.HasPrefix(a, "--close-secret") {
			t.Errorf("a secret flag on the command line: %q", argv)
		}
	}
	// The daemon parses them: -s with the same flags prints the sequences.
	cmd := exec.Command(filepath.Join(binDir(t), "nfqknockd"), append(argv[1:], "-o", "x", "-c", "y", "-s")...)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "OPEN: ") {
		t.Errorf("nfqknockd %q -s: %v\n%s", argv[1:], err, out)
	}
}
