package e2e

// End-to-end test of the used one-time sequences kept over a restart, in
// network namespaces.

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
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
	e, d, path, capture, sender := oneTimeEnv(t, fam.second, fam.third)
	client, attacker := fam.client, fam.second
	alice := testUsers[0]
	n1, n2 := twoNonces()
	open1 := oneTime(alice.OpenSecret, n1)
	e.knock(client, fam.server, open1)
	if d.waitCount("msg=open source="+client.String()+" user=alice ", 1) != 1 {
		t.Fatalf("the one-time open did not open")
	}
	wire := captured(t, capture, client, len(open1))
	if code := d.stop(syscall.SIGQUIT); code != 0 {
		t.Fatalf("exit status after SIGQUIT = %d, want 0", code)
	}
	if list, err := e.nft("list", "set", "inet", "nfqknock", "spent"); err != nil || !strings.Contains(list, "elements = {") {
		t.Fatalf("the table left by the restart keeps no used sequence (%v):\n%s", err, list)
	}

	d = e.startArgs("--range", "1-65535", "--guard", fmt.Sprintf("%d,%d", guardPort, secondGuard), "--access-file", path, "--one-time", "--state-dir", e.stateDir)
	for _, want := range []string{"took_over=true", `msg="one-time sequences used before this start are refused" kept=1`} {
		if !d.waitLog(want, 2*time.Second) {
			t.Errorf("the new daemon's log lacks %s:\n%s", want, d.stderr)
		}
	}
	replay(t, sender, attacker, fam.server, wire)
	if s := "msg=replay source=" + attacker.String() + " user=alice sequence=open"; !d.waitLog(s, 2*time.Second) {
		t.Errorf("no %q after the replay across the restart", s)
	}
	e.reach(t, attacker, fam.server, [2]bool{false, false}, "after the replay across the restart")
	if strings.Contains(d.stderr.String(), "msg=open source="+attacker.String()) {
		t.Errorf("the replay across the restart opened:\n%s", d.stderr)
	}

	// A new nonce opens, from the third address.
	e.knock(fam.third, fam.server, oneTime(alice.OpenSecret, n2))
	if d.waitCount("msg=open source="+fam.third.String()+" user=alice ", 1) != 1 {
		t.Errorf("a new one-time open after the restart did not open:\n%s", d.stderr)
	}
	d.term()
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
				e, d, path, capture, sender := oneTimeEnv(t, fam.second, fam.third)
				client, attacker := fam.client, fam.second
				alice := testUsers[0]
				n1, n2 := twoNonces()
				open1 := oneTime(alice.OpenSecret, n1)
				e.knock(client, fam.server, open1)
				if d.waitCount("msg=open source="+client.String()+" user=alice ", 1) != 1 {
					t.Fatalf("the one-time open did not open")
				}
				wire := captured(t, capture, client, len(open1))
				if code := d.stop(end.sig); code != 0 {
					t.Fatalf("exit status after %v = %d, want 0", end.sig, code)
				}
				if end.drop {
					for _, table := range []string{"nfqknock", "nfqknock_backup"} {
						e.nft("delete", "table", "inet", table) // the backup exists on some kernels only
					}
				}
				if list, err := e.nft("list", "tables"); err != nil || strings.Contains(list, "nfqknock") {
					t.Fatalf("a table is left before the new start (%v):\n%s", err, list)
				}

				d = e.startArgs("--range", "1-65535", "--guard", fmt.Sprintf("%d,%d", guardPort, secondGuard), "--access-file", path, "--one-time", "--state-dir", e.stateDir)
				if want := `msg="one-time sequences used before this start are refused" kept=0 from_file=1`; !d.waitLog(want, 2*time.Second) {
					t.Errorf("the new daemon's log lacks %s:\n%s", want, d.stderr)
				}
				replay(t, sender, attacker, fam.server, wire)
				if s := "msg=replay source=" + attacker.String() + " user=alice sequence=open"; !d.waitLog(s, 2*time.Second) {
					t.Errorf("no %q after the replay across the %s", s, end.name)
				}
				e.reach(t, attacker, fam.server, [2]bool{false, false}, "after the replay across the "+end.name)
				if strings.Contains(d.stderr.String(), "msg=open source="+attacker.String()) {
					t.Errorf("the replay across the %s opened:\n%s", end.name, d.stderr)
				}
				if list, err := e.nft("list", "set", "inet", "nfqknock", "spent"); err != nil || !strings.Contains(list, "elements = {") {
					t.Errorf("the used sequence of the file is not in the new table's set spent (%v):\n%s", err, list)
				}

				// A new nonce opens, from the third address.
				e.knock(fam.third, fam.server, oneTime(alice.OpenSecret, n2))
				if d.waitCount("msg=open source="+fam.third.String()+" user=alice ", 1) != 1 {
					t.Errorf("a new one-time open after the %s did not open:\n%s", end.name, d.stderr)
				}
				d.term()
			})
		}
	}
}
