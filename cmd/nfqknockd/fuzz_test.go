package main

import (
	"strings"
	"testing"
)

// FuzzParseFlags: any command line parses or fails with one line, without
// panic; an accepted one is valid.
func FuzzParseFlags(f *testing.F) {
	for _, s := range []string{
		"-p\x0022", "--range\x001-65535\x00--guard\x0022,443", "-a\x005\x00-b\x005", "-s\x00--at\x00yesterday",
		"-t\x0010s\x00-p\x001", "--period\x0010s\x00--grace\x003s\x00-s", "-fvi\x00-q\x0065535\x00--queues\x002",
		"--secret-file\x00/nonexistent\x00-p\x0022", "-o\x00\x00-c\x00x", "--table\x00a.b",
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
	})
}
