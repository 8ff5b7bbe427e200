#!/bin/sh
# Before the package's files go: on removal, stop the daemon (SIGTERM: it
# deletes its nftables table, the guarded ports are open to all again) and
# disable the unit. On an upgrade do nothing: a stop would delete the table
# and drop the guard; the new package's postinstall restarts the daemon
# instead, which keeps the table guarding.
# The first argument says which:
#   deb prerm: "remove" (removal); "upgrade" NEW-VERSION (the old package's
#     prerm during an upgrade), "failed-upgrade" OLD-VERSION (the new one's,
#     when the old prerm failed), "deconfigure" (another package takes over)
#   rpm %preun: the number of versions of the package left after the
#     operation: "0" on erase, "1" (or more) on upgrade
#   apk .pre-deinstall: the version being removed (apk runs it on removal
#     only; an upgrade runs .pre-upgrade, which this package does not have)
case "$1" in
upgrade | failed-upgrade | deconfigure) exit 0 ;;
[1-9] | [1-9][0-9]) exit 0 ;;
esac
if [ -d /run/systemd/system ]; then
	systemctl disable --now nfqknockd.service >/dev/null 2>&1 || true
fi
exit 0
