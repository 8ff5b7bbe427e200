package e2e

// Tests of the daemon on a host that others share: other programs that
// change the ruleset (an admin's nft, nftables.service's reload); SYNs split
// into IP fragments (fragment_test.go) and ports published by DNAT
// (dnat_test.go) are in files of their own. Real kernel, real TCP, in the
// e2e harness's namespaces (harness_test.go); they need root.

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
)

// publishedPort is the server's port that DNAT publishes to port 22 of the
// namespace behind the server (see publish).
const publishedPort = 2223

// stranger returns the address of the client that never knocks in the
// family of server.
func stranger(server netip.Addr) netip.Addr {
	if server.Is4() {
		return strangerIP4
	}
	return stranger6
}

// addStranger6 adds stranger6 to the client's link (no duplicate address
// detection, so it can be used at once).
func (e *env) addStranger6() {
	e.t.Helper()
	e.addClientAddrs(e.t, stranger6)
}

// isTimeout reports whether err is a connect that got no answer.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// attempt is how long one connect attempt of a poll waits for an answer.
// Answers come in well under a millisecond in the namespaces: a connect
// with no answer in this time was dropped.
const attempt = 200 * time.Millisecond

// droppedBy polls until a connect from src to dst:port gets no answer, with
// attempts of attempt each, until deadline. It returns whether one was
// dropped before the deadline, and how many connected before (answered by
// a port the guard did not hold).
func (e *env) droppedBy(src, dst netip.Addr, port int, deadline time.Time) (dropped bool, answered int) {
	e.t.Helper()
	for {
		c, err := e.dial(src, dst, port, attempt)
		switch {
		case err == nil:
			c.Close()
			answered++
		case isTimeout(err):
			return true, answered
		default:
			e.t.Fatalf("connect %s -> [%s]:%d: unexpected error %v", src, dst, port, err)
		}
		if time.Now().After(deadline) {
			return false, answered
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// connectsBy polls until a connect from src to dst:port succeeds, with
// attempts of attempt each, until deadline.
func (e *env) connectsBy(src, dst netip.Addr, port int, deadline time.Time) bool {
	e.t.Helper()
	for {
		c, err := e.dial(src, dst, port, attempt)
		if err == nil {
			c.Close()
			return true
		}
		if !isTimeout(err) {
			e.t.Fatalf("connect %s -> [%s]:%d: unexpected error %v", src, dst, port, err)
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// listTable returns `nft list table inet nfqknock` in the server namespace.
func (e *env) listTable() (string, error) {
	return e.nft("list", "table", "inet", "nfqknock")
}

// hostChanges are what an admin or another program does to the ruleset:
// nftables.service's reload (flush ruleset), a delete, a flush.
var hostChanges = [][]string{
	{"flush", "ruleset"},
	{"delete", "table", "inet", "nfqknock"},
	{"flush", "table", "inet", "nfqknock"},
}

// changedRE finds the changed attribute of the daemon's repair warning.
var changedRE = regexp.MustCompile(`msg="table changed by another program and put back".* changed=("(?:[^"\\]|\\.)*"|\S+)`)

// TestOutsideChanges: while the daemon runs and two clients (IPv4, IPv6)
// have knocked open, another program runs `nft flush ruleset`, `nft delete
// table inet nfqknock` or `nft flush table inet nfqknock` in the server
// namespace. Within a second, clients that never knocked are dropped on the
// guarded port, and the opened clients still connect.
//
// The three kernel generations, switched by the test hooks on this kernel:
//
// persist: the table is the daemon's (flags owner, persist): the delete and
// the flush of the table fail with EPERM, `flush ruleset` succeeds and
// skips the table; nothing changes, so a stranger is never let in.
//
// owner (NFQKNOCKD_TEST_NO_PERSIST=1, as on 5.12 to 6.8): the same for the
// owned table; `flush ruleset` and `nft delete table inet nfqknock_backup`
// remove the backup table, which the daemon puts back with the opened
// sources and a warning, while the owned table keeps guarding: a stranger
// is never let in either.
//
// monitor (NFQKNOCKD_TEST_NO_OWNER=1, as before 5.12): every change
// succeeds and the daemon puts the whole table back, opened sources
// included, and logs a warning naming what changed. A stranger may get in
// during the moment between the change and the repair; from a second after
// the change on it never does, and a new knock opens again.
//
// Besides the deletes, edits inside the table (tableEdits: the guarded
// ports flushed, an opening deleted, the strangers opened, a rule that
// accepts everything): refused on an owned table, put back elsewhere. Each
// outside change is one repair.
func TestOutsideChanges(t *testing.T) {
	for _, mode := range []string{"persist", "owner", "monitor"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			changes := append(slices.Clone(hostChanges), tableEdits("nfqknock")...)
			if mode == "owner" {
				changes = append(changes, []string{"delete", "table", "inet", "nfqknock_backup"})
				changes = append(changes, tableEdits("nfqknock_backup")...)
			}
			for _, change := range changes {
				t.Run(strings.Join(change, "_"), func(t *testing.T) {
					t.Parallel()
					outsideChange(t, mode, change)
				})
			}
		})
	}
}

// genEnv is the test hook that makes the daemon use the table as on a
// kernel of mode's generation; "" for the newest.
func genEnv(mode string) string {
	switch mode {
	case "owner":
		return "NFQKNOCKD_TEST_NO_PERSIST=1"
	case "monitor":
		return "NFQKNOCKD_TEST_NO_OWNER=1"
	}
	return ""
}

// outsideChange runs one case of TestOutsideChanges.
func outsideChange(t *testing.T, mode string, change []string) {
	monitor := mode == "monitor"
	e := newEnv(t)
	e.addStranger6()
	var d *daemon
	if hook := genEnv(mode); hook != "" {
		d = e.spawn(append(os.Environ(), hook))
		if !d.waitLog("started", 10*time.Second) {
			t.Fatalf("daemon did not start; stderr:\n%s", d.stderr)
		}
	} else {
		d = e.start()
	}
	list, err := e.listTable()
	if err != nil {
		t.Fatalf("nft list table: %v: %s", err, list)
	}
	if owned := strings.Contains(list, "flags owner"); owned == monitor {
		t.Fatalf("table flags owner shown: %v, want %v:\n%s", owned, !monitor, list)
	}
	_, backupErr := e.nft("list", "table", "inet", "nfqknock_backup")
	if hasBackup := backupErr == nil; hasBackup != (mode == "owner") {
		t.Fatalf("%s: a backup table: %v", mode, hasBackup)
	}
	flags := map[string]string{"persist": "owner,persist", "owner": "owner", "monitor": "none"}[mode]
	if !strings.Contains(d.stderr.String(), "table_flags="+flags+" ") {
		t.Errorf("%s: the start line does not say table_flags=%s:\n%s", mode, flags, d.stderr)
	}
	// The backup table is the only one others may change on an owner kernel.
	touchesBackup := mode == "owner" && (change[1] == "ruleset" || change[3] == "nfqknock_backup")

	open, _ := e.sequences()
	for _, fam := range families {
		e.knock(fam.client, fam.server, open)
	}
	for _, fam := range families {
		if !e.reachable(fam.client, fam.server, guardPort) {
			t.Fatalf("%s: not open after the open sequence; stderr:\n%s", fam.name, d.stderr)
		}
	}

	cmd := "nft " + strings.Join(change, " ")
	out, err := e.nft(change...)
	changed := time.Now()
	t.Logf("%s: %v %s", cmd, err, strings.TrimSpace(out))
	switch {
	case monitor && err != nil:
		t.Fatalf("%s failed on a table without owner: %v: %s", cmd, err, out)
	case !monitor && change[1] == "ruleset" && err != nil:
		t.Errorf("%s failed: %v: %s; want it to succeed and skip the owned table", cmd, err, out)
	case touchesBackup && err != nil:
		t.Fatalf("%s failed on the backup table: %v: %s", cmd, err, out)
	case !monitor && !touchesBackup && change[1] != "ruleset" && (err == nil || !strings.Contains(out, "Operation not permitted")):
		t.Errorf("%s on the owned table: %v: %s; want Operation not permitted", cmd, err, out)
	}

	// Within a second of the change, the guard holds again (owner: it
	// never stopped) and the opened clients are still open.
	deadline := changed.Add(time.Second)
	for _, fam := range families {
		s := stranger(fam.server)
		dropped, answered := e.droppedBy(s, fam.server, guardPort, deadline)
		if !dropped {
			t.Errorf("%s: %s still connects to the guarded port %v after %s (%d connects)", fam.name, s, time.Since(changed).Round(time.Millisecond), cmd, answered)
		} else if answered > 0 {
			if !monitor {
				t.Errorf("%s: %s, which never knocked, connected %d times to the guarded port after %s", fam.name, s, answered, cmd)
			} else {
				t.Logf("%s: %s connected %d times before the repair (dropped %v after the change)", fam.name, s, answered, time.Since(changed).Round(time.Millisecond))
			}
		}
		if !e.connectsBy(fam.client, fam.server, guardPort, deadline) {
			t.Errorf("%s: opened client %s lost its access after %s", fam.name, fam.client, cmd)
		}
	}
	// And for good: a full connect attempt of the harness.
	for _, fam := range families {
		if s := stranger(fam.server); e.reachable(s, fam.server, guardPort) {
			t.Errorf("%s: %s, which never knocked, connects to the guarded port after %s", fam.name, s, cmd)
		}
		if !e.reachable(fam.client, fam.server, guardPort) {
			t.Errorf("%s: opened client %s cannot connect after %s", fam.name, fam.client, cmd)
		}
	}

	list, err = e.listTable()
	if err != nil {
		t.Fatalf("after %s: nft list table: %v: %s", cmd, err, list)
	}
	wants := []string{"chain knock", "chain guard", "chain guarded", knockComment, "jump guarded", "drop",
		netns.ClientIP4.String() + " . " + strconv.Itoa(guardPort) + " timeout", netns.ClientIP6.String() + " . " + strconv.Itoa(guardPort) + " timeout"}
	if !monitor {
		wants = append(wants, "flags owner")
	}
	for _, want := range wants {
		if !strings.Contains(list, want) {
			t.Errorf("after %s the table lacks %q:\n%s", cmd, want, list)
		}
	}
	if touchesBackup {
		checkBackupBack(t, e, d, cmd)
		checkOneRepair(t, d, cmd)
		return
	}
	if !monitor {
		if strings.Contains(d.stderr.String(), "put back") {
			t.Errorf("owned table: the daemon logged a repair:\n%s", d.stderr)
		}
		return
	}

	const warning = `msg="table changed by another program and put back"`
	if !d.waitLog(warning, 2*time.Second) {
		t.Fatalf("no repair warning logged after %s; stderr:\n%s", cmd, d.stderr)
	}
	if strings.Contains(d.stderr.String(), "could not be put back") {
		t.Errorf("a repair failed:\n%s", d.stderr)
	}
	m := changedRE.FindStringSubmatch(d.stderr.String())
	if m == nil {
		t.Fatalf("the repair warning names no change:\n%s", d.stderr)
	}
	changedAttr, err := strconv.Unquote(m[1])
	if err != nil {
		changedAttr = m[1]
	}
	t.Logf("%s: the daemon logged changed=%q", cmd, changedAttr)
	if want := changedWant(change); !strings.Contains(changedAttr, want) {
		t.Errorf("after %s the repair warning says changed=%q, want it to name %q", cmd, changedAttr, want)
	}

	// The knock rule is back: a new knock opens.
	for _, fam := range families {
		s := stranger(fam.server)
		e.knock(s, fam.server, open)
		if !e.reachable(s, fam.server, guardPort) {
			t.Errorf("%s: a knock from %s after the repair did not open; stderr:\n%s", fam.name, s, d.stderr)
		}
	}
	checkOneRepair(t, d, cmd)
}

// checkBackupBack checks that the daemon put the backup table back, with
// the opened clients, after cmd removed it, and said so.
func checkBackupBack(t *testing.T, e *env, d *daemon, cmd string) {
	t.Helper()
	const warning = `msg="table changed by another program and put back" table="inet nfqknock_backup"`
	if !d.waitLog(warning, 2*time.Second) {
		t.Fatalf("no repair warning for the backup logged after %s; stderr:\n%s", cmd, d.stderr)
	}
	list, err := e.nft("list", "table", "inet", "nfqknock_backup")
	if err != nil {
		t.Fatalf("after %s: nft list table inet nfqknock_backup: %v: %s", cmd, err, list)
	}
	for _, want := range []string{"chain guard", "chain guarded", "nfqknockd backup guard",
		netns.ClientIP4.String() + " . " + strconv.Itoa(guardPort) + " timeout", netns.ClientIP6.String() + " . " + strconv.Itoa(guardPort) + " timeout"} {
		if !strings.Contains(list, want) {
			t.Errorf("after %s the backup lacks %q:\n%s", cmd, want, list)
		}
	}
}

// knockComment is how the knock rule shows in `nft list`.
const knockComment = `comment "nfqknockd knock`
