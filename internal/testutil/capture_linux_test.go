package testutil

import (
	"net/netip"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/netns"
)

// TestCapture: SYNs sent from the client namespace are captured in the
// server namespace, in order, with their ports and sequence numbers; a SYN
// from another source is kept apart.
func TestCapture(t *testing.T) {
	p := netns.NewPair(t)
	c, err := NewCapture(p.Server)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := NewSYNSender(p.Client)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, fam := range []struct{ src, dst netip.Addr }{
		{netns.ClientIP4, netns.ServerIP4},
		{netns.ClientIP6, netns.ServerIP6},
	} {
		c.Reset()
		want := []SYN{
			{Src: fam.src, Dst: fam.dst, SrcPort: 40001, DstPort: 1111, Seq: 7},
			{Src: fam.src, Dst: fam.dst, SrcPort: 40002, DstPort: 2222, Seq: 8},
			{Src: fam.src, Dst: fam.dst, SrcPort: 40003, DstPort: 3333, Seq: 9},
		}
		for _, syn := range want {
			if err := s.Send(syn); err != nil {
				t.Fatal(err)
			}
		}
		var got []SYN
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if got = c.From(fam.src); len(got) >= len(want) {
				break
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%v: captured %v, want %v", fam.src, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%v: SYN %d = %v, want %v", fam.src, i, got[i], want[i])
			}
		}
		if other := c.From(netip.MustParseAddr("10.200.0.9")); len(other) != 0 {
			t.Errorf("SYNs from a silent source: %v", other)
		}
	}
}
