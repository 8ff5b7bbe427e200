package nft

import (
	"github.com/nfqknockd/nfqknockd/internal/netns"
	"strings"
	"testing"
)

// TestOwnership: on a kernel with the table flags owner and persist, the
// table is ours alone while the Conn lives, survives `nft flush ruleset`,
// outlives the Conn, and the next Conn takes it over.
func TestOwnership(t *testing.T) {
	e := newEnv(t)
	res, err := e.c.Apply(goldenSpec)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if !res.Owned {
		t.Skip("this kernel lacks the table flags owner and persist")
	}
	out := e.mustList(t, DefaultTable)
	t.Logf("listing:\n%s", out)
	for _, want := range []string{"flags owner,persist", `comment "` + TableComment + `"`} {
		if !strings.Contains(out, want) {
			t.Errorf("listing lacks %q", want)
		}
	}
	for _, args := range [][]string{
		{"flush", "ruleset"},
		{"delete", "table", "inet", DefaultTable},
		{"flush", "table", "inet", DefaultTable},
		{"add", "chain", "inet", DefaultTable, "x"},
	} {
		o, err := e.nft(args...)
		t.Logf("nft %s: err %v: %s", strings.Join(args, " "), err, o)
	}
	if got := e.mustList(t, DefaultTable); normalize(got) != normalize(out) {
		t.Errorf("table changed by others:\n%s", got)
	}
	if err := e.c.Allow(client4, 0); err != nil {
		t.Fatalf("Allow: %v", err)
	}
	// A second Conn is refused while the first lives.
	second := e.dial(t)
	if _, err := second.Apply(goldenSpec); err == nil {
		t.Fatalf("second Apply while the first Conn owns the table: no error")
	} else {
		t.Logf("second Apply: %v", err)
	}
	if err := e.c.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("after Close:\n%s", e.mustList(t, DefaultTable))
	res, err = second.Apply(goldenSpec)
	if err != nil {
		t.Fatalf("takeover: %v", err)
	}
	t.Logf("takeover: %+v\n%s", res, e.mustList(t, DefaultTable))
	if err := second.Destroy(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
}

// nft runs nft with args in the server namespace.
func (e *env) nft(args ...string) (string, error) {
	out, err := netns.Command(e.pair.Server, "nft", args...).CombinedOutput()
	return string(out), err
}
