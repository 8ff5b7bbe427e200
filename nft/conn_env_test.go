package nft

// The kernel tests' harness: a pair of network namespaces with a Conn bound
// to the server one, and nft's listings read and normalized.

import (
	"bytes"
	"flag"
	"os"
	"regexp"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/nfqknockd/nfqknockd/internal/netns"
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
