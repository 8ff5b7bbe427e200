package e2e

// The harness of the SPA tests: packets sealed here with package spa, as
// nfqknock seals them, sent over real UDP from a namespace.

import (
	"crypto/rand"
	"encoding/json"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/knock"
	"github.com/nfqknockd/nfqknockd/spa"
)

// spaPort is the daemon's --spa port in the SPA tests: fwknop's, the
// client's bare --spa.
const spaPort = 62201

// spaSeal returns the SPA packet of secret for m, with a random nonce and
// the daemon's default period.
func spaSeal(t *testing.T, secret string, m *spa.Message) []byte {
	t.Helper()
	return spaSealPeriod(t, secret, knock.DefaultPeriod, m)
}

// spaSealPeriod is spaSeal for a daemon of another --period.
func spaSealPeriod(t *testing.T, secret string, period time.Duration, m *spa.Message) []byte {
	t.Helper()
	var nonce [spa.NonceLen]byte
	rand.Read(nonce[:])
	pkt, err := spa.Seal(nil, spa.NewKey(secret), period, nonce, m)
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	return pkt
}

// sendUDP sends payload once from src (an address of namespace ns; any
// when invalid) to dst:port.
func sendUDP(t *testing.T, ns string, src, dst netip.Addr, port int, payload []byte) {
	t.Helper()
	err := netns.Do(ns, func() error {
		var laddr *net.UDPAddr
		if src.IsValid() {
			laddr = &net.UDPAddr{IP: src.AsSlice()}
		}
		c, err := net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, uint16(port))))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(payload)
		return err
	})
	if err != nil {
		t.Fatalf("send UDP %s -> [%s]:%d: %v", src, dst, port, err)
	}
}

// startSPA starts the daemon with daemonArgs, --spa spaPort, the test's
// own --state-dir (the default is the host's), and extra flags.
func (e *env) startSPA(extra ...string) *daemon {
	e.t.Helper()
	return e.start(append([]string{"--spa", strconv.Itoa(spaPort), "--state-dir", e.stateDir}, extra...)...)
}

// eventually polls cond every 50 ms for up to max.
func eventually(max time.Duration, cond func() bool) bool {
	for end := time.Now().Add(max); ; time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// spaPackets returns the daemon's SPA counters (nfqknockd status --json:
// open, close, refused_REASON) in the server namespace.
func (e *env) spaPackets(t *testing.T) map[string]uint64 {
	t.Helper()
	// A daemon that just started may not listen on its control socket
	// yet: ask again for a while.
	var out []byte
	var err error
	eventually(5*time.Second, func() bool {
		out, err = netns.Command(e.pair.Server, e.bin, "status", "--json").Output()
		return err == nil
	})
	if err != nil {
		t.Fatalf("nfqknockd status --json: %v\n%s", err, out)
	}
	var r struct {
		Status struct {
			SPAPackets map[string]uint64 `json:"spa_packets"`
		} `json:"status"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return r.Status.SPAPackets
}
