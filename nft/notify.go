package nft

import (
	"encoding/binary"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// attrObjTable is the attribute that names the table in nf_tables'
// notifications of tables, chains, rules, sets, elements, objects and
// flowtables (see objectMsgs).
const attrObjTable = 1

// How Watch tells outside changes from its own Conn's.
//
// Every nf_tables notification of a transaction carries, in its netlink
// header (nlmsg_pid), the port ID of the netlink socket that sent the
// batch: nf_tables_commit notifies each object with the portid of the
// transaction's context (NETLINK_CB(skb).portid), and nf_tables_gen_notify
// puts the same portid in the header of the NEWGEN that ends it (true from
// 5.10 to 6.18 and since nf_tables began). A port ID names one netlink
// socket of the network namespace while that socket lives, whatever the
// PID namespace of its process: the Conn's writing socket sends every
// change the Conn makes (Apply, Allow, Revoke, SetFirst, Spend, repairs),
// so a notification with that port ID is the Conn's own, and any other is
// an outside change.
//
// The NEWGEN's NFTA_GEN_PROC_PID cannot tell them apart: it is
// task_pid_nr(current), the thread ID in the initial PID namespace, which a
// daemon in a container cannot match with its own /proc.
//
// Set elements that the kernel adds or refreshes from the packet path
// (dynset: knocking4/6, rate4/6, flood4/6) and elements that expire
// (timeouts, garbage collection) make no notification: only transactions
// do. Checked on 6.18 with `nft monitor` while SYNs updated a dynamic set
// and elements timed out: nothing was printed.

// change describes one notification of a transaction: what it did to the
// watched table ("" when it is not about that table), whether it ends a
// transaction (NEWGEN), and whether the Conn's own socket sent it.
type change struct {
	what string
	gen  bool
	own  bool
}

// tableDeleted describes the deletion of the watched table.
const tableDeleted = "table deleted"

// objectMsgs says, for each kind of nf_tables notification about an object
// of a table, how to describe it and which attribute names the object:
// attribute 1 of each is the table's name (NFTA_TABLE_NAME,
// NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE,
// NFTA_SET_ELEM_LIST_TABLE, NFTA_OBJ_TABLE, NFTA_FLOWTABLE_TABLE).
var objectMsgs = map[int]struct {
	format   string // with the object's name
	nameAttr uint16
}{
	unix.NFT_MSG_NEWTABLE:     {"table changed%.0s", 1},
	unix.NFT_MSG_DELTABLE:     {tableDeleted + "%.0s", 1},
	unix.NFT_MSG_NEWCHAIN:     {"chain %s added or changed", 3}, // NFTA_CHAIN_NAME
	unix.NFT_MSG_DELCHAIN:     {"chain %s deleted", 3},
	unix.NFT_MSG_NEWRULE:      {"rule added to chain %s", 2}, // NFTA_RULE_CHAIN
	unix.NFT_MSG_DELRULE:      {"rules of chain %s deleted", 2},
	unix.NFT_MSG_NEWSET:       {"set %s added", 2}, // NFTA_SET_NAME
	unix.NFT_MSG_DELSET:       {"set %s deleted", 2},
	unix.NFT_MSG_NEWSETELEM:   {"elements added to set %s", 2}, // NFTA_SET_ELEM_LIST_SET
	unix.NFT_MSG_DELSETELEM:   {"elements of set %s deleted", 2},
	unix.NFT_MSG_NEWOBJ:       {"object %s added or changed", 2}, // NFTA_OBJ_NAME
	unix.NFT_MSG_DELOBJ:       {"object %s deleted", 2},
	unix.NFT_MSG_NEWFLOWTABLE: {"flowtable %s added or changed", 2}, // NFTA_FLOWTABLE_NAME
	unix.NFT_MSG_DELFLOWTABLE: {"flowtable %s deleted", 2},
}

// notification reads one nf_tables notification against the watched table
// (the table name watched) and the Conn's writing socket's port ID ownPort
// (0: none yet).
func notification(m netlink.Message, watched string, ownPort uint32) change {
	if int(m.Header.Type>>8) != unix.NFNL_SUBSYS_NFTABLES || len(m.Data) < 4 {
		return change{}
	}
	ch := change{own: ownPort != 0 && m.Header.PID == ownPort}
	typ := int(m.Header.Type & 0xff)
	if typ == unix.NFT_MSG_NEWGEN {
		ch.gen = true
		return ch
	}
	if m.Data[0] != unix.NFPROTO_INET {
		return ch
	}
	msg, ok := objectMsgs[typ]
	if !ok {
		return ch
	}
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		return ch
	}
	ad.ByteOrder = binary.BigEndian
	var table, name string
	for ad.Next() {
		switch ad.Type() {
		case attrObjTable:
			table = ad.String()
		case msg.nameAttr:
			name = ad.String()
		}
	}
	if table == watched {
		ch.what = fmt.Sprintf(msg.format, name)
	}
	return ch
}
