package testutil

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// NotifySocket stands in for systemd's notify socket: a unixgram socket
// that receives sd_notify datagrams together with the sender's pid, as
// systemd does to apply NotifyAccess=main.
type NotifySocket struct {
	// Name is the value to give as $NOTIFY_SOCKET.
	Name string
	conn *net.UnixConn
}

// NotifyMsg is one datagram received on a NotifySocket.
type NotifyMsg struct {
	PID    int               // the sender's pid, from its credentials
	Text   string            // the datagram as sent
	Fields map[string]string // its VARIABLE=VALUE lines
}

// Has reports whether the message assigns value to key (READY=1: "READY", "1").
func (m NotifyMsg) Has(key, value string) bool {
	v, ok := m.Fields[key]
	return ok && v == value
}

// NewNotifySocket listens on name: a path (its directory must exist; the
// socket is made writable by every user, as systemd's is, so that a daemon
// run under another uid can send) or an abstract name beginning with '@'.
// The test's cleanup closes it and removes the file.
func NewNotifySocket(t testing.TB, name string) *NotifySocket {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("notify socket %s: %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	if !strings.HasPrefix(name, "@") {
		t.Cleanup(func() { os.Remove(name) })
		if err := os.Chmod(name, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	}); err != nil || serr != nil {
		t.Fatalf("notify socket %s: SO_PASSCRED: %v %v", name, err, serr)
	}
	return &NotifySocket{Name: name, conn: c}
}

// Next returns the next datagram, waiting up to limit; os.ErrDeadlineExceeded
// when none came.
func (s *NotifySocket) Next(limit time.Duration) (NotifyMsg, error) {
	if err := s.conn.SetReadDeadline(time.Now().Add(limit)); err != nil {
		return NotifyMsg{}, err
	}
	buf, oob := notifyBuffers()
	n, oobn, _, _, err := s.conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return NotifyMsg{}, err
	}
	return parseNotify(buf[:n], oob[:oobn])
}

// Pending returns the datagrams already received, without waiting: after
// the sender exited, all it sent.
func (s *NotifySocket) Pending() ([]NotifyMsg, error) {
	raw, err := s.conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	var msgs []NotifyMsg
	for {
		buf, oob := notifyBuffers()
		var n, oobn int
		var rerr error
		if err := raw.Read(func(fd uintptr) bool {
			n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_DONTWAIT)
			return true // never wait
		}); err != nil {
			return msgs, err
		}
		if errors.Is(rerr, unix.EAGAIN) {
			return msgs, nil
		}
		if rerr != nil {
			return msgs, fmt.Errorf("notify socket %s: %w", s.Name, rerr)
		}
		m, err := parseNotify(buf[:n], oob[:oobn])
		if err != nil {
			return msgs, err
		}
		msgs = append(msgs, m)
	}
}

func notifyBuffers() (buf, oob []byte) {
	return make([]byte, 4096), make([]byte, unix.CmsgSpace(unix.SizeofUcred))
}

// parseNotify reads one datagram and its control message (the sender's
// credentials).
func parseNotify(b, oob []byte) (NotifyMsg, error) {
	m := NotifyMsg{Text: string(b), Fields: map[string]string{}}
	cmsgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return m, fmt.Errorf("notify datagram %q: control message: %w", m.Text, err)
	}
	for _, cm := range cmsgs {
		if cred, err := unix.ParseUnixCredentials(&cm); err == nil {
			m.PID = int(cred.Pid)
		}
	}
	if m.PID == 0 {
		return m, fmt.Errorf("notify datagram %q came without the sender's credentials", m.Text)
	}
	for _, line := range strings.Split(strings.TrimSuffix(m.Text, "\n"), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return m, fmt.Errorf("notify datagram %q: line %q is not VARIABLE=VALUE", m.Text, line)
		}
		m.Fields[k] = v
	}
	return m, nil
}
