package nft

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
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
	spent   map[[16]byte]time.Time // the used one-time sequences and when they expire
}

// maxAttempts bounds how often one operation is sent again after its answer
// was lost (ENOBUFS). Every operation is idempotent, so sending it again is
// how the state is re-read.
const maxAttempts = 3

// maxElemsPerMsg bounds the elements of one netlink message; a larger list
// is split into several messages of the same batch.
const maxElemsPerMsg = 1024

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

// Result says how Apply programmed the table.
type Result struct {
	// Queue is the queue variant of the knock rule.
	Queue QueueVariant
	// Gen is the kernel's generation: how the table is kept. Unless it is
	// GenPersist, the caller runs Watch, which puts back the table
	// (GenNone) or the backup table (GenOwner) when others remove it.
	Gen Generation
	// TookOver is true when a table of ours was there (left by an earlier
	// daemon) and was replaced; Carried is the number of elements of
	// allow4 and allow6 (opened source and port) it carried over.
	TookOver bool
	Carried  int
}

// Apply replaces our table with the ruleset of s in one transaction: add the
// table, delete it (whatever it held), add it again, owned where the kernel
// allows it, with its sets, chains and rules; on a GenOwner kernel the same
// transaction replaces the backup table (BuildBackup), and on the others it
// deletes a backup table left there. The elements of an existing
// allow4/allow6 and those of the Conn's own record are carried over with
// their ports, users and remaining timeouts (elements without timeout stay
// without), so a daemon restarted after a crash or a restart locks nobody
// out; so are those of spent (the used one-time sequences), so that it
// refuses what the daemon before it accepted; they are read from the table
// and from the backup table, whichever exist. The sources of an older version's allow sets, keyed by address
// alone, are carried over to every port of s.Guard, without user.
//
// A table of the name that is not ours gives ErrNotOurs, one owned by
// another process a *HeldError; neither is touched. Apply tries the native
// queue expression first and, when the kernel lacks it (ENOENT,
// EOPNOTSUPP), the xtables NFQUEUE target. A failed transaction changes
// nothing.
func (c *Conn) Apply(s Spec) (Result, error) {
	s, err := s.normalize()
	if err != nil {
		return Result{}, fmt.Errorf("apply: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var res Result
	for range maxAttempts {
		if res, err = c.applyOnce(s, false); err == nil || !isLostAnswer(err) {
			break
		}
	}
	if err != nil {
		return res, err
	}
	// The first ports change every period (SetFirst keeps the record): a
	// repair puts back the record's, never those of the start.
	s.First = nil
	c.table, c.spec, c.applied = s.Table, s, true
	return res, nil
}

// applyOnce checks whose the tables are, reads the sources to carry over
// (unless fromRecord: then the Conn's record alone, as a repair does) and
// sends the replacing batch, native queue first. The caller holds c.mu.
func (c *Conn) applyOnce(s Spec, fromRecord bool) (Result, error) {
	if err := c.decideGen(s); err != nil {
		return Result{}, err
	}
	res := Result{Gen: c.gen}
	old, exists, err := c.checkOurs(s.Table)
	if err != nil {
		return res, err
	}
	backup, err := c.checkBackup(s.Table)
	if err != nil {
		return res, err
	}
	res.TookOver = (exists || backup) && !c.applied
	// The first add of the batch (see replaceBatch) adopts an orphaned
	// table of ours, which kept the flag persist; a table without it (made
	// where the kernel had no ownership, or by hand) takes no new owner
	// (EOPNOTSUPP), so that add leaves its flags as they are.
	head := tableHead{first: c.flags, flags: c.flags, comment: mainComment(c.gen)}
	if exists && old.Flags&TableFlagPersist == 0 {
		head.first = old.Flags & (TableFlagOwner | TableFlagPersist)
	}
	var from []string
	if !fromRecord {
		from = c.existing(s.Table, exists, backup)
	}
	carried, err := c.carried(from, s.Guard)
	if err != nil {
		return res, err
	}
	res.Carried = len(carried[0]) + len(carried[1])
	for _, name := range from {
		if err := c.adoptSpent(name); err != nil {
			return res, err
		}
	}
	if s.First != nil && !fromRecord {
		c.recordFirst(s.First)
	}
	tail, err := c.backupTail(s, carried, backup)
	if err != nil {
		return res, fmt.Errorf("apply table inet %s: %w", BackupTable(s.Table), err)
	}
	res.Queue, err = c.sendRuleset(s, carried, head, tail)
	return res, err
}

// existing returns the names of the tables to read the opened sources and
// used one-time sequences from: the main table and the backup, those that
// exist.
func (c *Conn) existing(main string, exists, backup bool) []string {
	var out []string
	if exists {
		out = append(out, main)
	}
	if backup {
		out = append(out, BackupTable(main))
	}
	return out
}

// backupTail returns the messages that follow the main table's in Apply's
// batch: the backup table replaced (GenOwner), deleted (another generation,
// where one is there), or nothing.
func (c *Conn) backupTail(s Spec, carried [2][]nftables.SetElement, exists bool) ([]netlink.Message, error) {
	switch {
	case c.gen == GenOwner:
		return c.backupBatch(s, carried)
	case exists:
		return dropBackupBatch(s.Table), nil
	}
	return nil, nil
}

// sendRuleset sends the batch that replaces the main table (head) followed
// by tail, with the native queue expression and, when the kernel lacks
// it, the xtables NFQUEUE target; it returns the variant that went
// through. The caller holds c.mu.
func (c *Conn) sendRuleset(s Spec, carried [2][]nftables.SetElement, head tableHead, tail []netlink.Message) (QueueVariant, error) {
	var nativeErr error
	for _, v := range []QueueVariant{Native, Compat} {
		msgs, err := c.rulesetBatch(s, v, carried, head)
		if err != nil {
			return v, fmt.Errorf("apply table inet %s with %s: %w", s.Table, v, err)
		}
		err = c.sendBatch(append(msgs, tail...))
		switch {
		case err == nil:
			return v, nil
		case v == Native && isUnsupported(err):
			nativeErr = err
			continue
		case nativeErr != nil:
			hint := ""
			if isUnsupported(err) {
				hint = " (the kernel has neither nft_queue nor nft_compat with xt_NFQUEUE)"
			}
			return v, fmt.Errorf("apply table inet %s with %s (after %s failed: %v): %w%s", s.Table, v, Native, nativeErr, err, hint)
		}
		return v, fmt.Errorf("apply table inet %s with %s: %w", s.Table, v, err)
	}
	panic("unreachable")
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

// rulesetBatch returns the messages that replace the main table, written
// as head says (replaceBatch).
func (c *Conn) rulesetBatch(s Spec, v QueueVariant, carried [2][]nftables.SetElement, head tableHead) ([]netlink.Message, error) {
	rs, err := Build(s, v)
	if err != nil {
		return nil, err
	}
	return c.replaceBatch(rs, carried, head)
}

// tableHead is how replaceBatch writes a table: the flags of its first
// add, those of the new table, and the new table's comment.
type tableHead struct {
	first, flags uint32
	comment      string
}

// replaceBatch returns the messages that replace the table of rs, allow4
// and allow6 holding carried. Its first add carries the flags head.first:
// the Conn's own, which take over an orphaned table of ours, or those of a
// table there that cannot be taken over.
func (c *Conn) replaceBatch(rs *Ruleset, carried [2][]nftables.SetElement, head tableHead) ([]netlink.Message, error) {
	name := rs.Table.Name
	// Add then delete: the delete never meets an absent table, and the add
	// takes over an orphaned table of ours (the owner's socket has closed).
	msgs := []netlink.Message{
		tableMessage(unix.NFT_MSG_NEWTABLE, name, head.first, ""),
		tableMessage(unix.NFT_MSG_DELTABLE, name, 0, ""),
		tableMessage(unix.NFT_MSG_NEWTABLE, name, head.flags, head.comment),
	}
	body, err := encode(func(nc *nftables.Conn) error {
		for i, set := range rs.Sets {
			elems := rs.Elements[i]
			switch set.Name {
			case SetAllow4:
				elems = carried[0]
			case SetAllow6:
				elems = carried[1]
			case SetFirst:
				elems = c.firstElements()
			case SetSpent:
				elems = c.spentElements()
			}
			if err := nc.AddSet(set, nil); err != nil {
				return fmt.Errorf("add set %s: %w", set.Name, err)
			}
			if err := addElements(nc, set, elems); err != nil {
				return err
			}
		}
		for _, ch := range rs.Chains {
			nc.AddChain(ch)
		}
		for _, r := range rs.Rules {
			nc.AddRule(r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return append(msgs, body...), nil
}

// addElements adds elems to set, in messages of at most maxElemsPerMsg
// elements.
func addElements(nc *nftables.Conn, set *nftables.Set, elems []nftables.SetElement) error {
	for chunk := range slices.Chunk(elems, maxElemsPerMsg) {
		if err := nc.SetAddElements(set, chunk); err != nil {
			return fmt.Errorf("add %d elements to %s: %w", len(chunk), set.Name, err)
		}
	}
	return nil
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

// errNoAddr is the error for an invalid address.
var errNoAddr = errors.New("invalid address")

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
	now := c.now()
	var out []nftables.SetElement
	for port, until := range c.first {
		left := until.Sub(now)
		if left < time.Millisecond {
			delete(c.first, port)
			continue
		}
		out = append(out, nftables.SetElement{Key: binary.BigEndian.AppendUint16(nil, port), Timeout: left})
	}
	slices.SortFunc(out, func(a, b nftables.SetElement) int { return bytes.Compare(a.Key, b.Key) })
	return out
}
