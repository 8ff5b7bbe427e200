package pkgtest

import (
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

// TestUnitBootOrder checks the [Unit] section that puts the guard in place
// before any guarded service accepts at boot: no default dependencies
// (they would make a cycle), ordered before sshd and its socket units and
// before sockets.target, after the local file systems and nftables.service,
// stopped at shutdown.
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
		"After":     {"local-fs.target", "systemd-modules-load.service", "nftables.service"},
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
}

// TestUnitBootCycles runs `systemd-analyze verify` on the boot transaction
// of a machine with the unit enabled beside each distribution's ssh units
// (stand-ins of their files, which shadow the host's) and systemd's own
// targets: no ordering cycle may involve nfqknockd.service. A unit with
// the default dependencies must show the cycle, or the check sees nothing.
func TestUnitBootCycles(t *testing.T) {
	needCommand(t, "systemd-analyze", "systemd")
	bin := filepath.Join(binDir(t), "nfqknockd")
	text, _ := repoUnit(t)
	text = strings.Replace(text, "ExecStart=/usr/sbin/nfqknockd ", "ExecStart="+bin+" ", 1)
	withDefaults := strings.Replace(text, "\nDefaultDependencies=no\n", "\n", 1)

	tests := []struct {
		name  string
		unit  string
		ssh   map[string]string // the ssh units of the distribution
		wants string            // enabled: what the boot pulls in
		cycle bool
	}{
		{"debian ssh.service", text, map[string]string{"ssh.service": debianSSHService}, "ssh.service", false},
		{"debian ssh.socket", text, map[string]string{"ssh.service": debianSSHService, "ssh.socket": debianSSHSocket}, "ssh.socket", false},
		{"ubuntu ssh.socket", text, map[string]string{"ssh.service": debianSSHService, "ssh.socket": ubuntuSSHSocket}, "ssh.socket ssh.service", false},
		{"fedora sshd.service", text, map[string]string{"sshd.service": fedoraSSHDService}, "sshd.service", false},
		{"fedora sshd.socket", text, map[string]string{"sshd.service": fedoraSSHDService, "sshd.socket": fedoraSSHDSocket}, "sshd.socket", false},
		// Whatever this host has installed (nothing: no unit, no cycle).
		{"this host's ssh units", text, nil, "ssh.socket ssh.service sshd.socket sshd.service", false},
		{"default dependencies make a cycle", withDefaults, map[string]string{"ssh.service": debianSSHService, "ssh.socket": debianSSHSocket}, "ssh.socket", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{
				"nfqknockd.service": tt.unit,
				"nftables.service":  debianNftables,
				// The boot: default.target with what is enabled.
				"boot-check.target": "[Unit]\nDescription=the boot, with nfqknockd and ssh enabled\n" +
					"Wants=multi-user.target sockets.target nftables.service nfqknockd.service " + tt.wants + "\n",
			}
			for name, body := range tt.ssh {
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
