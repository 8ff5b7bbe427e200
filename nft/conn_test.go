package nft

import (
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/nfqknockd/nfqknockd/internal/netns"
)

var goldenSpec = Spec{Start: 1, End: 65535, Guard: []uint16{22}, QueueNum: 100}

// TestApplyGolden applies the ruleset (docs/design.md, "The ruleset") and
// compares what `nft list` shows with testdata/nft/ruleset.nft (the compat
// variant; the native one differs only in the knock rule's statement and
// comment). It also checks
// that the variant Apply chose matches what the kernel offers.
func TestApplyGolden(t *testing.T) {
	for _, g := range []struct {
		name string
		spec Spec
		file string
	}{
		{"kernel filter", goldenSpec, "ruleset.nft"},
		{"queue all", func() Spec { s := goldenSpec; s.QueueAll = true; return s }(), "ruleset-queue-all.nft"},
		{"conntrack", func() Spec { s := goldenSpec; s.Conntrack = true; return s }(), "ruleset-conntrack.nft"},
		{"spa", func() Spec { s := goldenSpec; s.SPA = []uint16{62201, 443}; return s }(), "ruleset-spa.nft"},
		{"spa only", func() Spec { s := goldenSpec; s.SPA = []uint16{62201}; s.SPAOnly = true; return s }(), "ruleset-spa-only.nft"},
	} {
		t.Run(g.name, func(t *testing.T) { checkGolden(t, g.spec, g.file) })
	}
}

// checkGolden applies spec and compares the listing with testdata/nft/file.
func checkGolden(t *testing.T, spec Spec, file string) {
	e := newEnv(t)
	native := nativeQueue(t, e.fd)
	want := Compat
	if native {
		want = Native
	}
	res, err := e.c.Apply(spec)
	v := res.Queue
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if v != want {
		t.Fatalf("Apply used %s; the kernel's native queue is there: %v", v, native)
	}
	t.Logf("kernel has the native queue: %v; Apply used %s", native, v)
	out, stderr, err := e.list(t, DefaultTable)
	if err != nil {
		t.Fatalf("nft list: %v: %s", err, stderr)
	}
	// nft warns on stderr about tables holding xtables expressions.
	if warned := strings.Contains(stderr, "managed by iptables-nft"); warned != (v == Compat) {
		t.Errorf("nft list stderr %q: iptables-nft warning %v, want %v", stderr, warned, v == Compat)
	}
	got := normalize(out)
	golden := filepath.Join("..", "testdata", "nft", file)
	if *update && v == Compat {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	wantText := string(b)
	if v == Native {
		// The golden file holds the compat listing: check the native queue
		// statements by pattern and everything else exactly.
		queueRE := regexp.MustCompile(`counter packets 0 bytes 0 (queue [^\n]*)comment "nfqknockd (?:knock|spa)"\n`)
		ms := queueRE.FindAllStringSubmatch(got, -1)
		for _, m := range ms {
			if !regexp.MustCompile(`^queue .*\b100\b.*bypass|^queue .*bypass.*\b100\b`).MatchString(m[1]) {
				t.Errorf("native queue statement %q", m[1])
			}
		}
		if len(ms) == 0 {
			t.Errorf("no native queue statement in:\n%s", got)
		}
		got = queueRE.ReplaceAllString(got, "QUEUE\n")
		wantText = regexp.MustCompile(`counter packets 0 bytes 0  comment "nfqknockd (?:knock|spa): queue num [^"]*"\n`).ReplaceAllString(wantText, "QUEUE\n")
	}
	if diff := cmp.Diff(wantText, got); diff != "" {
		t.Errorf("nft list table inet %s (-%s +got):\n%s", DefaultTable, golden, diff)
	}
}

// TestOpenedGolden compares what `nft list` shows of opened elements, with
// ports and users, with testdata/nft/opened.nft (timeouts and expiries
// hidden, nft's own order).
func TestOpenedGolden(t *testing.T) {
	e := newEnv(t)
	spec := goldenSpec
	spec.Guard = []uint16{22, 443}
	if _, err := e.c.Apply(spec); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for _, o := range []struct {
		a     netip.Addr
		ports []uint16
		user  string
		ttl   time.Duration
	}{
		{client4, ports(22, 443), "alice", time.Hour},
		{client6, ports(22), "", 30 * time.Minute},
		{other4, ports(443), "bob.ops-2", 0},
	} {
		if err := e.c.Allow(o.a, o.ports, o.user, o.ttl); err != nil {
			t.Fatal(err)
		}
	}
	var got string
	for _, set := range []string{SetAllow4, SetAllow6} {
		out, err := e.nft("list", "set", "inet", DefaultTable, set)
		if err != nil {
			t.Fatalf("nft list set %s: %v: %s", set, err, out)
		}
		got += normalizeExpiry(out)
	}
	golden := filepath.Join("..", "testdata", "nft", "opened.nft")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	// nft prints the elements in the kernel's hash order: compare the sets
	// line by line, sorted.
	lines := func(s string) []string {
		l := strings.Split(strings.NewReplacer("{ ", "{\n", ",", "\n").Replace(s), "\n")
		for i := range l {
			l[i] = strings.TrimSpace(l[i])
		}
		slices.Sort(l)
		return l
	}
	if diff := cmp.Diff(lines(string(b)), lines(got)); diff != "" {
		t.Errorf("nft list set (-%s +got):\n%s\ngot:\n%s", golden, diff, got)
	}
}

// TestApplyReplace applies twice with different specs: the second ruleset
// replaces the first one entirely, in the same table.
func TestApplyReplace(t *testing.T) {
	e := newEnv(t)
	if _, err := e.c.Apply(goldenSpec); err != nil {
		t.Fatalf("first Apply: %v", err)
	}
	second := Spec{Start: 1000, End: 2000, Guard: []uint16{443, 22}, QueueNum: 200, QueueTotal: 4}
	res, err := e.c.Apply(second)
	v := res.Queue
	if err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	out := e.mustList(t, DefaultTable)
	for _, want := range []string{"elements = { 22, 443 }", "tcp dport 1000-2000", "200-203"} {
		if !strings.Contains(out, want) {
			t.Errorf("listing lacks %q:\n%s", want, out)
		}
	}
	for _, gone := range []string{"1-65535", "queue num 100 "} {
		if strings.Contains(out, gone) {
			t.Errorf("listing still holds %q from the first ruleset:\n%s", gone, out)
		}
	}
	if n := strings.Count(out, "nfqknockd knock"); n != 6 {
		t.Errorf("%d queue rules, want 6 (IPv4, IPv6, each a knock rule and two spill rules):\n%s", n, out)
	}
	if n := strings.Count(out, "nfqknockd guard"); n != 3 {
		t.Errorf("%d guard rules, want 3:\n%s", n, out)
	}
	if diff := cmp.Diff([]string{DefaultTable}, e.tables(t)); diff != "" {
		t.Errorf("inet tables (-want +got):\n%s", diff)
	}
	t.Logf("second Apply used %s", v)

	// Another table name gives a second table; each Conn works on its own.
	other := e.dial(t)
	if _, err := other.Apply(Spec{Table: "nfqk_other", Start: 1, End: 2, Guard: []uint16{22}}); err != nil {
		t.Fatalf("Apply nfqk_other: %v", err)
	}
	if got := other.Table(); got != "nfqk_other" {
		t.Errorf("Table() = %q after Apply, want nfqk_other", got)
	}
	if err := other.Destroy(); err != nil {
		t.Fatalf("Destroy nfqk_other: %v", err)
	}
	if diff := cmp.Diff([]string{DefaultTable}, e.tables(t)); diff != "" {
		t.Errorf("inet tables after destroying nfqk_other (-want +got):\n%s", diff)
	}
}

var (
	client4 = netns.ClientIP4
	client6 = netns.ClientIP6
	other4  = netip.MustParseAddr("10.200.0.3")
)

func TestDestroy(t *testing.T) {
	e := newEnv(t)
	if err := e.c.Destroy(); err != nil {
		t.Fatalf("Destroy of an absent table: %v", err)
	}
	if _, err := e.c.Apply(goldenSpec); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if err := e.c.Allow(client4, ports(22), "", time.Hour); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := e.c.Destroy(); err != nil {
			t.Fatalf("Destroy #%d: %v", i+1, err)
		}
		if got := e.tables(t); len(got) != 0 {
			t.Fatalf("after Destroy #%d the inet tables are %v", i+1, got)
		}
	}
	if _, stderr, err := e.list(t, DefaultTable); err == nil {
		t.Errorf("nft list found the table after Destroy")
	} else if !strings.Contains(stderr, "No such file or directory") {
		t.Errorf("nft list after Destroy: %v: %s", err, stderr)
	}
	if _, err := e.c.Allowed(); !IsNotFound(err) {
		t.Errorf("Allowed without table: %v, want a not-found error", err)
	}
	for _, p := range [][]uint16{nil, ports(22)} {
		if err := e.c.Revoke(client4, p); err != nil {
			t.Errorf("Revoke %v without table: %v", p, err)
		}
	}
	err := e.c.Allow(client4, ports(22, 443), "", time.Hour)
	if !IsNotFound(err) || !strings.Contains(err.Error(), "add element 10.200.0.2 . { 22, 443 } to allow4") {
		t.Errorf("Allow without table: %v, want a wrapped not-found error", err)
	}
}

// TestFailedBatchLeavesNothing checks that a batch the kernel refuses (the
// native queue where the kernel lacks it, or else a rule naming a missing
// set) changes nothing: no table when there was none, the old table with its
// allowed sources when there was one. Apply's fallback relies on it.
func TestFailedBatchLeavesNothing(t *testing.T) {
	e := newEnv(t)
	native := nativeQueue(t, e.fd)
	failing := func(t *testing.T) error {
		rs, err := Build(goldenSpec, Native)
		if err != nil {
			t.Fatal(err)
		}
		if native {
			// The kernel takes the native queue: break the batch otherwise.
			rs.Rules[1].Exprs = append(rs.Rules[1].Exprs[:len(rs.Rules[1].Exprs)-1],
				&expr.Lookup{SourceRegister: 1, SetName: "missing"}, &expr.Verdict{Kind: expr.VerdictAccept})
		}
		e.c.mu.Lock()
		defer e.c.mu.Unlock()
		if err := e.c.decideGen(goldenSpec); err != nil {
			t.Fatal(err)
		}
		head := tableHead{first: e.c.flags, flags: e.c.flags, comment: mainComment(e.c.gen)}
		msgs, err := e.c.replaceBatch(rs, [2][]nftables.SetElement{{{Key: allowKey(netip.MustParseAddr("10.9.9.9"), 22)}}}, head)
		if err != nil {
			t.Fatal(err)
		}
		return e.c.sendBatch(msgs)
	}
	t.Run("no table before", func(t *testing.T) {
		if err := failing(t); !IsNotFound(err) {
			t.Fatalf("the failing batch gave %v, want ENOENT", err)
		}
		if got := e.tables(t); len(got) != 0 {
			t.Errorf("a failed batch left the inet tables %v", got)
		}
	})
	t.Run("table before", func(t *testing.T) {
		if _, err := e.c.Apply(goldenSpec); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		if err := e.c.Allow(client4, ports(22), "alice", time.Hour); err != nil {
			t.Fatal(err)
		}
		before := normalize(e.mustList(t, DefaultTable))
		if err := failing(t); !IsNotFound(err) {
			t.Fatalf("the failing batch gave %v, want ENOENT", err)
		}
		after := normalize(e.mustList(t, DefaultTable))
		expires := regexp.MustCompile(`expires [0-9hms]+`)
		if diff := cmp.Diff(expires.ReplaceAllString(before, "expires X"), expires.ReplaceAllString(after, "expires X")); diff != "" {
			t.Errorf("a failed batch changed the table (-before +after):\n%s", diff)
		}
	})
}

func TestDialBadDescriptor(t *testing.T) {
	if _, err := Dial(-1); err == nil {
		t.Errorf("Dial(-1) succeeded")
	}
}

// TestApplyCarriesManySources carries 20000 allowed sources over: more than
// one netlink message holds and more than the default socket send buffer.
func TestApplyCarriesManySources(t *testing.T) {
	e := newEnv(t)
	spec := goldenSpec
	spec.NoOwner = true // the elements are added by another socket
	if _, err := e.c.Apply(spec); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	const n = 20000
	var elems []nftables.SetElement
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, 100, byte(i >> 8), byte(i)})
		elems = append(elems, nftables.SetElement{Key: allowKey(a, 22), Timeout: time.Hour, Comment: "u" + strconv.Itoa(i%7)})
	}
	nc, err := nftables.New(nftables.WithNetNSFd(e.fd), nftables.WithSockOptions(bigSendBuffer))
	if err != nil {
		t.Fatal(err)
	}
	set, _, _ := allowSetOf(DefaultTable, client4)
	if err := addElements(nc, set, elems); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("add %d elements: %v", n, err)
	}
	if _, err := e.dial(t).Apply(spec); err != nil {
		t.Fatalf("Apply over %d allowed sources: %v", n, err)
	}
	got, err := e.c.Allowed()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d allowed sources after Apply, want %d", len(got), n)
	}
	for _, el := range got {
		i := int(el.Addr.As4()[2])<<8 | int(el.Addr.As4()[3])
		if el.Timeout <= 0 || el.Timeout > time.Hour || el.Port != 22 || el.User != "u"+strconv.Itoa(i%7) {
			t.Fatalf("%s . %d carried with timeout %s, user %q", el.Addr, el.Port, el.Timeout, el.User)
		}
	}
	// Revoke without ports finds the ports of a source in the large set
	// (this Conn did not open it); the figure is logged, not asserted.
	victim := netip.AddrFrom4([4]byte{10, 100, 0x12, 0x34})
	start := time.Now()
	if err := e.c.Revoke(victim, nil); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	t.Logf("Revoke of every port of one source among %d elements: %v", n, time.Since(start).Round(100*time.Microsecond))
	got, err = e.c.Allowed()
	if err != nil || len(got) != n-1 || slices.ContainsFunc(got, func(el Element) bool { return el.Addr == victim }) {
		t.Errorf("after Revoke(%s, nil): %d elements (%v), want %d without it", victim, len(got), err, n-1)
	}
}
