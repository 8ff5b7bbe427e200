package nft

import (
	"encoding/binary"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// notice makes an nf_tables notification of type typ in family fam, sent
// with the port ID port, whose attribute 1 is table and whose attribute
// nameAttr is name.
func notice(typ int, fam byte, port uint32, table string, nameAttr uint16, name string) netlink.Message {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	if typ == unix.NFT_MSG_NEWGEN {
		ae.Uint32(1, 42)     // NFTA_GEN_ID
		ae.Uint32(2, 123456) // NFTA_GEN_PROC_PID: a global thread ID
	} else {
		ae.String(attrObjTable, table)
		if nameAttr != attrObjTable {
			ae.String(nameAttr, name)
		}
	}
	b, _ := ae.Encode()
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | typ), PID: port},
		Data:   append([]byte{fam, unix.NFNETLINK_V0, 0, 0}, b...),
	}
}

// TestNotification: every kind of change of the watched table is named,
// whoever sent it; the Conn's own messages are told by their port ID
// alone; other tables, other families and other subsystems are nothing.
func TestNotification(t *testing.T) {
	const own, other = 4242, 77
	inet := byte(unix.NFPROTO_INET)
	for _, tc := range []struct {
		name string
		m    netlink.Message
		want change
	}{
		{"table deleted", notice(unix.NFT_MSG_DELTABLE, inet, other, "nfqknock", 1, ""), change{what: "table deleted"}},
		{"table made dormant", notice(unix.NFT_MSG_NEWTABLE, inet, other, "nfqknock", 1, ""), change{what: "table changed"}},
		{"chain deleted", notice(unix.NFT_MSG_DELCHAIN, inet, other, "nfqknock", 3, "guard"), change{what: "chain guard deleted"}},
		{"chain added", notice(unix.NFT_MSG_NEWCHAIN, inet, other, "nfqknock", 3, "extra"), change{what: "chain extra added or changed"}},
		{"rule deleted", notice(unix.NFT_MSG_DELRULE, inet, other, "nfqknock", 2, "guarded"), change{what: "rules of chain guarded deleted"}},
		{"rule added", notice(unix.NFT_MSG_NEWRULE, inet, other, "nfqknock", 2, "guarded"), change{what: "rule added to chain guarded"}},
		{"set deleted", notice(unix.NFT_MSG_DELSET, inet, other, "nfqknock", 2, "allow4"), change{what: "set allow4 deleted"}},
		{"set added", notice(unix.NFT_MSG_NEWSET, inet, other, "nfqknock", 2, "x"), change{what: "set x added"}},
		{"element deleted", notice(unix.NFT_MSG_DELSETELEM, inet, other, "nfqknock", 2, "guard"), change{what: "elements of set guard deleted"}},
		{"element added", notice(unix.NFT_MSG_NEWSETELEM, inet, other, "nfqknock", 2, "allow4"), change{what: "elements added to set allow4"}},
		{"object added", notice(unix.NFT_MSG_NEWOBJ, inet, other, "nfqknock", 2, "c"), change{what: "object c added or changed"}},
		{"flowtable deleted", notice(unix.NFT_MSG_DELFLOWTABLE, inet, other, "nfqknock", 2, "f"), change{what: "flowtable f deleted"}},
		{"own element added", notice(unix.NFT_MSG_NEWSETELEM, inet, own, "nfqknock", 2, "allow4"), change{what: "elements added to set allow4", own: true}},
		{"own table replaced", notice(unix.NFT_MSG_DELTABLE, inet, own, "nfqknock", 1, ""), change{what: "table deleted", own: true}},
		{"end of an outside transaction", notice(unix.NFT_MSG_NEWGEN, unix.AF_UNSPEC, other, "", 0, ""), change{gen: true}},
		{"end of an own transaction", notice(unix.NFT_MSG_NEWGEN, unix.AF_UNSPEC, own, "", 0, ""), change{gen: true, own: true}},
		{"another table", notice(unix.NFT_MSG_DELSETELEM, inet, other, "filter", 2, "guard"), change{}},
		{"a table whose name begins with ours", notice(unix.NFT_MSG_DELTABLE, inet, other, "nfqknock_backup", 1, ""), change{}},
		{"another family", notice(unix.NFT_MSG_DELTABLE, unix.NFPROTO_IPV4, other, "nfqknock", 1, ""), change{}},
		{"a read", notice(unix.NFT_MSG_GETSETELEM, inet, other, "nfqknock", 2, "guard"), change{}},
		{"another subsystem", netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_CTNETLINK<<8 | 0), PID: other},
			Data: []byte{inet, 0, 0, 0, 0}}, change{}},
		{"too short", netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_DELTABLE)}}, change{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := notification(tc.m, "nfqknock", own); got != tc.want {
				t.Errorf("notification = %+v, want %+v", got, tc.want)
			}
		})
	}
	// Before the Conn wrote anything (port 0), nothing is its own.
	if got := notification(notice(unix.NFT_MSG_NEWGEN, unix.AF_UNSPEC, 0, "", 0, ""), "nfqknock", 0); got.own {
		t.Errorf("with no writing socket yet, a NEWGEN of port 0 is taken for our own")
	}
}

// TestChanges: each change is named once, in order, and a deleted table
// says it all.
func TestChanges(t *testing.T) {
	for _, tc := range []struct {
		add  []string
		want string
	}{
		{[]string{"elements of set guard deleted", "elements of set guard deleted"}, "elements of set guard deleted"},
		{[]string{"elements added to set allow4", "elements added to set allow6"}, "elements added to set allow4, elements added to set allow6"},
		{[]string{"rules of chain knock deleted", "set guard deleted", tableDeleted}, tableDeleted},
	} {
		var cs changes
		for _, a := range tc.add {
			cs.add(a)
		}
		if got := cs.String(); got != tc.want || !cs.any() {
			t.Errorf("changes of %q: %q, want %q", tc.add, got, tc.want)
		}
	}
	if (&changes{}).any() {
		t.Errorf("no change, but any")
	}
}
