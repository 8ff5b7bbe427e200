#!/bin/sh
# After install or upgrade (deb postinst "configure", rpm %post, apk
# .post-install and .post-upgrade): let systemd see the new unit, and
# restart a running daemon on the new binary with `systemctl try-restart`.
# A restart job stops the old daemon with the unit's RestartKillSignal
# (SIGQUIT): it exits leaving its nftables table guarding, with the opened
# sources, and the new daemon takes the table over in one transaction. No
# gap in the guard, nobody locked out. try-restart does nothing when the
# daemon is not running: a fresh install is neither enabled nor started.
# Without systemd as PID 1 (no /run/systemd/system) nothing is done: a
# daemon started otherwise keeps running the old binary until its own
# supervisor restarts it.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	systemctl try-restart nfqknockd.service >/dev/null 2>&1 || true
fi
exit 0
