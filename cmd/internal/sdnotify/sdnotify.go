// Package sdnotify tells systemd how a service is doing, over the sd_notify
// protocol (sd_notify(3)): newline-separated VARIABLE=VALUE assignments sent
// as one datagram to the unix socket that $NOTIFY_SOCKET names. A unit of
// Type=notify counts as started only once READY=1 arrives, so the units
// ordered after it wait for what the service says is ready, not for its
// execve.
//
// The protocol is a datagram, so this package needs no library: it speaks
// it directly. A process started without a notify socket (no
// $NOTIFY_SOCKET: OpenRC, a shell, a test) has no Notifier, and notifying
// nobody is not an error.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Env is the environment variable in which systemd names the socket.
const Env = "NOTIFY_SOCKET"

// The assignments of the service's states (sd_notify(3)).
const (
	// Ready: the service finished starting (or reloading).
	Ready = "READY=1"
	// Reloading: the service is reloading its configuration; Ready
	// follows when done. Send it with MonotonicUsec.
	Reloading = "RELOADING=1"
	// Stopping: the service is beginning to shut down.
	Stopping = "STOPPING=1"
)

// sendTimeout bounds one send: a datagram to a receiver whose queue is
// full blocks, and the service must not hang on its service manager.
const sendTimeout = 5 * time.Second

// Notifier sends assignments to one notify socket. A nil *Notifier sends
// nothing: Notify returns nil.
type Notifier struct {
	addr *net.UnixAddr
}

// New returns the Notifier of the socket named by socket, the value of
// $NOTIFY_SOCKET: an absolute path, or a name in the abstract namespace
// when it begins with '@'. An empty socket gives nil and no error: no
// service manager listens. Other forms (a relative path, systemd's
// "vsock:" addresses) are refused.
func New(socket string) (*Notifier, error) {
	switch {
	case socket == "":
		return nil, nil
	case strings.HasPrefix(socket, "@") && len(socket) > 1:
		// Go's net package maps a leading '@' to the abstract
		// namespace's leading NUL.
	case strings.HasPrefix(socket, "/"):
	default:
		return nil, fmt.Errorf("%s=%q: want an absolute path or an abstract name beginning with '@'", Env, socket)
	}
	if len(socket) >= len(unix.RawSockaddrUnix{}.Path) {
		return nil, fmt.Errorf("%s=%q: name too long for a unix socket", Env, socket)
	}
	return &Notifier{addr: &net.UnixAddr{Name: socket, Net: "unixgram"}}, nil
}

// FromEnv returns New of $NOTIFY_SOCKET.
func FromEnv() (*Notifier, error) {
	return New(os.Getenv(Env))
}

// Notify sends the assignments, each VARIABLE=VALUE without a newline, in
// one datagram. The kernel attaches the sender's credentials; systemd's
// NotifyAccess=main accepts them from the main process only.
func (n *Notifier) Notify(assignments ...string) error {
	if n == nil {
		return nil
	}
	if len(assignments) == 0 {
		return errors.New("notify: no assignment")
	}
	for _, a := range assignments {
		if k, _, ok := strings.Cut(a, "="); !ok || k == "" || strings.ContainsAny(a, "\n\x00") {
			return fmt.Errorf("notify: %q is not one VARIABLE=VALUE line", a)
		}
	}
	msg := strings.Join(assignments, "\n") + "\n"
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("notify %s: %w", n.addr.Name, err)
	}
	defer c.Close()
	if err := c.SetWriteDeadline(time.Now().Add(sendTimeout)); err != nil {
		return fmt.Errorf("notify %s: %w", n.addr.Name, err)
	}
	if _, err := c.Write([]byte(msg)); err != nil {
		return fmt.Errorf("notify %s: %w", n.addr.Name, err)
	}
	return nil
}

// Status returns the assignment STATUS=s, the free-form line systemctl
// status shows; newlines in s become spaces.
func Status(s string) string {
	return "STATUS=" + strings.NewReplacer("\n", " ", "\x00", " ").Replace(s)
}

// MonotonicUsec returns the assignment MONOTONIC_USEC= of now on
// CLOCK_MONOTONIC, in microseconds: systemd matches it with RELOADING=1 to
// tell reload cycles apart. CLOCK_MONOTONIC does not fail on Linux; if it
// did, the value would be 0, which systemd takes for an old message.
func MonotonicUsec() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return "MONOTONIC_USEC=0"
	}
	return "MONOTONIC_USEC=" + strconv.FormatInt(ts.Nano()/1000, 10)
}
