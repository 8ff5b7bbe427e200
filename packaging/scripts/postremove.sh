#!/bin/sh
# After the package's files went (deb postrm "remove", "purge", "upgrade"...;
# rpm %postun; apk .post-deinstall): let systemd forget or re-read the unit.
# It never stops the daemon: on removal preremove did, on an upgrade the
# daemon keeps running until postinstall's try-restart.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
