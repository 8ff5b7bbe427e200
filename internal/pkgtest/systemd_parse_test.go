package pkgtest

import (
	"reflect"
	"testing"
)

func TestParseEnvFile(t *testing.T) {
	cases := []struct {
		name, text string
		want       map[string]string
		err        bool
	}{
		{"double quotes", "# c\n; c\nA=\"--guard 22\"\n", map[string]string{"A": "--guard 22"}, false},
		{"single quotes", "A='x y'\n", map[string]string{"A": "x y"}, false},
		{"bare", "A=x\nB=\n", map[string]string{"A": "x", "B": ""}, false},
		{"escape", `A="a\"b"`, map[string]string{"A": `a"b`}, false},
		{"spaces around", "  A = x \n", map[string]string{"A": "x"}, false},
		{"no equals", "A\n", nil, true},
		{"bad name", "1A=x\n", nil, true},
		{"unbalanced", "A=\"x\n", nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseEnvFile(c.text)
			if (err != nil) != c.err || (!c.err && !reflect.DeepEqual(got, c.want)) {
				t.Errorf("parseEnvFile(%q) = %v, %v; want %v, error %v", c.text, got, err, c.want, c.err)
			}
		})
	}
}

func TestExpandExecStart(t *testing.T) {
	env := map[string]string{"ARGS": "--guard 22  -v", "EMPTY": "", "ONE": "a b"}
	cases := []struct {
		line string
		want []string
		err  bool
	}{
		{"/usr/sbin/nfqknockd $ARGS", []string{"/usr/sbin/nfqknockd", "--guard", "22", "-v"}, false},
		{"/usr/sbin/nfqknockd $EMPTY", []string{"/usr/sbin/nfqknockd"}, false},
		{"/usr/sbin/nfqknockd ${ONE}", []string{"/usr/sbin/nfqknockd", "a b"}, false},
		{"/usr/sbin/nfqknockd --x=${ONE}y", []string{"/usr/sbin/nfqknockd", "--x=a by"}, false},
		{`/bin/x "a b" 'c d'`, []string{"/bin/x", "a b", "c d"}, false},
		{"/bin/x $UNSET", []string{"/bin/x"}, false},
		{"-/bin/x", nil, true},
		{`/bin/x "a`, nil, true},
		{"", nil, true},
	}
	for _, c := range cases {
		got, err := expandExecStart(c.line, env)
		if (err != nil) != c.err || (!c.err && !reflect.DeepEqual(got, c.want)) {
			t.Errorf("expandExecStart(%q) = %q, %v; want %q, error %v", c.line, got, err, c.want, c.err)
		}
	}
}

func TestParseUnit(t *testing.T) {
	text := "# c\n[Unit]\nDescription=x\n[Service]\nA=1\nA=2\nB=one \\\n two\n; c\n"
	u, err := parseUnit(text)
	if err != nil {
		t.Fatal(err)
	}
	if got := u["Service"]["A"]; !reflect.DeepEqual(got, []string{"1", "2"}) {
		t.Errorf("A = %q", got)
	}
	if got := u.last("Service", "B"); got != "one  two" {
		t.Errorf("B = %q", got)
	}
	if got := u.last("Unit", "Description"); got != "x" {
		t.Errorf("Description = %q", got)
	}
	if _, err := parseUnit("A=1\n"); err == nil {
		t.Error("a key outside a section was accepted")
	}
}

func TestParseStrace(t *testing.T) {
	log := `100 execve("/usr/bin/setpriv", ["setpriv"], 0x1 /* 3 vars */) = 0
100 prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_ADMIN, 0, 0) = 0
100 execve("/usr/sbin/nfqknockd", ["/usr/sbin/nfqknockd"], 0x1 /* 3 vars */) = 0
100 arch_prctl(ARCH_SET_FS, 0x5) = 0
101 futex(0x1, FUTEX_WAIT_PRIVATE, 0, NULL <unfinished ...>
100 socket(AF_NETLINK, SOCK_RAW|SOCK_CLOEXEC, NETLINK_NETFILTER) = 3
101 <... futex resumed>) = 0
100 --- SIGURG {si_signo=SIGURG, si_code=SI_TKILL, si_pid=100, si_uid=0} ---
100 openat(AT_FDCWD, "/proc/self/status", O_RDONLY|O_CLOEXEC) = 4
100 openat(AT_FDCWD, "/tmp/x", O_WRONLY|O_CREAT|O_TRUNC, 0600) = 5
100 socket(AF_UNIX, SOCK_STREAM, 0) = 6
100 +++ exited with 0 +++
`
	got, err := parseStrace(log, "/usr/sbin/nfqknockd")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"arch_prctl", "futex", "openat", "socket"}; !reflect.DeepEqual(sortedKeys(got.syscalls), want) {
		t.Errorf("syscalls %q, want %q", sortedKeys(got.syscalls), want)
	}
	if want := []string{"AF_NETLINK", "AF_UNIX"}; !reflect.DeepEqual(sortedKeys(got.families), want) {
		t.Errorf("families %q, want %q", sortedKeys(got.families), want)
	}
	if want := []string{"/tmp/x"}; !reflect.DeepEqual(got.writes, want) {
		t.Errorf("writes %q, want %q", got.writes, want)
	}
	if _, err := parseStrace("100 read(0) = 0\n", "/usr/sbin/nfqknockd"); err == nil {
		t.Error("a log without the execve was accepted")
	}
}
