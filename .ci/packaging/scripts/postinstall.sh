#!/bin/sh
# After install or upgrade: let systemd see the new unit, and restart a
# running daemon on the new binary (its table is replaced in one
# transaction, the opened sources are kept: nobody is locked out). A fresh
# install is neither enabled nor started.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	systemctl try-restart nfqknockd.service >/dev/null 2>&1 || true
fi
exit 0
