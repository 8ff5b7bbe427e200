package nft

import (
	"bytes"
	"errors"
	"flag"
	"net"
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
	"golang.org/x/sys/unix"

	"github.com/nfqknockd/nfqknockd/internal/netns"
	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/nft")

func TestMain(m *testing.M) {
	flag.Parse()
	netns.SweepStale()
	os.Exit(m.Run())
}

// env is one test's pair of namespaces and a Conn bound to the server one.
type env struct {
	pair *netns.Pair
	fd   int // descriptor of the server namespace
	c    *Conn
}

func newEnv(t *testing.T) *env {
	t.Helper()
	p := netns.NewPair(t)
	fd, err := netns.Open(p.Server)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	c, err := Dial(fd)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return &env{pair: p, fd: fd, c: c}
}

// dial returns another Conn on the same namespace, as a restarted daemon
// would make.
func (e *env) dial(t *testing.T) *Conn {
	t.Helper()
	c, err := Dial(e.fd)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return c
}

// list runs `nft list table inet NAME` in the server namespace, as an admin
// would, and returns its standard output and standard error.
func (e *env) list(t *testing.T, table string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := netns.Command(e.pair.Server, "nft", "list", "table", "inet", table)
	var o, s bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &s
	err = cmd.Run()
	return o.String(), s.String(), err
}

// mustList is list that fails the test when nft fails.
func (e *env) mustList(t *testing.T, table string) string {
	t.Helper()
	out, stderr, err := e.list(t, table)
	if err != nil {
		t.Fatalf("nft list table inet %s: %v: %s", table, err, stderr)
	}
	return out
}

// tables returns the names of the inet tables in the server namespace.
func (e *env) tables(t *testing.T) []string {
	t.Helper()
	nc, err := nftables.New(nftables.WithNetNSFd(e.fd))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := nc.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	var names []string
	for _, tb := range ts {
		names = append(names, tb.Name)
	}
	return names
}

var (
	counterRE = regexp.MustCompile(`counter packets \d+ bytes \d+`)
	// Newer nft versions may print the compat target they cannot translate.
	// nft prints the compat target as `queue num 100 bypass` where
	// iptables' libxtables is installed, as nothing where it is not (nft
	// 1.0.6), and newer nft versions as `xt target "NFQUEUE"`.
	xtTargetRE = regexp.MustCompile(`(counter packets 0 bytes 0) +(?:xt target "NFQUEUE" +|queue num \S+ bypass +)?(comment)`)
	progRE     = regexp.MustCompile(` # progname \S+`)
)

// normalize zeroes the counters of an `nft list` output, prints the compat
// target the way nft 1.0.6 without iptables does (not at all), and drops
// the name of the owning program.
func normalize(s string) string {
	s = counterRE.ReplaceAllString(s, "counter packets 0 bytes 0")
	s = progRE.ReplaceAllString(s, "")
	return xtTargetRE.ReplaceAllString(s, "$1  $2")
}

// nativeQueue reports whether the kernel of namespace fd has the native
// queue expression, by adding one in a scratch table (deleted again).
func nativeQueue(t *testing.T, fd int) bool {
	t.Helper()
	nc, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		t.Fatal(err)
	}
	tb := nc.AddTable(&nftables.Table{Name: "nfqk_probe", Family: nftables.TableFamilyINet})
	ch := nc.AddChain(&nftables.Chain{Name: "probe", Table: tb})
	nc.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: []expr.Any{&expr.Queue{Num: 1, Total: 1, Flag: expr.QueueFlagBypass}}})
	err = nc.Flush()
	if err != nil {
		if isUnsupported(err) {
			return false
		}
		t.Fatalf("probe the native queue: %v", err)
	}
	nc.DelTable(tb)
	if err := nc.Flush(); err != nil {
		t.Fatalf("delete the probe table: %v", err)
	}
	return true
}

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
		queueRE := regexp.MustCompile(`counter packets 0 bytes 0 (queue [^\n]*)comment "nfqknockd knock"\n`)
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
		wantText = regexp.MustCompile(`counter packets 0 bytes 0  comment "nfqknockd knock: [^"]*"\n`).ReplaceAllString(wantText, "QUEUE\n")
	}
	if diff := cmp.Diff(wantText, got); diff != "" {
		t.Errorf("nft list table inet %s (-%s +got):\n%s", DefaultTable, golden, diff)
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

// TestGuardTraffic sends real TCP connects from the client namespace: the
// guarded port drops them (they time out) until the client is allowed, over
// IPv4 and IPv6, and the unguarded port always answers. No program reads the
// queue: the knock rule's bypass lets the SYNs on.
func TestGuardTraffic(t *testing.T) {
	e := newEnv(t)
	const guarded, open = 2222, 8080
	// QueueAll: every SYN goes through the queue rule (kernel_filter_test.go
	// tests the filter).
	spec := Spec{Start: 1, End: 65535, Guard: []uint16{guarded}, QueueNum: 100, QueueAll: true}
	if _, err := e.c.Apply(spec); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	e.listen(t, guarded, open)
	expect := func(step string, server netip.Addr, port int, pass bool) {
		t.Helper()
		e.expect(t, step, server, port, pass)
	}
	s4, s6 := netns.ServerIP4, netns.ServerIP6
	expect("before", s4, open, true)
	expect("before", s6, open, true)
	expect("before", s4, guarded, false)
	expect("before", s6, guarded, false)

	if err := e.c.Allow(client4, ports(guarded), "", time.Hour); err != nil {
		t.Fatal(err)
	}
	expect("allow4", s4, guarded, true)
	expect("allow4", s6, guarded, false)
	if err := e.c.Allow(client6, ports(guarded), "alice", time.Hour); err != nil {
		t.Fatal(err)
	}
	expect("allow6", s6, guarded, true)

	if err := e.c.Revoke(client4, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Revoke(client6, ports(guarded)); err != nil {
		t.Fatal(err)
	}
	expect("revoked", s4, guarded, false)
	expect("revoked", s6, guarded, false)
	expect("revoked", s4, open, true)

	// Every SYN went through the knock rule, and the dropped ones were
	// counted by the guard rules.
	out := e.mustList(t, DefaultTable)
	for _, name := range []string{CommentKnock, CommentDrop} {
		m := regexp.MustCompile(`counter packets (\d+) bytes \d+ .*` + regexp.QuoteMeta(name)).FindStringSubmatch(out)
		if m == nil || m[1] == "0" {
			t.Errorf("rule %q matched no packet:\n%s", name, out)
		}
	}
}

// listen accepts and closes TCP connections on ports of the server
// namespace (IPv4 and IPv6) until the test ends.
func (e *env) listen(t *testing.T, ports ...int) {
	t.Helper()
	for _, port := range ports {
		var ln net.Listener
		err := netns.Do(e.pair.Server, func() (err error) {
			ln, err = net.Listen("tcp", ":"+strconv.Itoa(port)) // IPv4 and IPv6
			return err
		})
		if err != nil {
			t.Fatalf("listen on %d in the server namespace: %v", port, err)
		}
		t.Cleanup(func() { ln.Close() })
		testutil.AcceptAndClose(ln)
	}
}

// expect connects from the client namespace to server:port and checks that
// it succeeds (pass) or times out (the SYN was dropped).
func (e *env) expect(t *testing.T, step string, server netip.Addr, port int, pass bool) {
	t.Helper()
	connect := func(timeout time.Duration) error {
		return netns.Do(e.pair.Client, func() error {
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(server, uint16(port)).String(), timeout)
			if err == nil {
				c.Close()
			}
			return err
		})
	}
	if pass {
		if err := connect(3 * time.Second); err != nil {
			t.Errorf("%s: connect to %s port %d: %v, want success", step, server, port, err)
		}
		return
	}
	err := connect(time.Second)
	var ne net.Error
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("%s: connect to %s port %d: %v, want a timeout (dropped)", step, server, port, err)
	}
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
