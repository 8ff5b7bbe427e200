package e2e

// End-to-end test of the used one-time sequences kept over a restart, in
// network namespaces.

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestOneTimeReplayAfterRestart: a one-time open captured on the wire
// before a restart (SIGQUIT, a new daemon that takes the table over) and
// replayed after it from another address opens nothing and is logged as a
// replay: the first daemon kept the used sequence in the table's set
// spent, and the second seeded itself from it. A new nonce still opens.
// IPv4.
func TestOneTimeReplayAfterRestart(t *testing.T) {
	t.Parallel()
	fam := filterFams[0]
	r := openThenEnd(t, fam, syscall.SIGQUIT)
	e := r.e
	if list, err := e.nft("list", "set", "inet", "nfqknock", "spent"); err != nil || !strings.Contains(list, "elements = {") {
		t.Fatalf("the table left by the restart keeps no used sequence (%v):\n%s", err, list)
	}

	d := r.restart()
	for _, want := range []string{"took_over=true", `msg="one-time sequences used before this start are refused" kept=1`} {
		if !d.waitLog(want, 2*time.Second) {
			t.Errorf("the new daemon's log lacks %s:\n%s", want, d.stderr)
		}
	}
	r.replayRefused(t, d, "restart")
	r.newNonceOpens(t, d, "restart")
}

// TestOneTimeReplayAfterStop: a one-time open captured on the wire, then
// a stop (SIGTERM, which deletes the table and its set spent), or a
// restart followed by `nft delete table` (as a reboot loses the table),
// then a new daemon: the captured knock replayed from another address is
// logged as a replay and opens nothing, because the first daemon kept the
// used sequence in --state-dir. A new nonce still opens. IPv4 and IPv6.
func TestOneTimeReplayAfterStop(t *testing.T) {
	t.Parallel()
	for _, fam := range filterFams {
		for _, end := range []struct {
			name string
			sig  syscall.Signal
			drop bool // delete the table by hand after the daemon exits
		}{
			{"stop", syscall.SIGTERM, false},
			{"reboot", syscall.SIGQUIT, true},
		} {
			t.Run(fam.name+"/"+end.name, func(t *testing.T) {
				t.Parallel()
				r := openThenEnd(t, fam, end.sig)
				e := r.e
				if end.drop {
					for _, table := range []string{"nfqknock", "nfqknock_backup"} {
						e.nft("delete", "table", "inet", table) // the backup exists on some kernels only
					}
				}
				if list, err := e.nft("list", "tables"); err != nil || strings.Contains(list, "nfqknock") {
					t.Fatalf("a table is left before the new start (%v):\n%s", err, list)
				}

				d := r.restart()
				if want := `msg="one-time sequences used before this start are refused" kept=0 from_file=1`; !d.waitLog(want, 2*time.Second) {
					t.Errorf("the new daemon's log lacks %s:\n%s", want, d.stderr)
				}
				r.replayRefused(t, d, end.name)
				if list, err := e.nft("list", "set", "inet", "nfqknock", "spent"); err != nil || !strings.Contains(list, "elements = {") {
					t.Errorf("the used sequence of the file is not in the new table's set spent (%v):\n%s", err, list)
				}

				r.newNonceOpens(t, d, end.name)
			})
		}
	}
}

// endedOneTime is a daemon with --one-time that opened alice's one-time
// sequence from the client of fam, then ended.
type endedOneTime struct {
	e      *env
	fam    filterFam
	path   string // the access file
	sender *testutil.SYNSender
	wire   []uint16 // alice's open as captured on the wire
	n2     uint32   // a nonce not used yet
}

// openThenEnd starts a daemon with --one-time (oneTimeEnv), opens with
// alice's one-time sequence from fam.client, captures it on the wire, and
// ends the daemon with sig.
func openThenEnd(t *testing.T, fam filterFam, sig syscall.Signal) *endedOneTime {
	t.Helper()
	e, d, path, capture, sender := oneTimeEnv(t, fam.second, fam.third)
	client := fam.client
	alice := testUsers[0]
	n1, n2 := twoNonces()
	open1 := oneTime(alice.OpenSecret, n1)
	e.knock(client, fam.server, open1)
	if d.waitCount("msg=open source="+client.String()+" user=alice ", 1) != 1 {
		t.Fatalf("the one-time open did not open")
	}
	wire := captured(t, capture, client, len(open1))
	if code := d.stop(sig); code != 0 {
		t.Fatalf("exit status after %s = %d, want 0", unix.SignalName(sig), code)
	}
	return &endedOneTime{e: e, fam: fam, path: path, sender: sender, wire: wire, n2: n2}
}

// restart starts a new daemon with the same access file and --state-dir.
func (r *endedOneTime) restart() *daemon {
	return r.e.startArgs("--range", "1-65535", "--guard", fmt.Sprintf("%d,%d", guardPort, secondGuard), "--access-file", r.path, "--one-time", "--state-dir", r.e.stateDir)
}

// replayRefused replays the captured open from fam.second (the attacker)
// to d, across the daemon's end: it must be logged as a replay and open
// nothing.
func (r *endedOneTime) replayRefused(t *testing.T, d *daemon, across string) {
	t.Helper()
	attacker, server := r.fam.second, r.fam.server
	replay(t, r.sender, attacker, server, r.wire)
	if s := "msg=replay source=" + attacker.String() + " user=alice sequence=open"; !d.waitLog(s, 2*time.Second) {
		t.Errorf("no %q after the replay across the %s", s, across)
	}
	r.e.reach(t, attacker, server, [2]bool{false, false}, "after the replay across the "+across)
	if strings.Contains(d.stderr.String(), "msg=open source="+attacker.String()) {
		t.Errorf("the replay across the %s opened:\n%s", across, d.stderr)
	}
}

// newNonceOpens checks that a new nonce opens d, from the third address,
// then stops d.
func (r *endedOneTime) newNonceOpens(t *testing.T, d *daemon, after string) {
	t.Helper()
	third := r.fam.third
	e := r.e
	e.knock(third, r.fam.server, oneTime(testUsers[0].OpenSecret, r.n2))
	if d.waitCount("msg=open source="+third.String()+" user=alice ", 1) != 1 {
		t.Errorf("a new one-time open after the %s did not open:\n%s", after, d.stderr)
	}
	d.term()
}
