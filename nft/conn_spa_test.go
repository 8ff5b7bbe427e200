package nft

import (
	"strings"
	"testing"
)

// TestSetSPAKeys: the key ids of Spec.SPAKeys are in the set spakeys after
// Apply; SetSPAKeys replaces them; an Apply without SPAKeys (as a repair
// or a takeover by the same Conn) puts back the last ones.
func TestSetSPAKeys(t *testing.T) {
	e := newEnv(t)
	id1 := SPAKeyID{10, 1, 2, 3, 10, 4, 5, 6}
	id2 := SPAKeyID{10, 7, 8, 9, 10, 10, 11, 12}
	s := goldenSpec
	s.SPA, s.SPAKeys = []uint16{62201}, []SPAKeyID{id1}
	if _, err := e.c.Apply(s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	const show1, show2 = "10.1.2.3 . 10.4.5.6", "10.7.8.9 . 10.10.11.12"
	check := func(when string, want, not string) {
		t.Helper()
		out, stderr, err := e.list(t, DefaultTable)
		if err != nil {
			t.Fatalf("%s: nft list: %v: %s", when, err, stderr)
		}
		set := out[strings.Index(out, "set spakeys"):]
		set = set[:strings.Index(set, "}")]
		if !strings.Contains(set, want) || strings.Contains(set, not) {
			t.Errorf("%s: set spakeys %q, want %s and not %s", when, set, want, not)
		}
	}
	check("after Apply", show1, show2)
	if err := e.c.SetSPAKeys([]SPAKeyID{id2}); err != nil {
		t.Fatalf("SetSPAKeys: %v", err)
	}
	check("after SetSPAKeys", show2, show1)
	s.SPAKeys = nil
	if _, err := e.c.Apply(s); err != nil {
		t.Fatalf("Apply again: %v", err)
	}
	check("after an Apply from the record", show2, show1)
}
