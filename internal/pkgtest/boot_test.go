package pkgtest

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The ssh units of the distributions, as they order themselves at boot:
// what the unit's Before= must cover without making a cycle. Only [Unit]
// and [Install] matter to the ordering; the rest is a stand-in.
const (
	// Debian 12's ssh.service (Ubuntu's adds nss-user-lookup.target).
	debianSSHService = `[Unit]
Description=OpenBSD Secure Shell server
After=network.target nss-user-lookup.target auditd.service
[Service]
Type=notify
ExecStart=/bin/true
[Install]
WantedBy=multi-user.target
Alias=sshd.service
`
	// Debian 12's ssh.socket: listens early, before sockets.target.
	debianSSHSocket = `[Unit]
Description=OpenBSD Secure Shell server socket
Before=sockets.target
[Socket]
ListenStream=22
Accept=no
[Install]
WantedBy=sockets.target
`
	// Ubuntu 24.04's ssh.socket, which starts ssh.service on the first
	// connection.
	ubuntuSSHSocket = `[Unit]
Description=OpenBSD Secure Shell server socket
Before=sockets.target ssh.service
[Socket]
ListenStream=22
Accept=no
FreeBind=yes
[Install]
WantedBy=sockets.target
RequiredBy=ssh.service
`
	// Fedora's and RHEL's sshd.service and sshd.socket.
	fedoraSSHDService = `[Unit]
Description=OpenSSH server daemon
After=network.target sshd-keygen.target
Wants=sshd-keygen.target
[Service]
Type=notify
ExecStart=/bin/true
[Install]
WantedBy=multi-user.target
`
	fedoraSSHDSocket = `[Unit]
Description=OpenSSH Server Socket
Conflicts=sshd.service
[Socket]
ListenStream=22
Accept=yes
[Install]
WantedBy=sockets.target
`
	// Fedora's and RHEL's nftables.service: the default dependencies,
	// so after basic.target.
	fedoraNftables = `[Unit]
Description=Netfilter Tables
Wants=network-pre.target
Before=network-pre.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
[Install]
WantedBy=multi-user.target
`
	// Debian's nftables.service: no default dependencies, before
	// network-pre.target.
	debianNftables = `[Unit]
Description=nftables
Wants=network-pre.target
Before=network-pre.target shutdown.target
Conflicts=shutdown.target
DefaultDependencies=no
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
[Install]
WantedBy=sysinit.target
`
)

// dropInSource is the .deb's drop-in of the unit, in packaging; the
// package installs it in /usr/lib/systemd/system/nfqknockd.service.d/.
const dropInSource = "after-nftables.conf"

// repoDropIn reads packaging/after-nftables.conf.
func repoDropIn(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), "packaging", dropInSource))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestUnitBootOrder checks the [Unit] section that puts the guard in place
// before any guarded service accepts at boot: no default dependencies
// (they would make a cycle), ordered before sshd and its socket units and
// before sockets.target, after the local file systems, stopped at
// shutdown; and the .deb's drop-in, which adds only After=nftables.service.
func TestUnitBootOrder(t *testing.T) {
	_, u := repoUnit(t)
	if got := u.last("Unit", "DefaultDependencies"); got != "no" {
		t.Errorf("DefaultDependencies=%q, want no", got)
	}
	words := func(key string) []string {
		var w []string
		for _, v := range u["Unit"][key] {
			w = append(w, strings.Fields(v)...)
		}
		return w
	}
	want := map[string][]string{
		"Before":    {"sockets.target", "ssh.socket", "sshd.socket", "ssh.service", "sshd.service", "shutdown.target"},
		"After":     {"local-fs.target", "systemd-modules-load.service"},
		"Conflicts": {"shutdown.target"},
	}
	for key, units := range want {
		for _, unit := range units {
			if !slices.Contains(words(key), unit) {
				t.Errorf("[Unit] %s= lacks %s: %q", key, unit, words(key))
			}
		}
	}
	for _, key := range []string{"Requires", "Wants", "BindsTo", "Requisite"} {
		if len(u["Unit"][key]) > 0 {
			t.Errorf("[Unit] %s=%q: the guard pulls in nothing at boot", key, u["Unit"][key])
		}
	}
	if slices.Contains(words("After"), "nftables.service") {
		t.Errorf("the unit itself is after nftables.service: a cycle with Fedora's (the .deb's drop-in orders it)")
	}
	d, err := parseUnit(repoDropIn(t))
	if err != nil {
		t.Fatalf("%s: %v", dropInSource, err)
	}
	if len(d) != 1 || len(d["Unit"]) != 1 || d.last("Unit", "After") != "nftables.service" {
		t.Errorf("%s holds %q, want only [Unit] After=nftables.service", dropInSource, d)
	}
}

// TestUnitBootCycles runs `systemd-analyze verify` on the boot transaction
// of a machine with the unit (and the .deb's drop-in where the .deb goes)
// enabled beside each distribution's ssh units and nftables.service
// (stand-ins of their files, which shadow the host's) and systemd's own
// targets: no ordering cycle may involve nfqknockd.service. A unit with
// the default dependencies, and the drop-in beside Fedora's
// nftables.service, must show their cycles, or the check sees nothing.
func TestUnitBootCycles(t *testing.T) {
	needCommand(t, "systemd-analyze", "systemd")
	bin := filepath.Join(binDir(t), "nfqknockd")
	text, _ := repoUnit(t)
	text = strings.Replace(text, "ExecStart=/usr/sbin/nfqknockd ", "ExecStart="+bin+" ", 1)
	withDefaults := strings.Replace(text, "\nDefaultDependencies=no\n", "\n", 1)
	var (
		debian = map[string]string{"nftables.service": debianNftables, "ssh.service": debianSSHService}
		fedora = map[string]string{"nftables.service": fedoraNftables, "sshd.service": fedoraSSHDService}
		with   = func(m map[string]string, name, body string) map[string]string {
			m = maps.Clone(m)
			m[name] = body
			return m
		}
	)
	tests := []struct {
		name   string
		unit   string
		dropIn bool              // the .deb's
		others map[string]string // the distribution's units
		wants  string            // enabled: what the boot pulls in
		cycle  bool
	}{
		{"debian ssh.service", text, true, debian, "ssh.service", false},
		{"debian ssh.socket", text, true, with(debian, "ssh.socket", debianSSHSocket), "ssh.socket", false},
		{"ubuntu ssh.socket", text, true, with(debian, "ssh.socket", ubuntuSSHSocket), "ssh.socket ssh.service", false},
		{"fedora sshd.service", text, false, fedora, "sshd.service", false},
		{"fedora sshd.socket", text, false, with(fedora, "sshd.socket", fedoraSSHDSocket), "sshd.socket", false},
		// Whatever this host has installed.
		{"this host's units", text, true, nil, "ssh.socket ssh.service sshd.socket sshd.service", false},
		{"default dependencies make a cycle", withDefaults, true, with(debian, "ssh.socket", debianSSHSocket), "ssh.socket", true},
		{"the drop-in beside fedora's nftables makes a cycle", text, true, with(fedora, "sshd.socket", fedoraSSHDSocket), "sshd.socket", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{
				"nfqknockd.service": tt.unit,
				// The boot: default.target with what is enabled.
				"boot-check.target": "[Unit]\nDescription=the boot, with nfqknockd and ssh enabled\n" +
					"Wants=multi-user.target sockets.target nftables.service nfqknockd.service " + tt.wants + "\n",
			}
			if tt.dropIn {
				if err := os.Mkdir(filepath.Join(dir, "nfqknockd.service.d"), 0o755); err != nil {
					t.Fatal(err)
				}
				files[filepath.Join("nfqknockd.service.d", dropInSource)] = repoDropIn(t)
			}
			for name, body := range tt.others {
				files[name] = body
			}
			for name, body := range files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out, err := run(t, time.Minute, dir, nil, "systemd-analyze", "verify", "--man=no", filepath.Join(dir, "boot-check.target"))
			if err != nil {
				t.Logf("systemd-analyze verify: %v", err)
			}
			cycle := ours(string(out))
			switch {
			case tt.cycle && cycle == "":
				t.Errorf("no ordering cycle through nfqknockd.service found; verify said:\n%s", out)
			case !tt.cycle && cycle != "":
				t.Errorf("ordering cycle through nfqknockd.service:\n%s", cycle)
			}
			if !tt.cycle && len(strings.TrimSpace(string(out))) > 0 {
				t.Logf("systemd-analyze verify (the host's own units may add lines):\n%s", out)
			}
		})
	}
}

// ours returns the lines of systemd-analyze's cycle reports that name
// nfqknockd.service ("" when none does): each report is a "Found ordering
// cycle" line followed by "Found dependency on" lines.
func ours(out string) string {
	var report, found []string
	flush := func() {
		if strings.Contains(strings.Join(report, "\n"), "nfqknockd.service") {
			found = append(found, report...)
		}
		report = nil
	}
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.Contains(l, "Found ordering cycle"):
			flush()
			report = []string{l}
		case len(report) > 0 && (strings.Contains(l, "Found dependency on") || strings.Contains(l, "to break ordering cycle")):
			report = append(report, l)
		default:
			flush()
		}
	}
	flush()
	return strings.Join(found, "\n")
}
