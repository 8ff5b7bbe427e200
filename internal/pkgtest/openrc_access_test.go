package pkgtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The access file under the OpenRC service (NFQKNOCKD_ACCESS_FILE): the
// helpers of TestOpenRCScriptCalls and TestOpenRCCommandLine.

// accessUser is one [NAME] section of a test access file.
type accessUser struct{ name, open, close string }

// testAccess writes an access file of mode with two users, alice and bob,
// of random secrets and every guarded port, and returns its path and the
// users.
func testAccess(t *testing.T, mode os.FileMode) (string, []accessUser) {
	t.Helper()
	users := []accessUser{
		{"alice", randomSecret(t), randomSecret(t)},
		{"bob", randomSecret(t), randomSecret(t)},
	}
	path := filepath.Join(t.TempDir(), "access")
	writeAccess(t, path, mode, users)
	return path, users
}

// writeAccess writes users to the access file path, of mode.
func writeAccess(t *testing.T, path string, mode os.FileMode, users []accessUser) {
	t.Helper()
	var b strings.Builder
	for _, u := range users {
		fmt.Fprintf(&b, "[%s]\nopen = %s\nclose = %s\n\n", u.name, u.open, u.close)
	}
	if err := os.WriteFile(path, []byte(b.String()), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// openrcConfAccess returns the shipped conf.d file with NFQKNOCKD_OPTS
// set to opts and its NFQKNOCKD_ACCESS_FILE line uncommented, set to file,
// as an admin would edit it.
func openrcConfAccess(t *testing.T, opts, file string) string {
	t.Helper()
	shipped, err := os.ReadFile(filepath.Join(root(t), "packaging", openrcConf))
	if err != nil {
		t.Fatal(err)
	}
	const optsLine, accessLine = "\nNFQKNOCKD_OPTS=\"--guard 22\"\n", "\n#NFQKNOCKD_ACCESS_FILE=\"/etc/nfqknockd/access\"\n"
	for _, l := range []string{optsLine, accessLine} {
		if strings.Count(string(shipped), l) != 1 {
			t.Fatalf("%s has not one line %q", openrcConf, strings.TrimSpace(l))
		}
	}
	c := strings.Replace(string(shipped), optsLine, "\nNFQKNOCKD_OPTS="+shellQuote(opts)+"\n", 1)
	return strings.Replace(c, accessLine, "\nNFQKNOCKD_ACCESS_FILE="+shellQuote(file)+"\n", 1)
}
