package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// TableInfo is what the kernel says of a table, as read by Conn.Table.
type TableInfo struct {
	Name string
	// Flags are the table's flags (TableFlagOwner, TableFlagPersist, ...).
	Flags uint32
	// Owner is the netlink port of the owning socket while the table has
	// an owner (Flags has TableFlagOwner), else 0.
	Owner uint32
	// Comment is the table's comment (userdata), "" when it has none.
	Comment string
}

// Owned reports whether a live socket owns the table.
func (t TableInfo) Owned() bool { return t.Flags&TableFlagOwner != 0 }

// ErrNotOurs is the error of Apply for a table of the configured name that
// nfqknockd did not make: it is never replaced nor deleted.
var ErrNotOurs = errors.New("a table of this name exists and is not nfqknockd's: it is left untouched; give another --table")

// HeldError is the error of Apply for our table while another process
// (another nfqknockd) owns it.
type HeldError struct {
	Table string
	Port  uint32 // the netlink port of the owner, usually its process ID
}

// Error says which table is held, and by which netlink port.
func (e *HeldError) Error() string {
	return fmt.Sprintf("table inet %s is held by another running nfqknockd (netlink port %d); stop it first or give another --table", e.Table, e.Port)
}

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

// parseTable decodes the attributes of a NEWTABLE message.
func parseTable(b []byte) (TableInfo, error) {
	var t TableInfo
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return t, fmt.Errorf("decode table: %w", err)
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case attrTableName:
			t.Name = ad.String()
		case attrTableFlags:
			t.Flags = ad.Uint32()
		case attrTableOwner:
			t.Owner = ad.Uint32()
		case attrTableUserdata:
			t.Comment, _ = userdata.GetString(ad.Bytes(), userdata.TypeComment)
		}
	}
	return t, ad.Err()
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
