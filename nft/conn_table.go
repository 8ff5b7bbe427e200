package nft

// Reading a table from the kernel and telling whether it is ours
// (parseTable, in table.go, decodes it).

import (
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// readTable returns what the kernel holds of the inet table name; an absent
// table gives an error for which IsNotFound is true. It asks on the
// writing socket, which lasts: closing a socket of nf_tables costs
// milliseconds, and a repair reads the table first. The caller holds c.mu.
func (c *Conn) readTable(name string) (TableInfo, error) {
	nl, err := c.writer()
	if err != nil {
		return TableInfo{}, err
	}
	drain(nl)
	ae := netlink.NewAttributeEncoder()
	ae.String(attrTableName, name)
	attrs, err := ae.Encode()
	if err != nil {
		return TableInfo{}, err
	}
	msgs, err := nl.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETTABLE), Flags: netlink.Request},
		Data:   append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...),
	})
	if err != nil {
		return TableInfo{}, fmt.Errorf("get table inet %s: %w", name, err)
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		return parseTable(m.Data[4:])
	}
	return TableInfo{}, fmt.Errorf("get table inet %s: no answer", name)
}

// isOurs reports whether the table t, as read, is nfqknockd's main table:
// its comment starts with TableComment, or (a table made by a version without the comment) its
// knock chain holds a rule with one of our rule comments.
func (c *Conn) isOurs(t TableInfo) (bool, error) {
	if strings.HasPrefix(t.Comment, TableComment) {
		return true, nil
	}
	if t.Comment != "" && !strings.HasPrefix(t.Comment, strings.TrimSpace(commentPrefix)) {
		return false, nil
	}
	nc, err := c.newConn()
	if err != nil {
		return false, err
	}
	tab := &nftables.Table{Name: t.Name, Family: nftables.TableFamilyINet}
	rules, err := nc.GetRules(tab, &nftables.Chain{Name: ChainKnock, Table: tab})
	if err != nil {
		if IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("read the rules of table inet %s: %w", t.Name, err)
	}
	for _, r := range rules {
		if IsOurRule(r) {
			return true, nil
		}
	}
	return false, nil
}
