// Package testutil holds helpers that the tests of several packages share:
// a buffer that a process's output copier and a test read at once, the
// build of a command's binary once per test process, a TestMain that fails
// the run when the tests left something behind, the writing of a file
// with an exact mode, a TCP server that only completes handshakes, and a
// stand-in for systemd's notify socket.
package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// SyncBuffer is a bytes.Buffer safe for concurrent use: the copier of a
// process's stdout or stderr writes while the test reads. The zero value is
// an empty buffer ready for use.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p to the buffer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// LockedWriter serialises the writes to W, for a writer that the
// daemon's output and the harness's goroutines share.
type LockedWriter struct {
	mu sync.Mutex
	W  io.Writer
}

// Write writes p to W, one writer at a time.
func (l *LockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.W.Write(p)
}

// The builds of this test process: all in one temporary directory.
var (
	buildMu  sync.Mutex
	buildDir string
	builds   = map[buildKey]buildResult{}
)

type buildKey struct{ pkg, ldflags string }

type buildResult struct {
	bin string
	err error
}

// Build builds the main package in directory pkg (relative to the test's
// working directory: "." is the package under test) and returns the path of
// the binary, named as the directory. It builds as the Makefile does, with
// CGO_ENABLED=0 (so that capabilities drop on every thread), without VCS
// stamping, and with -ldflags when ldflags is not empty. Each pkg and ldflags
// is built once per test process; a failed build fails every test that asks
// for it. Build is safe for concurrent use.
//
// The TestMain of a package that calls Build must run Cleanup after the
// tests, as Main does.
func Build(t testing.TB, pkg, ldflags string) string {
	t.Helper()
	bin, err := build(pkg, ldflags)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func build(pkg, ldflags string) (string, error) {
	abs, err := filepath.Abs(pkg)
	if err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	key := buildKey{abs, ldflags}
	if r, ok := builds[key]; ok {
		return r.bin, r.err
	}
	if buildDir == "" {
		if buildDir, err = os.MkdirTemp("", "nfqknockd-test-"); err != nil {
			return "", fmt.Errorf("build %s: %w", pkg, err)
		}
	}
	// One directory per build: the same package may be built with other
	// -ldflags, under the same name.
	dir := filepath.Join(buildDir, strconv.Itoa(len(builds)))
	r := buildResult{bin: filepath.Join(dir, filepath.Base(abs))}
	args := []string{"build", "-buildvcs=false", "-o", r.bin}
	if ldflags != "" {
		args = append(args, "-ldflags", ldflags)
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Dir = abs
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		r.err = fmt.Errorf("go build %s: %v: %s", pkg, err, out)
	}
	builds[key] = r
	return r.bin, r.err
}

// Cleanup removes the binaries that Build made and returns an error naming
// each process of them that still runs: a test should have stopped it.
func Cleanup() error {
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir == "" {
		return nil
	}
	var problems []string
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, p := range procs {
		if exe, err := os.Readlink(p); err == nil && strings.HasPrefix(exe, buildDir+"/") {
			problems = append(problems, "process left running: "+p+" "+exe)
		}
	}
	err := os.RemoveAll(buildDir)
	buildDir, builds = "", map[buildKey]buildResult{}
	if err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}

// Main is a TestMain: it removes the network namespaces that crashed test
// runs left (netns.SweepStale), runs the tests of m, and exits with their
// status. After the tests it runs Cleanup, and the run fails when a test left
// something behind: a process of a binary of Build, a network namespace of
// this process, or whatever one of checks reports. What is left goes to
// stderr.
func Main(m *testing.M, checks ...func() error) {
	sweepStale()
	code := m.Run()
	if err := leftBehind(checks...); err != nil {
		fmt.Fprintln(os.Stderr, "left behind by the tests:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// leftBehind runs Cleanup, looks for namespaces of this process (netns names
// them "nfqk-<pid>-<n>-<role>"), and runs checks; it returns what they found,
// one line each, or nil.
func leftBehind(checks ...func() error) error {
	var problems []string
	if err := Cleanup(); err != nil {
		problems = append(problems, err.Error())
	}
	entries, _ := os.ReadDir("/run/netns")
	mine := fmt.Sprintf("nfqk-%d-", os.Getpid())
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), mine) {
			problems = append(problems, "namespace left behind: "+e.Name())
		}
	}
	for _, check := range checks {
		if err := check(); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}

// WriteFile writes content to the file name in dir with exactly mode (not
// subject to the umask) and returns its path. It fails the test on an error.
func WriteFile(t testing.TB, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// AcceptAndClose accepts connections on ln in a goroutine of its own and
// closes each at once, until ln is closed: a server whose port answers a
// connect and nothing more.
func AcceptAndClose(ln net.Listener) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// Tail returns the last n lines of s (a daemon's log, for an error).
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
