//go:build !linux

package main

import (
	"syscall"
	"time"
)

// hold keeps nothing on this system: a knock whose ICMP error arrives after
// the knock timeout goes unnoticed (the errors that arrive within it fail
// the knock, as everywhere).
type hold struct{}

func newHold() *hold { return &hold{} }

// control is the net.Dialer's Control: none here.
func (h *hold) control(network, address string, c syscall.RawConn) error { return nil }

// release does nothing here.
func (h *hold) release(timedOut bool, sent time.Time) {}

// holding reports false: no socket is kept.
func (h *hold) holding() bool { return false }

// check finds nothing here.
func (h *hold) check(wait time.Duration) error { return nil }

// close does nothing here.
func (h *hold) close() {}
