package main

// Unit tests of the daemon's logic through a fake ruleset (nft/nfttest):
// open, close, repair, reload, restart and stop, without root.

import (
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
	"github.com/nfqknockd/nfqknockd/knock"
	"github.com/nfqknockd/nfqknockd/nft"
	"github.com/nfqknockd/nfqknockd/nft/nfttest"
	"github.com/nfqknockd/nfqknockd/queue"
)

var (
	src4   = netip.MustParseAddr("10.0.0.2")
	src6   = netip.MustParseAddr("fd00::2")
	mapped = netip.MustParseAddr("::ffff:10.0.0.9")
	t0     = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
)

// testService is a service with a fake ruleset and one shard without a
// queue, fed packets by the test, on a clock the test moves.
type testService struct {
	*service
	t     *testing.T
	rules *nfttest.Fake
	logs  *testutil.SyncBuffer
	now   time.Time
	seq   uint32
}

// newTestService parses args (after --guard 22) and programs the fake.
func newTestService(t *testing.T, rules *nfttest.Fake, args ...string) *testService {
	t.Helper()
	cfg, err := parseFlags(append([]string{"--guard", "22"}, args...))
	if err != nil {
		t.Fatalf("parseFlags: %v", err)
	}
	ts := &testService{t: t, rules: rules, logs: &testutil.SyncBuffer{}, now: t0}
	ts.service = newService(cfg, slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), ts.logs)
	ts.service.rules = rules
	ts.service.spec = nft.Spec{Table: cfg.Table, Start: cfg.Params.Range.Start, End: cfg.Params.Range.End, Guard: cfg.guardPorts(), Allow: cfg.Allow}
	ts.service.clock = func() time.Time { return ts.now }
	tr, err := knock.NewTracker(cfg.trackerConfig())
	if err != nil {
		t.Fatal(err)
	}
	sh := ts.newShard(nil, tr)
	sh.now = func() time.Time { return ts.now }
	ts.shards = []*shard{sh}
	if err := ts.program(); err != nil {
		t.Fatalf("program: %v", err)
	}
	return ts
}

// knock sends the ports from src as bare SYNs, 10 ms apart.
func (ts *testService) knock(src netip.Addr, ports []uint16) {
	for _, p := range ports {
		ts.seq++
		ts.now = ts.now.Add(10 * time.Millisecond)
		ts.shards[0].handle(&queue.Packet{Src: src, SrcPort: 40000, DstPort: p, Seq: ts.seq, Flags: queue.FlagSYN})
	}
}

// sequences returns the open and close sequences of secrets at the clock.
func (ts *testService) sequences(open, close string) ([]uint16, []uint16) {
	p := ts.cfg.Params
	p.OpenSecret, p.CloseSecret = open, close
	return p.Sequences(ts.now)
}

// opened returns the sources in the fake table.
func (ts *testService) opened() []netip.Addr {
	tab, _ := ts.rules.State()
	if tab == nil {
		return nil
	}
	var out []netip.Addr
	for e := range tab.Allowed {
		if !slices.Contains(out, e.Src) {
			out = append(out, e.Src)
		}
	}
	return out
}

func (ts *testService) isOpen(a netip.Addr) bool {
	for _, o := range ts.opened() {
		if o == a {
			return true
		}
	}
	return false
}

const (
	testOpen  = "unit open secret"
	testClose = "unit close secret"
)

func TestServiceOpenClose(t *testing.T) {
	rules := nfttest.NewFake()
	ts := newTestService(t, rules, "-o", testOpen, "-c", testClose, "--open-timeout", "5m", "-v")
	open, close := ts.sequences(testOpen, testClose)
	for _, src := range []netip.Addr{src4, src6} {
		ts.knock(src, open)
		if !ts.isOpen(src) {
			t.Fatalf("%s: not opened after the open sequence; log:\n%s", src, ts.logs)
		}
		ts.knock(src, close)
		if ts.isOpen(src) {
			t.Fatalf("%s: still open after the close sequence", src)
		}
	}
	if tab, _ := rules.State(); tab.Allowed != nil && len(tab.Allowed) != 0 {
		t.Errorf("opened sources left: %v", tab.Allowed)
	}
	// An IPv4-mapped source never opens (it would open the IPv4 address).
	ts.knock(mapped, open)
	if len(ts.opened()) != 0 {
		t.Errorf("an IPv4-mapped source opened %v", ts.opened())
	}
	// A failed open changes nothing and says so.
	rules.FailNext(errors.New("injected failure"))
	ts.knock(src4, open)
	if ts.isOpen(src4) || !strings.Contains(ts.logs.String(), `msg="open failed" source=10.0.0.2`) {
		t.Errorf("a failed open: open %v; log:\n%s", ts.isOpen(src4), ts.logs)
	}
	logs := ts.logs.String()
	for _, want := range []string{"msg=open source=10.0.0.2 timeout=5m0s", "msg=close source=fd00::2", "msg=knock source=10.0.0.2"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	// -v logs knocks but never their ports: they are the hour's sequence.
	for _, p := range append(open, close...) {
		if strings.Contains(logs, "port="+itoa(p)) || strings.Contains(logs, " "+itoa(p)+" ") {
			t.Errorf("the log shows port %d of a sequence:\n%s", p, logs)
		}
	}
	if strings.Contains(logs, testOpen) || strings.Contains(logs, testClose) {
		t.Errorf("the log shows a secret")
	}
}

func itoa(p uint16) string { return portList([]uint16{p}) }

// TestServiceReload: SIGHUP re-reads the secret file: the old sequence no
// longer opens, the new one does, opened sources stay; a broken file
// changes nothing.
func TestServiceReload(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secrets")
	write := func(content string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(file, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(file, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("open=old open secret\nclose=old close secret\n", 0o600)
	rules := nfttest.NewFake()
	ts := newTestService(t, rules, "--secret-file", file)
	oldOpen, _ := ts.sequences("old open secret", "old close secret")
	ts.knock(src4, oldOpen)
	if !ts.isOpen(src4) {
		t.Fatalf("the old secret does not open; log:\n%s", ts.logs)
	}

	write("open=new open secret\nclose=new close secret\n", 0o600)
	if e, done := ts.signal(syscall.SIGHUP); done {
		t.Fatalf("SIGHUP ended the daemon (%v)", e)
	}
	if !strings.Contains(ts.logs.String(), "msg=reloaded") {
		t.Fatalf("no reload logged:\n%s", ts.logs)
	}
	if !ts.isOpen(src4) {
		t.Errorf("the reload closed an opened source")
	}
	ts.knock(src6, oldOpen)
	if ts.isOpen(src6) {
		t.Errorf("the old secret still opens after the reload")
	}
	newOpen, newClose := ts.sequences("new open secret", "new close secret")
	ts.knock(src6, newOpen)
	if !ts.isOpen(src6) {
		t.Errorf("the new secret does not open after the reload")
	}

	for _, bad := range []struct {
		content string
		mode    os.FileMode
	}{
		{"open=only one\n", 0o600},
		{"open=x secret one\nclose=x secret two\n", 0o644},
		{"open=same secret\nclose=same secret\n", 0o600},
		{"garbage\n", 0o600},
	} {
		write(bad.content, bad.mode)
		before := strings.Count(ts.logs.String(), "reload refused")
		ts.signal(syscall.SIGHUP)
		if strings.Count(ts.logs.String(), "reload refused") != before+1 {
			t.Errorf("file %q mode %o: no refusal logged:\n%s", bad.content, bad.mode, ts.logs)
		}
		ts.knock(src6, newClose)
		ts.knock(src6, newOpen)
		if !ts.isOpen(src6) {
			t.Errorf("file %q mode %o: the secrets in force stopped working", bad.content, bad.mode)
		}
	}
	if strings.Contains(ts.logs.String(), "new open secret") || strings.Contains(ts.logs.String(), "only one") {
		t.Errorf("the log shows a secret:\n%s", ts.logs)
	}
}

// TestServiceRestartAndStop: the restart signal leaves the table with the
// opened sources, and the next daemon takes it over; SIGTERM deletes it.
func TestServiceRestartAndStop(t *testing.T) {
	rules := nfttest.NewFake()
	ts := newTestService(t, rules, "-o", testOpen, "-c", testClose)
	open, _ := ts.sequences(testOpen, testClose)
	ts.knock(src4, open)
	end, done := ts.signal(restartSignal)
	if !done || end != endRestart {
		t.Fatalf("the restart signal gave %v %v", end, done)
	}
	if code := ts.finish(end); code != 0 {
		t.Errorf("exit status %d after the restart signal", code)
	}
	tab, closed := rules.State()
	if ttl, ok := tab.TTL(src4, 22); !closed || !ok || ttl != time.Hour {
		t.Fatalf("after the restart signal: table %+v, socket closed %v; want the table with %s", tab, closed, src4)
	}

	// The next daemon, a new process: a fresh Conn without a record.
	next := nfttest.NewFakeWith(tab)
	ts2 := newTestService(t, next, "-o", testOpen, "-c", testClose)
	if !strings.Contains(ts2.logs.String(), "took_over=true opened_kept=1") {
		t.Errorf("start line of the next daemon:\n%s", ts2.logs)
	}
	if !ts2.isOpen(src4) {
		t.Errorf("the next daemon lost the opened source")
	}
	end, done = ts2.signal(syscall.SIGTERM)
	if !done || end != endStop {
		t.Fatalf("SIGTERM gave %v %v", end, done)
	}
	if code := ts2.finish(end); code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
	if tab, _ := next.State(); tab != nil {
		t.Errorf("SIGTERM left the table: %+v", tab)
	}
}

// TestServiceRepair: without ownership the daemon watches the table; when
// it vanishes it is put back with the opened sources and a warning names
// what changed. serve runs the signal loop (no queue: no shards run).
func TestServiceRepair(t *testing.T) {
	rules := nfttest.NewFake()
	ts := newTestService(t, rules, "-o", testOpen, "-c", testClose)
	ts.spec.NoOwner = true
	if _, err := ts.rules.Apply(ts.spec); err != nil {
		t.Fatal(err)
	}
	ts.gen = nft.GenNone
	open, _ := ts.sequences(testOpen, testClose)
	ts.knock(src6, open)
	shards := ts.shards
	ts.shards = nil // serve starts no reader
	sigs := make(chan os.Signal, 1)
	status := make(chan int, 1)
	go func() { status <- ts.serve(sigs) }()
	rules.Vanish("table deleted")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(ts.logs.String(), "put back") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(ts.logs.String(), `level=WARN msg="table changed by another program and put back" table="inet nfqknock" changed="table deleted"`) {
		t.Errorf("no repair warning:\n%s", ts.logs)
	}
	if !ts.isOpen(src6) {
		t.Errorf("the opened source was not put back")
	}
	ts.shards = shards
	sigs <- syscall.SIGTERM
	if code := <-status; code != 0 {
		t.Errorf("exit status %d", code)
	}
	if tab, _ := rules.State(); tab != nil {
		t.Errorf("SIGTERM left the table")
	}
}

// TestServiceNotOurs: a table of the name that is not ours: exit 1, one
// line naming it, nothing changed.
func TestServiceNotOurs(t *testing.T) {
	rules := nfttest.NewFake()
	rules.SetNotOurs(true)
	cfg, err := parseFlags([]string{"--guard", "22", "--table", "filter", "-o", testOpen, "-c", testClose})
	if err != nil {
		t.Fatal(err)
	}
	s := newService(cfg, slog.New(slog.DiscardHandler), nil)
	s.rules, s.spec = rules, nft.Spec{Table: "filter", Start: 1, End: 65535, Guard: []uint16{22}}
	err = s.program()
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 || ee.msg != "--table filter: table inet filter exists and is not nfqknockd's: it is left untouched; give another --table" {
		t.Errorf("program: %v", err)
	}
	if tab, _ := rules.State(); tab != nil {
		t.Errorf("the fake table changed: %+v", tab)
	}
}
