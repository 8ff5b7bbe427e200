package e2e

// End-to-end test of the table's lock against a local user, in network
// namespaces.

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/nfqknockd/nfqknockd/internal/netns"
)

// defaultLockDir is the daemon's default --lock-dir (nfqknockd(8)).
const defaultLockDir = "/run/nfqknockd"

// holderScript, run by perl as nobody, binds and listens on the abstract
// unix socket that older daemons used as the table's lock, then tries to
// create the lock file of today ($ARGV[0]) and to flock it, and to make a
// file in its directory; it prints what it got, one line each, and holds
// all it got until its stdin closes.
const holderScript = `use Socket; use Fcntl qw(:DEFAULT :flock); $| = 1;
socket(S, AF_UNIX, SOCK_STREAM, 0) or die "socket: $!";
if (bind(S, pack_sockaddr_un("\0nfqknockd/table/nfqknock")) && listen(S, 5)) { print "abstract: held\n" } else { print "abstract: $!\n" }
if (sysopen(L, $ARGV[0], O_RDWR|O_CREAT, 0666)) { print flock(L, LOCK_EX|LOCK_NB) ? "lock: held\n" : "lock: $!\n" } else { print "lock: $!\n" }
if (sysopen(F, $ARGV[1], O_RDWR|O_CREAT, 0666)) { print "dir: wrote\n" } else { print "dir: $!\n" }
<STDIN>;
`

// TestLockAgainstLocalUser: a process of nobody's in the daemon's
// network namespace holds the abstract socket name of the old lock and
// tries to reach the new one; the daemon still starts and guards, and a
// second daemon for the same table is still refused with one line, exit 1.
// (With the abstract socket as the lock, the daemon did not start.)
func TestLockAgainstLocalUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// The daemon's default --lock-dir, made as the daemon makes it (it
	// then checks that only root can write in it).
	if err := os.Mkdir(defaultLockDir, 0o700); err != nil && !os.IsExist(err) {
		t.Fatalf("%s: %v", defaultLockDir, err)
	}
	// The namespace's file under /run/netns has the inode of the
	// namespace itself.
	fi, err := os.Stat("/run/netns/" + e.pair.Server)
	if err != nil {
		t.Fatal(err)
	}
	// The lock file, as nfqknockd(8) names it.
	lockPath := fmt.Sprintf("%s/netns-%d.table-nfqknock.lock", defaultLockDir, fi.Sys().(*syscall.Stat_t).Ino)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) not found: %v", err)
	}
	holder := netns.Command(e.pair.Server, setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
		"perl", "-e", holderScript, lockPath, defaultLockDir+"/planted")
	stdin, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	holder.Stderr = os.Stderr
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); holder.Wait() })
	got := map[string]string{}
	sc := bufio.NewScanner(stdout)
	for len(got) < 3 && sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ": ")
		got[k] = v
	}
	if got["abstract"] != "held" {
		t.Fatalf("nobody could not hold the old lock's name (%q): the test proves nothing", got["abstract"])
	}
	for _, k := range []string{"lock", "dir"} {
		if !strings.Contains(got[k], "Permission denied") {
			t.Errorf("nobody's try at the %s in %s: %q, want Permission denied", k, defaultLockDir, got[k])
		}
	}

	d := e.start()
	open, _ := e.sequences()
	e.netcatOpens(d, netns.ServerIP4, open) // refused before the knock, answers after it
	if e.reachable(strangerIP4, netns.ServerIP4, guardPort) {
		t.Errorf("the guarded port answered a stranger")
	}

	second := e.spawnArgs(nil, daemonArgs("-q", "102")...)
	lcOneLine(t, second, "nfqknockd: --table nfqknock: another nfqknockd is running with this table")
	if e.reachable(strangerIP4, netns.ServerIP4, guardPort) {
		t.Errorf("the guarded port answered a stranger after the second daemon failed")
	}
	d.term()
	if _, err := os.Stat(lockPath); !os.IsNotExist(err) {
		t.Errorf("lock file %s left after the stop: %v", lockPath, err)
	}
	fmt.Fprint(stdin, "\n")
}
