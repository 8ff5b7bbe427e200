#!/bin/sh
# Before removal (not before an upgrade): stop the daemon, which deletes its
# nftables table, and disable the unit.
# Arguments: deb "remove" / "upgrade" / "deconfigure" / "failed-upgrade",
# rpm "0" (erase) / "1" (upgrade), apk the package version (deinstall only).
case "$1" in
upgrade | failed-upgrade | deconfigure | 1) exit 0 ;;
esac
if [ -d /run/systemd/system ]; then
	systemctl disable --now nfqknockd.service >/dev/null 2>&1 || true
fi
exit 0
