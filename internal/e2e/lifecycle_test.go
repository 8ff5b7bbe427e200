package e2e

// Life-cycle tests (docs/design.md, "Life cycle"; here and in
// lifecycle_restart_test.go): a table of another name, a
// table of the configured name that is not ours, a restart (SIGQUIT) that
// leaves no gap in the guard, a reload of the secrets (SIGHUP), and the
// sources never guarded (loopback, --allow). Like e2e_test.go they run the
// built binary in a server namespace and knock with real TCP from a client
// namespace; they need root.

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
)

// lcCount waits until the daemon's stderr holds s at least n times.
func lcCount(d *daemon, s string, n int, max time.Duration) bool {
	deadline := time.Now().Add(max)
	for {
		if strings.Count(d.stderr.String(), s) >= n {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-d.done:
			return strings.Count(d.stderr.String(), s) >= n
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// lcTables returns `nft list tables` of the server namespace.
func lcTables(e *env) string {
	e.t.Helper()
	out, err := e.nft("list", "tables")
	if err != nil {
		e.t.Fatalf("nft list tables: %v: %s", err, out)
	}
	return out
}

// lcNoDefaultTable fails the test when the server namespace has a table
// inet nfqknock.
func lcNoDefaultTable(e *env, when string) {
	e.t.Helper()
	if out := lcTables(e); strings.Contains(out, "table inet nfqknock\n") || strings.HasSuffix(strings.TrimSpace(out), "table inet nfqknock") {
		e.t.Errorf("%s: a table inet nfqknock exists:\n%s", when, out)
	}
}

// lcList returns `nft list table inet name`, failing the test when it
// does not exist.
func lcList(e *env, name string) string {
	e.t.Helper()
	out, err := e.nft("list", "table", "inet", name)
	if err != nil {
		e.t.Fatalf("nft list table inet %s: %v: %s", name, err, out)
	}
	return out
}

// lcStopGone stops d with SIGTERM, fails the test unless it exited 0, and
// checks that it deleted its table inet name.
func lcStopGone(e *env, d *daemon, name string) {
	e.t.Helper()
	d.term()
	lcGone(e, name)
}

// lcGone fails the test when table inet name still exists.
func lcGone(e *env, name string) {
	e.t.Helper()
	if out, err := e.nft("list", "table", "inet", name); err == nil {
		e.t.Errorf("table inet %s still there:\n%s", name, out)
	}
}

var (
	lcCounterRE = regexp.MustCompile(`counter packets \d+ bytes \d+`)
	lcExpiresRE = regexp.MustCompile(` expires [0-9dhms.]+`)
)

// lcStable returns an nft listing without what traffic and time change:
// the counters' values and the elements' remaining lives.
func lcStable(list string) string {
	return lcExpiresRE.ReplaceAllString(lcCounterRE.ReplaceAllString(list, "counter"), "")
}

// lcOpen knocks the open sequence from src and waits until the guarded
// port answers src.
func lcOpen(e *env, d *daemon, src, dst netip.Addr, port int, seq []uint16) {
	e.t.Helper()
	e.knock(src, dst, seq)
	if !d.waitLog("msg=open source="+src.String()+" ", 3*time.Second) {
		e.t.Fatalf("no open of %s logged after the open sequence", src)
	}
	if !e.reachable(src, dst, port) {
		e.t.Fatalf("port %d dropped %s after its open sequence", port, src)
	}
}

// lcOneLine checks that the failed daemon d exited 1 with exactly the line
// want on stderr, and nothing else.
func lcOneLine(t *testing.T, d *daemon, want string) {
	t.Helper()
	if code := d.wait(10 * time.Second); code != 1 {
		t.Errorf("exit status = %d, want 1", code)
	}
	got := d.stderr.String()
	if !strings.HasSuffix(got, "\n") {
		t.Errorf("stderr does not end in a newline: %q", got)
	}
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if last := lines[len(lines)-1]; last != want {
		t.Errorf("error line = %q, want %q", last, want)
	}
	if len(lines) > 1 {
		t.Errorf("stderr has %d lines before the error line, want none (one line in all):\n%s", len(lines)-1, strings.Join(lines[:len(lines)-1], "\n"))
	}
}

// strangerFams are the families with a client that knocks and a stranger
// that never does.
var strangerFams = []struct {
	name                     string
	server, client, stranger netip.Addr
}{
	{"ipv4", netns.ServerIP4, netns.ClientIP4, strangerIP4},
	{"ipv6", netns.ServerIP6, netns.ClientIP6, stranger6},
}

// TestCustomTable: with --table custom everything happens in table inet
// custom (open, close, SIGUSR1, restart), and no table inet nfqknock is
// made. Two daemons with two tables, queues, secrets and guarded ports each
// open their own port only. A second daemon for a table in use fails with
// one line and the first keeps guarding, its table unchanged.
func TestCustomTable(t *testing.T) {
	t.Run("one", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		d := e.start("--table", "custom")
		if !strings.Contains(d.stderr.String(), `table="inet custom"`) {
			t.Errorf("start line does not name table inet custom:\n%s", d.stderr)
		}
		lcNoDefaultTable(e, "after the start")
		open, close := e.sequences()

		for _, fam := range families {
			if e.reachable(fam.client, fam.server, guardPort) {
				t.Fatalf("%s: guarded port answered before any knock", fam.name)
			}
			lcOpen(e, d, fam.client, fam.server, guardPort, open)
			if list := lcList(e, "custom"); !strings.Contains(list, fam.client.String()+" . "+strconv.Itoa(guardPort)+" timeout 1h") {
				t.Errorf("%s: table inet custom lacks the opened client:\n%s", fam.name, list)
			}
		}
		// Close the IPv6 client; the IPv4 one stays open.
		e.knock(netns.ClientIP6, netns.ServerIP6, close)
		if !d.waitLog("msg=close source="+netns.ClientIP6.String(), 3*time.Second) {
			t.Fatalf("no close logged after the close sequence")
		}
		if e.reachable(netns.ClientIP6, netns.ServerIP6, guardPort) {
			t.Errorf("guarded port answered the IPv6 client after its close sequence")
		}
		// The kernel filter still lists it among the knocking sources for
		// a while; the allow set no longer holds it.
		if set, err := e.nft("list", "set", "inet", "custom", "allow6"); err != nil || strings.Contains(set, netns.ClientIP6.String()) {
			t.Errorf("set allow6 of table inet custom still holds the closed IPv6 client: %v\n%s", err, set)
		}

		d.cmd.Process.Signal(syscall.SIGUSR1)
		if !d.waitLog(`msg="opened sources" count=1`, 5*time.Second) {
			t.Errorf("SIGUSR1 did not log count=1")
		}
		if !strings.Contains(d.stderr.String(), "msg=opened source="+netns.ClientIP4.String()+" ") {
			t.Errorf("SIGUSR1 did not list the opened client %s", netns.ClientIP4)
		}

		// Restart: SIGQUIT leaves table inet custom guarding; the next
		// daemon takes it over with the opened client.
		if code := d.stop(syscall.SIGQUIT); code != 0 {
			t.Errorf("exit status after SIGQUIT = %d, want 0", code)
		}
		if !strings.Contains(d.stderr.String(), "msg=\"restarting: ") {
			t.Errorf("no restarting logged after SIGQUIT")
		}
		if list := lcList(e, "custom"); !strings.Contains(list, netns.ClientIP4.String()+" . "+strconv.Itoa(guardPort)+" timeout 1h") {
			t.Errorf("table inet custom lost the opened client over SIGQUIT:\n%s", list)
		}
		lcNoDefaultTable(e, "after SIGQUIT")
		d = e.start("--table", "custom")
		for _, want := range []string{`table="inet custom"`, "took_over=true", "opened_kept=1"} {
			if !strings.Contains(d.stderr.String(), want) {
				t.Errorf("start line after the restart lacks %s:\n%s", want, d.stderr)
			}
		}
		if !e.reachable(netns.ClientIP4, netns.ServerIP4, guardPort) {
			t.Errorf("opened client lost its access over the restart")
		}
		if e.reachable(strangerIP4, netns.ServerIP4, guardPort) {
			t.Errorf("guarded port answered a stranger after the restart")
		}
		if e.reachable(netns.ClientIP6, netns.ServerIP6, guardPort) {
			t.Errorf("the closed IPv6 client answered after the restart")
		}
		lcNoDefaultTable(e, "after the restart")
		lcStopGone(e, d, "custom")
		lcNoDefaultTable(e, "after SIGTERM")
	})

	t.Run("two", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.addStranger6()
		const portB = 2224
		for _, a := range []netip.Addr{netns.ServerIP4, netns.ServerIP6} {
			e.listen(netip.AddrPortFrom(a, portB))
		}
		const (
			openA, closeA = "table a open secret", "table a close secret"
			openB, closeB = "table b open secret", "table b close secret"
		)
		argsA := []string{"--range", "1-65535", "--guard", strconv.Itoa(guardPort), "-o", openA, "-c", closeA, "--table", "a", "-q", "100"}
		argsB := []string{"--range", "1-65535", "--guard", strconv.Itoa(portB), "-o", openB, "-c", closeB, "--table", "b", "-q", "101"}
		da := e.startArgs(argsA...)
		db := e.startArgs(argsB...)
		seqA, _ := e.sequencesOf("-o", openA, "-c", closeA)
		seqB, _ := e.sequencesOf("-o", openB, "-c", closeB)
		lcNoDefaultTable(e, "with daemons a and b")

		// Per family: the client knocks a's secret, the stranger b's.
		for _, fam := range strangerFams {
			for _, port := range []int{guardPort, portB} {
				for _, src := range []netip.Addr{fam.client, fam.stranger} {
					if e.reachable(src, fam.server, port) {
						t.Fatalf("%s: port %d answered %s before any knock", fam.name, port, src)
					}
				}
			}
			lcOpen(e, da, fam.client, fam.server, guardPort, seqA)
			if e.reachable(fam.client, fam.server, portB) {
				t.Errorf("%s: a's secret opened b's port %d", fam.name, portB)
			}
			lcOpen(e, db, fam.stranger, fam.server, portB, seqB)
			if e.reachable(fam.stranger, fam.server, guardPort) {
				t.Errorf("%s: b's secret opened a's port %d", fam.name, guardPort)
			}
			if strings.Contains(db.stderr.String(), "msg=open source="+fam.client.String()+" ") {
				t.Errorf("%s: daemon b opened %s, which knocked a's secret", fam.name, fam.client)
			}
			if strings.Contains(da.stderr.String(), "msg=open source="+fam.stranger.String()+" ") {
				t.Errorf("%s: daemon a opened %s, which knocked b's secret", fam.name, fam.stranger)
			}
		}
		listA, listB := lcList(e, "a"), lcList(e, "b")
		if !strings.Contains(listA, "elements = { "+strconv.Itoa(guardPort)+" }") || !strings.Contains(listB, "elements = { "+strconv.Itoa(portB)+" }") {
			t.Errorf("guard sets are not a {%d} and b {%d}:\n%s\n%s", guardPort, portB, listA, listB)
		}

		// A second daemon for table a, on another queue: one line, exit 1,
		// nothing touched.
		before := lcStable(lcList(e, "a"))
		beforeB := lcStable(lcList(e, "b"))
		second := e.spawnArgs(nil, "--range", "1-65535", "--guard", strconv.Itoa(guardPort), "-o", openA, "-c", closeA, "--table", "a", "-q", "102")
		lcOneLine(t, second, "nfqknockd: --table a: another nfqknockd is running with this table")
		if after := lcStable(lcList(e, "a")); after != before {
			t.Errorf("table inet a changed by the second daemon:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if after := lcStable(lcList(e, "b")); after != beforeB {
			t.Errorf("table inet b changed by the second daemon for a:\nbefore:\n%s\nafter:\n%s", beforeB, after)
		}
		// The first keeps guarding: the stranger (opened for b only) is
		// refused on a's port, and a knock of a's secret still opens.
		if e.reachable(strangerIP4, netns.ServerIP4, guardPort) {
			t.Errorf("daemon a's port answered a stranger after the second daemon failed")
		}
		lcOpen(e, da, strangerIP4, netns.ServerIP4, guardPort, seqA)

		for name, d := range map[string]*daemon{"a": da, "b": db} {
			lcStopGone(e, d, name)
		}
		lcNoDefaultTable(e, "after both stopped")
	})
}
