package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

const (
	// firstAttempt is how long the first connect attempt after the open
	// knock waits; each attempt that times out doubles it. A new attempt is
	// a new SYN, so a SYN that the guard dropped just before the daemon
	// opened the host costs this much, not the kernel's 1s retransmission.
	firstAttempt = 300 * time.Millisecond
	// retryPause is the pause after an attempt that failed at once
	// (refused, unreachable).
	retryPause = 100 * time.Millisecond
	// copyBuffer is the size of the buffer of each direction.
	copyBuffer = 64 << 10
)

// proxy knocks the open sequence, connects to HOST:PORT, copies stdin to the
// connection and the connection to stdout until the server closes the
// connection, stdout is closed or a signal arrives, and then knocks the close
// sequence, whatever happened before: the open knock may have opened the
// host even when the connection failed.
//
// With --one-time every open, the first and each one knocked again, and the
// close are one-time sequences of fresh nonces. A random nonce may be one
// that the user knocked already in this period (with k opens so far, the
// chance is k/1024), which the daemon refuses as a replay, and the guard
// then drops the connect: so when connecting timed out and no open was
// knocked again (a --connect-timeout below 300ms), the proxy knocks open once
// more, with a new nonce, and tries to connect again before it gives up.
func (o *options) proxy(ctx context.Context, k *knocker, stdin io.Reader, stdout io.Writer) error {
	knockOpen := func() error {
		seq, err := o.openSequence(o.now())
		if err != nil {
			return err
		}
		_, err = k.knock(ctx, "open", seq)
		return err
	}
	knockClose := func() error {
		seq, err := o.closeSequence(o.now())
		if err != nil {
			return err
		}
		// Not ctx: the close knock also follows a SIGHUP, which is how
		// ssh ends its ProxyCommand.
		_, err = k.knock(context.Background(), "close", seq)
		return err
	}
	return o.carry(ctx, gate{addr: k.addr, open: knockOpen, close: knockClose, replays: o.oneTime, tracef: k.tracef}, stdin, stdout)
}

// gate is how a proxy opens and closes the host: by knocks or by SPA.
type gate struct {
	addr  netip.Addr
	open  func() error // open, or open again
	close func() error // close, whatever happened, even after ctx ended
	// replays: an open may be refused as a replay (one-time sequences), so
	// open once more after a connect that timed out.
	replays bool
	tracef  func(format string, args ...any)
}

// carry opens g, connects to the address of g and o.port, carries stdin
// and stdout, and closes g whatever happened (see proxy).
func (o *options) carry(ctx context.Context, g gate, stdin io.Reader, stdout io.Writer) error {
	again := 0
	openAgain := func() error { again++; return g.open() }
	if err := g.open(); err != nil {
		return err
	}
	ap := netip.AddrPortFrom(g.addr, o.port)
	conn, err := dialRetry(ctx, ap, o.connectTimeout, openAgain)
	var ne net.Error
	if err != nil && g.replays && again == 0 && context.Cause(ctx) == nil && errors.As(err, &ne) && ne.Timeout() {
		if err = openAgain(); err == nil {
			conn, err = dialRetry(ctx, ap, o.connectTimeout, openAgain)
		}
	}
	if err == nil {
		g.tracef("connect %s: connected", ap)
		err = splice(ctx, conn, stdin, stdout)
	}
	cerr := g.close()
	if err != nil && err != errHangup {
		return err
	}
	if cerr != nil {
		return cerr
	}
	return err
}

// dialRetry connects to ap, trying again until total has passed: the daemon
// may open the host a little after the last knock left. Before an attempt
// that follows one that timed out, it calls knockAgain: a knock may have
// passed unseen (a flooded daemon's full queue lets SYNs through, and the
// guard still drops the connect), and the same sequence knocked again opens.
func dialRetry(ctx context.Context, ap netip.AddrPort, total time.Duration, knockAgain func() error) (*net.TCPConn, error) {
	deadline := time.Now().Add(total)
	attempt := firstAttempt
	var last error
	timedOut := false
	for {
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return nil, fmt.Errorf("connect %s: %w", ap, dialReason(last))
		}
		if timedOut {
			if err := knockAgain(); err != nil {
				return nil, err
			}
			if remaining = time.Until(deadline); remaining <= 0 {
				return nil, fmt.Errorf("connect %s: %w", ap, dialReason(last))
			}
		}
		d := net.Dialer{Timeout: min(attempt, remaining)}
		c, err := d.DialContext(ctx, "tcp", ap.String())
		if err == nil {
			return c.(*net.TCPConn), nil
		}
		if cause := context.Cause(ctx); cause != nil {
			return nil, cause
		}
		last = err
		var ne net.Error
		if timedOut = errors.As(err, &ne) && ne.Timeout(); timedOut {
			attempt *= 2
			continue
		}
		t := time.NewTimer(min(retryPause, remaining))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, context.Cause(ctx)
		case <-t.C:
		}
	}
}

// splice copies stdin to conn and conn to stdout. The end of stdin half
// closes the connection (the server sees EOF and may still answer); the
// session ends when the server closes the connection or stdout is closed
// (nil), when the connection fails (an error), or when ctx ends (its cause).
func splice(ctx context.Context, conn *net.TCPConn, stdin io.Reader, stdout io.Writer) error {
	defer conn.Close()
	peer := conn.RemoteAddr()
	done := make(chan error, 2)
	go func() {
		_, werr := copyStream(conn, stdin)
		if werr != nil {
			done <- fmt.Errorf("send to %v: %w", peer, dialReason(werr))
			return
		}
		// End of stdin, or stdin failed: either way nothing more to send.
		_ = conn.CloseWrite()
	}()
	go func() {
		rerr, _ := copyStream(stdout, conn)
		if rerr != nil {
			done <- fmt.Errorf("receive from %v: %w", peer, dialReason(rerr))
			return
		}
		// The server closed the connection, or stdout was closed.
		done <- nil
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// copyStream copies src to dst until src ends, and tells which side failed:
// rerr is a read error of src (not io.EOF), werr a write error of dst.
func copyStream(dst io.Writer, src io.Reader) (rerr, werr error) {
	buf := make([]byte, copyBuffer)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return nil, werr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if err != nil {
			return err, nil
		}
	}
}
