package nft

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

func TestAllowKey(t *testing.T) {
	tests := []struct {
		addr string
		port uint16
		want []byte // as `nft --debug=netlink` prints `10.1.2.3 . 22`: 0302010a 00001600 (host order words)
	}{
		{"10.1.2.3", 22, []byte{10, 1, 2, 3, 0, 22, 0, 0}},
		{"10.200.0.2", 443, []byte{10, 200, 0, 2, 0x01, 0xbb, 0, 0}},
		{"fd00::1", 65535, append(netip.MustParseAddr("fd00::1").AsSlice(), 0xff, 0xff, 0, 0)},
	}
	for _, tt := range tests {
		a := netip.MustParseAddr(tt.addr)
		k := allowKey(a, tt.port)
		if !bytes.Equal(k, tt.want) {
			t.Errorf("allowKey(%s, %d) = % x, want % x", a, tt.port, k, tt.want)
		}
		if b, p, ok := parseAllowKey(k); !ok || b != a || p != tt.port {
			t.Errorf("parseAllowKey(% x) = %s %d %v", k, b, p, ok)
		}
	}
	for _, tt := range []struct {
		name string
		key  []byte
		addr string // "": not ok
	}{
		{"old IPv4 key: address alone", []byte{10, 0, 0, 1}, "10.0.0.1"},
		{"old IPv6 key: address alone", netip.MustParseAddr("fd00::9").AsSlice(), "fd00::9"},
		{"padding not zero", []byte{10, 0, 0, 1, 0, 22, 0, 1}, ""},
		{"port 0", []byte{10, 0, 0, 1, 0, 0, 0, 0}, ""},
		{"5 bytes", []byte{10, 0, 0, 1, 0}, ""},
		{"empty", nil, ""},
	} {
		a, p, ok := parseAllowKey(tt.key)
		switch {
		case tt.addr == "" && ok:
			t.Errorf("%s: parseAllowKey(% x) = %s %d, want not ok", tt.name, tt.key, a, p)
		case tt.addr != "" && (!ok || a != netip.MustParseAddr(tt.addr) || p != 0):
			t.Errorf("%s: parseAllowKey(% x) = %s %d %v, want %s port 0", tt.name, tt.key, a, p, ok, tt.addr)
		}
	}
}

func TestCheckUser(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"", true},
		{"alice", true},
		{"ops-team_2.x", true},
		{strings.Repeat("a", 32), true},
		{strings.Repeat("a", 33), false},
		{"a b", false},
		{`a"b`, false},
		{"a\x00b", false},
		{"élodie", false},
		{"a/b", false},
	} {
		if err := checkUser(tt.name); (err == nil) != tt.ok {
			t.Errorf("checkUser(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestCheckPorts(t *testing.T) {
	got, err := checkPorts([]uint16{443, 22, 443})
	if err != nil || !cmp.Equal(got, []uint16{22, 443}) {
		t.Errorf("checkPorts: %v %v, want [22 443]", got, err)
	}
	for _, bad := range [][]uint16{nil, {}, {22, 0}} {
		if _, err := checkPorts(bad); err == nil {
			t.Errorf("checkPorts(%v) succeeded", bad)
		}
	}
	if got := elemString(netip.MustParseAddr("10.0.0.2"), []uint16{22, 443}); got != "10.0.0.2 . { 22, 443 }" {
		t.Errorf("elemString = %q", got)
	}
}

// TestElemMessage checks an element message byte for byte where nft's
// encoding matters: the concatenated key, the timeout in milliseconds, and
// the comment as nft writes it (`nft --debug=netlink` shows `userdata = {
// \x00\x06alice\x00 }`: type NFTNL_UDATA_SET_ELEM_COMMENT, length, the
// name and its NUL). A delete carries neither timeout nor comment.
func TestElemMessage(t *testing.T) {
	set, _, _ := allowSetOf("nfqknock", netip.MustParseAddr("10.1.2.3"))
	keys := [][]byte{allowKey(netip.MustParseAddr("10.1.2.3"), 22), allowKey(netip.MustParseAddr("10.1.2.3"), 443)}
	type elem struct {
		Key      []byte
		Timeout  uint64
		UserData []byte
	}
	decode := func(m netlink.Message) (table, name string, elems []elem) {
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			t.Fatal(err)
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_SET_ELEM_LIST_TABLE:
				table = ad.String()
			case unix.NFTA_SET_ELEM_LIST_SET:
				name = ad.String()
			case unix.NFTA_SET_ELEM_LIST_ELEMENTS:
				ad.Nested(func(l *netlink.AttributeDecoder) error {
					for l.Next() {
						var e elem
						l.Nested(func(d *netlink.AttributeDecoder) error {
							for d.Next() {
								switch d.Type() {
								case unix.NFTA_SET_ELEM_KEY:
									d.Nested(func(k *netlink.AttributeDecoder) error {
										for k.Next() {
											e.Key = k.Bytes()
										}
										return nil
									})
								case unix.NFTA_SET_ELEM_TIMEOUT:
									e.Timeout = d.Uint64()
								case unix.NFTA_SET_ELEM_USERDATA:
									e.UserData = d.Bytes()
								}
							}
							return nil
						})
						elems = append(elems, e)
					}
					return nil
				})
			}
		}
		if err := ad.Err(); err != nil {
			t.Fatal(err)
		}
		return table, name, elems
	}
	alice := []byte("\x00\x06alice\x00")
	for _, tt := range []struct {
		name  string
		op    elemOp
		flags netlink.HeaderFlags
		want  []elem
	}{
		{"exclusive add", elemOp{typ: unix.NFT_MSG_NEWSETELEM, excl: true, timeout: time.Hour, comment: "alice"},
			netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Excl,
			[]elem{{keys[0], 3600000, alice}, {keys[1], 3600000, alice}}},
		{"add without user or timeout", elemOp{typ: unix.NFT_MSG_NEWSETELEM},
			netlink.Request | netlink.Acknowledge | netlink.Create,
			[]elem{{Key: keys[0]}, {Key: keys[1]}}},
		{"delete", elemOp{typ: unix.NFT_MSG_DELSETELEM, timeout: time.Hour, comment: "alice"},
			netlink.Request | netlink.Acknowledge,
			[]elem{{Key: keys[0]}, {Key: keys[1]}}},
	} {
		m, err := elemMessage(set, keys, tt.op)
		if err != nil {
			t.Fatal(err)
		}
		if m.Header.Type != netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8|tt.op.typ) || m.Header.Flags != tt.flags {
			t.Errorf("%s: header type %#x flags %v, want flags %v", tt.name, m.Header.Type, m.Header.Flags, tt.flags)
		}
		table, name, elems := decode(m)
		if table != "nfqknock" || name != "allow4" {
			t.Errorf("%s: table %q set %q", tt.name, table, name)
		}
		if diff := cmp.Diff(tt.want, elems); diff != "" {
			t.Errorf("%s: elements (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestCarryOver(t *testing.T) {
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::2")
	guard := []uint16{22, 443}
	in := []nftables.SetElement{
		{Key: allowKey(a, 22), Comment: "alice"},                                           // no timeout: stays without
		{Key: allowKey(a, 443), Timeout: time.Hour, Expires: 20 * time.Minute},             // 20m left
		{Key: allowKey(a, 80), Timeout: time.Hour, Expires: 0},                             // expired: dropped
		{Key: allowKey(b, 22), Timeout: time.Hour, Expires: time.Microsecond},              // would round to 0: dropped
		{Key: allowKey(b, 443), Timeout: time.Second, Expires: time.Millisecond},           // 1ms left
		{Key: allowKey(b, 8080), Timeout: time.Hour, Expires: time.Minute, Comment: "a b"}, // not a user name: no comment
		{Key: []byte{10, 0, 0, 9}, Timeout: time.Hour, Expires: 5 * time.Minute},           // older version: every guarded port
		{Key: b.AsSlice()}, // older version, no timeout
		{Key: []byte{10, 0, 0, 9, 0, 22, 1, 0}, Timeout: time.Hour}, // not an element of ours
	}
	c := netip.MustParseAddr("10.0.0.9")
	want := []nftables.SetElement{
		{Key: allowKey(a, 22), Comment: "alice"},
		{Key: allowKey(a, 443), Timeout: 20 * time.Minute},
		{Key: allowKey(b, 443), Timeout: time.Millisecond},
		{Key: allowKey(b, 8080), Timeout: time.Minute},
		{Key: allowKey(c, 22), Timeout: 5 * time.Minute},
		{Key: allowKey(c, 443), Timeout: 5 * time.Minute},
		{Key: allowKey(b, 22)},
		{Key: allowKey(b, 443)},
	}
	if diff := cmp.Diff(want, carryOver(in, guard)); diff != "" {
		t.Errorf("carryOver (-want +got):\n%s", diff)
	}
}
