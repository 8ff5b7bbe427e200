package pkgtest

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// notifyWait bounds a wait for a notification; it measures nothing.
const notifyWait = 30 * time.Second

// unitNotify gives the launch what a unit of Type=notify gets from
// systemd: a notify socket, named by $NOTIFY_SOCKET, that every user may
// write to (systemd's is /run/systemd/notify). Other types get none.
func unitNotify(t *testing.T, u unitFile, dir string, l *launch) {
	t.Helper()
	if u.last("Service", "Type") != "notify" {
		return
	}
	l.notify = testutil.NewNotifySocket(t, filepath.Join(dir, "notify"))
	l.env = append(l.env, "NOTIFY_SOCKET="+l.notify.Name)
}

// awaitReady waits for the daemon's READY=1, as systemd does before it
// starts the units ordered after nfqknockd (sshd), and checks that the
// guard is in place at that moment: the table's guard chain exists. Only
// the main process may notify (NotifyAccess=main); what an earlier daemon
// sent (its STOPPING=1 at a restart) is skipped.
func awaitReady(t *testing.T, l *launch, d *daemonProc, ns string) {
	t.Helper()
	if l.notify == nil {
		return
	}
	for {
		m, err := l.notify.Next(notifyWait)
		if err != nil {
			t.Fatalf("no READY=1 from the daemon (pid %d): %v\n%s", d.pid, err, d.stderr)
		}
		if m.PID != d.pid {
			t.Logf("notification %q of pid %d, not the daemon's %d: skipped", m.Text, m.PID, d.pid)
			continue
		}
		if !m.Has("READY", "1") {
			t.Fatalf("the daemon's first notification is %q, want READY=1", m.Text)
		}
		break
	}
	if out, err := netns.Command(ns, "nft", "list", "chain", "inet", "nfqknock", "guard").CombinedOutput(); err != nil {
		t.Fatalf("READY=1 came before the guard chain: nft list chain inet nfqknock guard: %v\n%s", err, out)
	}
}

// expectReload checks the notifications of a reload: RELOADING=1, then
// READY=1, both from the daemon.
func expectReload(t *testing.T, l *launch, d *daemonProc) {
	t.Helper()
	if l.notify == nil {
		return
	}
	for _, want := range []string{"RELOADING", "READY"} {
		m, err := l.notify.Next(notifyWait)
		if err != nil {
			t.Fatalf("no %s=1 after ExecReload: %v\n%s", want, err, d.stderr)
		}
		if m.PID != d.pid || !m.Has(want, "1") {
			t.Fatalf("after ExecReload: %q from pid %d, want %s=1 from the daemon's %d", m.Text, m.PID, want, d.pid)
		}
	}
}
