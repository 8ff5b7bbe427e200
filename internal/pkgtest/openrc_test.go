package pkgtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The OpenRC service of the .apk, as it is in the repository. Debian has
// no OpenRC, so the tests run the script under stubs of openrc-run's
// functions and of supervise-daemon (TestOpenRCScriptCalls), and run the
// command line it makes with the real daemon in a network namespace
// (TestOpenRCCommandLine). A real OpenRC runs it in the OpenRC VM of
// `make vm-test` (test/vm/openrc), on Debian's openrc 0.45.2, whose
// supervise-daemon was built without libcap.
const (
	openrcScript = "nfqknockd.initd"
	openrcConf   = "nfqknockd.confd"
)

// openrcHarness stands in for openrc-run: it defines the functions that
// openrc-run gives a service script, recording each call, sources the
// conf.d file and the script as openrc-run does, then runs the action's
// functions (NAME_pre, NAME, as openrc-run) the way openrc-run runs them;
// a restart is stop then start with RC_CMD=restart, as openrc-run does
// (it cannot be overridden). After the sourcing it records the script's
// variables, then points command and secret_file at the test's binary and
// secrets (the recorded start call shows the test's paths).
const openrcHarness = `
rec() { { printf '%s' "$1"; shift; for a; do printf '\t%s' "$a"; done; printf '\n'; } >>"$OPENRC_CALLS"; }
ebegin() { rec ebegin "$@"; }
eend() { rec eend "$@"; return "$1"; }
einfo() { rec einfo "$@"; }
ewarn() { rec ewarn "$@"; }
eerror() { rec eerror "$@"; printf '%s\n' "$*" >&2; }
checkpath() { rec checkpath "$@"; }
yesno() { case "$1" in [Yy][Ee][Ss] | [Tt][Rr][Uu][Ee] | [Oo][Nn] | 1) return 0 ;; esac; return 1; }
service_get_value() { rec service_get_value "$@"; [ "$1" != child_pid ] || printf '%s\n' "$STUB_CHILD_PID"; }
kill() { # the daemon runs until it gets SIGQUIT
	rec kill "$@"
	case "$1" in
	-0) [ -n "$STUB_CHILD_ALIVE" ] ;;
	-QUIT) STUB_CHILD_ALIVE= ;;
	esac
}
after() { rec after "$@"; }
before() { rec before "$@"; }
use() { rec use "$@"; }
need() { rec need "$@"; }
want() { rec want "$@"; }
RC_SVCNAME=nfqknockd
RC_SERVICE=/etc/init.d/nfqknockd
RC_CMD=$1
export RC_SVCNAME RC_SERVICE RC_CMD
. "$OPENRC_CONFD"
. "$OPENRC_INITD"
rec vars "command=$command" "secret_file=$secret_file" "supervisor=$supervisor" \
	"extra_commands=$extra_commands" "extra_started_commands=$extra_started_commands"
command=$TEST_COMMAND
secret_file=$TEST_SECRETS
act() {
	if [ "$(command -v "$1_pre")" = "$1_pre" ]; then "$1_pre" || return; fi
	"$1" || return
	if [ "$(command -v "$1_post")" = "$1_post" ]; then "$1_post" || return; fi
}
case $1 in
restart) act stop && act start ;;
*) act "$1" ;;
esac
`

// stubCommand records its name and arguments as the harness's rec does.
// With STUB_OLD set it is an older supervise-daemon, as Debian's openrc
// 0.45: built without libcap, it refuses --capabilities and --secbits,
// and it does not know --stderr-logger. As nft, it finds the table
// unless STUB_NO_TABLE is set.
const stubCommand = `#!/bin/sh
{ printf '%s' "${0##*/}"; for a; do printf '\t%s' "$a"; done; printf '\n'; } >>"$OPENRC_CALLS"
if [ "${0##*/}" = nft ]; then
	[ -z "$STUB_NO_TABLE" ]
	exit
fi
if [ -n "$STUB_OLD" ]; then
	for a; do
		case $a in
		--capabilities | --secbits)
			echo " * ${0##*/}: Capabilities support not enabled" >&2
			exit 1
			;;
		--stderr-logger)
			echo "${0##*/}: unrecognized option '--stderr-logger'" >&2
			exit 1
			;;
		esac
	done
fi
exit 0
`

// isProbe tells the script's questions to supervise-daemon (whether it
// takes an option: it stops at --help) from the calls that start, stop or
// signal.
func isProbe(c []string) bool {
	return len(c) > 0 && c[len(c)-1] == "--help"
}

// openrcRun is what the script did for one action under the harness.
type openrcRun struct {
	calls  [][]string // every recorded call: the function or command, then its arguments
	stderr string
	err    error  // the action's exit
	bin    string // the directory of the stubs
}

// supervise returns the calls of supervise-daemon, without its name, less
// the script's questions whether it takes an option (see probes).
func (r openrcRun) supervise() [][]string {
	var out [][]string
	for _, c := range r.calls {
		if c[0] == "supervise-daemon" && !isProbe(c[1:]) {
			out = append(out, c[1:])
		}
	}
	return out
}

// probes returns the options that the script asked supervise-daemon
// whether it takes.
func (r openrcRun) probes() []string {
	var out []string
	for _, c := range r.calls {
		if c[0] == "supervise-daemon" && isProbe(c[1:]) && len(c) > 2 {
			out = append(out, c[2])
		}
	}
	return out
}

// index returns the position of the first call that starts with prefix,
// or -1.
func (r openrcRun) index(prefix ...string) int {
	return slices.IndexFunc(r.calls, func(c []string) bool {
		return len(c) >= len(prefix) && slices.Equal(c[:len(prefix)], prefix)
	})
}

// openrcSetup is what the harness runs with: the shell, the conf.d text,
// the child's pid as supervise-daemon recorded it and whether it runs,
// the secrets file.
type openrcSetup struct {
	shell    []string // the shell and its flags
	confd    string   // "" is the shipped file
	childPID string
	alive    bool
	secrets  string
	// old: supervise-daemon is as Debian's openrc 0.45 (no libcap, no
	// --stderr-logger); setpriv: "stub" puts a stub setpriv in PATH,
	// "none" leaves only the stubs in PATH (no setpriv at all), "" the
	// host's PATH.
	old     bool
	setpriv string
	noTable bool // nft finds no table
}

// runOpenRC runs action (start, stop, restart, reload, checkconfig) of the
// repository's script under the harness.
func runOpenRC(t *testing.T, action string, s openrcSetup) openrcRun {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	stubs := []string{"supervise-daemon", "start-stop-daemon", "nft"}
	if s.setpriv == "stub" {
		stubs = append(stubs, "setpriv")
	}
	for _, name := range stubs {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(stubCommand), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	confd := filepath.Join(root(t), "packaging", openrcConf)
	if s.confd != "" {
		confd = filepath.Join(dir, "confd")
		if err := os.WriteFile(confd, []byte(s.confd), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	harness := filepath.Join(dir, "harness.sh")
	if err := os.WriteFile(harness, []byte(openrcHarness), 0o644); err != nil {
		t.Fatal(err)
	}
	calls := filepath.Join(dir, "calls")
	alive := ""
	if s.alive {
		alive = "1"
	}
	path := bin + ":" + os.Getenv("PATH")
	if s.setpriv == "none" {
		path = bin
	}
	old := ""
	if s.old {
		old = "1"
	}
	noTable := ""
	if s.noTable {
		noTable = "1"
	}
	env := []string{
		"PATH=" + path,
		"STUB_NO_TABLE=" + noTable,
		"STUB_OLD=" + old,
		"OPENRC_CALLS=" + calls,
		"OPENRC_CONFD=" + confd,
		"OPENRC_INITD=" + filepath.Join(root(t), "packaging", openrcScript),
		"TEST_COMMAND=" + filepath.Join(binDir(t), "nfqknockd"),
		"TEST_SECRETS=" + s.secrets,
		"STUB_CHILD_PID=" + s.childPID,
		"STUB_CHILD_ALIVE=" + alive,
	}
	cmd := exec.Command(s.shell[0], append(s.shell[1:len(s.shell):len(s.shell)], harness, action)...)
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	r := openrcRun{err: cmd.Run(), stderr: stderr.String(), bin: bin}
	b, _ := os.ReadFile(calls)
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l != "" {
			r.calls = append(r.calls, strings.Split(l, "\t"))
		}
	}
	return r
}

// testSecrets writes a secrets file of mode and returns its path and the
// secrets.
func testSecrets(t *testing.T, mode os.FileMode) (path, open, close string) {
	t.Helper()
	open, close = randomSecret(t), randomSecret(t)
	path = filepath.Join(t.TempDir(), "secrets")
	if err := os.WriteFile(path, []byte(fmt.Sprintf("open=%s\nclose=%s\n", open, close)), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path, open, close
}

// openrcShells are the shells the script must work in: busybox ash, the
// shell that runs it on Alpine (Debian package busybox; required under
// CI=true), dash (Debian's sh) and bash --posix.
func openrcShells(t *testing.T) [][]string {
	t.Helper()
	var shells [][]string
	for _, sh := range [][]string{{"sh"}, {"dash"}, {"bash", "--posix"}, {"busybox", "ash"}} {
		if _, err := exec.LookPath(sh[0]); err == nil {
			shells = append(shells, sh)
		} else if sh[0] == "busybox" && os.Getenv("CI") == "true" {
			t.Fatal("busybox not found (Debian package busybox): its ash runs OpenRC scripts on Alpine, and CI=true forbids skipping it")
		} else {
			t.Logf("%s not found: the script is not checked with it", sh[0])
		}
	}
	return shells
}

// TestOpenRCScriptSyntax parses the script and the conf.d file with each
// shell (sh -n).
func TestOpenRCScriptSyntax(t *testing.T) {
	dir := filepath.Join(root(t), "packaging")
	script, err := os.ReadFile(filepath.Join(dir, openrcScript))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(script), "#!/sbin/openrc-run\n") {
		t.Errorf("%s does not begin with #!/sbin/openrc-run", openrcScript)
	}
	for _, sh := range openrcShells(t) {
		for _, f := range []string{openrcScript, openrcConf} {
			args := append(append(sh[1:len(sh):len(sh)], "-n"), filepath.Join(dir, f))
			if out, err := exec.Command(sh[0], args...).CombinedOutput(); err != nil {
				t.Errorf("%s %s: %v\n%s", strings.Join(sh, " "), strings.Join(args, " "), err, out)
			}
		}
	}
}

// TestOpenRCScriptCalls runs start, stop, restart, reload and checkconfig
// of the script under the harness, and checks what each calls: the
// supervise-daemon command line (CAP_NET_ADMIN only, stop schedule
// SIGTERM), SIGQUIT to the daemon before the supervisor stops for a
// restart, SIGHUP for a reload; --access-file NFQKNOCKD_ACCESS_FILE in
// place of --secret-file when that is set; and that the script refuses
// secrets or --access-file in NFQKNOCKD_OPTS, a missing or open secrets or
// access file, and flags the daemon refuses, before anything is started
// or stopped.
func TestOpenRCScriptCalls(t *testing.T) {
	secrets, open, _ := testSecrets(t, 0o600)
	loose, _, _ := testSecrets(t, 0o644)
	access, users := testAccess(t, 0o600)
	looseAccess, _ := testAccess(t, 0o644)
	daemon := filepath.Join(binDir(t), "nfqknockd")
	wantStart := []string{"nfqknockd", "--start",
		"--capabilities", "^cap_net_admin", "--secbits", "0x3", "--no-new-privs",
		"--respawn-delay", "2", "--respawn-max", "5", "--respawn-period", "60",
		"--retry", "TERM/10/KILL/5", "--stderr-logger", "logger -t nfqknockd -p daemon.info",
		daemon, "--", "--secret-file", secrets, "--guard", "22"}
	stopCall := []string{"nfqknockd", "--stop"}
	conf := func(opts string) string { return "NFQKNOCKD_OPTS=" + shellQuote(opts) + "\n" }
	confAccess := func(opts, file string) string { return openrcConfAccess(t, opts, file) }
	// The start with an access file: --access-file FILE where the
	// secrets file was.
	wantAccessStart := slices.Clone(wantStart)
	wantAccessStart[len(wantAccessStart)-4] = "--access-file"
	wantAccessStart[len(wantAccessStart)-3] = access
	missing := filepath.Join(t.TempDir(), "none")

	for _, sh := range openrcShells(t) {
		t.Run(strings.Join(sh, "-"), func(t *testing.T) {
			base := openrcSetup{shell: sh, secrets: secrets, childPID: "4242", alive: true}

			t.Run("variables", func(t *testing.T) {
				r := runOpenRC(t, "checkconfig", base)
				i := r.index("vars")
				if r.err != nil || i < 0 {
					t.Fatalf("checkconfig: %v\n%s", r.err, r.stderr)
				}
				want := []string{"vars", "command=/usr/sbin/nfqknockd", "secret_file=/etc/nfqknockd/secrets",
					"supervisor=supervise-daemon", "extra_commands=checkconfig", "extra_started_commands=reload"}
				if !slices.Equal(r.calls[i], want) {
					t.Errorf("the script's variables: %q, want %q", r.calls[i], want)
				}
			})

			t.Run("start", func(t *testing.T) {
				r := runOpenRC(t, "start", base)
				if r.err != nil {
					t.Fatalf("start: %v\n%s", r.err, r.stderr)
				}
				if got := r.supervise(); len(got) != 1 || !slices.Equal(got[0], wantStart) {
					t.Errorf("start: supervise-daemon %q\nwant %q", got, wantStart)
				}
				// The lock's and the state's directories, root's alone,
				// before the daemon starts.
				start := r.index("supervise-daemon", "nfqknockd", "--start")
				for _, dir := range []string{"/run/nfqknockd", "/var/lib/nfqknockd"} {
					i := r.index("checkpath", "--directory", "--mode", "0700", "--owner", "root:root", dir)
					if i < 0 || i > start {
						t.Errorf("start: %q\nwant checkpath of %s, mode 0700, owner root:root, before supervise-daemon --start", r.calls, dir)
					}
				}
				if p := r.probes(); !slices.Equal(p, []string{"--capabilities", "--secbits", "--stderr-logger"}) {
					t.Errorf("start: asked supervise-daemon about %q, want --capabilities, --secbits, --stderr-logger", p)
				}
				// start_post: the table is there, the start is done.
				nft := r.index("nft", "list", "table", "inet", "nfqknock")
				if nft < r.index("supervise-daemon", "nfqknockd", "--start") || r.index("ewarn") >= 0 {
					t.Errorf("start: %q, want nft list table inet nfqknock after the start, no warning", r.calls)
				}
			})

			// start_post waits for the daemon's table (sshd starts after
			// the service), start_wait seconds at most, then warns; the
			// table of --table NAME.
			t.Run("start waits for the table", func(t *testing.T) {
				s := base
				s.noTable = true
				s.confd = conf("--guard 22 --table knock2") + "start_wait=1\n"
				r := runOpenRC(t, "start", s)
				n := 0
				for _, c := range r.calls {
					if slices.Equal(c, []string{"nft", "list", "table", "inet", "knock2"}) {
						n++
					}
				}
				if r.err != nil || n != 11 || r.index("ewarn") < 0 {
					t.Errorf("start without a table: %v: %d looks for inet knock2, want 11 (1 s), then a warning; %q", r.err, n, r.calls)
				}
			})
			t.Run("start_post --table=", func(t *testing.T) {
				s := base
				s.confd = conf("--table=knock3 --guard 22")
				r := runOpenRC(t, "start", s)
				if r.err != nil || r.index("nft", "list", "table", "inet", "knock3") < 0 {
					t.Errorf("start: %v: %q, want nft list table inet knock3", r.err, r.calls)
				}
			})

			// An older supervise-daemon (Debian's openrc 0.45): built
			// without libcap, it refuses --capabilities and --secbits,
			// so setpriv sets the same, between supervise-daemon and the
			// daemon, and execs the daemon (the pid supervise-daemon
			// watches is the daemon's); it has no --stderr-logger, so the
			// log goes to the file error_log. For a start and the start
			// of a restart.
			for _, action := range []string{"start", "restart"} {
				t.Run("old supervise-daemon/"+action, func(t *testing.T) {
					s := base
					s.old, s.setpriv = true, "stub"
					r := runOpenRC(t, action, s)
					got := r.supervise()
					if r.err != nil || len(got) == 0 {
						t.Fatalf("%s: %v: %q\n%s", action, r.err, got, r.stderr)
					}
					i := slices.Index(wantStart, "--stderr-logger")
					want := append([]string{"nfqknockd", "--start", "--no-new-privs"}, wantStart[7:i]...)
					want = append(want, "--stderr", "/var/log/nfqknockd.log", filepath.Join(r.bin, "setpriv"), "--",
						"--inh-caps=-all,+net_admin", "--ambient-caps=-all,+net_admin",
						"--securebits=+noroot,+noroot_locked", "--", daemon)
					want = append(want, wantStart[i+4:]...)
					if start := got[len(got)-1]; !slices.Equal(start, want) {
						t.Errorf("%s: supervise-daemon %q\nwant %q", action, start, want)
					}
					if r.index("ewarn") < 0 {
						t.Errorf("%s: no warning that the log goes to a file: %q", action, r.calls)
					}
				})
			}

			t.Run("old supervise-daemon, no setpriv", func(t *testing.T) {
				s := base
				s.old, s.setpriv = true, "none"
				r := runOpenRC(t, "start", s)
				if r.err == nil || len(r.supervise()) != 0 || !strings.Contains(r.stderr, "setpriv") {
					t.Errorf("start: %v: %q\n%s\nwant refused, naming setpriv", r.err, r.calls, r.stderr)
				}
			})

			t.Run("stop", func(t *testing.T) {
				r := runOpenRC(t, "stop", base)
				if r.err != nil {
					t.Fatalf("stop: %v\n%s", r.err, r.stderr)
				}
				// SIGTERM: the stop schedule that start gave the
				// supervisor (--retry TERM/...); no signal of its own.
				if got := r.supervise(); len(got) != 1 || !slices.Equal(got[0], stopCall) || r.index("kill") >= 0 {
					t.Errorf("stop: %q, want only supervise-daemon %q", r.calls, stopCall)
				}
			})

			t.Run("restart", func(t *testing.T) {
				r := runOpenRC(t, "restart", base)
				if r.err != nil {
					t.Fatalf("restart: %v\n%s", r.err, r.stderr)
				}
				quit := r.index("kill", "-QUIT", "4242")
				gone := -1 // the first check after the SIGQUIT that the daemon runs
				if quit >= 0 {
					if j := slices.IndexFunc(r.calls[quit:], func(c []string) bool { return slices.Equal(c, []string{"kill", "-0", "4242"}) }); j >= 0 {
						gone = quit + j
					}
				}
				stop := r.index(append([]string{"supervise-daemon"}, stopCall...)...)
				start := r.index("supervise-daemon", "nfqknockd", "--start")
				if quit < 0 || gone < quit || stop < gone || start < stop {
					t.Errorf("restart: %q\nwant kill -QUIT 4242 (the daemon leaves its table), kill -0 4242 (it has exited), then supervise-daemon --stop, then --start", r.calls)
				}
				if got := r.supervise(); len(got) != 2 || !slices.Equal(got[1], wantStart) {
					t.Errorf("restart: supervise-daemon %q", got)
				}
			})

			t.Run("restart without a running daemon", func(t *testing.T) {
				s := base
				s.alive = false
				r := runOpenRC(t, "restart", s)
				if r.err != nil || r.index("kill", "-QUIT") >= 0 || len(r.supervise()) != 2 {
					t.Errorf("restart: %v: %q, want supervise-daemon --stop and --start, no SIGQUIT", r.err, r.calls)
				}
			})

			t.Run("restart without the daemon's pid", func(t *testing.T) {
				s := base
				s.childPID = ""
				r := runOpenRC(t, "restart", s)
				if r.err == nil || len(r.supervise()) != 0 || r.index("eerror") < 0 {
					t.Errorf("restart: %v: %q, want refused (a SIGTERM would delete the table), nothing stopped", r.err, r.calls)
				}
			})

			t.Run("reload", func(t *testing.T) {
				r := runOpenRC(t, "reload", base)
				want := []string{"nfqknockd", "--signal", "HUP"}
				if got := r.supervise(); r.err != nil || len(got) != 1 || !slices.Equal(got[0], want) {
					t.Errorf("reload: %v: %q, want supervise-daemon %q", r.err, got, want)
				}
			})
			// checkconfig is nfqknockd check: its warnings become the
			// script's (a knock range too narrow), a refusal stops a
			// reload before the signal.
			t.Run("checkconfig warns", func(t *testing.T) {
				s := base
				s.confd = conf("--guard 22 --range 1000-1003")
				r := runOpenRC(t, "checkconfig", s)
				i := r.index("ewarn")
				if r.err != nil || i < 0 || !strings.Contains(strings.Join(r.calls[i], " "), "guessable") {
					t.Errorf("checkconfig: %v: %q, want an ewarn of the range warning", r.err, r.calls)
				}
			})
			t.Run("reload refused", func(t *testing.T) {
				s := base
				s.confd = conf("--guard 22 --range 3000-1000")
				r := runOpenRC(t, "reload", s)
				if r.err == nil || len(r.supervise()) != 0 || r.index("eerror") < 0 {
					t.Errorf("reload with a bad range: %v: %q, want refused before any signal", r.err, r.calls)
				}
			})

			t.Run("allowed flags", func(t *testing.T) {
				s := base
				s.confd = conf("--guard 22,2222 -p 443 --verbose --allow 10.8.0.0/16 -d sha256 --range 7000-8999")
				r := runOpenRC(t, "start", s)
				got := r.supervise()
				if r.err != nil || len(got) != 1 {
					t.Fatalf("start: %v: %q\n%s", r.err, got, r.stderr)
				}
				want := []string{daemon, "--", "--secret-file", secrets, "--guard", "22,2222", "-p", "443", "--verbose",
					"--allow", "10.8.0.0/16", "-d", "sha256", "--range", "7000-8999"}
				if c := got[0]; !slices.Equal(c[len(c)-len(want):], want) {
					t.Errorf("start: %q, want it to end with %q", c, want)
				}
			})

			// Each refused before anything starts or stops, for start and
			// for restart (the running daemon stays).
			for _, c := range []struct{ name, opts, want string }{
				{"-o", "--guard 22 -o " + open, "-o and -c refused"},
				{"-oSECRET", "--guard 22 -o" + open, "-o and -c refused"},
				{"-c", "-c " + open + " --guard 22", "-o and -c refused"},
				{"cluster", "--guard 22 -vo " + open, "-o and -c refused"},
				{"--open-secret", "--guard 22 --open-secret " + open, "--open-secret refused"},
				{"--open-secret=", "--guard 22 --open-secret=" + open, "--open-secret refused"},
				{"--close-secret", "--guard 22 --close-secret " + open, "--close-secret refused"},
				{"--secret-file", "--guard 22 --secret-file /tmp/x", "--secret-file refused"},
				{"--access-file", "--guard 22 --access-file " + access, "--access-file refused"},
				{"--access-file=", "--guard 22 --access-file=" + access, "--access-file refused"},
				{"bad flag", "--guard 0", "--guard 0"},
				{"no guard", "", "no port to guard"},
			} {
				for _, action := range []string{"start", "restart"} {
					t.Run(c.name+"/"+action, func(t *testing.T) {
						s := base
						s.confd = conf(c.opts)
						r := runOpenRC(t, action, s)
						if r.err == nil || len(r.supervise()) != 0 || r.index("kill") >= 0 {
							t.Errorf("%s with NFQKNOCKD_OPTS=%q: %v: %q, want refused before any call", action, c.opts, r.err, r.calls)
						}
						if !strings.Contains(r.stderr, c.want) {
							t.Errorf("%s: stderr %q, want %q", action, r.stderr, c.want)
						}
						t.Logf("%s refused: %s", action, strings.TrimSpace(r.stderr))
						if strings.Contains(r.stderr, open) {
							t.Errorf("%s: the secret appears in the output: %q", action, r.stderr)
						}
					})
				}
			}

			for _, c := range []struct{ name, secrets, want string }{
				{"missing secrets", filepath.Join(t.TempDir(), "none"), "is missing"},
				{"secrets readable by others", loose, "--secret-file"},
			} {
				t.Run(c.name, func(t *testing.T) {
					s := base
					s.secrets = c.secrets
					r := runOpenRC(t, "start", s)
					if r.err == nil || len(r.supervise()) != 0 || !strings.Contains(r.stderr, c.want) {
						t.Errorf("start: %v: %q\n%s\nwant refused, naming %q", r.err, r.calls, r.stderr, c.want)
					}
				})
			}

			// NFQKNOCKD_ACCESS_FILE: --access-file in place of
			// --secret-file, for start and for the start of a restart,
			// with no secrets file at all; --one-time allowed.
			for _, c := range []struct{ name, opts string }{
				{"access file", "--guard 22"},
				{"access file with --one-time", "--guard 22 --one-time"},
			} {
				for _, action := range []string{"start", "restart"} {
					t.Run(c.name+"/"+action, func(t *testing.T) {
						s := base
						s.secrets = missing
						s.confd = confAccess(c.opts, access)
						r := runOpenRC(t, action, s)
						got := r.supervise()
						if r.err != nil || len(got) == 0 {
							t.Fatalf("%s: %v: %q\n%s", action, r.err, got, r.stderr)
						}
						want := append(slices.Clone(wantAccessStart), strings.Fields(c.opts)[2:]...)
						if start := got[len(got)-1]; !slices.Equal(start, want) {
							t.Errorf("%s: supervise-daemon %q\nwant %q", action, start, want)
						}
						for _, u := range users {
							if strings.Contains(r.stderr, u.open) || strings.Contains(r.stderr, u.close) {
								t.Errorf("%s: a secret of %s appears in the output: %q", action, u.name, r.stderr)
							}
						}
					})
				}
			}

			// An access file that the script or the daemon refuses, or
			// --access-file in NFQKNOCKD_OPTS next to it: refused before
			// any call, for start and for restart. A secrets file is there.
			for _, c := range []struct{ name, confd, want string }{
				{"missing access file", confAccess("--guard 22", missing), "(NFQKNOCKD_ACCESS_FILE) is missing"},
				{"access file readable by others", confAccess("--guard 22", looseAccess), "--access-file " + looseAccess + ": permissions 0644"},
				{"relative access file", confAccess("--guard 22", "access"), "not an absolute path"},
				{"access file and --access-file", confAccess("--guard 22 --access-file "+access, access), "--access-file refused"},
				{"access file and --access-file=", confAccess("--access-file="+access+" --guard 22", access), "--access-file refused"},
				{"access file and --secret-file", confAccess("--guard 22 --secret-file "+secrets, access), "--secret-file refused"},
				{"access file and -o", confAccess("--guard 22 -o "+open, access), "-o and -c refused"},
				{"access file without a guard", confAccess("--one-time", access), "no port to guard"},
			} {
				for _, action := range []string{"start", "restart"} {
					t.Run(c.name+"/"+action, func(t *testing.T) {
						s := base
						s.confd = c.confd
						r := runOpenRC(t, action, s)
						if r.err == nil || len(r.supervise()) != 0 || r.index("kill") >= 0 {
							t.Errorf("%s with %q: %v: %q, want refused before any call", action, c.confd, r.err, r.calls)
						}
						if !strings.Contains(r.stderr, c.want) {
							t.Errorf("%s: stderr %q, want %q", action, r.stderr, c.want)
						}
						t.Logf("%s refused: %s", action, strings.TrimSpace(r.stderr))
					})
				}
			}

			t.Run("depend", func(t *testing.T) {
				r := runOpenRC(t, "depend", base)
				if r.index("before", "sshd") < 0 || r.index("after", "nftables") < 0 {
					t.Errorf("depend: %q, want before sshd and after nftables ...", r.calls)
				}
			})

			t.Run("no start-stop-daemon", func(t *testing.T) {
				for _, a := range []string{"start", "stop", "restart", "reload"} {
					if r := runOpenRC(t, a, base); r.index("start-stop-daemon") >= 0 {
						t.Errorf("%s calls start-stop-daemon: %q", a, r.calls)
					}
				}
			})
		})
	}
}

// shellQuote quotes s for sh in single quotes.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
