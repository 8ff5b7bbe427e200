package pkgtest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
	knockseq "github.com/nfqknockd/nfqknockd/knock"
)

// TestOpenRCCommandLine runs the command line that the OpenRC script's
// start gives supervise-daemon (the shipped conf.d file's flags) with the
// real daemon in a network namespace, with the process state that
// supervise-daemon's options make (--capabilities ^cap_net_admin, --secbits
// 0x3, --no-new-privs: setpriv does the same), and checks that the daemon
// starts with CAP_NET_ADMIN alone and makes its table, and that the
// signals of the script's paths do what they promise: SIGHUP (reload)
// re-reads the secrets and keeps the table and the opened sources; SIGQUIT
// (restart), even with a SIGTERM after it (the supervisor's stop), leaves
// the table guarding with the opened sources, and the next daemon takes it
// over; SIGTERM (stop) deletes it. Then, with NFQKNOCKD_ACCESS_FILE set
// to an access file of two users, a knock of one user's sequences opens
// the guarded port, and a reload re-reads the file. supervise-daemon
// itself is not run (Debian has no OpenRC).
func TestOpenRCCommandLine(t *testing.T) {
	setpriv := needCommand(t, "setpriv", "util-linux")
	needCommand(t, "nft", "nftables")
	secrets, open, close := testSecrets(t, 0o600)

	// The script's start, under the harness.
	bin := filepath.Join(binDir(t), "nfqknockd")
	argv := openrcArgv(t, openrcSetup{shell: []string{"sh"}, secrets: secrets, childPID: "1", alive: true})
	wrap := []string{setpriv, "--inh-caps=-all,+net_admin", "--ambient-caps=-all,+net_admin",
		"--securebits=+noroot,+noroot_locked", "--no-new-privs", "--"}
	t.Logf("the script's command line: %s", strings.Join(argv, " "))

	pair := netns.NewPair(t)
	var ln net.Listener
	if err := netns.Do(pair.Server, func() (err error) {
		ln, err = net.Listen("tcp", ":22") // the shipped conf.d guards 22
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	testutil.AcceptAndClose(ln)
	guard4 := netip.AddrPortFrom(netns.ServerIP4, 22).String()
	guard6 := netip.AddrPortFrom(netns.ServerIP6, 22).String()
	nft := func(args ...string) (string, error) {
		out, err := netns.Command(pair.Server, "nft", args...).CombinedOutput()
		return string(out), err
	}
	sequences := func() (open, close []uint16) {
		out, err := exec.Command(bin, append(argv[1:], "--show")...).Output()
		if err != nil {
			t.Fatalf("%s --show: %v", strings.Join(argv, " "), err)
		}
		return parseSequences(t, string(out))
	}

	d := startProc(t, pair.Server, bin, append(wrap, argv...))
	if !strings.Contains(d.stderr.String(), "took_over=false") {
		t.Errorf("the first daemon's start line:\n%s", d.stderr)
	}
	caps := procCaps(t, d.pid)
	if caps["CapEff"] != 1<<12 || caps["CapPrm"] != 1<<12 || caps["CapInh"] != 0 || caps["CapAmb"] != 0 {
		t.Errorf("the daemon's capabilities: %x, want CAP_NET_ADMIN only", caps)
	}
	if uid := procStatus(t, d.pid, "Uid"); strings.Fields(uid)[0] != "0" {
		t.Errorf("the daemon runs as uid %s, want root", uid)
	}
	if out, err := nft("list", "table", "inet", "nfqknock"); err != nil {
		t.Fatalf("no table after the start: %v\n%s", err, out)
	}
	if err := dial(pair.Client, guard4, 800*time.Millisecond); !isTimeout(err) {
		t.Fatalf("before the knock: connect %s: %v, want dropped", guard4, err)
	}
	openSeq, _ := sequences()
	knock(t, pair.Client, netns.ServerIP4, openSeq)
	if err := dial(pair.Client, guard4, 5*time.Second); err != nil {
		t.Fatalf("after the open knock: connect %s: %v\n%s", guard4, err, d.stderr)
	}

	// reload: new secrets in the file, SIGHUP.
	open2, close2 := randomSecret(t), randomSecret(t)
	if err := os.WriteFile(secrets, []byte(fmt.Sprintf("open=%s\nclose=%s\n", open2, close2)), 0o600); err != nil {
		t.Fatal(err)
	}
	d.signal(t, syscall.SIGHUP)
	if !waitFor(10*time.Second, func() bool { return strings.Contains(d.stderr.String(), "msg=reloaded") }) || d.exited() {
		t.Fatalf("no reload on SIGHUP:\n%s", d.stderr)
	}
	newOpen, _ := sequences()
	knock(t, pair.Client, netns.ServerIP6, newOpen)
	if err := dial(pair.Client, guard6, 5*time.Second); err != nil {
		t.Errorf("after the reload the new open sequence does not open: connect %s: %v", guard6, err)
	}
	if err := dial(pair.Client, guard4, 5*time.Second); err != nil {
		t.Errorf("the source opened before the reload lost its access: %v", err)
	}

	// restart: SIGQUIT; the daemon ends; a SIGTERM once it took the
	// SIGQUIT (the supervisor's stop, when the daemon is slow to exit)
	// changes nothing.
	d.signal(t, syscall.SIGQUIT)
	if !waitFor(30*time.Second, func() bool { return strings.Contains(d.stderr.String(), "restarting: the table stays") }) {
		t.Fatalf("SIGQUIT: the daemon did not restart:\n%s", d.stderr)
	}
	if err := syscall.Kill(d.pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Fatal(err)
	}
	if !waitFor(30*time.Second, d.exited) || d.waitErr != nil {
		t.Fatalf("SIGQUIT: exit %v, want 0:\n%s", d.waitErr, d.stderr)
	}
	if out, err := nft("list", "set", "inet", "nfqknock", "allow4"); err != nil || !strings.Contains(out, netns.ClientIP4.String()) {
		t.Fatalf("after SIGQUIT the table or the opened source is gone: %v\n%s", err, out)
	}
	d2 := startProc(t, pair.Server, bin, append(wrap, argv...))
	if !strings.Contains(d2.stderr.String(), "took_over=true") {
		t.Errorf("the next daemon did not take the table over:\n%s", d2.stderr)
	}
	if err := dial(pair.Client, guard4, 5*time.Second); err != nil {
		t.Errorf("after the restart the opened source lost its access: %v", err)
	}

	// stop: SIGTERM deletes the table.
	d2.signal(t, syscall.SIGTERM)
	if !waitFor(30*time.Second, d2.exited) || d2.waitErr != nil {
		t.Fatalf("SIGTERM: exit %v, want 0:\n%s", d2.waitErr, d2.stderr)
	}
	if out, _ := nft("list", "tables"); strings.TrimSpace(out) != "" {
		t.Errorf("table left after SIGTERM: %s", out)
	}
	for _, s := range []string{open, close, open2, close2} {
		if strings.Contains(d.stderr.String()+d2.stderr.String(), s) {
			t.Errorf("a secret appears in the daemon's log")
		}
	}

	t.Run("access file", func(t *testing.T) {
		access, users := testAccess(t, 0o600)
		argv := openrcArgv(t, openrcSetup{shell: []string{"sh"}, confd: openrcConfAccess(t, "--guard 22", access),
			secrets: filepath.Join(t.TempDir(), "none"), childPID: "1", alive: true})
		t.Logf("the script's command line: %s", strings.Join(argv, " "))
		if want := []string{bin, "--access-file", access, "--guard", "22"}; !slices.Equal(argv, want) {
			t.Fatalf("the script's command line: %q, want %q", argv, want)
		}
		// userOpen is the open sequence of u now, from u's secrets alone.
		userOpen := func(u accessUser) []uint16 {
			p := knockseq.DefaultParams()
			p.OpenSecret, p.CloseSecret = u.open, u.close
			open, _ := p.Sequences(time.Now())
			return open
		}

		d := startProc(t, pair.Server, bin, append(wrap, argv...))
		if !strings.Contains(d.stderr.String(), "(2 users: alice, bob)") {
			t.Errorf("the start line does not name the access file's users:\n%s", d.stderr)
		}
		if err := dial(pair.Client, guard4, 800*time.Millisecond); !isTimeout(err) {
			t.Fatalf("before the knock: connect %s: %v, want dropped", guard4, err)
		}
		knock(t, pair.Client, netns.ServerIP4, userOpen(users[0]))
		if err := dial(pair.Client, guard4, 5*time.Second); err != nil {
			t.Fatalf("after alice's open knock: connect %s: %v\n%s", guard4, err, d.stderr)
		}
		if !strings.Contains(d.stderr.String(), "user=alice") {
			t.Errorf("the open is not logged with user=alice:\n%s", d.stderr)
		}

		// reload: bob gets new secrets; SIGHUP re-reads the access file.
		if err := dial(pair.Client, guard6, 800*time.Millisecond); !isTimeout(err) {
			t.Fatalf("before bob's knock: connect %s: %v, want dropped", guard6, err)
		}
		old := users[1]
		users[1].open, users[1].close = randomSecret(t), randomSecret(t)
		writeAccess(t, access, 0o600, users)
		d.signal(t, syscall.SIGHUP)
		if !waitFor(10*time.Second, func() bool { return strings.Contains(d.stderr.String(), "msg=reloaded") }) || d.exited() {
			t.Fatalf("no reload on SIGHUP:\n%s", d.stderr)
		}
		knock(t, pair.Client, netns.ServerIP6, userOpen(users[1]))
		if err := dial(pair.Client, guard6, 5*time.Second); err != nil {
			t.Errorf("after the reload bob's new open sequence does not open: connect %s: %v\n%s", guard6, err, d.stderr)
		}
		if !strings.Contains(d.stderr.String(), "user=bob") {
			t.Errorf("bob's open is not logged with user=bob:\n%s", d.stderr)
		}
		if err := dial(pair.Client, guard4, 5*time.Second); err != nil {
			t.Errorf("alice lost her access in the reload: %v", err)
		}

		d.signal(t, syscall.SIGTERM)
		if !waitFor(30*time.Second, d.exited) || d.waitErr != nil {
			t.Fatalf("SIGTERM: exit %v, want 0:\n%s", d.waitErr, d.stderr)
		}
		for _, u := range append(users, old) {
			if strings.Contains(d.stderr.String(), u.open) || strings.Contains(d.stderr.String(), u.close) {
				t.Errorf("a secret of %s appears in the daemon's log", u.name)
			}
		}
	})
}

// openrcArgv runs the script's start under the harness with s, checks that
// it gives supervise-daemon the options that the tests' setpriv stands for,
// and returns the daemon's command line (the binary, then its arguments).
func openrcArgv(t *testing.T, s openrcSetup) []string {
	t.Helper()
	r := runOpenRC(t, "start", s)
	calls := r.supervise()
	if r.err != nil || len(calls) != 1 {
		t.Fatalf("the script's start: %v: %q\n%s", r.err, calls, r.stderr)
	}
	bin := filepath.Join(binDir(t), "nfqknockd")
	i := slices.Index(calls[0], bin)
	if i < 0 || i+1 >= len(calls[0]) || calls[0][i+1] != "--" {
		t.Fatalf("supervise-daemon %q: no %s -- ARGS", calls[0], bin)
	}
	opts := strings.Join(calls[0][:i], " ")
	for _, o := range []string{"--capabilities ^cap_net_admin", "--secbits 0x3", "--no-new-privs"} {
		if !strings.Contains(opts, o) {
			t.Fatalf("supervise-daemon %s: no %s, which the tests' setpriv stands for", opts, o)
		}
	}
	return append([]string{bin}, calls[0][i+2:]...)
}

// startProc starts argv in namespace ns, waits for the daemon (the process
// of exe in ns) to log its start line, and returns it; the test's cleanup
// kills it if it still runs.
func startProc(t *testing.T, ns, exe string, argv []string) *daemonProc {
	t.Helper()
	cmd := netns.Command(ns, argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "USER=root"}
	d := &daemonProc{cmd: cmd, stderr: &testutil.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.waitErr = cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		if !d.exited() {
			cmd.Process.Kill()
			if d.pid > 0 {
				syscall.Kill(d.pid, syscall.SIGKILL)
			}
			<-d.done
		}
	})
	if !waitFor(30*time.Second, func() bool {
		if d.pid == 0 {
			d.pid = procOf(ns, exe)
		}
		return d.exited() || (d.pid > 0 && strings.Contains(d.stderr.String(), "msg=started"))
	}) || d.exited() {
		t.Fatalf("the daemon did not start: %v\n%s", d.waitErr, d.stderr)
	}
	return d
}

// procOf returns the pid of the process of exe in namespace ns, 0 if none.
func procOf(ns, exe string) int {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		if p, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && p == exe {
			return pid
		}
	}
	return 0
}

// procStatus returns the value of a line of /proc/PID/status.
func procStatus(t *testing.T, pid int, key string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal(errors.New("no " + key + " in /proc/" + strconv.Itoa(pid) + "/status"))
	return ""
}
