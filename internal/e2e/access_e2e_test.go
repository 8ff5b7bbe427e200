package e2e

// End-to-end tests of issue 13 in network namespaces: users of an access
// file with their own ports, SIGHUP removing a user, and one-time
// sequences captured on the wire and replayed.

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/knock"
)

// secondGuard is the port guarded besides guardPort in the access tests.
const secondGuard = 2224

// testUsers are the users of the access tests: alice may reach guardPort,
// bob secondGuard, carol both (no ports=).
var testUsers = []knock.User{
	{Name: "alice", OpenSecret: "alice-open-secret-1", CloseSecret: "alice-close-secret-1", Ports: []uint16{guardPort}},
	{Name: "bob", OpenSecret: "bob-open-secret-22", CloseSecret: "bob-close-secret-22", Ports: []uint16{secondGuard}},
	{Name: "carol", OpenSecret: "carol-open-secret-333", CloseSecret: "carol-close-secret-333"},
}

// writeAccess writes users to the access file path, mode 0600.
func writeAccess(t *testing.T, path string, users []knock.User) {
	t.Helper()
	if err := os.WriteFile(path+".new", []byte(testutil.AccessText(users)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// userParams are the daemon's sequence parameters (defaultParams) with the
// secrets of u.
func userParams(u knock.User) knock.Params {
	p := defaultParams()
	p.OpenSecret, p.CloseSecret = u.OpenSecret, u.CloseSecret
	return p
}

// accessEnv starts a daemon guarding guardPort and secondGuard with the
// test users' access file and extra flags; the file's path comes back for
// rewriting.
func accessEnv(t *testing.T, extra ...string) (*env, *daemon, string) {
	t.Helper()
	e := newEnv(t)
	for _, a := range []netip.Addr{netns.ServerIP4, netns.ServerIP6} {
		e.listen(netip.AddrPortFrom(a, secondGuard))
	}
	path := filepath.Join(t.TempDir(), "access")
	writeAccess(t, path, testUsers)
	args := append([]string{"--range", "1-65535", "--guard", fmt.Sprintf("%d,%d", guardPort, secondGuard), "--access-file", path}, extra...)
	if slices.Contains(extra, "--one-time") {
		args = append(args, "--state-dir", e.stateDir)
	}
	return e, e.startArgs(args...), path
}

// waitCount waits up to two seconds until the daemon's log holds s n
// times, and returns how many times it does.
func (d *daemon) waitCount(s string, n int) int {
	deadline := time.Now().Add(2 * time.Second)
	for {
		c := strings.Count(d.stderr.String(), s)
		if c >= n || time.Now().After(deadline) {
			return c
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reach checks which of guardPort and secondGuard src reaches.
func (e *env) reach(t *testing.T, src, dst netip.Addr, want [2]bool, when string) {
	t.Helper()
	for i, port := range []int{guardPort, secondGuard} {
		if got := e.reachable(src, dst, port); got != want[i] {
			t.Errorf("%s: %s -> port %d reachable = %v, want %v", when, src, port, got, want[i])
		}
	}
}

// TestAccessFileUsers: two users with different ports each open only their
// own ports, for their own source; the log, SIGUSR1 and nft list name the
// user; removing a user and SIGHUP closes that user's source at once, and
// its knocks no longer open. IPv4 and IPv6.
func TestAccessFileUsers(t *testing.T) {
	for _, fam := range filterFams {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			e, d, path := accessEnv(t)
			e.addClientAddrs(t, fam.second, fam.third)
			alice, bob, carol := fam.client, fam.second, fam.third
			now := time.Now()
			open := func(u knock.User) []uint16 { o, _ := userParams(u).Sequences(now); return o }

			e.reach(t, alice, fam.server, [2]bool{false, false}, "before any knock")
			// The kernel filter's first-port set holds every user's first
			// ports (open and close, of this period at least).
			first := e.firstSet(t)
			for _, u := range testUsers {
				o, c := userParams(u).Sequences(now)
				for _, p := range firstPortsOf(o, c) {
					if !slices.Contains(first, p) {
						t.Errorf("set first lacks a first port of %s", u.Name)
					}
				}
			}
			e.knock(alice, fam.server, open(testUsers[0]))
			e.knock(bob, fam.server, open(testUsers[1]))
			e.knock(carol, fam.server, open(testUsers[2]))
			for _, s := range []string{
				"msg=open source=" + alice.String() + " user=alice ",
				"msg=open source=" + bob.String() + " user=bob ",
				"msg=open source=" + carol.String() + " user=carol ",
			} {
				if !d.waitLog(s, 2*time.Second) {
					t.Fatalf("no %q in the log", s)
				}
			}
			e.reach(t, alice, fam.server, [2]bool{true, false}, "alice opened")
			e.reach(t, bob, fam.server, [2]bool{false, true}, "bob opened")
			e.reach(t, carol, fam.server, [2]bool{true, true}, "carol opened")

			list, err := e.nft("list", "set", "inet", "nfqknock", fam.allow)
			if err != nil {
				t.Fatalf("nft list set: %v: %s", err, list)
			}
			t.Logf("nft list set inet nfqknock %s:\n%s", fam.allow, list)
			for _, want := range []string{
				fmt.Sprintf("%s . %d ", alice, guardPort), `comment "alice"`,
				fmt.Sprintf("%s . %d ", bob, secondGuard), `comment "bob"`,
				fmt.Sprintf("%s . %d ", carol, guardPort), fmt.Sprintf("%s . %d ", carol, secondGuard), `comment "carol"`,
			} {
				if !strings.Contains(list, want) {
					t.Errorf("nft list set %s lacks %q", fam.allow, want)
				}
			}
			d.cmd.Process.Signal(syscall.SIGUSR1)
			if s := fmt.Sprintf("msg=opened source=%s port=%d user=bob ", bob, secondGuard); !d.waitLog(s, 5*time.Second) {
				t.Errorf("SIGUSR1 did not log %q", s)
			}

			// bob leaves the team.
			writeAccess(t, path, []knock.User{testUsers[0], testUsers[2]})
			d.cmd.Process.Signal(syscall.SIGHUP)
			if s := fmt.Sprintf("msg=close source=%s port=%d user=bob reason=", bob, secondGuard); !d.waitLog(s, 5*time.Second) {
				t.Fatalf("no %q after SIGHUP", s)
			}
			e.reach(t, bob, fam.server, [2]bool{false, false}, "bob removed")
			e.knock(bob, fam.server, open(testUsers[1]))
			if n := d.waitCount("user=bob timeout=", 2); n != 1 {
				t.Errorf("bob's knock after his removal: %d opens logged in all, want 1", n)
			}
			e.reach(t, bob, fam.server, [2]bool{false, false}, "bob knocked after his removal")
			e.reach(t, alice, fam.server, [2]bool{true, false}, "alice after bob's removal")
			e.reach(t, carol, fam.server, [2]bool{true, true}, "carol after bob's removal")
			d.term()
		})
	}
}

// oneTime returns the one-time sequence of secret for now and nonce.
func oneTime(secret string, nonce uint32) []uint16 {
	p := defaultParams()
	return knock.OneTimeSequence(p.Digest, secret, p.PeriodStart(time.Now()), nonce, p.Range)
}

// oneTimeEnv starts a daemon with the access file and --one-time (see
// accessEnv), adds the client addresses, and opens a capture of the SYNs
// reaching the server and a sender of raw SYNs in the client namespace;
// the test's cleanup closes them.
func oneTimeEnv(t *testing.T, addrs ...netip.Addr) (*env, *daemon, string, *testutil.Capture, *testutil.SYNSender) {
	t.Helper()
	e, d, path := accessEnv(t, "--one-time")
	e.addClientAddrs(t, addrs...)
	capture := testutil.StartCapture(t, e.pair.Server)
	sender, err := testutil.NewSYNSender(e.pair.Client)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sender.Close() })
	return e, d, path, capture, sender
}

// twoNonces returns two different random nonces (for two opens: random
// ones could be equal, and the second open would then be a replay).
func twoNonces() (uint32, uint32) {
	n1 := rand.Uint32N(knock.OneTimeNonces)
	return n1, (n1 + 1 + rand.Uint32N(knock.OneTimeNonces-1)) % knock.OneTimeNonces
}

// captured waits until the capture holds n SYNs from src and returns
// their destination ports, in order.
func captured(t *testing.T, c *testutil.Capture, src netip.Addr, n int) []uint16 {
	t.Helper()
	var syns []testutil.SYN
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if syns = c.From(src); len(syns) >= n {
			break
		}
	}
	if len(syns) != n {
		t.Fatalf("captured %d SYNs from %s, want %d: %v", len(syns), src, n, syns)
	}
	ports := make([]uint16, n)
	for i, s := range syns {
		ports[i] = s.DstPort
	}
	return ports
}

// replay sends ports from src to dst as raw SYNs, as an attacker who
// captured them would.
func replay(t *testing.T, s *testutil.SYNSender, src, dst netip.Addr, ports []uint16) {
	t.Helper()
	for i, p := range ports {
		syn := testutil.SYN{Src: src, Dst: dst, SrcPort: uint16(50000 + i), DstPort: p, Seq: rand.Uint32(), MSS: 1460}
		if err := s.Send(syn); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestOneTimeReplay: with --one-time and an access file, a knock captured
// on the server's link and replayed from another address opens nothing
// and is logged as a replay; the client opens again at once with a new
// nonce; a close replayed after the close does nothing; the C-compatible
// sequence opens nothing. IPv4 and IPv6.
func TestOneTimeReplay(t *testing.T) {
	for _, fam := range filterFams {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			e, d, _, capture, sender := oneTimeEnv(t, fam.second, fam.third)
			client, attacker := fam.client, fam.second
			alice := testUsers[0]
			opens := "msg=open source=" + client.String() + " user=alice "
			n1, n2 := twoNonces()
			open1 := oneTime(alice.OpenSecret, n1)
			e.knock(client, fam.server, open1)
			if d.waitCount(opens, 1) != 1 {
				t.Fatalf("the one-time open did not open")
			}
			wire := captured(t, capture, client, len(open1))
			if fmt.Sprint(wire) != fmt.Sprint(open1) {
				t.Fatalf("captured %v, knocked %v", wire, open1)
			}
			e.reach(t, client, fam.server, [2]bool{true, false}, "alice opened")

			// The attacker replays what went over the wire.
			replay(t, sender, attacker, fam.server, wire)
			if s := "msg=replay source=" + attacker.String() + " user=alice sequence=open"; !d.waitLog(s, 2*time.Second) {
				t.Errorf("no %q after the replay", s)
			}
			e.reach(t, attacker, fam.server, [2]bool{false, false}, "after the attacker's replay")

			// The client closes, with a one-time close, and opens again at
			// once with a new nonce.
			capture.Reset()
			close1 := oneTime(alice.CloseSecret, rand.Uint32N(knock.OneTimeNonces))
			e.knock(client, fam.server, close1)
			if !d.waitLog("msg=close source="+client.String()+" user=alice", 2*time.Second) {
				t.Fatalf("the one-time close did not close")
			}
			closeWire := captured(t, capture, client, len(close1))
			e.reach(t, client, fam.server, [2]bool{false, false}, "alice closed")
			e.knock(client, fam.server, oneTime(alice.OpenSecret, n2))
			if d.waitCount(opens, 2) != 2 {
				t.Fatalf("a new one-time open right after the close did not open")
			}
			e.reach(t, client, fam.server, [2]bool{true, false}, "alice opened again")

			// The close, replayed after the close (with the client's own
			// address, to shut it out), does nothing; nor does the old open.
			replay(t, sender, client, fam.server, closeWire)
			if s := "msg=replay source=" + client.String() + " user=alice sequence=close"; !d.waitLog(s, 2*time.Second) {
				t.Errorf("no %q after the close was replayed", s)
			}
			e.reach(t, client, fam.server, [2]bool{true, false}, "after the replayed close")
			if n := strings.Count(d.stderr.String(), "msg=close source="+client.String()); n != 1 {
				t.Errorf("%d closes logged, want 1", n)
			}

			// The C-compatible sequence is not accepted in this mode.
			cOpen, _ := userParams(alice).Sequences(time.Now())
			e.knock(fam.third, fam.server, cOpen)
			e.reach(t, fam.third, fam.server, [2]bool{false, false}, "after the C-compatible open")
			if strings.Contains(d.stderr.String(), "msg=open source="+fam.third.String()) {
				t.Errorf("the C-compatible sequence opened in --one-time mode")
			}
			d.cmd.Process.Signal(syscall.SIGUSR1)
			if !d.waitLog("replays=2", 5*time.Second) {
				t.Errorf("SIGUSR1's stats do not count the 2 replays")
			}
			d.term()
		})
	}
}
