package nft

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
)

// nft runs nft with args in the server namespace.
func (e *env) nft(args ...string) (string, error) {
	out, err := netns.Command(e.pair.Server, "nft", args...).CombinedOutput()
	return string(out), err
}

// outsideChanges are what an admin or another program does to our table:
// nftables.service's reload, a delete, a flush, an edit.
var outsideChanges = [][]string{
	{"flush", "ruleset"},
	{"delete", "table", "inet", DefaultTable},
	{"flush", "table", "inet", DefaultTable},
	{"flush", "chain", "inet", DefaultTable, ChainGuard},
}

// Of the tests' tables: a source that never knocked, and the key of a used
// one-time sequence (Spend), which nft prints as an IPv6 address.
var (
	stranger4 = netip.MustParseAddr("10.200.0.99")
	spentKey  = [16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}
)

// editChanges are the edits of another program inside table, which holds
// client4 . 22 in allow4 and spentKey in spent: a set flushed, an opened
// source deleted, a stranger opened (allow4, static4), a used one-time
// sequence forgotten, a rule that accepts everything put first in
// guarded, a chain added, the table made dormant (its hooks unregistered).
// An owned table refuses each; Watch puts a table without owner back.
func editChanges(table string) [][]string {
	return [][]string{
		{"flush", "set", "inet", table, SetGuard},
		{"delete", "element", "inet", table, SetAllow4, "{ " + client4.String() + " . 22 }"},
		{"add", "element", "inet", table, SetAllow4, "{ " + stranger4.String() + " . 22 }"},
		{"add", "element", "inet", table, SetStatic4, "{ " + stranger4.String() + " }"},
		{"delete", "element", "inet", table, SetSpent, "{ " + netip.AddrFrom16(spentKey).String() + " }"},
		{"insert", "rule", "inet", table, ChainGuarded, "accept"},
		{"add", "chain", "inet", table, "extra"},
		{"add", "table", "inet", table, "{ flags dormant; }"},
	}
}

// TestOwnership: on a kernel with the table flags owner and persist, the
// table is the Conn's alone while it lives (`nft flush ruleset` skips it,
// other changes get EPERM), outlives the Conn without an owner, and the
// next Conn takes it over with the opened sources.
func TestOwnership(t *testing.T) {
	e := newEnv(t)
	res, err := e.c.Apply(goldenSpec)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if res.Gen != GenPersist {
		t.Fatalf("Apply found %v; this kernel (6.18) has the flags owner and persist", res.Gen)
	}
	if err := e.c.Allow(client4, ports(22), "alice", time.Hour); err != nil {
		t.Fatalf("Allow: %v", err)
	}
	if err := e.c.Spend(spentKey, time.Hour); err != nil {
		t.Fatalf("Spend: %v", err)
	}
	before := e.mustList(t, DefaultTable)
	for _, want := range []string{"flags owner", `comment "` + commentPersist + `"`} {
		if !strings.Contains(before, want) {
			t.Errorf("listing lacks %q:\n%s", want, before)
		}
	}
	for _, args := range append(outsideChanges, editChanges(DefaultTable)...) {
		out, err := e.nft(args...)
		refused := err != nil && strings.Contains(out, "Operation not permitted")
		if args[0] == "flush" && args[1] == "ruleset" {
			if err != nil {
				t.Errorf("nft flush ruleset failed: %v: %s", err, out)
			}
		} else if !refused {
			t.Errorf("nft %s: %v %s; want Operation not permitted", strings.Join(args, " "), err, out)
		}
	}
	if after := e.mustList(t, DefaultTable); normalizeExpiry(normalize(after)) != normalizeExpiry(normalize(before)) {
		t.Errorf("the table changed under outside changes:\n%s", after)
	}
	second := e.dial(t)
	var held *HeldError
	if _, err := second.Apply(goldenSpec); !errors.As(err, &held) {
		t.Fatalf("second Apply while the first Conn owns the table: %v, want a HeldError", err)
	}
	if err := second.Destroy(); !errors.As(err, &held) {
		t.Fatalf("second Destroy: %v, want a HeldError", err)
	}

	if err := e.c.Close(); err != nil {
		t.Fatal(err)
	}
	orphan := e.mustList(t, DefaultTable)
	if strings.Contains(orphan, "flags owner") || !regexp.MustCompile(`10\.200\.0\.2 \. 22 timeout 1h expires \S+ comment "alice"`).MatchString(orphan) {
		t.Errorf("after the owner closed, want the table without owner and with the opened source:\n%s", orphan)
	}
	res, err = second.Apply(goldenSpec)
	if err != nil {
		t.Fatalf("takeover: %v", err)
	}
	if !res.TookOver || res.Carried != 1 || res.Gen != GenPersist {
		t.Errorf("takeover result %+v, want TookOver, Carried 1, GenPersist", res)
	}
	got, err := second.Allowed()
	if err != nil || len(got) != 1 || got[0].Addr != client4 || got[0].Port != 22 || got[0].User != "alice" ||
		got[0].Timeout <= 0 || got[0].Timeout > time.Hour {
		t.Errorf("after the takeover the opened sources are %v (%v), want %s . 22 of alice with its life left", got, err, client4)
	}
	if !strings.Contains(e.mustList(t, DefaultTable), "flags owner") {
		t.Errorf("the new Conn does not own the table")
	}
	if err := second.Destroy(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if got := e.tables(t); len(got) != 0 {
		t.Errorf("after Destroy the inet tables are %v", got)
	}
}

// TestNotOurs: a table of our name that someone else made is neither
// replaced nor deleted.
func TestNotOurs(t *testing.T) {
	e := newEnv(t)
	host := "table inet nfqknock {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\ttcp dport 22 accept\n\t}\n}\n"
	if out, err := netns.Command(e.pair.Server, "sh", "-c", "printf '%s' \"$0\" | nft -f -", host).CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v: %s", err, out)
	}
	before := e.mustList(t, DefaultTable)
	if _, err := e.c.Apply(goldenSpec); !errors.Is(err, ErrNotOurs) {
		t.Errorf("Apply over the host's table: %v, want ErrNotOurs", err)
	}
	if err := e.c.Destroy(); !errors.Is(err, ErrNotOurs) {
		t.Errorf("Destroy of the host's table: %v, want ErrNotOurs", err)
	}
	if after := e.mustList(t, DefaultTable); after != before {
		t.Errorf("the host's table changed:\n%s\nwas:\n%s", after, before)
	}
}

// TestWatchRepairs: without ownership (as on kernels before 5.12), Watch
// puts the table back with its opened sources after each outside change:
// the table, a chain, its rules or a set deleted, and every edit of
// editChanges (a set flushed, elements deleted or added, a rule or a chain
// added, the table made dormant); what others added goes. Each is one
// repair, and the Conn's own changes are none.
func TestWatchRepairs(t *testing.T) {
	e := newEnv(t)
	spec := goldenSpec
	spec.NoOwner = true
	res, err := e.c.Apply(spec)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if res.Gen != GenNone {
		t.Fatalf("NoOwner: Apply found %v", res.Gen)
	}
	if err := e.c.Allow(client4, ports(22, 443), "alice", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Allow(client6, ports(22), "", 0); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Spend(spentKey, time.Hour); err != nil {
		t.Fatal(err)
	}
	opened := map[opening]grant{at(client4, 22): {time.Hour, "alice"}, at(client4, 443): {time.Hour, "alice"}, at(client6, 22): {}}
	checkAllowed(t, e.c, opened)
	repairs := startWatch(t, e.c)
	want := normalize(e.mustList(t, DefaultTable))
	for _, args := range append(outsideChanges, editChanges(DefaultTable)...) {
		if out, err := e.nft(args...); err != nil {
			t.Fatalf("nft %s: %v: %s", strings.Join(args, " "), err, out)
		}
		returned := time.Now()
		select {
		case r := <-repairs:
			if r.Err != nil {
				t.Fatalf("after nft %s: repair failed: %v", strings.Join(args, " "), r.Err)
			}
			// A figure, not asserted: the target is 100 ms.
			t.Logf("nft %s: repaired %v after nft returned, changed: %s", strings.Join(args, " "),
				time.Since(returned).Round(100*time.Microsecond), r.Changed)
		case <-time.After(10 * time.Second):
			t.Fatalf("after nft %s: no repair", strings.Join(args, " "))
		}
		select {
		case r := <-repairs:
			t.Errorf("after nft %s: a second repair (%s): one outside change, one repair", strings.Join(args, " "), r.Changed)
		case <-time.After(200 * time.Millisecond):
		}
		got := normalize(e.mustList(t, DefaultTable))
		if normalizeExpiry(got) != normalizeExpiry(want) {
			t.Errorf("after nft %s the table is:\n%s\nwant:\n%s", strings.Join(args, " "), got, want)
		}
		// Each element is back with its port and user, and its timeout is
		// the life it had left (none for one without).
		els, err := e.c.Allowed()
		if err != nil || len(els) != len(opened) {
			t.Fatalf("after nft %s: Allowed %v (%v), want %v", strings.Join(args, " "), els, err, opened)
		}
		for _, el := range els {
			g, ok := opened[at(el.Addr, el.Port)]
			if !ok || el.User != g.user || (el.Timeout == 0) != (g.timeout == 0) || el.Timeout > g.timeout {
				t.Errorf("after nft %s: %+v, was %+v", strings.Join(args, " "), el, g)
			}
			opened[at(el.Addr, el.Port)] = grant{el.Timeout, el.User}
		}
	}
	// Our own changes are no outside changes.
	if err := e.c.Revoke(client4, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Allow(client4, ports(22), "bob", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Spend([16]byte{7}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := e.c.SetFirst([]FirstPort{{Port: 1234, Timeout: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Apply(spec); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-repairs:
		t.Errorf("a repair after our own changes: %+v", r)
	case <-time.After(300 * time.Millisecond):
	}
}

var expiryRE = regexp.MustCompile(`timeout [0-9hms]+ expires [0-9hms]+`)

// normalizeExpiry hides the timeouts and expiries of a listing.
func normalizeExpiry(s string) string { return expiryRE.ReplaceAllString(s, "timeout X expires X") }

// TestCompatRenderings: nft prints the xtables NFQUEUE target of the knock
// rule as `queue num 100 bypass` where iptables' libxtables has the NFQUEUE
// extension, and prints nothing for it where it has not (XTABLES_LIBDIR
// pointing at an empty directory stands for a host without iptables). The
// rule's comment says what it does either way.
func TestCompatRenderings(t *testing.T) {
	e := newEnv(t)
	res, err := e.c.Apply(goldenSpec)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if res.Queue != Compat {
		t.Skip("the kernel has the native queue: no compat target to render")
	}
	list := func(env ...string) string {
		cmd := netns.Command(e.pair.Server, "nft", "list", "chain", "inet", DefaultTable, ChainKnocks)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("nft list chain: %v", err)
		}
		return string(out)
	}
	const note = `comment "nfqknockd knock: queue num 100 bypass (xt NFQUEUE)"`
	without := list("XTABLES_LIBDIR=" + t.TempDir())
	if !regexp.MustCompile(`update @knocking4 \{ ip saddr \} counter packets \d+ bytes \d+  ` + regexp.QuoteMeta(note)).MatchString(without) {
		t.Errorf("without libxtables' NFQUEUE, want no statement before the comment:\n%s", without)
	}
	ext, _ := filepath.Glob("/usr/lib/*/xtables/libxt_NFQUEUE.so")
	if len(ext) == 0 {
		t.Logf("iptables' NFQUEUE extension is not installed: only the rendering without it was checked")
		return
	}
	with := list()
	if !regexp.MustCompile(`counter packets \d+ bytes \d+ queue num 100 bypass ` + regexp.QuoteMeta(note)).MatchString(with) {
		t.Errorf("with libxtables' NFQUEUE (%s), want `queue num 100 bypass`:\n%s", ext[0], with)
	}
}
