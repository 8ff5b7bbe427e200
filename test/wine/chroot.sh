#!/bin/bash
# test/wine/chroot.sh: builds the Debian trixie chroot with Wine 10 in which
# test/wine/run.sh runs the Windows client, or finds it in the cache, and
# prints its directory: $WINE_CACHE/trixie-wine-KEY (default cache
# /var/cache/nfqknockd-wine). KEY hashes this script and the mirror, so a
# changed recipe rebuilds and an unchanged one is reused. The Wine prefix
# (/root/.wine) is made in the build (wineboot), not at each run.
# Needs root and mmdebstrap; reaches only Debian's mirror.
set -euo pipefail
cache=${WINE_CACHE:-/var/cache/nfqknockd-wine}
M=${WINE_MIRROR:-http://deb.debian.org/debian}
SUITE=trixie
# wine64 is the 64-bit loader and DLLs, wine the `wine` command; no wine32
# (no i386 multiarch): the client is windows/amd64.
INCLUDE=wine,wine64
key=$( { echo "$M $SUITE $INCLUDE"; cat "$0"; } | sha256sum | cut -c1-12)
dir=$cache/trixie-wine-$key
if [ -f "$dir/done" ]; then
	echo "$dir"
	exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
echo "chroot.sh: building trixie-wine (key $key) from $M" >&2
# No X, no Mono, no Gecko: the client is a console program.
# wineserver -w: wineboot's server has ended before mmdebstrap unmounts.
winenv='env WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" WINEPREFIX=/root/.wine XDG_RUNTIME_DIR=/tmp'
wineboot="chroot \"\$1\" $winenv wineboot --init && chroot \"\$1\" $winenv wineserver -w"
nice -n 19 ionice -c3 mmdebstrap --variant=apt --mode=root --quiet --architectures=amd64 \
	--aptopt='APT::Install-Recommends "false"' \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--include="$INCLUDE" \
	--customize-hook='chroot "$1" apt-get clean' \
	--customize-hook='rm -rf "$1"/var/lib/apt/lists/*' \
	--customize-hook="$wineboot" \
	"$SUITE" "$work/root" "deb $M $SUITE main" >&2
# wineboot copies Wine's DLLs into the prefix (system32, about 700 MB):
# hard links to the package's files instead, when hardlink (util-linux) is
# there. The runs never write to them.
if command -v hardlink >/dev/null; then
	nice -n 19 ionice -c3 hardlink -q -c "$work/root/usr/lib/x86_64-linux-gnu/wine" "$work/root/root/.wine"
fi
rm -rf "$cache"/trixie-wine-*
mv "$work/root" "$dir"
rmdir "$work"
trap - EXIT
date -u +%FT%TZ >"$dir/done"
echo "chroot.sh: built in $(($(date +%s) - start)) s, $(du -sh "$dir" | cut -f1)" >&2
echo "$dir"
