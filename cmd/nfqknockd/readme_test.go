package main

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeFlags keeps the documented flags true: the flag list of
// docs/operations.md (moved there from README.md, which links to it) is
// what --help prints. The name stays.
func TestReadmeFlags(t *testing.T) {
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	help := usageText()
	i, j := strings.Index(help, "Flags:"), strings.Index(help, "Examples:")
	if i < 0 || j < i {
		t.Fatalf("--help has no Flags: ... Examples: part:\n%s", help)
	}
	flags := strings.TrimRight(help[i:j], "\n")
	if !strings.Contains(readme, "```\n"+flags+"\n```") {
		t.Errorf("docs/operations.md's flag list differs from --help; paste this in:\n%s", flags)
	}
}
