package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nfqknockd/nfqknockd/internal/netns"
)

// TestRefusesWithoutCapabilityDrop: a binary built with cgo (a plain `go
// build` on most machines) cannot drop capabilities on every thread; run
// as root it refuses to start, with one line and exit status 1, and leaves
// no table. It never keeps root's capabilities.
func TestRefusesWithoutCapabilityDrop(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no C compiler: cannot build with cgo")
	}
	p := netns.NewPair(t)
	bin := filepath.Join(t.TempDir(), "nfqknockd-cgo")
	build := exec.Command("go", "build", "-buildvcs=false", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build with cgo: %v: %s", err, out)
	}
	cmd := netns.Command(p.Server, bin, "--guard", "2222", "-o", "a long open secret", "-c", "a long close secret")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	const want = "nfqknockd: refusing to run with capabilities it does not need: drop capabilities: this binary was built with cgo; build it with CGO_ENABLED=0\n"
	if code != 1 || stderr.String() != want || stdout.String() != "" {
		t.Errorf("exit %d, stderr %q, stdout %q; want exit 1 and %q", code, stderr.String(), stdout.String(), want)
	}
	out, err := netns.Command(p.Server, "nft", "list", "tables").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("tables left: %v: %s", err, out)
	}
}
