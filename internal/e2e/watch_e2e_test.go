package e2e

// Tests of the watch that puts the table back on kernels without the table
// flag persist (switched off by the test hooks): edits inside the table by
// another program, and a daemon in a PID namespace (a container). Real
// kernel, in the e2e harness's namespaces; they need root.

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
)

// repairLine is what the daemon logs for each repair.
const repairLine = `msg="table changed by another program and put back"`

// tableEdits are edits inside table by another program: the guarded ports
// flushed, the IPv4 client's opening deleted, both strangers opened (one
// transaction), a rule that accepts everything put first in the chain
// guarded. On an owned table each gets "Operation not permitted"; the
// watch puts a table without owner back.
func tableEdits(table string) [][]string {
	port := strconv.Itoa(guardPort)
	return [][]string{
		{"flush", "set", "inet", table, "guard"},
		{"delete", "element", "inet", table, "allow4", "{", netns.ClientIP4.String(), ".", port, "}"},
		{"add", "element", "inet", table, "allow4", "{", strangerIP4.String(), ".", port, "}", ";",
			"add", "element", "inet", table, "allow6", "{", stranger6.String(), ".", port, "}"},
		{"insert", "rule", "inet", table, "guarded", "accept"},
	}
}

// changedWant is what the daemon's repair warning must name (its changed
// attribute) after the outside change.
func changedWant(change []string) string {
	switch {
	case change[0] == "flush" && change[1] == "table":
		return "rules of chain"
	case change[1] == "set":
		return "elements of set " + change[4]
	case change[0] == "delete" && change[1] == "element":
		return "elements of set " + change[4] + " deleted"
	case change[1] == "element":
		return "elements added to set " + change[4]
	case change[1] == "rule":
		return "rule added to chain " + change[4]
	}
	return "table deleted"
}

// repairs counts the repair warnings the daemon logged.
func (d *daemon) repairs() int { return strings.Count(d.stderr.String(), repairLine) }

// checkOneRepair checks that the daemon logged one repair for the one
// outside change cmd, a second or more after it: its own repair is no
// outside change.
func checkOneRepair(t *testing.T, d *daemon, cmd string) {
	t.Helper()
	if n := d.repairs(); n != 1 {
		t.Errorf("after %s the daemon logged %d repairs, want 1:\n%s", cmd, n, d.stderr)
	}
}

// TestWatchInPIDNamespace: a daemon started under `unshare --pid --fork
// --mount-proc` (as in a container: its PIDs are not the kernel's global
// ones) tells its own repairs from outside changes, on kernels without
// ownership (monitor) and with the backup table (owner): each outside
// change, a delete or an edit, is put back with exactly one repair, never
// a loop, and the guard holds.
func TestWatchInPIDNamespace(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("no unshare")
	}
	for _, mode := range []string{"monitor", "owner"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			table := "nfqknock"
			if mode == "owner" {
				table = "nfqknock_backup"
			}
			e := newEnv(t)
			e.addStranger6()
			d := e.spawnPIDNS(append(os.Environ(), genEnv(mode)), daemonArgs()...)
			if !d.waitLog("msg=started", 10*time.Second) {
				t.Fatalf("daemon did not start in a PID namespace; stderr:\n%s", d.stderr)
			}
			open, _ := e.sequences()
			for _, fam := range families {
				e.knock(fam.client, fam.server, open)
			}
			changes := append([][]string{{"delete", "table", "inet", table}}, tableEdits(table)...)
			for i, change := range changes {
				cmd := "nft " + strings.Join(change, " ")
				if out, err := e.nft(change...); err != nil {
					t.Fatalf("%s: %v: %s", cmd, err, out)
				}
				changed := time.Now()
				for d.repairs() < i+1 && time.Since(changed) < 2*time.Second {
					time.Sleep(10 * time.Millisecond)
				}
				// A loop would have logged more repairs by the time the
				// guard is checked (a second at least).
				for _, fam := range families {
					s := stranger(fam.server)
					if dropped, _ := e.droppedBy(s, fam.server, guardPort, changed.Add(time.Second)); !dropped {
						t.Errorf("%s: %s: %s still connects to the guarded port", cmd, fam.name, s)
					}
					if !e.connectsBy(fam.client, fam.server, guardPort, changed.Add(time.Second)) {
						t.Errorf("%s: %s: the opened client %s lost its access", cmd, fam.name, fam.client)
					}
				}
				if n := d.repairs(); n != i+1 {
					t.Fatalf("after %s (outside change %d) the daemon logged %d repairs, want %d; stderr:\n%s", cmd, i+1, n, i+1, d.stderr)
				}
			}
			time.Sleep(500 * time.Millisecond)
			if n := d.repairs(); n != len(changes) {
				t.Errorf("%d outside changes, %d repairs logged; stderr:\n%s", len(changes), n, d.stderr)
			}
		})
	}
}

// spawnPIDNS starts the daemon with args in the server namespace under
// `unshare --pid --fork --mount-proc` (PID 1 of a new PID namespace, with
// its own /proc), without waiting.
func (e *env) spawnPIDNS(environ []string, args ...string) *daemon {
	e.t.Helper()
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := netns.Command(e.pair.Server, unshare, append([]string{"--pid", "--fork", "--mount-proc", "--kill-child", e.bin}, args...)...)
	cmd.Env = environ
	return e.spawnCmd(cmd, args)
}
