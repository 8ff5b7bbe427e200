package spentfile

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	keyA = "000102030405060708090a0b0c0d0e0f"
	keyB = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
)

func key(s string) [16]byte {
	var k [16]byte
	for i := range k {
		n, _ := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
		k[i] = byte(n)
	}
	return k
}

func TestParse(t *testing.T) {
	h := Header + "\n"
	for _, tc := range []struct {
		name string
		data string
		want []Entry
		err  string
	}{
		{"empty", h, nil, ""},
		{"two", h + keyA + " 1767225600\n" + keyB + " 1\n", []Entry{
			{key(keyA), time.Unix(1767225600, 0)}, {key(keyB), time.Unix(1, 0)}}, ""},
		{"no header", keyA + " 1\n", nil, "line 1: not"},
		{"nothing", "", nil, "line 1: not"},
		{"other version", "nfqknockd-spent 2\n", nil, "line 1: not"},
		{"cut short", h + keyA + " 17", nil, "line 2: no newline"},
		{"upper-case digest", h + strings.ToUpper(keyB) + " 1\n", nil, "line 2: the digest is not lower-case hex"},
		{"short digest", h + keyA[2:] + " 1\n", nil, "line 2: want 32 hex digits"},
		{"no time", h + keyA + "\n", nil, "line 2: want 32 hex digits"},
		{"empty time", h + keyA + " \n", nil, "line 2: the time is not"},
		{"zero time", h + keyA + " 0\n", nil, "line 2: the time is not"},
		{"negative time", h + keyA + " -5\n", nil, "line 2: the time is not"},
		{"leading zero", h + keyA + " 01\n", nil, "line 2: the time is not"},
		{"too late", h + keyA + " 253402300800\n", nil, "line 2: the time is not"},
		{"overflow", h + keyA + " 99999999999999999999\n", nil, "line 2: the time is not"},
		{"two spaces", h + keyA + "  1\n", nil, "line 2: the time is not"},
		{"trailing space", h + keyA + " 1 \n", nil, "line 2: the time is not"},
		{"blank line", h + keyA + " 1\n\n", nil, "line 3: want 32 hex digits"},
		{"CRLF", h + keyA + " 1\r\n", nil, "line 2: the time is not"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.data))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || got != nil {
					t.Fatalf("Parse = %v, %v; want error %q and no entries", got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("Parse = %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i].Key != tc.want[i].Key || !got[i].Until.Equal(tc.want[i].Until) {
					t.Errorf("entry %d = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// TestParseBound: MaxEntries entries parse, one more is refused.
func TestParseBound(t *testing.T) {
	entries := make([]Entry, MaxEntries+1)
	for i := range entries {
		entries[i].Key[0], entries[i].Key[1], entries[i].Key[2] = byte(i>>16), byte(i>>8), byte(i)
		entries[i].Until = time.Unix(1<<40, 0)
	}
	data := Format(entries[:MaxEntries])
	if len(data) > MaxSize {
		t.Fatalf("%d entries take %d bytes, more than MaxSize %d", MaxEntries, len(data), MaxSize)
	}
	if got, err := Parse(data); err != nil || len(got) != MaxEntries {
		t.Fatalf("Parse of %d entries: %d, %v", MaxEntries, len(got), err)
	}
	want := "line " + strconv.Itoa(MaxEntries+2) + ": more than"
	if _, err := Parse(Format(entries)); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Parse of %d entries: %v, want %q", MaxEntries+1, err, want)
	}
	big := append(bytes.Clone(data), bytes.Repeat([]byte{'x'}, MaxSize)...)
	if _, err := Parse(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Parse of a huge file: %v, want larger than", err)
	}
}

func TestLive(t *testing.T) {
	now := time.Unix(1000, 0)
	a, b := key(keyA), key(keyB)
	got := Live([]Entry{
		{b, now.Add(time.Hour)},
		{a, now},                      // expired just now
		{a, now.Add(-time.Hour)},      // expired
		{b, now.Add(2 * time.Hour)},   // a later instant wins
		{a, now.Add(time.Nanosecond)}, // still alive
	}, now)
	want := []Entry{{a, now.Add(time.Nanosecond)}, {b, now.Add(2 * time.Hour)}}
	if len(got) != len(want) {
		t.Fatalf("Live = %v, want %v", got, want)
	}
	for i := range got {
		if got[i].Key != want[i].Key || !got[i].Until.Equal(want[i].Until) {
			t.Errorf("Live[%d] = %v, want %v", i, got[i], want[i])
		}
	}

	// Over the bound, those that live longest stay.
	many := make([]Entry, MaxEntries+10)
	for i := range many {
		many[i].Key[0], many[i].Key[1], many[i].Key[2] = byte(i>>16), byte(i>>8), byte(i)
		many[i].Until = now.Add(time.Duration(i+1) * time.Second)
	}
	kept := Live(many, now)
	if len(kept) != MaxEntries {
		t.Fatalf("Live kept %d, want %d", len(kept), MaxEntries)
	}
	for _, e := range kept {
		if !e.Until.After(now.Add(10 * time.Second)) {
			t.Fatalf("Live kept %v, one of the 10 that die first", e)
		}
	}
}

// TestWriteRead: what Write writes, Read reads back, the expired dropped
// and the instants rounded up to the second; a missing file holds none;
// a corrupt one is an error naming the file.
func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	path := Path(dir, "nfqknock")
	now := time.Unix(1767225600, 0)
	if got, err := Read(path, now); err != nil || got != nil {
		t.Fatalf("Read of a missing file = %v, %v", got, err)
	}
	a, b := key(keyA), key(keyB)
	in := []Entry{{a, now.Add(1500 * time.Millisecond)}, {b, now.Add(-time.Second)}}
	if err := Write(path, in, now); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Key != a || !got[0].Until.Equal(now.Add(2*time.Second)) {
		t.Fatalf("Read = %v, want %s until %v", got, keyA, now.Add(2*time.Second))
	}
	data, _ := os.ReadFile(path)
	if want := Header + "\n" + keyA + " 1767225602\n"; string(data) != want {
		t.Errorf("file:\n%s\nwant:\n%s", data, want)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v (%v), want 0600", fi.Mode(), err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}

	if err := os.WriteFile(path, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := Read(path, now); err == nil || got != nil || !strings.Contains(err.Error(), path+": line 1: not") {
		t.Fatalf("Read of a corrupt file = %v, %v; want an error naming %s and line 1", got, err, path)
	}
}

// TestWriteFails: a directory that is gone leaves an error naming the
// file, and nothing behind.
func TestWriteFails(t *testing.T) {
	path := Path(filepath.Join(t.TempDir(), "gone"), "nfqknock")
	if err := Write(path, nil, time.Now()); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Write into a missing directory = %v, want an error naming %s", err, path)
	}
}

// FuzzParse: Parse never panics; what it accepts, Format writes back
// byte for byte.
func FuzzParse(f *testing.F) {
	h := Header + "\n"
	for _, s := range []string{h, h + keyA + " 1767225600\n", h + keyA + " 1\n" + keyB + " 253402300799\n",
		"", "garbage", h + keyA + " 0\n", h + keyA} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := Parse(data)
		if err != nil {
			if entries != nil {
				t.Fatalf("entries with an error: %v", err)
			}
			return
		}
		if len(entries) > MaxEntries {
			t.Fatalf("%d entries accepted", len(entries))
		}
		if out := Format(entries); !bytes.Equal(out, data) {
			t.Fatalf("Format(Parse(%q)) = %q", data, out)
		}
	})
}
