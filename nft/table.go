package nft

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
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
