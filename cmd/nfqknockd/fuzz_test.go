package main

import (
	"strings"
	"testing"

	"github.com/nfqknockd/nfqknockd/nft"
)

// FuzzParseFlags: any command line parses or fails with one line, without
// panic; an accepted one is valid.
func FuzzParseFlags(f *testing.F) {
	for _, s := range []string{
		"-p\x0022", "--range\x001-65535\x00--guard\x0022,443", "-a\x005\x00-b\x005", "-s\x00--at\x00yesterday",
		"-t\x0010s\x00-p\x001", "--period\x0010s\x00--grace\x003s\x00-s", "-fvi\x00-q\x0065535\x00--queues\x002",
		"--secret-file\x00/nonexistent\x00-p\x0022", "-o\x00\x00-c\x00x", "--table\x00a.b",
		"-p\x0022\x00-o\x00only-open", "-s\x00-c\x00only-close", "-p\x0022\x00-o\x00twin\x00-c\x00twin",
		"--table\x00" + strings.Repeat("t", 256), "--table\x001table", "--table\x00_a.b-c",
		"-p\x0022\x00--allow\x0010.8.0.0/16,fd00:8::/48\x00--allow\x00192.0.2.7", "-p\x0022\x00--allow\x0010.1.2.3/8",
		"-p\x0022\x00--allow\x000.0.0.0/0", "-p\x0022\x00--allow\x00::ffff:10.0.0.0/104", "-p\x0022\x00--allow\x00fe80::1%eth0",
		"-p\x0022\x00--allow\x0010.8.1.0/24,10.8.0.0/16,10.8.0.0/16",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Split(s, "\x00")
		c, err := parseFlags(args)
		if err != nil {
			if msg := err.Error(); strings.ContainsAny(msg, "\n\r") || msg == "" {
				t.Fatalf("error is not one line: %q", msg)
			}
			return
		}
		if c.Help || c.Version {
			return
		}
		if err := c.Params.Validate(); err != nil {
			t.Fatalf("accepted %q but the params are invalid: %v", args, err)
		}
		if !c.Show && len(c.Guard) == 0 {
			t.Fatalf("accepted %q without a guard port", args)
		}
		if err := nft.ValidTableName(c.Table); err != nil {
			t.Fatalf("accepted %q but the table name is invalid: %v", args, err)
		}
		if (c.OpenFrom == fromDefault) != (c.CloseFrom == fromDefault) || c.Params.OpenSecret == c.Params.CloseSecret {
			t.Fatalf("accepted %q with the secrets from %s", args, c.startSecrets().from())
		}
		for i, p := range c.Allow {
			if !p.IsValid() || p.Masked() != p || p.Bits() == 0 || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				t.Fatalf("accepted %q with the --allow prefix %v", args, p)
			}
			if i > 0 && (c.Allow[i-1].Addr().Compare(p.Addr()) >= 0 || c.Allow[i-1].Overlaps(p)) {
				t.Fatalf("accepted %q with --allow %v: not sorted, or overlapping", args, c.Allow)
			}
		}
	})
}
