package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// newLogger returns the daemon's logger on f (standard error): slog's text
// format, or, when f is the journal's stream (onJournal), the same lines
// without the time, which the journal adds, and each prefixed with its
// syslog priority.
func newLogger(f *os.File, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if !onJournal(f) {
		return slog.New(slog.NewTextHandler(f, opts))
	}
	w := &priorityWriter{out: f}
	return slog.New(&journalHandler{Handler: slog.NewTextHandler(w, opts), w: w})
}

// onJournal reports whether f is connected to the journal: systemd sets
// JOURNAL_STREAM to the device and inode numbers ("DEV:INO", decimal) of
// the stream it connects standard output and error to, and f must be that
// stream (a child whose standard error goes elsewhere inherits the variable
// all the same): see systemd.exec(5) and sd_journal_stream_fd(3).
func onJournal(f *os.File) bool {
	dev, ino, ok := strings.Cut(os.Getenv("JOURNAL_STREAM"), ":")
	if !ok {
		return false
	}
	d, err1 := strconv.ParseUint(dev, 10, 64)
	i, err2 := strconv.ParseUint(ino, 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && uint64(st.Dev) == d && uint64(st.Ino) == i
}

// errorPrefix is the priority prefix of the one-line error of a failed
// start, written to w: "<3>" (error) on the journal, else "".
func errorPrefix(w io.Writer) string {
	if f, ok := w.(*os.File); ok && f == os.Stderr && onJournal(f) {
		return "<3>"
	}
	return ""
}

// journalHandler writes slog's text lines without the time, each prefixed
// with the syslog priority of its level, "<4>" for a warning, which the
// journal reads as the line's priority (sd-daemon(3)).
type journalHandler struct {
	slog.Handler // a text handler writing to w
	w            *priorityWriter
}

// Handle writes r as one line: w's lock holds from setting the priority
// to the write.
func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	h.w.prio = priority(r.Level)
	r.Time = time.Time{} // the text handler leaves out a zero time
	return h.Handler.Handle(ctx, r)
}

// WithAttrs returns a journalHandler on the same writer.
func (h *journalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &journalHandler{Handler: h.Handler.WithAttrs(attrs), w: h.w}
}

// WithGroup returns a journalHandler on the same writer.
func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{Handler: h.Handler.WithGroup(name), w: h.w}
}

// priority returns the syslog priority digit of a level: error 3,
// warning 4, info 6, debug 7.
func priority(l slog.Level) byte {
	switch {
	case l >= slog.LevelError:
		return '3'
	case l >= slog.LevelWarn:
		return '4'
	case l >= slog.LevelInfo:
		return '6'
	}
	return '7'
}

// priorityWriter prefixes each write (one log line) with "<prio>" and
// writes both at once; its buffer is reused from line to line.
type priorityWriter struct {
	mu   sync.Mutex // held by journalHandler.Handle around the write
	out  io.Writer
	prio byte
	buf  []byte
}

func (w *priorityWriter) Write(p []byte) (int, error) {
	w.buf = append(append(w.buf[:0], '<', w.prio, '>'), p...)
	if _, err := w.out.Write(w.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}
