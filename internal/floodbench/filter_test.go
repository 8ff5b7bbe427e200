package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// setElemMessage builds an nf_tables NEWSETELEM (or DELSETELEM) message as
// the kernel announces it: table, set, and a list of elements with keys.
func setElemMessage(t *testing.T, typ int, set string, keys ...[]byte) netlink.Message {
	t.Helper()
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, "nfqknock")
	ae.String(unix.NFTA_SET_ELEM_LIST_SET, set)
	ae.Nested(unix.NFTA_SET_ELEM_LIST_ELEMENTS, func(list *netlink.AttributeEncoder) error {
		for _, k := range keys {
			list.Nested(unix.NFTA_LIST_ELEM, func(elem *netlink.AttributeEncoder) error {
				elem.Nested(unix.NFTA_SET_ELEM_KEY, func(key *netlink.AttributeEncoder) error {
					key.Bytes(unix.NFTA_DATA_VALUE, k)
					return nil
				})
				elem.Uint64(unix.NFTA_SET_ELEM_TIMEOUT, 3600000)
				return nil
			})
		}
		return nil
	})
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | typ)},
		Data:   append([]byte{unix.NFPROTO_INET, 0, 0, 0}, b...),
	}
}

func TestParseAllowEvents(t *testing.T) {
	at := time.Unix(1000, 0)
	a4 := netip.MustParseAddr("10.200.0.2")
	a6 := netip.MustParseAddr("fd00:200::2")
	k4, k6 := a4.As4(), a6.As16()
	got := parseAllowEvents(setElemMessage(t, unix.NFT_MSG_NEWSETELEM, "allow4", k4[:]), at)
	if len(got) != 1 || !got[0].add || got[0].addr != a4 || !got[0].at.Equal(at) {
		t.Fatalf("allow4 add: %+v", got)
	}
	got = parseAllowEvents(setElemMessage(t, unix.NFT_MSG_DELSETELEM, "allow6", k6[:], k6[:]), at)
	if len(got) != 2 || got[0].add || got[0].addr != a6 {
		t.Fatalf("allow6 delete: %+v", got)
	}
	// The elements of this version: source . port.
	got = parseAllowEvents(setElemMessage(t, unix.NFT_MSG_NEWSETELEM, "allow4", append(a4.AsSlice(), 0, 22, 0, 0)), at)
	if len(got) != 1 || !got[0].add || got[0].addr != a4 {
		t.Fatalf("allow4 add of source . port: %+v", got)
	}
	got = parseAllowEvents(setElemMessage(t, unix.NFT_MSG_DELSETELEM, "allow6", append(a6.AsSlice(), 0x01, 0xbb, 0, 0)), at)
	if len(got) != 1 || got[0].add || got[0].addr != a6 {
		t.Fatalf("allow6 delete of source . port: %+v", got)
	}
	if got := parseAllowEvents(setElemMessage(t, unix.NFT_MSG_NEWSETELEM, "first", []byte{0, 22}), at); got != nil {
		t.Fatalf("set first: %+v, want nothing", got)
	}
	m := setElemMessage(t, unix.NFT_MSG_NEWSETELEM, "allow4", k4[:])
	m.Header.Type = netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWRULE)
	if got := parseAllowEvents(m, at); got != nil {
		t.Fatalf("a rule: %+v, want nothing", got)
	}
}

func TestTargets(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	rep := &report{Sender: "IPPROTO_RAW",
		Connect: &connectResult{Without: latStats{Connects: 2000, MedianUS: 20}, Filter: latStats{Connects: 2000, MedianUS: 25},
			FilterMedianRatio: 1.25},
		Filter: []filterFlood{
			{Sources: 1000000, CPUPerMillion: 0.05, PeakRSSMiB: 6, Knock: latencyResult{Tries: 20, Opened: 20, P95MS: f(1.5)}},
			{Sources: 1, Knock: latencyResult{Tries: 20, Opened: 19, P95MS: f(6)}},
		},
		Rows: []row{
			{Sources: 1000, Sender: "IPPROTO_RAW", LeakedPct: f(0.5), AnsweredRatio: f(0.6), AllocsPerPkt: f(0)},
			{Sources: 1000000, Sender: "AF_PACKET", LeakedPct: f(11), AnsweredRatio: f(0.6)}, // not the report's sender: no target
		},
	}
	want := map[string]string{
		"unguarded connect latency, with the daemon / without, median":     "MISSED",
		"opened under the 1,000,000-source random-port flood":              "met",
		"knock-to-open p95 under the 1,000,000-source flood":               "met",
		"daemon CPU per million random-port flood SYNs (1,000,000-source)": "met",
		"peak RSS at 1,000,000-source (kernel filter)":                     "met",
		"opened under the one-source random-port flood":                    "MISSED",
		"knock-to-open p95 under the one-source flood":                     "MISSED",
		"--queue-all, 1,000-source: leaked":                                "met",
		"--queue-all, 1,000-source: answered / kernel-only":                "MISSED",
		"allocations per queued packet (largest of the rows)":              "met",
	}
	got := targets(rep)
	if len(got) != len(want) {
		t.Errorf("%d targets, want %d: %+v", len(got), len(want), got)
	}
	for _, tg := range got {
		if w, ok := want[tg.What]; !ok || verdict(tg) != w {
			t.Errorf("%q: %s (%s), want %q", tg.What, verdict(tg), tg.Figure, w)
		}
	}
	var b strings.Builder
	printTable(&b, rep)
	for _, s := range []string{"kernel filter", "1,000,000-source", "MISSED", "one-source"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("table without %q:\n%s", s, b.String())
		}
	}
}
