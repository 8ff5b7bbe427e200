package nft

// Tests of the opened elements over a real kernel, in network namespaces:
// Allow, Revoke, Allowed and their carrying over (TestOpenedGolden, with
// the other goldens, is in conn_test.go; their traffic in
// conn_traffic_test.go).

import (
	"errors"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/nfqknockd/nfqknockd/internal/netns"
)

// grant is what an element of allow4/allow6 should hold: its timeout (0:
// none) and user.
type grant struct {
	timeout time.Duration
	user    string
}

// at is the element (a, port).
func at(a netip.Addr, port uint16) opening { return opening{a, port} }

// checkAllowed compares Allowed with want (source, port, timeout and user),
// checks that every element with a timeout has some life left, at most its
// timeout, and that the list is in address then port order.
func checkAllowed(t *testing.T, c *Conn, want map[opening]grant) []Element {
	t.Helper()
	got, err := c.Allowed()
	if err != nil {
		t.Fatalf("Allowed: %v", err)
	}
	gotMap := map[opening]grant{}
	for i, el := range got {
		gotMap[at(el.Addr, el.Port)] = grant{el.Timeout, el.User}
		switch {
		case el.Timeout == 0 && el.Expires != 0:
			t.Errorf("%s . %d: no timeout but expires in %s", el.Addr, el.Port, el.Expires)
		case el.Timeout != 0 && (el.Expires <= 0 || el.Expires > el.Timeout):
			t.Errorf("%s . %d: expires in %s, want in (0, %s]", el.Addr, el.Port, el.Expires, el.Timeout)
		}
		if i > 0 && (got[i-1].Addr.Compare(el.Addr) > 0 || got[i-1].Addr == el.Addr && got[i-1].Port >= el.Port) {
			t.Errorf("Allowed out of order: %s . %d after %s . %d", el.Addr, el.Port, got[i-1].Addr, got[i-1].Port)
		}
	}
	if diff := cmp.Diff(want, gotMap, cmp.AllowUnexported(opening{}, grant{}), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("allowed elements (-want +got):\n%s", diff)
	}
	return got
}

// ports is a list of ports, for short.
func ports(p ...uint16) []uint16 { return p }

func TestAllowRevoke(t *testing.T) {
	e := newEnv(t)
	spec := goldenSpec
	spec.Guard = []uint16{22, 443}
	if _, err := e.c.Apply(spec); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	type m = map[opening]grant
	steps := []struct {
		name string
		do   func() error
		want m
	}{
		{"allow v4 22 and 443 for alice, 1h", func() error { return e.c.Allow(client4, ports(443, 22), "alice", time.Hour) },
			m{at(client4, 22): {time.Hour, "alice"}, at(client4, 443): {time.Hour, "alice"}}},
		{"allow v6 22, 30m, no user", func() error { return e.c.Allow(client6, ports(22), "", 30*time.Minute) },
			m{at(client4, 22): {time.Hour, "alice"}, at(client4, 443): {time.Hour, "alice"}, at(client6, 22): {30 * time.Minute, ""}}},
		{"allow v4-mapped v6 without timeout for bob", func() error {
			return e.c.Allow(netip.AddrFrom16(other4.As16()), ports(22), "bob", 0)
		}, m{at(client4, 22): {time.Hour, "alice"}, at(client4, 443): {time.Hour, "alice"}, at(client6, 22): {30 * time.Minute, ""},
			at(other4, 22): {0, "bob"}}},
		{"allow v4 22 again for carol: new timeout and user, 443 as it was", func() error {
			return e.c.Allow(client4, ports(22), "carol", 2*time.Hour)
		}, m{at(client4, 22): {2 * time.Hour, "carol"}, at(client4, 443): {time.Hour, "alice"}, at(client6, 22): {30 * time.Minute, ""},
			at(other4, 22): {0, "bob"}}},
		{"allow 22 (there, without timeout) and 443 (not there): both with a timeout, no user", func() error {
			return e.c.Allow(other4, ports(22, 443), "", time.Minute)
		}, m{at(client4, 22): {2 * time.Hour, "carol"}, at(client4, 443): {time.Hour, "alice"}, at(client6, 22): {30 * time.Minute, ""},
			at(other4, 22): {time.Minute, ""}, at(other4, 443): {time.Minute, ""}}},
		{"revoke v4 443", func() error { return e.c.Revoke(client4, ports(443)) },
			m{at(client4, 22): {2 * time.Hour, "carol"}, at(client6, 22): {30 * time.Minute, ""},
				at(other4, 22): {time.Minute, ""}, at(other4, 443): {time.Minute, ""}}},
		{"revoke v4, every port", func() error { return e.c.Revoke(client4, nil) },
			m{at(client6, 22): {30 * time.Minute, ""}, at(other4, 22): {time.Minute, ""}, at(other4, 443): {time.Minute, ""}}},
		{"revoke v4 again (absent)", func() error { return e.c.Revoke(client4, nil) },
			m{at(client6, 22): {30 * time.Minute, ""}, at(other4, 22): {time.Minute, ""}, at(other4, 443): {time.Minute, ""}}},
		{"revoke never-added v6", func() error { return e.c.Revoke(netip.MustParseAddr("fd00:200::99"), ports(22)) },
			m{at(client6, 22): {30 * time.Minute, ""}, at(other4, 22): {time.Minute, ""}, at(other4, 443): {time.Minute, ""}}},
		{"revoke 443 (there) and 8080 (never added)", func() error { return e.c.Revoke(other4, ports(443, 8080)) },
			m{at(client6, 22): {30 * time.Minute, ""}, at(other4, 22): {time.Minute, ""}}},
		{"allow v4 22 for alice, 1h", func() error { return e.c.Allow(client4, ports(22), "alice", time.Hour) },
			m{at(client4, 22): {time.Hour, "alice"}, at(client6, 22): {30 * time.Minute, ""}, at(other4, 22): {time.Minute, ""}}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if t.Failed() {
			break
		}
		checkAllowed(t, e.c, s.want)
		srcs := map[netip.Addr]bool{}
		var want4, want6 int
		for o := range s.want {
			if a := o.addr.Unmap(); !srcs[a] {
				srcs[a] = true
				if a.Is4() {
					want4++
				} else {
					want6++
				}
			}
		}
		if v4, v6 := e.c.OpenedSources(); v4 != want4 || v6 != want6 {
			t.Errorf("OpenedSources = %d, %d; want %d, %d", v4, v6, want4, want6)
		}
		// Opened, from the record, names what the kernel holds.
		opened := e.c.Opened()
		if len(opened) != len(s.want) {
			t.Errorf("Opened: %d elements, want %d: %v", len(opened), len(s.want), opened)
		}
		for _, el := range opened {
			g, ok := s.want[at(el.Addr, el.Port)]
			if !ok || g.user != el.User || (g.timeout == 0) != (el.Expires == 0) || el.Expires > g.timeout {
				t.Errorf("Opened holds %v, want %v (present %v)", el, g, ok)
			}
		}
		if t.Failed() {
			t.Fatalf("after %s", s.name)
		}
	}
	out := e.mustList(t, DefaultTable)
	for _, re := range []string{
		`elements = \{ 10\.200\.0\.2 \. 22 timeout 1h expires [0-9hms]+ comment "alice",\s+10\.200\.0\.3 \. 22 timeout 1m expires [0-9hms]+ \}`,
		`elements = \{ fd00:200::2 \. 22 timeout 30m expires [0-9hms]+ \}`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("listing does not match %s:\n%s", re, out)
		}
	}
	for _, bad := range []struct {
		a     netip.Addr
		ports []uint16
		user  string
		ttl   time.Duration
	}{
		{netip.Addr{}, ports(22), "", time.Hour},
		{client4, ports(22), "", -time.Second},
		{client4, nil, "", time.Hour},
		{client4, ports(0), "", time.Hour},
		{client4, ports(22), "no spaces", time.Hour},
		{client4, ports(22), strings.Repeat("a", 33), time.Hour},
	} {
		if err := e.c.Allow(bad.a, bad.ports, bad.user, bad.ttl); err == nil {
			t.Errorf("Allow(%v, %v, %q, %v) succeeded", bad.a, bad.ports, bad.user, bad.ttl)
		}
	}
	if err := e.c.Revoke(netip.Addr{}, nil); err == nil {
		t.Errorf("Revoke of an invalid address succeeded")
	}
	if err := e.c.Revoke(client4, ports(0)); err == nil {
		t.Errorf("Revoke of port 0 succeeded")
	}
}

// TestRevokeEveryPort: Revoke without ports removes every element of the
// source the kernel holds, also those this Conn did not add (here by nft,
// as an admin would), and no element of another source.
func TestRevokeEveryPort(t *testing.T) {
	e := newEnv(t)
	spec := goldenSpec
	spec.NoOwner = true // nft may write into the table
	if _, err := e.c.Apply(spec); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if err := e.c.Allow(client4, ports(22), "alice", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Allow(other4, ports(22), "", time.Hour); err != nil {
		t.Fatal(err)
	}
	if out, err := e.nft("add", "element", "inet", DefaultTable, SetAllow4,
		`{ 10.200.0.2 . 8080 timeout 5m comment "ops", 10.200.0.2 . 9090 }`); err != nil {
		t.Fatalf("nft add element: %v: %s", err, out)
	}
	checkAllowed(t, e.c, map[opening]grant{at(client4, 22): {time.Hour, "alice"}, at(client4, 8080): {5 * time.Minute, "ops"},
		at(client4, 9090): {}, at(other4, 22): {time.Hour, ""}})
	if err := e.c.Revoke(client4, nil); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	checkAllowed(t, e.c, map[opening]grant{at(other4, 22): {time.Hour, ""}})
}

// TestApplyKeepsAllowed simulates a restart after a crash: a new Conn applies
// the ruleset over the table left behind, and the allowed sources stay, with
// their remaining timeouts (none for those added without).
func TestApplyKeepsAllowed(t *testing.T) {
	e := newEnv(t)
	if _, err := e.c.Apply(goldenSpec); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want := map[opening]grant{at(client4, 22): {time.Hour, "alice"}, at(client4, 443): {time.Hour, "alice"},
		at(other4, 22): {}, at(client6, 2222): {10 * time.Minute, "bob"}}
	for o, g := range want {
		if err := e.c.Allow(o.addr, ports(o.port), g.user, g.timeout); err != nil {
			t.Fatalf("Allow %s . %d: %v", o.addr, o.port, err)
		}
	}
	before := checkAllowed(t, e.c, want)

	// The daemon exits without deleting its table (a crash, a restart):
	// the table stays, without an owner, for the next one to take over.
	if err := e.c.Close(); err != nil {
		t.Fatal(err)
	}
	restarted := e.dial(t)
	spec := goldenSpec
	spec.Guard = []uint16{22, 2222} // the restarted daemon may guard other ports
	res, err := restarted.Apply(spec)
	if err != nil {
		t.Fatalf("Apply after restart: %v", err)
	}
	if !res.TookOver || res.Carried != len(want) {
		t.Errorf("Apply after restart: %+v, want TookOver and Carried %d", res, len(want))
	}
	checkCarried(t, before, restarted)
	if out := e.mustList(t, DefaultTable); !strings.Contains(out, "elements = { 22, 2222 }") {
		t.Errorf("the new guard ports are not there:\n%s", out)
	}
}

// checkCarried checks that c holds the elements before, with their ports
// and users, each with the life it had left as its timeout (none for those
// without).
func checkCarried(t *testing.T, before []Element, c *Conn) {
	t.Helper()
	after, err := c.Allowed()
	if err != nil {
		t.Fatalf("Allowed: %v", err)
	}
	if len(after) != len(before) {
		t.Fatalf("after %v, before %v", after, before)
	}
	for i, b := range before {
		a := after[i]
		if a.Addr != b.Addr || a.Port != b.Port || a.User != b.User {
			t.Errorf("element %d: %s . %d user %q after, %s . %d user %q before", i, a.Addr, a.Port, a.User, b.Addr, b.Port, b.User)
			continue
		}
		if b.Timeout == 0 {
			if a.Timeout != 0 || a.Expires != 0 {
				t.Errorf("%s . %d had no timeout; after: timeout %s expires %s", a.Addr, a.Port, a.Timeout, a.Expires)
			}
			continue
		}
		// The carried element's timeout is the life it had left.
		if a.Timeout <= 0 || a.Timeout > b.Expires || a.Expires <= 0 || a.Expires > a.Timeout {
			t.Errorf("%s . %d: before: expires %s; after: timeout %s expires %s", a.Addr, a.Port, b.Expires, a.Timeout, a.Expires)
		}
	}
}

// TestAllowSetFull: the allow sets have a size, in elements (source and
// port); when one is full the kernel refuses the next open whole (ENFILE),
// the error says so, and the opened elements stay as they were. Renewing,
// and closing (also ports that are not there), still work in a full set.
func TestAllowSetFull(t *testing.T) {
	e := newEnv(t)
	spec := goldenSpec
	spec.MaxOpen = 3
	if _, err := e.c.Apply(spec); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	a := []netip.Addr{netip.MustParseAddr("10.9.0.1"), netip.MustParseAddr("10.9.0.2"), netip.MustParseAddr("10.9.0.3")}
	full := func(step string, err error) {
		t.Helper()
		if !errors.Is(err, unix.ENFILE) || !strings.Contains(err.Error(), "(the set is full)") {
			t.Fatalf("%s: %v, want ENFILE and a hint", step, err)
		}
		t.Logf("%s: %v", step, err)
	}
	if err := e.c.Allow(a[0], ports(22, 443), "alice", time.Hour); err != nil {
		t.Fatalf("Allow: %v", err)
	}
	// Two elements where one place is left: neither is added.
	full("open two ports, one place left", e.c.Allow(a[1], ports(22, 443), "", time.Hour))
	checkAllowed(t, e.c, map[opening]grant{at(a[0], 22): {time.Hour, "alice"}, at(a[0], 443): {time.Hour, "alice"}})
	if err := e.c.Allow(a[1], ports(22), "", time.Hour); err != nil {
		t.Fatalf("Allow into the last place: %v", err)
	}
	full("open into a full set", e.c.Allow(a[2], ports(22), "", time.Hour))
	// Renewing opened elements still works in a full set.
	if err := e.c.Allow(a[0], ports(22, 443), "bob", 2*time.Hour); err != nil {
		t.Errorf("renew in a full set: %v", err)
	}
	checkAllowed(t, e.c, map[opening]grant{at(a[0], 22): {2 * time.Hour, "bob"}, at(a[0], 443): {2 * time.Hour, "bob"}, at(a[1], 22): {time.Hour, ""}})
	// Closing a port that is there and one that is not, in a full set.
	if err := e.c.Revoke(a[0], ports(443, 8080)); err != nil {
		t.Fatalf("Revoke in a full set: %v", err)
	}
	checkAllowed(t, e.c, map[opening]grant{at(a[0], 22): {2 * time.Hour, "bob"}, at(a[1], 22): {time.Hour, ""}})
	if err := e.c.Allow(a[2], ports(22), "", time.Hour); err != nil {
		t.Fatalf("Allow into the freed place: %v", err)
	}
	// Closing only ports that are not there, and every port, in a full set.
	if err := e.c.Revoke(a[2], ports(443, 8080)); err != nil {
		t.Fatalf("Revoke of absent elements in a full set: %v", err)
	}
	if err := e.c.Revoke(a[1], nil); err != nil {
		t.Fatalf("Revoke of every port in a full set: %v", err)
	}
	checkAllowed(t, e.c, map[opening]grant{at(a[0], 22): {2 * time.Hour, "bob"}, at(a[2], 22): {time.Hour, ""}})
}

// oldTable is a table of an earlier version, whose allow sets were keyed by
// the address alone (each opened source had every guarded port), as nft -f
// writes it back from that version's listing (the queue rule left out).
const oldTable = `table inet nfqknock {
	comment "nfqknockd: port knocking; managed by the daemon, do not edit"
	set guard { type inet_service; elements = { 22, 443 }; }
	set allow4 { type ipv4_addr; size 65536; flags timeout; elements = { 10.200.0.2 timeout 1h, 10.200.0.3 }; }
	set allow6 { type ipv6_addr; size 65536; flags timeout; elements = { fd00:200::2 timeout 30m }; }
	set static4 { type ipv4_addr; flags interval; }
	set static6 { type ipv6_addr; flags interval; }
	chain guard {
		type filter hook prerouting priority mangle + 5; policy accept;
		iif "lo" accept
		tcp flags syn / fin,syn,rst,ack tcp dport @guard fib daddr type local jump guarded comment "nfqknockd guard: a new connection to a guarded port of this host"
	}
	chain guarded {
		ip saddr @allow4 accept
		ip6 saddr @allow6 accept
		ip saddr @static4 accept
		ip6 saddr @static6 accept
		counter drop comment "nfqknockd guard: not opened, not --allow"
	}
}
`

// TestTakeoverOldFormat: the table of an earlier version, with allow sets
// keyed by address, is taken over: each opened address becomes one element
// per guarded port, without user, with the life it had left (none for one
// without timeout), in sets keyed by address and port.
func TestTakeoverOldFormat(t *testing.T) {
	e := newEnv(t)
	if out, err := netns.Command(e.pair.Server, "sh", "-c", "printf '%s' \"$0\" | nft -f -", oldTable).CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v: %s", err, out)
	}
	// Allowed reads the old sets too: an address alone is port 0.
	old, err := e.c.Allowed()
	if err != nil || len(old) != 3 || old[0].Port != 0 || old[0].Addr != client4 || old[0].Timeout != time.Hour {
		t.Fatalf("Allowed over the old table: %+v (%v)", old, err)
	}
	spec := goldenSpec
	spec.Guard = []uint16{443, 22}
	res, err := e.c.Apply(spec)
	if err != nil {
		t.Fatalf("Apply over the old table: %v", err)
	}
	if !res.TookOver || res.Carried != 6 {
		t.Errorf("Apply: %+v, want TookOver, Carried 6 (3 sources x 2 ports)", res)
	}
	var before []Element
	for _, el := range old {
		for _, p := range spec.Guard {
			el.Port = p
			before = append(before, el)
		}
	}
	slices.SortFunc(before, func(x, y Element) int {
		if c := x.Addr.Compare(y.Addr); c != 0 {
			return c
		}
		return int(x.Port) - int(y.Port)
	})
	checkCarried(t, before, e.c)
	out := e.mustList(t, DefaultTable)
	for _, re := range []string{
		`type ipv4_addr \. inet_service`,
		// nft prints the elements in the kernel's (hash) order.
		`[{ ]10\.200\.0\.2 \. 22 timeout \S+ expires \S+[, \n]`,
		`[{ ]10\.200\.0\.2 \. 443 timeout \S+ expires \S+[, \n]`,
		`[{ ]10\.200\.0\.3 \. 22[, \n]`,
		`[{ ]10\.200\.0\.3 \. 443[, \n]`,
		`[{ ]fd00:200::2 \. 22 timeout \S+ expires \S+[, \n]`,
		`[{ ]fd00:200::2 \. 443 timeout \S+ expires \S+[, \n]`,
		`ip saddr \. tcp dport @allow4 accept`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("listing after the takeover does not match %s:\n%s", re, out)
		}
	}
}
