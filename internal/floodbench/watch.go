package main

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/nfqknockd/nfqknockd/internal/netns"
)

// allowEvent is one element added to (or deleted from) allow4/allow6, as
// nf_tables announced it.
type allowEvent struct {
	at   time.Time // when floodbench received the announcement
	add  bool
	addr netip.Addr
}

// allowWatch follows the nf_tables announcements (the NFNLGRP_NFTABLES
// group, what `nft monitor` reads) of a namespace and passes on the
// elements added to or deleted from the daemon's allow sets: the moment a
// source is in allow4 is when the daemon's change was committed, without a
// connect that would itself go through the queue (and count against the
// kernel filter's rate limit of a knocking source).
type allowWatch struct {
	conn *netlink.Conn
	ch   chan allowEvent
	done chan struct{}

	mu   sync.Mutex
	lost int // announcements lost (ENOBUFS) or events dropped (channel full)
}

// watchAllow starts following namespace ns.
func watchAllow(ns string) (*allowWatch, error) {
	fd, err := netns.Open(ns)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: fd, Groups: 1 << (unix.NFNLGRP_NFTABLES - 1)})
	if err != nil {
		return nil, fmt.Errorf("nf_tables announcements in %s: %w", ns, err)
	}
	_ = c.SetReadBuffer(4 << 20)
	w := &allowWatch{conn: c, ch: make(chan allowEvent, 4096), done: make(chan struct{})}
	go w.loop()
	return w, nil
}

func (w *allowWatch) loop() {
	defer close(w.done)
	for {
		msgs, err := w.conn.Receive()
		at := time.Now()
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) {
				w.mu.Lock()
				w.lost++
				w.mu.Unlock()
				continue
			}
			return // closed
		}
		for _, m := range msgs {
			for _, ev := range parseAllowEvents(m, at) {
				select {
				case w.ch <- ev:
				default:
					w.mu.Lock()
					w.lost++
					w.mu.Unlock()
				}
			}
		}
	}
}

// close stops the watch.
func (w *allowWatch) close() {
	w.conn.Close()
	<-w.done
}

// drain forgets the events received so far.
func (w *allowWatch) drain() {
	for {
		select {
		case <-w.ch:
		default:
			return
		}
	}
}

// wait returns when addr was added (add) or deleted (!add), or false at
// deadline.
func (w *allowWatch) wait(addr netip.Addr, add bool, deadline time.Time) (time.Time, bool) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		select {
		case ev := <-w.ch:
			if ev.addr == addr && ev.add == add {
				return ev.at, true
			}
		case <-t.C:
			return time.Time{}, false
		}
	}
}

// parseAllowEvents returns the sources of the allow4/allow6 elements of an
// nf_tables NEWSETELEM or DELSETELEM announcement (none for any other
// message).
func parseAllowEvents(m netlink.Message, at time.Time) []allowEvent {
	var add bool
	switch m.Header.Type {
	case netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSETELEM):
		add = true
	case netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_DELSETELEM):
	default:
		return nil
	}
	if len(m.Data) < 4 { // struct nfgenmsg
		return nil
	}
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		return nil
	}
	var set string
	var keys [][]byte
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_SET_ELEM_LIST_SET:
			set = ad.String()
		case unix.NFTA_SET_ELEM_LIST_ELEMENTS:
			ad.Nested(func(list *netlink.AttributeDecoder) error {
				for list.Next() {
					if list.Type() != unix.NFTA_LIST_ELEM {
						continue
					}
					list.Nested(func(elem *netlink.AttributeDecoder) error {
						for elem.Next() {
							if elem.Type() != unix.NFTA_SET_ELEM_KEY {
								continue
							}
							elem.Nested(func(key *netlink.AttributeDecoder) error {
								for key.Next() {
									if key.Type() == unix.NFTA_DATA_VALUE {
										keys = append(keys, key.Bytes())
									}
								}
								return nil
							})
						}
						return nil
					})
				}
				return nil
			})
		}
	}
	if ad.Err() != nil || set != "allow4" && set != "allow6" {
		return nil
	}
	var out []allowEvent
	for _, k := range keys {
		// A key is the source and a port (4 bytes padded), or, in the
		// sets of earlier versions, the source alone.
		if len(k) == 8 || len(k) == 20 {
			k = k[:len(k)-4]
		}
		if a, ok := netip.AddrFromSlice(k); ok {
			out = append(out, allowEvent{at: at, add: add, addr: a.Unmap()})
		}
	}
	return out
}
