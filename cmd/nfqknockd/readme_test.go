package main

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeFlags keeps README.md true: its flag list is what --help prints.
func TestReadmeFlags(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
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
		t.Errorf("README.md's flag list differs from --help; paste this in:\n%s", flags)
	}
}
