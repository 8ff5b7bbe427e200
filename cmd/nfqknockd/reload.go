package main

import (
	"os"
	"time"

	"github.com/nfqknockd/nfqknockd/knock"
)

// reload re-reads the secrets or the access file (SIGHUP) and gives the
// users to every tracker, waiting until each has them; a bad file changes
// nothing. The table and the opened sources stay, except what the access
// file no longer allows (a removed user, a port taken from a user), which
// is closed at once (closeUnlisted). New ports apply to the next opens.
func (d *service) reload() {
	d.notifyReloading()
	defer d.notifyReloaded()
	users, err := d.newUsers()
	if err != nil {
		d.log.Error("reload refused: the secrets in force stay", "err", err)
		return
	}
	now := time.Now()
	for _, s := range d.shards {
		if err := s.setUsers(users, now); err != nil {
			d.log.Error("reload refused: the secrets in force stay", "err", err)
			return
		}
	}
	// Only the signal loop reloads: nothing stores in between.
	d.live.Store(d.secrets().withUsers(users))
	if !d.cfg.QueueAll {
		// The new sequences start with other ports: the kernel filter
		// needs them now.
		ports, _ := d.firstPorts(time.Now())
		if err := d.rules.SetFirst(ports); err != nil {
			d.log.Error("reload: renew the first ports of the kernel filter", "err", err)
		}
	}
	if len(d.cfg.SPA.Ports) > 0 {
		if err := d.renewSPAKeys(); err != nil {
			d.log.Error("reload: renew the SPA key ids of the kernel filter", "err", err)
		}
	}
	d.log.Info("reloaded", "secrets", d.secrets().from())
	d.closeUnlisted()
	d.warnSecrets()
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

// closeUnlisted closes what the access in force no longer allows: the
// elements of the allow sets that name a user who is not in it, or a port
// that is not the user's (any more). It runs after a reload, and at start,
// where the table taken over may hold what a daemon with an older access
// file opened. An element without a user is left to its timeout.
func (d *service) closeUnlisted() {
	users := d.secrets().users
	els, err := d.rules.Allowed()
	if err != nil {
		d.log.Error("list the opened sources to close those the access no longer allows", "err", err)
		return
	}
	guard := d.cfg.guardPorts()
	for _, e := range els {
		reason := knock.Revoked(users, e.User, e.Port, guard)
		if reason == "" {
			continue
		}
		if err := d.rules.Revoke(e.Addr, []uint16{e.Port}); err != nil {
			d.log.Error("close failed", "source", e.Addr, "port", e.Port, "user", e.User, "err", err)
			continue
		}
		d.log.Info("close", "source", e.Addr, "port", e.Port, "user", e.User, "reason", reason)
		d.hooks.emit(hookEvent{Kind: "close", Source: e.Addr, User: e.User, Ports: []uint16{e.Port}, Detail: reason})
	}
}
