package pkgtest

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// The pinned tools, run with `go run` as the Makefile runs them.
const (
	nfpmModule   = "github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2"
	md2manModule = "github.com/cpuguy83/go-md2man/v2@v2.0.7"
)

// testVersion is stamped into the test's binaries; the package version
// nfpm makes of it (0.0.0~pkgtest-1) marks a package this test installed.
// upgradeVersion is the later version TestDebUpgrade upgrades to
// (0.0.1~pkgtest-1), with the same marker.
const (
	testVersion    = "0.0.0-pkgtest"
	upgradeVersion = "0.0.1-pkgtest"
	testMarker     = "pkgtest"
	pkgName        = "nfqknockd"
)

// work is a directory of this test process, removed at exit.
var work string

func TestMain(m *testing.M) {
	removeStalePackage()
	var err error
	if work, err = os.MkdirTemp("", "nfqk-pkgtest-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testutil.Main(m, func() error { return os.RemoveAll(work) }, leftInstalled)
}

// leftInstalled reports a package or a daemon that the tests left: the
// test's package still installed, or a daemon of it still running.
func leftInstalled() error {
	var problems []string
	if v, ok := installedVersion(); ok && strings.Contains(v, testMarker) {
		problems = append(problems, "package left installed: "+pkgName+" "+v)
		removeStalePackage()
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, p := range procs {
		// After the purge a daemon of the package shows as "(deleted)".
		if exe, err := os.Readlink(p); err == nil && exe == installedDaemon+" (deleted)" {
			problems = append(problems, "daemon left running: "+p)
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}

// removeStalePackage purges a package that an earlier, killed run of this
// test installed (its version carries the test's marker). It never touches
// an nfqknockd package installed by anyone else.
func removeStalePackage() {
	if os.Geteuid() != 0 {
		return
	}
	if v, ok := installedVersion(); ok && strings.Contains(v, testMarker) {
		_ = exec.Command("dpkg", "--purge", pkgName).Run()
	}
}

// installedVersion returns the version of the installed nfqknockd package.
func installedVersion() (string, bool) {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Status}\t${Version}", pkgName).Output()
	if err != nil {
		return "", false
	}
	status, version, _ := strings.Cut(string(out), "\t")
	if !strings.HasSuffix(status, " installed") && !strings.Contains(status, "config-files") {
		return "", false
	}
	return version, true
}

// root is the top of the repository (this package is internal/pkgtest).
func root(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "packaging", "nfpm.yaml")); err != nil {
		t.Fatalf("repository top not found from %s: %v", dir, err)
	}
	return dir
}

// goCmd returns the go command that runs this test.
func goCmd() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// run runs a command in dir with extra environment, within limit, and
// returns its combined output.
func run(t testing.TB, limit time.Duration, dir string, env []string, name string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %s: no answer within %v: %w", name, strings.Join(args, " "), limit, ctx.Err())
	}
	return out, err
}

// once runs a build step once per test process and hands every caller its
// result.
type once struct {
	sync.Once
	err error
}

func (o *once) do(fn func() error) error {
	o.Do(func() { o.err = fn() })
	return o.err
}

var (
	binOnce, manOnce, toolOnce, compOnce sync.Mutex
	manStep, compStep                    once
	binSteps                             = map[string]*once{}
	toolSteps                            = map[string]*once{}
)

// binDir builds nfqknockd and nfqknock as the Makefile does (static,
// stamped with testVersion) and returns their directory.
func binDir(t testing.TB) string {
	t.Helper()
	return binDirVersion(t, testVersion)
}

// binDirVersion builds nfqknockd and nfqknock stamped with version and
// returns their directory.
func binDirVersion(t testing.TB, version string) string {
	t.Helper()
	dir := filepath.Join(work, "bin")
	if version != testVersion {
		dir += "-" + version
	}
	binOnce.Lock()
	defer binOnce.Unlock()
	step := binSteps[version]
	if step == nil {
		step = &once{}
		binSteps[version] = step
	}
	err := step.do(func() error {
		for _, c := range []string{"nfqknockd", "nfqknock"} {
			out, err := run(t, 5*time.Minute, root(t), []string{"CGO_ENABLED=0"}, goCmd(), "build", "-trimpath",
				"-ldflags", "-s -w -X github.com/nfqknockd/nfqknockd/cmd/internal/version.stamp="+version, "-o", filepath.Join(dir, c), "./cmd/"+c)
			if err != nil {
				return fmt.Errorf("go build ./cmd/%s: %v\n%s", c, err, out)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// tool makes sure a pinned tool module can be fetched and built. When it
// cannot (no module proxy), the test is skipped, unless CI is "true".
func tool(t testing.TB, module string) {
	t.Helper()
	toolOnce.Lock()
	o := toolSteps[module]
	if o == nil {
		o = &once{}
		toolSteps[module] = o
	}
	toolOnce.Unlock()
	err := o.do(func() error {
		// go run builds it once; later runs hit the build cache.
		out, err := run(t, 10*time.Minute, work, nil, goCmd(), "run", module, "--help")
		if err != nil && !bytes.Contains(out, []byte("Usage")) {
			return fmt.Errorf("go run %s: %v\n%s", module, err, out)
		}
		return nil
	})
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the pinned tool cannot be fetched, and CI=true forbids skipping: %v", err)
		}
		t.Skipf("skipping: the pinned tool cannot be fetched (no Go module proxy?): %v", err)
	}
}

// manDir renders the man pages as `make man` does (go-md2man, gzip -9n)
// and returns their directory.
func manDir(t testing.TB) string {
	t.Helper()
	tool(t, md2manModule)
	dir := filepath.Join(work, "man")
	manOnce.Lock()
	defer manOnce.Unlock()
	err := manStep.do(func() error {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for _, page := range []string{"nfqknockd.8", "nfqknock.1"} {
			src, err := os.ReadFile(filepath.Join(root(t), "packaging", page+".md"))
			if err != nil {
				return err
			}
			src = bytes.ReplaceAll(src, []byte("@VERSION@"), []byte(testVersion))
			cmd := exec.Command(goCmd(), "run", md2manModule)
			cmd.Stdin = bytes.NewReader(src)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			roff, err := cmd.Output()
			if err != nil {
				return fmt.Errorf("go-md2man %s: %v\n%s", page, err, stderr.Bytes())
			}
			for _, l := range strings.Split(stderr.String(), "\n") {
				// go-md2man warns about Markdown it cannot render; the go
				// command may say what it downloads.
				if l != "" && !strings.HasPrefix(l, "go: ") {
					return fmt.Errorf("go-md2man %s warned: %s", page, stderr.Bytes())
				}
			}
			if err := os.WriteFile(filepath.Join(dir, page), roff, 0o644); err != nil {
				return err
			}
			var gz bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
			zw.Write(roff)
			if err := zw.Close(); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, page+".gz"), gz.Bytes(), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// compDir writes the shell completions as `make completions` does (each
// command's --completion, here the test's build) and returns their
// directory: NAME.bash, _NAME (zsh) and NAME.fish.
func compDir(t testing.TB) string {
	t.Helper()
	bin := binDir(t)
	dir := filepath.Join(work, "completions")
	compOnce.Lock()
	defer compOnce.Unlock()
	err := compStep.do(func() error {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for _, c := range []string{"nfqknockd", "nfqknock"} {
			for shell, file := range map[string]string{"bash": c + ".bash", "zsh": "_" + c, "fish": c + ".fish"} {
				var stderr bytes.Buffer
				cmd := exec.Command(filepath.Join(bin, c), "--completion", shell)
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				if err != nil || stderr.Len() > 0 {
					return fmt.Errorf("%s --completion %s: %v\n%s", c, shell, err, stderr.Bytes())
				}
				if err := os.WriteFile(filepath.Join(dir, file), out, 0o644); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

var (
	pkgMu    sync.Mutex
	pkgSteps = map[string]*once{}
	pkgFiles = map[string]string{}
)

// buildPackage makes the package of format (deb, rpm or apk) with nfpm, as
// `make deb` does, and returns its path.
func buildPackage(t testing.TB, format string) string {
	t.Helper()
	return buildPackageVersion(t, format, testVersion)
}

// buildPackageVersion makes the package of format with binaries stamped
// with version, and the package's version made of it; the man pages carry
// testVersion.
func buildPackageVersion(t testing.TB, format, version string) string {
	t.Helper()
	tool(t, nfpmModule)
	bin, man, comp := binDirVersion(t, version), manDir(t), compDir(t)
	pkgMu.Lock()
	defer pkgMu.Unlock()
	key := format + "-" + version
	o := pkgSteps[key]
	if o == nil {
		o = &once{}
		pkgSteps[key] = o
	}
	err := o.do(func() error {
		dist := filepath.Join(work, "dist-"+key)
		if err := os.MkdirAll(dist, 0o755); err != nil { // nfpm wants it there
			return err
		}
		env := []string{"VERSION=" + version, "ARCH=" + runtime.GOARCH, "BINDIR=" + bin, "MANDIR=" + man, "COMPDIR=" + comp}
		out, err := run(t, 10*time.Minute, root(t), env, goCmd(), "run", nfpmModule, "pkg",
			"--packager", format, "--config", "packaging/nfpm.yaml", "--target", dist+"/")
		if err != nil {
			return fmt.Errorf("nfpm pkg --packager %s: %v\n%s", format, err, out)
		}
		files, _ := filepath.Glob(filepath.Join(dist, "*."+format))
		if len(files) != 1 {
			return fmt.Errorf("nfpm made %q, want one .%s\n%s", files, format, out)
		}
		pkgFiles[key] = files[0]
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgFiles[key]
}

// needCommand returns the path of a command the test needs; without it the
// test fails under CI=true and is skipped elsewhere.
func needCommand(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found (Debian package %s), and CI=true forbids skipping", name, pkg)
	}
	t.Skipf("skipping: %s not found (apt-get install %s)", name, pkg)
	return ""
}
