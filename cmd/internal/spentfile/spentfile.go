// Package spentfile keeps the used one-time sequences of nfqknockd in a
// file, so that a stop and a start, or a reboot, do not make them usable
// again: the table's set spent (package nft) keeps them over a restart
// only, and a stop deletes it.
//
// The file holds opaque 16-byte digests with the instant until which their
// sequence could be accepted, nothing else: no secret, no user, no port.
// It is text, one entry a line after a header line:
//
//	nfqknockd-spent 1
//	0123456789abcdef0123456789abcdef 1767225600
//
// (lower-case hex digest, a space, the end of its life in Unix seconds).
// Write replaces it atomically (a temporary file, fsync, rename, fsync of
// the directory); Parse refuses the whole file at the first line that is
// wrong, and a file of more than MaxEntries entries.
package spentfile

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// Header is the first line of a file, without its newline.
const Header = "nfqknockd-spent 1"

// MaxEntries bounds the entries of a file, as the size of the table's set
// spent bounds the set: Write keeps the MaxEntries that live longest, Parse
// refuses a file with more.
const MaxEntries = 65536

// lineLen is the longest line of an entry: 32 hex digits, a space, an
// int64 in decimal, a newline.
const lineLen = 32 + 1 + 19 + 1

// MaxSize bounds the size of a file that Read reads.
const MaxSize = len(Header) + 1 + MaxEntries*lineLen

// Entry is a used one-time sequence: its digest, and the instant until
// which it could be accepted (after that it needs no keeping).
type Entry struct {
	Key   [16]byte
	Until time.Time
}

// Parse reads the entries of a file's contents. Its error names the line
// and what is wrong with it; the entries are then none. Entries whose
// instant has passed are kept: the caller drops them (Live).
func Parse(data []byte) ([]Entry, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxSize)
	}
	rest, ok := bytes.CutPrefix(data, []byte(Header+"\n"))
	if !ok {
		return nil, fmt.Errorf("line 1: not %q", Header)
	}
	var out []Entry
	for n := 2; len(rest) > 0; n++ {
		line, tail, ok := bytes.Cut(rest, []byte{'\n'})
		if !ok {
			return nil, fmt.Errorf("line %d: no newline at its end (cut short?)", n)
		}
		rest = tail
		if len(out) == MaxEntries {
			return nil, fmt.Errorf("line %d: more than %d entries", n, MaxEntries)
		}
		e, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// parseLine reads one entry: 32 lower-case hex digits, one space, a
// positive decimal number of seconds.
func parseLine(line []byte) (Entry, error) {
	var e Entry
	key, secs, ok := bytes.Cut(line, []byte{' '})
	if !ok || len(key) != 32 {
		return e, errors.New("want 32 hex digits, a space and Unix seconds")
	}
	for _, c := range key {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return e, errors.New("the digest is not lower-case hex")
		}
	}
	if _, err := hex.Decode(e.Key[:], key); err != nil {
		return e, fmt.Errorf("the digest: %w", err)
	}
	if len(secs) == 0 || secs[0] < '1' || secs[0] > '9' {
		return e, errors.New("the time is not a positive number of Unix seconds")
	}
	s, err := strconv.ParseInt(string(secs), 10, 64)
	if err != nil || s > maxUnix {
		return e, errors.New("the time is not a positive number of Unix seconds, at most " + strconv.FormatInt(maxUnix, 10))
	}
	e.Until = time.Unix(s, 0)
	return e, nil
}

// maxUnix is the latest instant a file holds: year 9999, well beyond any
// period and grace.
const maxUnix = 253402300799

// Format returns the contents of a file holding entries, in the order
// given; the instants are rounded up to whole seconds (an entry lives a
// little longer, never shorter) and clamped to the year 9999.
func Format(entries []Entry) []byte {
	b := make([]byte, 0, len(Header)+1+len(entries)*lineLen)
	b = append(b, Header...)
	b = append(b, '\n')
	for _, e := range entries {
		s := e.Until.Unix()
		if e.Until.Nanosecond() > 0 {
			s++
		}
		s = min(max(s, 1), maxUnix)
		b = hex.AppendEncode(b, e.Key[:])
		b = append(b, ' ')
		b = strconv.AppendInt(b, s, 10)
		b = append(b, '\n')
	}
	return b
}

// Live returns the entries that still live after now, one per key (the
// latest instant wins), at most MaxEntries of them (those that live
// longest), in key order.
func Live(entries []Entry, now time.Time) []Entry {
	latest := make(map[[16]byte]time.Time, len(entries))
	for _, e := range entries {
		if !e.Until.After(now) {
			continue
		}
		if u, ok := latest[e.Key]; !ok || u.Before(e.Until) {
			latest[e.Key] = e.Until
		}
	}
	out := make([]Entry, 0, len(latest))
	for k, u := range latest {
		out = append(out, Entry{Key: k, Until: u})
	}
	if len(out) > MaxEntries {
		slices.SortFunc(out, func(a, b Entry) int {
			return cmp.Or(b.Until.Compare(a.Until), bytes.Compare(a.Key[:], b.Key[:]))
		})
		out = out[:MaxEntries]
	}
	slices.SortFunc(out, func(a, b Entry) int { return bytes.Compare(a.Key[:], b.Key[:]) })
	return out
}

// Path returns the file of table's used sequences in dir.
func Path(dir, table string) string {
	return filepath.Join(dir, table+".spent")
}

// Read returns the live entries of the file at path at now. A missing
// file holds none (no error); an error of a file that is there names the
// file and what is wrong.
func Read(path string, now time.Time) ([]Entry, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, int64(MaxSize)+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	entries, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return Live(entries, now), nil
}

// Write replaces the file at path with the live entries at now
// (Live), atomically: a temporary file in the same directory, written and
// synced, renamed over path, then the directory synced. A failure leaves
// the file as it was.
func Write(path string, entries []Entry, now time.Time) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(Format(Live(entries, now)))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("write %s: sync %s: %w", path, dir, err)
		}
	}
	return nil
}
