package e2e

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/spa"
)

// TestSPAReplay: an SPA open captured on the wire and sent again opens
// nothing, and is logged and counted as a replay: from another address,
// from the same one after the close, after a restart (SIGQUIT: the table
// keeps the nonce) and after a stop and a start (the state file keeps it).
// The --on-event program sees the open and close by SPA (NFQKNOCK_DETAIL
// spa) and the replays (spa open).
// IPv4 and IPv6.
func TestSPAReplay(t *testing.T) {
	t.Parallel()
	for _, fam := range filterFams {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.addClientAddrs(t, fam.second)
			capture := testutil.StartCapture(t, e.pair.Server)
			dir := t.TempDir()
			events := filepath.Join(dir, "events")
			hook := testutil.WriteFile(t, dir, "hook", "#!/bin/sh\n"+
				`echo "$NFQKNOCK_EVENT source=$NFQKNOCK_SOURCE ports=$NFQKNOCK_PORTS detail=$NFQKNOCK_DETAIL" >> `+events+"\n", 0o700)
			args := daemonArgs("--spa", fmt.Sprint(spaPort), "--state-dir", e.stateDir, "--on-event", hook)
			d := e.startArgs(args...)

			sent := spaSeal(t, openSecret, &spa.Message{Time: time.Now(), Action: spa.Open})
			opened := time.Now()
			sendUDP(t, e.pair.Client, fam.client, fam.server, spaPort, sent)
			if !eventually(5*time.Second, func() bool { return e.reachable(fam.client, fam.server, guardPort) }) {
				t.Fatalf("the SPA open did not open the guarded port:\n%s", d.stderr)
			}
			wire := capturedSPA(t, capture, fam.client)
			if !bytes.Equal(wire, sent) {
				t.Fatalf("captured %x, sent %x", wire, sent)
			}
			sendUDP(t, e.pair.Client, fam.client, fam.server, spaPort, spaSeal(t, openSecret, &spa.Message{Time: time.Now(), Action: spa.Close}))
			if !eventually(5*time.Second, func() bool { return !e.reachable(fam.client, fam.server, guardPort) }) {
				t.Fatalf("the SPA close did not close:\n%s", d.stderr)
			}
			// A copy within spaCopyWindow from its source is the client's
			// resend, counted and not logged: replay after it.
			time.Sleep(time.Until(opened.Add(2500 * time.Millisecond)))

			replay := func(d *daemon, src netip.Addr, when string) {
				t.Helper()
				before := e.spaPackets(t)["refused_replay"]
				sendUDP(t, e.pair.Client, src, fam.server, spaPort, wire)
				want := fmt.Sprintf(`msg="spa refused" source=%s reason=replay action=open`, src)
				if !d.waitLog(want, 5*time.Second) {
					t.Fatalf("%s: the replay from %s is not logged as %s:\n%s", when, src, want, d.stderr)
				}
				if got := e.spaPackets(t)["refused_replay"]; got != before+1 {
					t.Errorf("%s: refused_replay %d, want %d", when, got, before+1)
				}
				for _, a := range []netip.Addr{src, fam.client} {
					if e.reachable(a, fam.server, guardPort) {
						t.Fatalf("%s: the replay from %s opened the guarded port for %s", when, src, a)
					}
				}
			}
			replay(d, fam.second, "from another address")
			replay(d, fam.client, "from the same address after the close")
			// The hook saw the open and the close by SPA, and the two
			// replays (the client's own copies are none: it sent one).
			want := []string{
				fmt.Sprintf("open source=%s ports=%d detail=spa", fam.client, guardPort),
				fmt.Sprintf("close source=%s ports=%d detail=spa", fam.client, guardPort),
				fmt.Sprintf("replay source=%s ports= detail=spa open", fam.second),
				fmt.Sprintf("replay source=%s ports= detail=spa open", fam.client),
			}
			var got []string
			waitFor(t, d, 10*time.Second, "the hook's four runs", func() bool {
				b, _ := os.ReadFile(events)
				got = strings.Split(strings.TrimSpace(string(b)), "\n")
				return len(got) >= len(want)
			})
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("hook runs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}

			if code := d.stop(syscall.SIGQUIT); code != 0 {
				t.Fatalf("SIGQUIT: exit %d", code)
			}
			d = e.startArgs(args...)
			replay(d, fam.client, "after a restart")

			if code := d.stop(syscall.SIGTERM); code != 0 {
				t.Fatalf("SIGTERM: exit %d", code)
			}
			if list, err := e.nft("list", "tables"); err != nil || strings.Contains(list, "nfqknock") {
				t.Fatalf("a table is left after the stop (%v):\n%s", err, list)
			}
			d = e.startArgs(args...)
			replay(d, fam.second, "after a stop and a start")

			// A fresh packet still opens.
			sendUDP(t, e.pair.Client, fam.client, fam.server, spaPort, spaSeal(t, openSecret, &spa.Message{Time: time.Now(), Action: spa.Open}))
			if !eventually(5*time.Second, func() bool { return e.reachable(fam.client, fam.server, guardPort) }) {
				t.Fatalf("a fresh SPA open after the replays did not open:\n%s", d.stderr)
			}
		})
	}
}

// capturedSPA returns the payload of the first datagram captured from src
// to spaPort.
func capturedSPA(t *testing.T, c *testutil.Capture, src netip.Addr) []byte {
	t.Helper()
	var got []byte
	eventually(2*time.Second, func() bool {
		for _, d := range c.UDPFrom(src) {
			if d.DstPort == spaPort {
				got = d.Payload
				return true
			}
		}
		return false
	})
	if got == nil {
		t.Fatalf("no SPA datagram from %s captured", src)
	}
	return got
}
