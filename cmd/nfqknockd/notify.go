package main

import (
	"fmt"

	"github.com/nfqknockd/nfqknockd/cmd/internal/sdnotify"
)

// The daemon tells its service manager (systemd, Type=notify) how it is
// doing, through cmd/internal/sdnotify: READY=1 once the guard is in place,
// RELOADING=1 and READY=1 around a reload, STOPPING=1 at a stop or a
// restart. The STATUS= lines name the table and the guarded ports, never a
// secret nor a knock port. Without $NOTIFY_SOCKET (OpenRC, a shell) nothing
// is sent.

// notifyReady opens the notify socket that $NOTIFY_SOCKET names, if any,
// and sends READY=1. runDaemon calls it once start succeeded: the queues
// are bound and the first transaction installed the table (or took over
// the one the daemon before left), so the guard is in place. A failed
// start never sends it, and systemd sees the failure.
func (d *service) notifyReady() {
	n, err := sdnotify.FromEnv()
	if err != nil {
		d.log.Warn("cannot tell the service manager that the guard is in place", "err", err)
		return
	}
	d.notifier = n
	d.notify(sdnotify.Ready, sdnotify.Status(d.guardStatus()))
}

// notifyReloading tells the service manager that a reload (SIGHUP) began.
func (d *service) notifyReloading() {
	d.notify(sdnotify.Reloading, sdnotify.MonotonicUsec(), sdnotify.Status("reloading the secrets; the table keeps guarding"))
}

// notifyReloaded tells the service manager that the reload ended: the new
// secrets are in force, or the refused ones changed nothing (the log says
// which).
func (d *service) notifyReloaded() {
	d.notify(sdnotify.Ready, sdnotify.Status(d.guardStatus()))
}

// notifyEnd tells the service manager how the daemon ends.
func (d *service) notifyEnd(end ending) {
	switch end {
	case endStop:
		d.notify(sdnotify.Stopping, sdnotify.Status("stopping: deleting the table; the guarded ports open to all"))
	case endRestart:
		d.notify(sdnotify.Stopping, sdnotify.Status("restarting: the table stays and keeps guarding"))
	default:
		// Not STOPPING=1: the exit is a failure, for Restart=on-failure.
		d.notify(sdnotify.Status("queue failure: exiting; the table stays and keeps guarding"))
	}
}

// guardStatus is the STATUS= line of a running daemon.
func (d *service) guardStatus() string {
	return fmt.Sprintf("guarding port %s in table inet %s", portList(d.spec.Guard), d.cfg.Table)
}

// notify sends the assignments when a service manager listens; a failure
// is logged, and the daemon goes on.
func (d *service) notify(assignments ...string) {
	if d.notifier == nil {
		return
	}
	if err := d.notifier.Notify(assignments...); err != nil {
		d.log.Warn("cannot notify the service manager", "err", err)
	}
}
