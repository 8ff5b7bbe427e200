package main

import (
	"os"
	"time"

	"github.com/nfqknockd/nfqknockd/knock"
)

// reload re-reads the secrets or the access file (SIGHUP) and gives the
// users to every tracker; a bad file changes nothing. The table and the
// opened sources stay, except those of a user removed from the access
// file, which are closed at once. Changed ports apply to the next opens.
func (d *service) reload() {
	users, err := d.newUsers()
	if err != nil {
		d.log.Error("reload refused: the secrets in force stay", "err", err)
		return
	}
	for _, s := range d.shards {
		if err := s.setUsers(users); err != nil {
			d.log.Error("reload refused: the secrets in force stay", "err", err)
			return
		}
	}
	d.paramsMu.Lock()
	old := d.cfg.users()
	if d.cfg.Users != nil {
		d.cfg.Users = users
	} else {
		d.cfg.Params.OpenSecret, d.cfg.Params.CloseSecret = users[0].OpenSecret, users[0].CloseSecret
	}
	d.paramsMu.Unlock()
	if !d.cfg.QueueAll {
		// The new sequences start with other ports: the kernel filter
		// needs them now.
		ports, _ := d.firstPorts(time.Now())
		if err := d.rules.SetFirst(ports); err != nil {
			d.log.Error("reload: renew the first ports of the kernel filter", "err", err)
		}
	}
	d.log.Info("reloaded", "secrets", d.cfg.secretsFrom())
	d.closeRemoved(removedUsers(old, users))
	for _, w := range d.cfg.startWarnings() {
		d.log.Warn(w)
	}
}

// newUsers re-reads the file the secrets came from: the access file, or
// the secret file for the one nameless user.
func (d *service) newUsers() ([]knock.User, error) {
	if d.cfg.OpenFrom.isAccess() {
		return d.cfg.reloadAccess(os.Getenv)
	}
	open, close, err := d.cfg.reloadSecrets(os.Getenv)
	if err != nil {
		return nil, err
	}
	return []knock.User{{OpenSecret: open, CloseSecret: close}}, nil
}

// closeRemoved closes the sources that users removed from the access file
// opened: the elements of the allow sets that name them.
func (d *service) closeRemoved(gone map[string]bool) {
	if len(gone) == 0 {
		return
	}
	els, err := d.rules.Allowed()
	if err != nil {
		d.log.Error("reload: list the opened sources to close those of removed users", "err", err)
		return
	}
	for _, e := range els {
		if e.User == "" || !gone[e.User] {
			continue
		}
		if err := d.rules.Revoke(e.Addr, []uint16{e.Port}); err != nil {
			d.log.Error("close failed", "source", e.Addr, "port", e.Port, "user", e.User, "err", err)
			continue
		}
		d.log.Info("close", "source", e.Addr, "port", e.Port, "user", e.User, "reason", "user removed from the access file")
	}
}
