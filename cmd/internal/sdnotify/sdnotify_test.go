package sdnotify

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfqknockd/nfqknockd/internal/testutil"
)

// wait bounds the wait for a datagram already sent (sends are synchronous,
// so it is there at once; the bound only keeps a broken test from hanging).
const wait = 10 * time.Second

func TestNew(t *testing.T) {
	tests := []struct {
		name, socket string
		none         bool // nil Notifier, no error
		err          bool
	}{
		{"unset", "", true, false},
		{"path", "/run/systemd/notify", false, false},
		{"abstract", "@/org/freedesktop/systemd1/notify/42", false, false},
		{"abstract without a name", "@", false, true},
		{"relative", "run/systemd/notify", false, true},
		{"vsock", "vsock:2:1234", false, true},
		{"too long", "/" + strings.Repeat("x", 200), false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := New(tt.socket)
			switch {
			case tt.err && err == nil:
				t.Errorf("New(%q) accepted", tt.socket)
			case !tt.err && err != nil:
				t.Errorf("New(%q): %v", tt.socket, err)
			case !tt.err && tt.none != (n == nil):
				t.Errorf("New(%q) = %v, want a Notifier: %v", tt.socket, n, !tt.none)
			}
		})
	}
}

// TestNotify sends over a real unixgram socket, at a path and in the
// abstract namespace, and checks the datagram and that it carries this
// process's pid (what NotifyAccess=main checks).
func TestNotify(t *testing.T) {
	tests := []struct {
		name   string
		socket func(t *testing.T) string
		send   []string
		want   string
	}{
		{"path ready", func(t *testing.T) string { return filepath.Join(t.TempDir(), "notify") },
			[]string{Ready, Status("guarding")}, "READY=1\nSTATUS=guarding\n"},
		{"abstract stopping", func(t *testing.T) string { return fmt.Sprintf("@nfqknockd-sdnotify-test-%d", os.Getpid()) },
			[]string{Stopping}, "STOPPING=1\n"},
		{"path reloading", func(t *testing.T) string { return filepath.Join(t.TempDir(), "notify") },
			[]string{Reloading, "MONOTONIC_USEC=7"}, "RELOADING=1\nMONOTONIC_USEC=7\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := testutil.NewNotifySocket(t, tt.socket(t))
			n, err := New(sock.Name)
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Notify(tt.send...); err != nil {
				t.Fatalf("Notify: %v", err)
			}
			m, err := sock.Next(wait)
			if err != nil {
				t.Fatal(err)
			}
			if m.Text != tt.want {
				t.Errorf("received %q, want %q", m.Text, tt.want)
			}
			if m.PID != os.Getpid() {
				t.Errorf("sender pid %d, want this process's %d", m.PID, os.Getpid())
			}
			if more, err := sock.Pending(); err != nil || len(more) > 0 {
				t.Errorf("more datagrams than one: %v %v", more, err)
			}
		})
	}
}

// TestNotifyRefuses: assignments that are not one VARIABLE=VALUE line each
// are refused, and nothing is sent.
func TestNotifyRefuses(t *testing.T) {
	sock := testutil.NewNotifySocket(t, filepath.Join(t.TempDir(), "notify"))
	n, err := New(sock.Name)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{
		nil,
		{"READY"},
		{"=1"},
		{"READY=1\nSTATUS=x"},
		{Ready, "STATUS=a\x00b"},
	} {
		if err := n.Notify(bad...); err == nil {
			t.Errorf("Notify(%q) accepted", bad)
		}
	}
	if got, err := sock.Pending(); err != nil || len(got) > 0 {
		t.Errorf("sent after a refusal: %v %v", got, err)
	}
}

// TestNotifyNobody: without $NOTIFY_SOCKET there is no Notifier and
// notifying does nothing; a socket nobody listens on is an error that
// names it.
func TestNotifyNobody(t *testing.T) {
	t.Setenv(Env, "")
	n, err := FromEnv()
	if err != nil || n != nil {
		t.Fatalf("FromEnv without %s = %v, %v; want nil, nil", Env, n, err)
	}
	if err := n.Notify(Ready); err != nil {
		t.Errorf("a nil Notifier: %v", err)
	}

	gone := filepath.Join(t.TempDir(), "gone")
	t.Setenv(Env, gone)
	n, err = FromEnv()
	if err != nil || n == nil {
		t.Fatalf("FromEnv with %s=%s = %v, %v", Env, gone, n, err)
	}
	err = n.Notify(Ready)
	if !errors.Is(err, syscall.ENOENT) || !strings.Contains(err.Error(), gone) {
		t.Errorf("Notify to a missing socket: %v, want ENOENT naming %s", err, gone)
	}
}

func TestStatus(t *testing.T) {
	tests := []struct{ in, want string }{
		{"guarding port 22", "STATUS=guarding port 22"},
		{"two\nlines", "STATUS=two lines"},
		{"", "STATUS="},
	}
	for _, tt := range tests {
		if got := Status(tt.in); got != tt.want {
			t.Errorf("Status(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMonotonicUsec(t *testing.T) {
	v, ok := strings.CutPrefix(MonotonicUsec(), "MONOTONIC_USEC=")
	if !ok {
		t.Fatalf("MonotonicUsec() = %q", MonotonicUsec())
	}
	if n, err := strconv.ParseUint(v, 10, 64); err != nil || n == 0 {
		t.Errorf("MONOTONIC_USEC=%s: %v", v, err)
	}
}
