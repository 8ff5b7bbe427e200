package netns

import (
	"net"
	"os"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	SweepStale()
	os.Exit(m.Run())
}

// TestPairConnects checks that the client reaches a listener of the server
// over both address families, and that the namespaces are gone afterwards.
func TestPairConnects(t *testing.T) {
	var names []string
	t.Run("pair", func(t *testing.T) {
		p := NewPair(t)
		names = []string{p.Server, p.Client}
		for _, addr := range []string{"[" + ServerIP4.String() + "]:7000", "[" + ServerIP6.String() + "]:7001"} {
			var ln net.Listener
			if err := Do(p.Server, func() (err error) { ln, err = net.Listen("tcp", addr); return }); err != nil {
				t.Fatalf("listen %s in server: %v", addr, err)
			}
			go func() {
				c, err := ln.Accept()
				if err == nil {
					c.Close()
				}
			}()
			err := Do(p.Client, func() error {
				c, err := net.DialTimeout("tcp", addr, 2*time.Second)
				if err == nil {
					c.Close()
				}
				return err
			})
			ln.Close()
			if err != nil {
				t.Fatalf("dial %s from client: %v", addr, err)
			}
		}
	})
	for _, n := range names {
		if _, err := os.Stat("/run/netns/" + n); !os.IsNotExist(err) {
			t.Errorf("namespace %s left behind (stat: %v)", n, err)
		}
	}
}
