package nft

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strings"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Repair is what Watch reports after it put the table back: what vanished
// (for example "table", "chain guard", "rule of chain knock"), and the
// error of the repair, nil when the table is back.
type Repair struct {
	Vanished string
	Err      error
}

// Attributes of the nf_tables notifications Watch reads: the table name is
// attribute 1 of table, chain, rule and set messages (NFTA_TABLE_NAME,
// NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE); the chain name is
// attribute 2 of chain and rule messages (NFTA_CHAIN_NAME, NFTA_RULE_CHAIN)
// and the set name attribute 2 of set messages (NFTA_SET_NAME).
const (
	attrObjTable  = 1
	attrObjName   = 2
	attrGenProcID = 2 // NFTA_GEN_PROC_PID
)

// Watch is the guard's fallback where the kernel lacks table ownership
// (Result.Owned is false). It listens to nf_tables' notifications and, when
// a transaction of another process deletes our table, or a chain, rule or
// set of it (`nft flush ruleset`, `nft delete table`, `nft flush table`),
// puts the whole table back at once with Apply, opened sources included
// (the Conn's own record), and calls report. It returns when ctx is done,
// or with an error if it cannot listen.
func (c *Conn) Watch(ctx context.Context, report func(Repair)) error {
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: c.netnsFd})
	if err != nil {
		return fmt.Errorf("watch nf_tables: %w", err)
	}
	defer nl.Close()
	if err := nl.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		return fmt.Errorf("watch nf_tables: join the notification group: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { nl.Close() })
	defer stop()
	var vanished []string // of the transaction being read
	for {
		msgs, err := nl.Receive()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if isLostAnswer(err) {
				// Notifications were lost: put the table back to be sure.
				report(c.repair("notifications lost (ENOBUFS)"))
				vanished = nil
				continue
			}
			return fmt.Errorf("watch nf_tables: %w", err)
		}
		for _, m := range msgs {
			what, gen, pid := c.notification(m)
			switch {
			case what != "":
				vanished = append(vanished, what)
			case gen && len(vanished) > 0:
				if pid != uint32(os.Getpid()) {
					report(c.repair(strings.Join(dedupe(vanished), ", ")))
				}
				vanished = nil
			}
		}
	}
}

// notification reads one nf_tables notification: what of our table it
// deleted (or ""), or, for the message that ends a transaction (NEWGEN),
// gen and the ID of the process that made it.
func (c *Conn) notification(m netlink.Message) (what string, gen bool, pid uint32) {
	if int(m.Header.Type>>8) != unix.NFNL_SUBSYS_NFTABLES || len(m.Data) < 4 {
		return "", false, 0
	}
	typ := int(m.Header.Type & 0xff)
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		return "", false, 0
	}
	ad.ByteOrder = binary.BigEndian
	var table, name string
	for ad.Next() {
		switch {
		case typ == unix.NFT_MSG_NEWGEN && ad.Type() == attrGenProcID:
			pid = ad.Uint32()
		case ad.Type() == attrObjTable:
			table = ad.String()
		case ad.Type() == attrObjName && typ != unix.NFT_MSG_NEWGEN:
			name = ad.String()
		}
	}
	if typ == unix.NFT_MSG_NEWGEN {
		return "", true, pid
	}
	if m.Data[0] != unix.NFPROTO_INET || table != c.Table() {
		return "", false, 0
	}
	switch typ {
	case unix.NFT_MSG_DELTABLE:
		return "table", false, 0
	case unix.NFT_MSG_DELCHAIN:
		return "chain " + name, false, 0
	case unix.NFT_MSG_DELRULE:
		return "rules of chain " + name, false, 0
	case unix.NFT_MSG_DELSET:
		return "set " + name, false, 0
	}
	return "", false, 0
}

// repair puts the table back with the last spec applied.
func (c *Conn) repair(vanished string) Repair {
	c.mu.Lock()
	s, ok := c.spec, c.applied
	c.mu.Unlock()
	if !ok {
		return Repair{Vanished: vanished, Err: fmt.Errorf("no ruleset applied yet")}
	}
	_, err := c.Apply(s)
	return Repair{Vanished: vanished, Err: err}
}

func dedupe(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
