package pkgtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// shippedFile is a path a package must hold, with its mode as ls prints it.
type shippedFile struct{ path, mode string }

// shipped is every path every package must hold.
var shipped = []shippedFile{
	{"/usr/sbin/nfqknockd", "-rwxr-xr-x"},
	{"/usr/bin/nfqknock", "-rwxr-xr-x"},
	{"/usr/lib/systemd/system/nfqknockd.service", "-rw-r--r--"},
	{"/etc/default/nfqknockd", "-rw-r--r--"},
	{"/etc/nfqknockd", "drwx------"},
	{"/etc/nfqknockd/secrets.example", "-rw-------"},
	{"/usr/share/man/man8/nfqknockd.8.gz", "-rw-r--r--"},
	{"/usr/share/man/man1/nfqknock.1.gz", "-rw-r--r--"},
	{"/usr/share/doc/nfqknockd/README.md", "-rw-r--r--"},
	{"/usr/share/doc/nfqknockd/docs/performance.md", "-rw-r--r--"},
	{"/usr/share/doc/nfqknockd/docs/sequences.md", "-rw-r--r--"},
	{"/usr/share/doc/nfqknockd/docs/design.md", "-rw-r--r--"},
	{"/usr/share/doc/nfqknockd/docs/operations.md", "-rw-r--r--"},
	{"/usr/share/doc/nfqknockd/docs/threat-model.md", "-rw-r--r--"},
	{"/usr/share/doc/nfqknockd/docs/client.md", "-rw-r--r--"},
	{"/usr/share/doc/nfqknockd/docs/packaging.md", "-rw-r--r--"},
	{"/usr/share/doc/nfqknockd/docs/teams-and-one-time.md", "-rw-r--r--"},
	{"/usr/share/doc/nfqknockd/docs/c-compatibility.md", "-rw-r--r--"},
	{"/usr/share/doc/nfqknockd/docs/development.md", "-rw-r--r--"},
	{"/usr/share/bash-completion/completions/nfqknockd", "-rw-r--r--"},
	{"/usr/share/bash-completion/completions/nfqknock", "-rw-r--r--"},
	{"/usr/share/fish/vendor_completions.d/nfqknockd.fish", "-rw-r--r--"},
	{"/usr/share/fish/vendor_completions.d/nfqknock.fish", "-rw-r--r--"},
}

// debShipped are the paths the .deb holds besides shipped: the unit's
// drop-in that orders it after Debian's nftables.service, and zsh's
// completions where Debian's zsh looks for packages' ones.
var debShipped = []shippedFile{
	{"/usr/lib/systemd/system/nfqknockd.service.d/after-nftables.conf", "-rw-r--r--"},
	{"/usr/share/zsh/vendor-completions/_nfqknockd", "-rw-r--r--"},
	{"/usr/share/zsh/vendor-completions/_nfqknock", "-rw-r--r--"},
}

// rpmShipped are the paths the .rpm holds besides shipped: zsh's
// completions in site-functions (Fedora's zsh).
var rpmShipped = []shippedFile{
	{"/usr/share/zsh/site-functions/_nfqknockd", "-rw-r--r--"},
	{"/usr/share/zsh/site-functions/_nfqknock", "-rw-r--r--"},
}

// apkShipped are the paths the .apk holds besides shipped: the OpenRC
// service (Alpine's init system), which the deb and rpm must not hold, and
// zsh's completions in site-functions.
var apkShipped = append([]shippedFile{
	{"/etc/init.d/nfqknockd", "-rwxr-xr-x"},
	{"/etc/conf.d/nfqknockd", "-rw-r--r--"},
}, rpmShipped...)

// packageFiles returns the paths that the package of format holds.
func packageFiles(format string) []shippedFile {
	extra := map[string][]shippedFile{"deb": debShipped, "rpm": rpmShipped, "apk": apkShipped}[format]
	return append(slices.Clone(shipped), extra...)
}

// conffiles are the files an upgrade must not overwrite once edited.
var conffiles = []string{"/etc/default/nfqknockd", "/etc/nfqknockd/secrets.example"}

// listing maps each path of a package listing (ls -l style: mode, owner,
// ..., path last) to its mode and owner.
type entry struct{ mode, owner string }

func parseListing(t *testing.T, out string, ownerField int) map[string]entry {
	t.Helper()
	files := map[string]entry{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || !regexp.MustCompile(`^[-dl][-rwxsStT]{9}$`).MatchString(f[0]) {
			continue
		}
		p := "/" + strings.TrimPrefix(strings.TrimPrefix(f[len(f)-1], "."), "/")
		if strings.HasPrefix(f[len(f)-1], ".") && !strings.HasPrefix(f[len(f)-1], "./") {
			p = "/" + f[len(f)-1] // an apk's .PKGINFO and scripts
		}
		files[strings.TrimSuffix(p, "/")] = entry{mode: f[0], owner: f[ownerField]}
	}
	return files
}

// checkListing compares a package listing with want: each file there,
// with its mode and one of owners, and no other file.
func checkListing(t *testing.T, files map[string]entry, want []shippedFile, owners ...string) {
	t.Helper()
	for _, s := range want {
		e, ok := files[s.path]
		if !ok {
			t.Errorf("%s missing", s.path)
			continue
		}
		if e.mode != s.mode {
			t.Errorf("%s: mode %s, want %s", s.path, e.mode, s.mode)
		}
		ownerOK := false
		for _, o := range owners {
			ownerOK = ownerOK || e.owner == o
		}
		if !ownerOK {
			t.Errorf("%s: owner %s, want %s", s.path, e.owner, owners)
		}
	}
	for p, e := range files {
		if e.mode[0] != 'd' && !strings.HasPrefix(p, "/.") && !slices.ContainsFunc(want, func(s shippedFile) bool { return s.path == p }) {
			t.Errorf("unexpected file %s in the package", p)
		}
	}
}

// TestPackageContents builds the three packages with nfpm and checks their
// files, modes, owners, conffiles and dependencies with each format's own
// tool (the apk with tar: it is gzipped tar streams).
func TestPackageContents(t *testing.T) {
	t.Run("deb", func(t *testing.T) {
		needCommand(t, "dpkg-deb", "dpkg")
		deb := buildPackage(t, "deb")
		out, err := exec.Command("dpkg-deb", "-c", deb).CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg-deb -c: %v\n%s", err, out)
		}
		checkListing(t, parseListing(t, string(out), 1), packageFiles("deb"), "root/root")
		for _, f := range []struct{ field, want string }{
			{"Package", pkgName}, {"Version", "0.0.0~pkgtest-1"}, {"Suggests", "nftables"},
			{"Depends", ""}, {"Recommends", ""}, {"Section", "net"},
		} {
			got, err := exec.Command("dpkg-deb", "-f", deb, f.field).Output()
			if err != nil || strings.TrimSpace(string(got)) != f.want {
				t.Errorf("dpkg-deb -f %s: %q, %v; want %q", f.field, got, err, f.want)
			}
		}
		ctrl := t.TempDir()
		if out, err := exec.Command("dpkg-deb", "-e", deb, ctrl).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb -e: %v\n%s", err, out)
		}
		got, _ := exec.Command("cat", ctrl+"/conffiles").Output()
		if strings.Fields(string(got)) == nil || strings.Join(strings.Fields(string(got)), " ") != strings.Join(conffiles, " ") {
			t.Errorf("conffiles %q, want %q", got, conffiles)
		}
	})
	t.Run("rpm", func(t *testing.T) {
		rpm := buildPackage(t, "rpm")
		if _, err := exec.LookPath("rpm"); err != nil {
			t.Skipf("skipping the listing of %s: no rpm command (apt-get install rpm)", rpm)
		}
		out, err := run(t, time.Minute, "", nil, "rpm", "-qplv", rpm)
		if err != nil {
			t.Fatalf("rpm -qplv: %v\n%s", err, out)
		}
		checkListing(t, parseListing(t, string(out), 2), packageFiles("rpm"), "root")
		q := func(args ...string) string {
			out, err := run(t, time.Minute, "", nil, "rpm", append(append([]string{"-qp"}, args...), rpm)...)
			if err != nil {
				t.Fatalf("rpm -qp %s: %v\n%s", args, err, out)
			}
			return strings.Join(strings.Fields(string(out)), " ")
		}
		if got := q("--configfiles"); got != strings.Join(conffiles, " ") {
			t.Errorf("config files %q, want %q", got, conffiles)
		}
		if got := q("--suggests"); got != "nftables" {
			t.Errorf("suggests %q, want nftables", got)
		}
		if got := q("--requires"); strings.Contains(got, "nftables") {
			t.Errorf("requires nftables: %q", got)
		}
	})
	t.Run("apk", func(t *testing.T) {
		apk := buildPackage(t, "apk")
		out, err := run(t, time.Minute, "", nil, "tar", "--ignore-zeros", "--warning=no-unknown-keyword", "-tvzf", apk)
		if err != nil {
			t.Fatalf("tar -tvzf: %v\n%s", err, out)
		}
		files := parseListing(t, string(out), 1)
		checkListing(t, files, packageFiles("apk"), "root/root", "0/0")
		// The OpenRC files are the repository's, byte for byte.
		for _, f := range []struct{ src, dst string }{
			{"nfqknockd.initd", "etc/init.d/nfqknockd"}, {"nfqknockd.confd", "etc/conf.d/nfqknockd"},
		} {
			got, err := run(t, time.Minute, "", nil, "tar", "--ignore-zeros", "--warning=no-unknown-keyword", "-xzOf", apk, f.dst)
			want, _ := os.ReadFile(filepath.Join(root(t), "packaging", f.src))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("/%s in the apk differs from packaging/%s: %v", f.dst, f.src, err)
			}
		}
		// apk runs .post-upgrade, not .post-install, on an upgrade.
		for _, s := range []string{"/.PKGINFO", "/.post-install", "/.post-upgrade", "/.pre-deinstall", "/.post-deinstall"} {
			if _, ok := files[s]; !ok {
				t.Errorf("%s missing from the apk", s)
			}
		}
		info, err := run(t, time.Minute, "", nil, "tar", "--ignore-zeros", "--warning=no-unknown-keyword", "-xzOf", apk, ".PKGINFO")
		if err != nil || !strings.Contains(string(info), "pkgver = 0.0.0_pkgtest-r1") {
			t.Errorf(".PKGINFO: %v\n%s", err, info)
		}
	})
}
