package nft

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// fakeKernel answers the netlink messages of a Conn without a kernel
// (nftables.WithTestDial): the n-th batch gets errnos[n] (0: success,
// ENOBUFS: the answer is lost), and every read finds no table.
type fakeKernel struct {
	errnos  []unix.Errno
	batches [][]netlink.Message // the messages of each batch, without begin and end
	reads   int                 // requests other than batches
}

func (k *fakeKernel) conn() *Conn {
	c := dial(nftables.WithTestDial(k.answer))
	c.rawDial = func() (*netlink.Conn, error) { return nltest.Dial(k.answer), nil }
	return c
}

func (k *fakeKernel) answer(req []netlink.Message) ([]netlink.Message, error) {
	if len(req) == 0 {
		// The next acknowledgement of a batch.
		return []netlink.Message{{Header: netlink.Header{Type: netlink.Error}, Data: make([]byte, 4)}}, nil
	}
	if req[0].Header.Type != netlink.HeaderType(unix.NFNL_MSG_BATCH_BEGIN) {
		k.reads++
		return nltest.Error(int(unix.ENOENT), req)
	}
	body := req[1 : len(req)-1]
	n := len(k.batches)
	k.batches = append(k.batches, body)
	var errno unix.Errno
	if n < len(k.errnos) {
		errno = k.errnos[n]
	}
	switch errno {
	case 0:
		return nil, nil
	case unix.ENOBUFS:
		return nil, unix.ENOBUFS
	}
	return nltest.Error(int(errno), body)
}

// types returns the nf_tables message types of batch n.
func (k *fakeKernel) types(n int) []int {
	var ts []int
	for _, m := range k.batches[n] {
		ts = append(ts, int(m.Header.Type)&0xff)
	}
	return ts
}

// has reports whether a message of batch n holds the bytes b.
func (k *fakeKernel) has(n int, b string) bool {
	for _, m := range k.batches[n] {
		if bytes.Contains(m.Data, []byte(b)) {
			return true
		}
	}
	return false
}

// fakeSpec is the spec of the fake-kernel tests: no ownership probe, so that
// the batches are the ones under test; one --allow range.
var fakeSpec = Spec{Start: 1, End: 65535, Guard: []uint16{22}, QueueNum: 100, NoOwner: true,
	Allow: []netip.Prefix{netip.MustParsePrefix("10.8.0.0/16")}, First: []FirstPort{{Port: 7000, Timeout: time.Hour}}}

// TestApplyFallback checks the queue variant fallback: native first, then
// the xtables target on ENOENT or EOPNOTSUPP, and sending again on a lost
// answer.
func TestApplyFallback(t *testing.T) {
	tests := []struct {
		name        string
		errnos      []unix.Errno
		want        QueueVariant
		wantErr     func(error) bool
		wantBatches []QueueVariant
	}{
		{"native works", nil, Native, nil, []QueueVariant{Native}},
		{"native missing (ENOENT)", []unix.Errno{unix.ENOENT}, Compat, nil, []QueueVariant{Native, Compat}},
		{"native unsupported (EOPNOTSUPP)", []unix.Errno{unix.EOPNOTSUPP}, Compat, nil, []QueueVariant{Native, Compat}},
		{"no privilege: no fallback", []unix.Errno{unix.EPERM}, Native, IsPermission, []QueueVariant{Native}},
		{"both fail", []unix.Errno{unix.ENOENT, unix.ENOENT}, Compat, IsNotFound, []QueueVariant{Native, Compat}},
		{"answer lost, sent again", []unix.Errno{unix.ENOBUFS}, Native, nil, []QueueVariant{Native, Native}},
		{"answer lost after the fallback", []unix.Errno{unix.ENOENT, unix.ENOBUFS, unix.ENOENT}, Compat, nil,
			[]QueueVariant{Native, Compat, Native, Compat}},
		{"answer always lost", []unix.Errno{unix.ENOBUFS, unix.ENOBUFS, unix.ENOBUFS}, Native, isLostAnswer,
			[]QueueVariant{Native, Native, Native}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := &fakeKernel{errnos: tt.errnos}
			res, err := k.conn().Apply(fakeSpec)
			v := res.Queue
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !tt.wantErr(err) {
				t.Fatalf("Apply: %v", err)
			}
			if err != nil {
				t.Logf("Apply: %v", err)
			}
			if v != tt.want {
				t.Errorf("Apply returned %s, want %s", v, tt.want)
			}
			var sent []QueueVariant
			for i := range k.batches {
				switch {
				case k.has(i, "queue\x00") && !k.has(i, "NFQUEUE\x00"):
					sent = append(sent, Native)
				case k.has(i, "target\x00") && k.has(i, "NFQUEUE\x00"):
					sent = append(sent, Compat)
				default:
					t.Errorf("batch %d holds no queue", i)
				}
			}
			if diff := cmp.Diff(tt.wantBatches, sent); diff != "" {
				t.Errorf("batches sent (-want +got):\n%s", diff)
			}
		})
	}
}

func TestApplyBatchShape(t *testing.T) {
	k := &fakeKernel{}
	if _, err := k.conn().Apply(fakeSpec); err != nil {
		t.Fatal(err)
	}
	want := []int{
		unix.NFT_MSG_NEWTABLE, unix.NFT_MSG_DELTABLE, unix.NFT_MSG_NEWTABLE, // replace whatever was there
		unix.NFT_MSG_NEWSET, unix.NFT_MSG_NEWSETELEM, // guard and its port
		unix.NFT_MSG_NEWSET, unix.NFT_MSG_NEWSET, // allow4, allow6 (nothing to carry over)
		unix.NFT_MSG_NEWSET, unix.NFT_MSG_NEWSETELEM, // static4 and its range
		unix.NFT_MSG_NEWSET,                          // static6, empty
		unix.NFT_MSG_NEWSET, unix.NFT_MSG_NEWSETELEM, // first and its port
		unix.NFT_MSG_NEWSET, unix.NFT_MSG_NEWSET, unix.NFT_MSG_NEWSET, // knocking4, knocking6, rate4
		unix.NFT_MSG_NEWSET, unix.NFT_MSG_NEWSET, unix.NFT_MSG_NEWSET, // rate6, flood4, flood6
		unix.NFT_MSG_NEWSET, unix.NFT_MSG_NEWSET, unix.NFT_MSG_NEWSET, // spent, spill4 and spill6, empty
		unix.NFT_MSG_NEWCHAIN, unix.NFT_MSG_NEWCHAIN, unix.NFT_MSG_NEWCHAIN, unix.NFT_MSG_NEWCHAIN,
		unix.NFT_MSG_NEWRULE, unix.NFT_MSG_NEWRULE, // knock
		unix.NFT_MSG_NEWRULE, unix.NFT_MSG_NEWRULE, unix.NFT_MSG_NEWRULE, // guard
		unix.NFT_MSG_NEWRULE, unix.NFT_MSG_NEWRULE, unix.NFT_MSG_NEWRULE, unix.NFT_MSG_NEWRULE, unix.NFT_MSG_NEWRULE, // guarded
		unix.NFT_MSG_NEWRULE, unix.NFT_MSG_NEWRULE, unix.NFT_MSG_NEWRULE, unix.NFT_MSG_NEWRULE, // knocks, IPv4
		unix.NFT_MSG_NEWRULE, unix.NFT_MSG_NEWRULE, unix.NFT_MSG_NEWRULE, // knocks, IPv4 spill
		unix.NFT_MSG_NEWRULE, unix.NFT_MSG_NEWRULE, unix.NFT_MSG_NEWRULE, unix.NFT_MSG_NEWRULE, // knocks, IPv6
		unix.NFT_MSG_NEWRULE, unix.NFT_MSG_NEWRULE, unix.NFT_MSG_NEWRULE, // knocks, IPv6 spill
	}
	if diff := cmp.Diff(want, k.types(0)); diff != "" {
		t.Errorf("message types of the Apply batch (-want +got):\n%s", diff)
	}
}

func TestAllowBatches(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.2")
	const (
		add = unix.NFT_MSG_NEWSETELEM
		del = unix.NFT_MSG_DELSETELEM
	)
	tests := []struct {
		name   string
		errnos []unix.Errno
		want   [][]int
		ok     bool
	}{
		{"absent: one exclusive add", nil,
			[][]int{{add}}, true},
		{"present: add, delete, add", []unix.Errno{unix.EEXIST},
			[][]int{{add}, {add, del, add}}, true},
		{"no table", []unix.Errno{unix.ENOENT},
			[][]int{{add}}, false},
		{"answer lost", []unix.Errno{unix.ENOBUFS},
			[][]int{{add}, {add}}, true},
		{"answer lost, then present", []unix.Errno{unix.ENOBUFS, unix.EEXIST},
			[][]int{{add}, {add}, {add, del, add}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := &fakeKernel{errnos: tt.errnos}
			err := k.conn().Allow(a, []uint16{22}, "", time.Hour)
			if (err == nil) != tt.ok {
				t.Errorf("Allow: %v, want ok=%v", err, tt.ok)
			}
			var got [][]int
			for i := range k.batches {
				got = append(got, k.types(i))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("batches (-want +got):\n%s", diff)
			}
			// The first add of each batch is exclusive only in the
			// batches of one message.
			for i, b := range k.batches {
				excl := b[0].Header.Flags&netlink.Excl != 0
				if want := len(b) == 1; excl != want {
					t.Errorf("batch %d: first add exclusive %v, want %v", i, excl, want)
				}
			}
		})
	}
}

// TestAllowPorts: one open of several ports is one transaction of one
// message per operation, each with every port; a renewal adds, deletes
// and adds them all again, with the user on every add.
func TestAllowPorts(t *testing.T) {
	k := &fakeKernel{errnos: []unix.Errno{unix.EEXIST}}
	c := k.conn()
	if err := c.Allow(netip.MustParseAddr("::ffff:10.0.0.2"), []uint16{443, 22, 443}, "alice", time.Hour); err != nil {
		t.Fatalf("Allow: %v", err)
	}
	if diff := cmp.Diff([][]int{{unix.NFT_MSG_NEWSETELEM}, {unix.NFT_MSG_NEWSETELEM, unix.NFT_MSG_DELSETELEM, unix.NFT_MSG_NEWSETELEM}},
		[][]int{k.types(0), k.types(1)}); diff != "" {
		t.Errorf("batches (-want +got):\n%s", diff)
	}
	a := netip.MustParseAddr("10.0.0.2") // the mapped address counts as IPv4
	k22, k443 := string(allowKey(a, 22)), string(allowKey(a, 443))
	for i, b := range k.batches {
		for j, m := range b {
			if !bytes.Contains(m.Data, []byte("allow4\x00")) || !bytes.Contains(m.Data, []byte(k22)) || !bytes.Contains(m.Data, []byte(k443)) {
				t.Errorf("batch %d message %d lacks allow4 or a key: % x", i, j, m.Data)
			}
			add := int(m.Header.Type)&0xff == unix.NFT_MSG_NEWSETELEM
			if got := bytes.Count(m.Data, []byte("\x00\x06alice\x00")); add && got != 2 || !add && got != 0 {
				t.Errorf("batch %d message %d: %d comments", i, j, got)
			}
		}
	}
	want := map[opening]openRecord{{a, 22}: {}, {a, 443}: {}}
	for o, r := range c.opened {
		if _, ok := want[o]; !ok || r.user != "alice" || r.until.IsZero() {
			t.Errorf("record %v: %+v", o, r)
		}
		delete(want, o)
	}
	if len(want) != 0 {
		t.Errorf("not recorded: %v", want)
	}
	for _, bad := range []struct {
		ports []uint16
		user  string
	}{{nil, ""}, {[]uint16{0}, ""}, {[]uint16{22}, "a b"}, {[]uint16{22}, strings.Repeat("x", 33)}} {
		if err := c.Allow(a, bad.ports, bad.user, time.Hour); err == nil {
			t.Errorf("Allow(%v, %q) succeeded", bad.ports, bad.user)
		}
	}
	if len(k.batches) != 2 {
		t.Errorf("a refused Allow sent a batch")
	}
}

func TestRevokeAbsent(t *testing.T) {
	a := netip.MustParseAddr("fd00::1")
	for _, errno := range []unix.Errno{0, unix.ENOENT} {
		k := &fakeKernel{errnos: []unix.Errno{errno}}
		if err := k.conn().Revoke(a, []uint16{22}); err != nil {
			t.Errorf("Revoke answered %v: %v", errno, err)
		}
		// Add then delete: the delete never meets an absent element.
		if got := k.types(0); !cmp.Equal(got, []int{unix.NFT_MSG_NEWSETELEM, unix.NFT_MSG_DELSETELEM}) {
			t.Errorf("Revoke batch %v, want add, delete", got)
		}
		if k.batches[0][0].Header.Flags&netlink.Excl != 0 {
			t.Errorf("Revoke's add is exclusive")
		}
	}
	k := &fakeKernel{errnos: []unix.Errno{unix.EPERM}}
	if err := k.conn().Revoke(a, []uint16{22}); !IsPermission(err) {
		t.Errorf("Revoke answered EPERM: %v", err)
	}
	// A full set (ENFILE): the elements there are read and deleted; here
	// the table is gone meanwhile, which is no error.
	k = &fakeKernel{errnos: []unix.Errno{unix.ENFILE}}
	if err := k.conn().Revoke(a, []uint16{22}); err != nil {
		t.Errorf("Revoke in a full set: %v", err)
	}
	// Nil ports: every port opened (the kernel's are read, here none).
	k = &fakeKernel{}
	c := k.conn()
	if err := c.Revoke(a, nil); err != nil || len(k.batches) != 0 {
		t.Errorf("Revoke of nothing: %v, %d batches", err, len(k.batches))
	}
	if err := c.Allow(a, []uint16{22, 443}, "", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Allow(netip.MustParseAddr("fd00::2"), []uint16{80}, "", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Revoke(a, nil); err != nil {
		t.Fatal(err)
	}
	last := k.batches[len(k.batches)-1]
	if len(last) != 2 || !bytes.Contains(last[1].Data, allowKey(a, 22)) || !bytes.Contains(last[1].Data, allowKey(a, 443)) ||
		bytes.Contains(last[1].Data, allowKey(netip.MustParseAddr("fd00::2"), 80)) {
		t.Errorf("Revoke(nil) batch: %v", last)
	}
	if _, ok := c.opened[opening{netip.MustParseAddr("fd00::2"), 80}]; !ok || len(c.opened) != 1 {
		t.Errorf("record after Revoke(nil): %v", c.opened)
	}
	if k.reads == 0 {
		t.Errorf("Revoke(nil) of a Conn that never applied did not read the kernel's set")
	}
	// An empty list of ports does nothing.
	n := len(k.batches)
	if err := c.Revoke(netip.MustParseAddr("fd00::2"), []uint16{}); err != nil || len(k.batches) != n {
		t.Errorf("Revoke(no ports): %v, %d batches", err, len(k.batches)-n)
	}
}

// TestRevokeEveryPortReads: Revoke without ports reads the kernel's set
// where others may have added elements (the table is not owned), and not
// where the table is owned: then the Conn's record has every element.
func TestRevokeEveryPortReads(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.2")
	for _, owned := range []bool{false, true} {
		k := &fakeKernel{}
		c := k.conn()
		spec := fakeSpec
		spec.NoOwner = !owned
		if _, err := c.Apply(spec); err != nil {
			t.Fatal(err)
		}
		if err := c.Allow(a, ports(22, 443), "", time.Hour); err != nil {
			t.Fatal(err)
		}
		reads := k.reads
		if err := c.Revoke(a, nil); err != nil {
			t.Fatal(err)
		}
		if got := k.reads > reads; got == owned {
			t.Errorf("owned %v: Revoke(nil) read the set: %v", owned, got)
		}
		last := k.batches[len(k.batches)-1]
		if len(last) != 2 || !bytes.Contains(last[1].Data, allowKey(a, 22)) || !bytes.Contains(last[1].Data, allowKey(a, 443)) {
			t.Errorf("owned %v: Revoke(nil) batch %v", owned, last)
		}
	}
}

// TestGenerationByKernel: Apply tries the table flags owner and persist on
// a scratch table first, then owner alone. A kernel that takes both gets
// them on one table (GenPersist); one that takes owner alone (5.12 to 6.8)
// gets an owned table and a backup table without flags in the same batch
// (GenOwner); one that refuses both (EOPNOTSUPP before 5.12, or EINVAL)
// gets a table without flags, which the caller watches (GenNone).
func TestGenerationByKernel(t *testing.T) {
	spec := fakeSpec
	spec.NoOwner = false
	for _, tt := range []struct {
		name   string
		probes []unix.Errno
		gen    Generation
		tables map[string]uint32 // the flags of each table the ruleset batch adds
	}{
		{"6.9 and later", []unix.Errno{0}, GenPersist, map[string]uint32{DefaultTable: TableFlagOwner | TableFlagPersist}},
		{"5.12 to 6.8", []unix.Errno{unix.EOPNOTSUPP, 0}, GenOwner,
			map[string]uint32{DefaultTable: TableFlagOwner, BackupTable(DefaultTable): 0}},
		{"before 5.12", []unix.Errno{unix.EOPNOTSUPP, unix.EOPNOTSUPP}, GenNone, map[string]uint32{DefaultTable: 0}},
		{"unknown flags refused", []unix.Errno{unix.EINVAL, unix.EINVAL}, GenNone, map[string]uint32{DefaultTable: 0}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := &fakeKernel{errnos: tt.probes}
			res, err := k.conn().Apply(spec)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if res.Gen != tt.gen {
				t.Errorf("Gen = %v, want %v", res.Gen, tt.gen)
			}
			if len(k.batches) != len(tt.probes)+1 {
				t.Fatalf("%d batches, want %d probes and the ruleset", len(k.batches), len(tt.probes))
			}
			for i := range tt.probes {
				if got := k.types(i); !cmp.Equal(got, []int{unix.NFT_MSG_NEWTABLE, unix.NFT_MSG_DELTABLE}) {
					t.Errorf("probe batch %d: %v", i, got)
				}
			}
			got := map[string]uint32{}
			for _, m := range k.batches[len(tt.probes)] {
				if int(m.Header.Type)&0xff != unix.NFT_MSG_NEWTABLE {
					continue
				}
				tab, err := parseTable(m.Data[4:])
				if err != nil {
					t.Fatal(err)
				}
				if f, ok := got[tab.Name]; ok && f != tab.Flags {
					t.Errorf("table %s added with flags %#x and %#x", tab.Name, f, tab.Flags)
				}
				got[tab.Name] = tab.Flags
			}
			if !cmp.Equal(got, tt.tables) {
				t.Errorf("the ruleset batch adds the tables %v, want %v", got, tt.tables)
			}
		})
	}
}
