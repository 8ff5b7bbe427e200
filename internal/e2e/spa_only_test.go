package e2e

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/spa"
)

// TestSPAOnlyWindowRenewal: with --spa-only a knocked open sequence opens
// nothing while an SPA packet opens; --spa-window 3s refuses a packet 6 s
// old (too_old); and the key ids the kernel lets through are renewed as
// the periods pass: with --period 2s the set spakeys changes, and a packet
// sent well after the ids given at the start (the window and the margin
// around them) stopped covering now still opens. IPv4 and IPv6.
func TestSPAOnlyWindowRenewal(t *testing.T) {
	t.Parallel()
	const period = 2 * time.Second
	for _, fam := range filterFams {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			flags := []string{"--period", "2s", "--grace", "0s"}
			start := time.Now()
			d := e.startSPA(append([]string{"--spa-only", "--spa-window", "3s"}, flags...)...)
			keys0, _ := e.nft("list", "set", "inet", "nfqknock", "spakeys")
			open := func(when string) {
				t.Helper()
				sendUDP(t, e.pair.Client, fam.client, fam.server, spaPort, spaSealPeriod(t, openSecret, period, &spa.Message{Time: time.Now(), Action: spa.Open}))
				if !eventually(3*time.Second, func() bool { return e.reachable(fam.client, fam.server, guardPort) }) {
					t.Fatalf("%s: the SPA open did not open:\n%s", when, d.stderr)
				}
				sendUDP(t, e.pair.Client, fam.client, fam.server, spaPort, spaSealPeriod(t, openSecret, period, &spa.Message{Time: time.Now(), Action: spa.Close}))
				if !eventually(3*time.Second, func() bool { return !e.reachable(fam.client, fam.server, guardPort) }) {
					t.Fatalf("%s: the SPA close did not close", when)
				}
			}

			// --spa-only: the knocked sequence is not even queued.
			seqOpen, _ := e.sequences(flags...)
			e.knock(fam.client, fam.server, seqOpen)
			if e.reachable(fam.client, fam.server, guardPort) {
				t.Fatal("a knocked open sequence opened with --spa-only")
			}
			if n := queueIDs(t, e.pair.Server); n != 0 {
				t.Errorf("%d packets queued after the knocks with --spa-only, want none", n)
			}
			open("at the start")

			// --spa-window 3s: 6 s old is too old.
			sendUDP(t, e.pair.Client, fam.client, fam.server, spaPort, spaSealPeriod(t, openSecret, period, &spa.Message{Time: time.Now().Add(-6 * time.Second), Action: spa.Open}))
			if !d.waitLog("reason=too_old skew=-", 3*time.Second) {
				t.Fatalf("a packet 6 s old with --spa-window 3s was not refused as too old:\n%s", d.stderr)
			}
			if e.reachable(fam.client, fam.server, guardPort) {
				t.Fatal("a packet 6 s old opened")
			}

			// The renewal: the ids of the start cover 3 s + the margin (8
			// periods, 16 s) + two renewals (2 s) around it.
			if !eventually(5*time.Second, func() bool {
				keys, _ := e.nft("list", "set", "inet", "nfqknock", "spakeys")
				return keys != keys0
			}) {
				t.Fatalf("the set spakeys was not renewed as the periods passed:\n%s", keys0)
			}
			time.Sleep(time.Until(start.Add(3*time.Second + 16*time.Second + 2*time.Second + 4*time.Second)))
			open("25 s after the start")
		})
	}
}

// TestSPAAfterRepair: on the generations whose table another program can
// change (before 5.12: the daemon puts the table back; 5.12 to 6.8: it
// puts the backup back), `nft flush ruleset` is repaired, and SPA still
// opens after it: the repair writes the set spakeys from the daemon's
// record, and the backup keeps the SPA drop. IPv4.
func TestSPAAfterRepair(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"monitor", "owner"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			d := e.spawn(append(os.Environ(), genEnv(mode)), "--spa", strconv.Itoa(spaPort), "--state-dir", e.stateDir)
			// The start's last step: the used nonces read from the table.
			if !d.waitLog("used before this start are refused", 10*time.Second) {
				t.Fatalf("daemon did not start:\n%s", d.stderr)
			}
			if out, err := e.nft("flush", "ruleset"); err != nil {
				t.Fatalf("nft flush ruleset: %v: %s", err, out)
			}
			if !d.waitLog("put back", 5*time.Second) {
				t.Fatalf("no repair logged after nft flush ruleset:\n%s", d.stderr)
			}
			if keys, err := e.nft("list", "set", "inet", "nfqknock", "spakeys"); err != nil || !strings.Contains(keys, "elements = {") {
				t.Fatalf("the repaired table's spakeys is empty (%v):\n%s", err, keys)
			}
			client, server := netns.ClientIP4, netns.ServerIP4
			sendUDP(t, e.pair.Client, client, server, spaPort, spaSeal(t, openSecret, &spa.Message{Time: time.Now(), Action: spa.Open}))
			if !eventually(3*time.Second, func() bool { return e.reachable(client, server, guardPort) }) {
				t.Fatalf("SPA did not open after the repair:\n%s", d.stderr)
			}
		})
	}
}
