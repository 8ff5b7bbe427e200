package nft

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Conn programs our table in one network namespace. It writes through one
// netlink socket that lasts as long as the Conn: where the kernel has the
// table flag owner, that socket owns the table, so that no other process
// can change or delete it (`nft flush ruleset` skips it). Where it also has
// persist, the table stays guarding after the daemon exits; where it does
// not, a backup table does (see Generation and BuildBackup). Set dumps use
// short-lived sockets. Its methods are safe for concurrent use (they run
// one after another).
//
// A Conn keeps its own record of the sources it opened, with their ports,
// users and when they expire, and of the used one-time sequences (Spend):
// Apply puts them back with the table, so a table deleted behind its back
// (on a kernel without ownership) comes back with them.
type Conn struct {
	netnsFd int
	opts    []nftables.ConnOption         // for the reading connections
	rawDial func() (*netlink.Conn, error) // the writing socket and table reads
	now     func() time.Time

	// port is the netlink port ID of the writing socket, the last one
	// dialled (kept after Close): Watch tells the Conn's own changes by it.
	port atomic.Uint32

	mu      sync.Mutex
	nl      *netlink.Conn // the writing (owning) socket; nil until first used
	table   string
	spec    Spec // the last spec applied, normalized
	applied bool
	gen     Generation // the kernel's, known once probed
	flags   uint32     // the flags of the main table in gen
	probed  bool       // gen is known
	opened  map[opening]openRecord
	first   map[uint16]time.Time   // the first ports and when they expire
	spaKeys []SPAKeyID             // the SPA key ids of now (SetSPAKeys)
	spent   map[[16]byte]time.Time // the used one-time sequences and when they expire
}

// maxAttempts bounds how often one operation is sent again after its answer
// was lost (ENOBUFS). Every operation is idempotent, so sending it again is
// how the state is re-read.
const maxAttempts = 3

// sendBuffer is the send buffer we ask for (as root, SO_SNDBUFFORCE), so that
// one batch carrying many allowed sources over still fits in one sendmsg.
const sendBuffer = 8 << 20

// Dial returns a Conn for the network namespace whose file descriptor is
// netnsFd (0: the namespace of the calling process). The caller keeps the
// descriptor open while it uses the Conn. Dial checks that nf_tables answers
// (IsPermission tells a missing CAP_NET_ADMIN apart). The table is
// DefaultTable until Apply or SetTable names another one. Close releases
// the writing socket.
func Dial(netnsFd int) (*Conn, error) {
	if netnsFd < 0 {
		return nil, fmt.Errorf("dial nftables: bad namespace descriptor %d", netnsFd)
	}
	opts := []nftables.ConnOption{nftables.WithSockOptions(bigSendBuffer)}
	if netnsFd != 0 {
		opts = append(opts, nftables.WithNetNSFd(netnsFd))
	}
	c := dial(opts...)
	c.netnsFd = netnsFd
	c.rawDial = func() (*netlink.Conn, error) {
		return netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netnsFd})
	}
	nc, err := c.newConn()
	if err != nil {
		return nil, err
	}
	if _, err := nc.ListTablesOfFamily(nftables.TableFamilyINet); err != nil {
		hint := ""
		if IsPermission(err) {
			hint = " (needs CAP_NET_ADMIN)"
		}
		return nil, fmt.Errorf("dial nftables: list inet tables: %w%s", err, hint)
	}
	return c, nil
}

// dial returns a Conn that makes its nftables connections with opts (tests
// pass nftables.WithTestDial and set rawDial).
func dial(opts ...nftables.ConnOption) *Conn {
	return &Conn{opts: opts, table: DefaultTable, now: time.Now, opened: map[opening]openRecord{}, first: map[uint16]time.Time{},
		spent: map[[16]byte]time.Time{}}
}

// Close closes the writing socket. An owned table stays as it is, without
// an owner (persist): the next daemon takes it over. Close does not delete
// the table; Destroy does.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nl == nil {
		return nil
	}
	err := c.nl.Close()
	c.nl = nil
	return err
}

// bigSendBuffer raises the socket's send buffer, best effort: without the
// privilege, or on a test socket, the default stays.
func bigSendBuffer(c *netlink.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	_ = rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sendBuffer) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, sendBuffer)
		}
	})
	return nil
}

// newConn returns a fresh nftables connection for reads.
func (c *Conn) newConn() (*nftables.Conn, error) {
	nc, err := nftables.New(c.opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables connection: %w", err)
	}
	return nc, nil
}

// Table returns the name of the table the Conn works on.
func (c *Conn) Table() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.table
}

// SetTable makes the Conn work on table name (for Allow, Revoke, Allowed and
// Destroy without a preceding Apply). Apply sets it too.
func (c *Conn) SetTable(name string) error {
	if err := ValidTableName(name); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.table = name
	return nil
}

// Check reports, without changing anything, whether Apply may program the
// table name: nil when it is absent or ours, ErrNotOurs (wrapped) when it
// is someone else's, a *HeldError when another process owns it.
func (c *Conn) Check(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _, err := c.checkOurs(name)
	return err
}

// checkOurs reports whether the table name exists, with what the kernel
// says of it, and refuses one that is not ours or that another process
// owns.
func (c *Conn) checkOurs(name string) (TableInfo, bool, error) {
	t, err := c.readTable(name)
	if IsNotFound(err) {
		return t, false, nil
	}
	if err != nil {
		return t, false, err
	}
	ours, err := c.isOurs(t)
	if err != nil {
		return t, true, err
	}
	if !ours {
		return t, true, fmt.Errorf("table inet %s: %w", name, ErrNotOurs)
	}
	if t.Owned() && (c.nl == nil || t.Owner != c.nl.PID()) {
		return t, true, &HeldError{Table: name, Port: t.Owner}
	}
	return t, true, nil
}

// Destroy deletes our table and its backup table, with everything in
// them, in one transaction. An absent table is not an error; a table that
// is not ours, or that another process owns, is left alone with an error.
func (c *Conn) Destroy() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, _, err := c.checkOurs(c.table); err != nil {
		return fmt.Errorf("delete table inet %s: %w", c.table, err)
	}
	backup, err := c.checkBackup(c.table)
	if err != nil {
		return fmt.Errorf("delete table inet %s: %w", c.table, err)
	}
	// Add then delete: the delete never meets an absent table, and the
	// kernels before 6.3 have no NFT_MSG_DESTROYTABLE. The add carries the
	// flags the table has: an owned table refuses losing its owner flag.
	msgs := []netlink.Message{
		tableMessage(unix.NFT_MSG_NEWTABLE, c.table, c.flags, ""),
		tableMessage(unix.NFT_MSG_DELTABLE, c.table, 0, ""),
	}
	if backup {
		msgs = append(msgs, dropBackupBatch(c.table)...)
	}
	err = c.sendRetry(msgs)
	if err != nil {
		return fmt.Errorf("delete table inet %s: %w", c.table, err)
	}
	clear(c.opened)
	clear(c.spent)
	return nil
}

// SetFirst replaces the elements of the set first with ports, each for its
// timeout, in one transaction (flush the set, add them). The Conn keeps
// them, so that Apply (a repair) puts them back with their remaining time.
func (c *Conn) SetFirst(ports []FirstPort) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recordFirst(ports)
	set := &nftables.Set{Table: &nftables.Table{Name: c.table, Family: nftables.TableFamilyINet}, Name: SetFirst,
		KeyType: nftables.TypeInetService, HasTimeout: true}
	msgs, err := encode(func(nc *nftables.Conn) error {
		nc.FlushSet(set)
		return addElements(nc, set, c.firstElements())
	})
	if err == nil {
		err = c.sendRetry(msgs)
	}
	if err != nil {
		return fmt.Errorf("set the first ports of table inet %s: %w", c.table, err)
	}
	return nil
}

// recordFirst makes ports the Conn's record of the first ports.
func (c *Conn) recordFirst(ports []FirstPort) {
	now := c.now()
	clear(c.first)
	for _, p := range ports {
		until := now.Add(p.Timeout)
		if u, ok := c.first[p.Port]; !ok || u.Before(until) {
			c.first[p.Port] = until
		}
	}
}

// firstElements returns the recorded first ports that have life left, as
// elements with their remaining time.
func (c *Conn) firstElements() []nftables.SetElement {
	return liveElements(c.first, c.now(), func(port uint16) []byte { return binary.BigEndian.AppendUint16(nil, port) })
}

// Conn is the kernel's side of Interface.
var _ Interface = (*Conn)(nil)
