package knock

import (
	"strings"
	"testing"
	"time"
)

func TestParseDigest(t *testing.T) {
	tests := []struct {
		in     string
		want   Digest
		seqLen int
		err    bool
	}{
		{"md5", MD5, 8, false},
		{"MD5", MD5, 8, false},
		{"sha256", SHA256, 16, false},
		{"SHA256", SHA256, 16, false},
		{"Sha384", SHA384, 24, false},
		{"sha512", SHA512, 32, false},
		{"sha1", 0, 0, true},
		{"", 0, 0, true},
		{"md5 ", 0, 0, true},
	}
	for _, tt := range tests {
		d, err := ParseDigest(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("ParseDigest(%q) error = %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if err != nil {
			continue
		}
		if d != tt.want || d.SeqLen() != tt.seqLen || d.String() != strings.ToLower(tt.in) {
			t.Errorf("ParseDigest(%q) = %v (SeqLen %d), want %v (SeqLen %d)", tt.in, d, d.SeqLen(), tt.want, tt.seqLen)
		}
	}
	if got := Digest(9).String(); got != "Digest(9)" {
		t.Errorf("Digest(9).String() = %q", got)
	}
	if Digest(9).SeqLen() != 0 || Sequence(Digest(9), "a", 0, FullRange) != nil {
		t.Error("an unknown digest makes a sequence")
	}
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		in      string
		want    Range
		wantErr string
	}{
		{"1-65535", Range{1, 65535}, ""},
		{"1000-2000", Range{1000, 2000}, ""},
		{"0010-0020", Range{10, 20}, ""},
		{"65534-65535", Range{65534, 65535}, ""},
		{"0-100", Range{}, "start: port must be 1..65535"},
		{"1-65536", Range{}, "end: port must be 1..65535"},
		{"1-99999999999999999999999", Range{}, "end: port must be 1..65535"},
		{"a-100", Range{}, "start: port must be a number 1..65535"},
		{"1-", Range{}, "end: port must be a number 1..65535"},
		{"-5", Range{}, "start: port must be a number 1..65535"},
		{"1-2-3", Range{}, "end: port must be a number 1..65535"},
		{" 1-2", Range{}, "start: port must be a number 1..65535"},
		{"+1-2", Range{}, "start: port must be a number 1..65535"},
		{"100", Range{}, "range must be START-END, for example 1-65535"},
		{"", Range{}, "range must be START-END, for example 1-65535"},
		{"200-100", Range{}, "start 200 is above end 100"},
		{"5-5", Range{}, "start and end must differ: the sequence formula divides by end-start"},
	}
	for _, tt := range tests {
		r, err := ParseRange(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParseRange(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || r != tt.want {
			t.Errorf("ParseRange(%q) = %v, %v; want %v", tt.in, r, err, tt.want)
		}
		if r2, err := ParseRange(r.String()); err != nil || r2 != r {
			t.Errorf("round trip of %v: %v, %v", r, r2, err)
		}
	}
}

func TestParsePorts(t *testing.T) {
	tests := []struct {
		in      string
		want    []uint16
		wantErr string
	}{
		{"22", []uint16{22}, ""},
		{"22,443", []uint16{22, 443}, ""},
		{"443,22,22", []uint16{443, 22, 22}, ""},
		{"1,65535", []uint16{1, 65535}, ""},
		{"0", nil, "port must be 1..65535"},
		{"65536", nil, "port must be 1..65535"},
		{"ssh", nil, "port must be a number 1..65535"},
		{"", nil, "port must be a number 1..65535"},
		{"22,0", nil, `"0": port must be 1..65535`},
		{"22,,443", nil, `"": port must be a number 1..65535`},
		{"22,", nil, `"": port must be a number 1..65535`},
		{"22, 443", nil, `" 443": port must be a number 1..65535`},
		{"-1", nil, "port must be a number 1..65535"},
	}
	for _, tt := range tests {
		got, err := ParsePorts(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParsePorts(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !equalPorts(got, tt.want) {
			t.Errorf("ParsePorts(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestRangeContains(t *testing.T) {
	r := Range{1000, 2000}
	for p, want := range map[uint16]bool{999: false, 1000: true, 1999: true, 2000: true, 2001: false, 0: false} {
		if r.Contains(p) != want {
			t.Errorf("%v.Contains(%d) = %v", r, p, !want)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := DefaultParams()
	if err := ok.Validate(); err != nil {
		t.Fatalf("DefaultParams: %v", err)
	}
	tests := []struct {
		name    string
		mod     func(*Params)
		wantErr string // substring; "" = valid
	}{
		{"sha512", func(p *Params) { p.Digest = SHA512 }, ""},
		{"unknown digest", func(p *Params) { p.Digest = 4 }, "unknown"},
		{"start 0", func(p *Params) { p.Range = Range{0, 10} }, "port must be 1..65535"},
		{"start = end", func(p *Params) { p.Range = Range{10, 10} }, "must differ"},
		{"start > end", func(p *Params) { p.Range = Range{11, 10} }, "above end"},
		{"empty open", func(p *Params) { p.OpenSecret = "" }, "open secret"},
		{"empty close", func(p *Params) { p.CloseSecret = "" }, "close secret"},
		{"period 0", func(p *Params) { p.Period = 0 }, "period"},
		{"period negative", func(p *Params) { p.Period = -time.Hour }, "period"},
		{"period fraction", func(p *Params) { p.Period = 1500 * time.Millisecond }, "period"},
		{"period 1s grace 0", func(p *Params) { p.Period, p.Grace = time.Second, 0 }, ""},
		{"grace negative", func(p *Params) { p.Grace = -1 }, "grace"},
		{"grace half", func(p *Params) { p.Grace = 30 * time.Minute }, "grace"},
		{"grace just below half", func(p *Params) { p.Grace = 30*time.Minute - 1 }, ""},
		{"local hour", func(p *Params) { p.LocalHour = true }, ""},
		{"local hour 30m", func(p *Params) { p.LocalHour, p.Period = true, 30*time.Minute }, "local-hour"},
	}
	for _, tt := range tests {
		p := DefaultParams()
		tt.mod(&p)
		err := p.Validate()
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
		} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: error %v, want it to mention %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestPeriodStart(t *testing.T) {
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	moscow, err := time.LoadLocation("Europe/Moscow")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		unix   int64
		nsec   int64
		period time.Duration
		local  *time.Location
		want   int64
	}{
		{"hour", 1762259696, 0, time.Hour, nil, 1762257600},
		{"hour start", 1762257600, 0, time.Hour, nil, 1762257600},
		{"hour end", 1762261199, 999999999, time.Hour, nil, 1762257600},
		{"epoch", 0, 0, time.Hour, nil, 0},
		{"before epoch", -1, 0, time.Hour, nil, -3600},
		{"before epoch, sub-second", -1, 500, time.Hour, nil, -3600},
		{"30s", 1762259696, 0, 30 * time.Second, nil, 1762259670},
		{"1 day", 1762259696, 0, 24 * time.Hour, nil, 1762214400},
		// 2025-11-04 18:04:56 IST (+05:30): the hour began at 18:00 IST.
		{"kolkata local hour", 1762259696, 0, time.Hour, kolkata, 1762259400},
		{"kolkata just before", 1762259399, 0, time.Hour, kolkata, 1762255800},
		{"moscow local hour", 1762259696, 0, time.Hour, moscow, 1762257600},
		{"moscow 2001 (DST)", 1000000000, 0, time.Hour, moscow, 999997200},
	}
	for _, tt := range tests {
		p := DefaultParams()
		p.Period = tt.period
		if tt.local != nil {
			p.LocalHour, p.Location = true, tt.local
		}
		if got := p.PeriodStart(time.Unix(tt.unix, tt.nsec)); got != tt.want {
			t.Errorf("%s: PeriodStart(%d) = %d, want %d", tt.name, tt.unix, got, tt.want)
		}
	}
}

// TestWindowLordHowe checks the local-hour rule across the half-hour DST
// changes of Australia/Lord_Howe, where a period is not one hour long: each
// instant must fall in [from, until) of its own window, and the windows of
// consecutive instants must tile time.
func TestWindowLordHowe(t *testing.T) {
	lh, err := time.LoadLocation("Australia/Lord_Howe")
	if err != nil {
		t.Fatal(err)
	}
	p := DefaultParams()
	p.LocalHour, p.Location = true, lh
	// 2025-04-06 (DST ends at 02:00 +11 -> 01:30 +10:30) and
	// 2025-10-05 (DST begins at 02:00 +10:30 -> 02:30 +11).
	for _, day := range []int64{1743865200, 1759590000} {
		s := day - 6*3600
		_, from, until := p.window(time.Unix(s, 0))
		for ; s < day+6*3600; s += 60 {
			label, f, u := p.window(time.Unix(s, 0))
			if s < f || s >= u || label > s || u-f > 3600 || u <= f {
				t.Fatalf("t=%d: label %d, window [%d, %d)", s, label, f, u)
			}
			if s >= until { // a new window must start where the old one ended
				if f != until {
					t.Fatalf("t=%d: window [%d, %d) does not follow [%d, %d)", s, f, u, from, until)
				}
				from, until = f, u
			} else if f != from || u != until {
				t.Fatalf("t=%d: window changed inside [%d, %d) to [%d, %d)", s, from, until, f, u)
			}
		}
	}
}

func TestFormatSequences(t *testing.T) {
	if got := FormatSequences([]uint16{1, 22, 65535}, []uint16{4}); got != "OPEN: 1 22 65535\nCLOSE: 4\n" {
		t.Errorf("got %q", got)
	}
	if got := FormatSequences(nil, nil); got != "OPEN:\nCLOSE:\n" {
		t.Errorf("got %q", got)
	}
}

func TestSequenceBadRange(t *testing.T) {
	for _, r := range []Range{{10, 10}, {11, 10}} {
		if got := Sequence(MD5, "a", 0, r); got != nil {
			t.Errorf("Sequence with range %v = %v, want nil", r, got)
		}
	}
}
