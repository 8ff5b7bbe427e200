#!/bin/bash
# test/vm/image.sh RECIPE: builds the Debian image of one recipe
# (test/vm/images/NAME.recipe) with mmdebstrap, or finds it in the cache, and
# prints its cache directory: $VM_CACHE/images/NAME-KEY with root.img (ext4,
# no partition table), boot/vmlinuz-V, boot/initrd.img-V and `kernels` (one
# kernel version a line). KEY hashes this script, the recipe and the files it
# bakes in, so a changed recipe rebuilds and an unchanged one is reused.
# Needs root, mmdebstrap, mke2fs (e2fsprogs); reaches only Debian's mirror.
#
# A recipe is a shell fragment that sets:
#   SUITE      the suite mmdebstrap installs (bullseye, bookworm, trixie)
#   MIRRORS    apt source lines, one per line (the first suite's line first)
#   INCLUDE    packages, comma-separated, beyond minbase
#   KERNEL_FROM   optional: a suite (e.g. bookworm-backports) from which
#                 linux-image-amd64 is installed as well, next to the suite's
#   BAKE       files of test/vm to copy in, "SRC:DST" pairs, space-separated
#   ENABLE     systemd units to enable in the image
#   MASK       systemd units to mask (timers that would only slow the test)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
recipe=$1
name=$(basename "$recipe" .recipe)
cache=${VM_CACHE:-/var/cache/nfqknockd-vm}/images
M=${VM_MIRROR:-http://deb.debian.org/debian}
SECURITY=${VM_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SUITE= MIRRORS= INCLUDE= KERNEL_FROM= BAKE= ENABLE= MASK=
# shellcheck disable=SC1090
. "$recipe"

bakefiles=()
for b in $BAKE; do bakefiles+=("$here/${b%%:*}"); done
key=$( { echo "$M $SECURITY"; cat "$0" "$recipe" "${bakefiles[@]}"; } | sha256sum | cut -c1-12)
dir=$cache/$name-$key
if [ -f "$dir/done" ]; then
	echo "$dir"
	exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/.build-$name.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
start=$(date +%s)
echo "image.sh: building $name (key $key) from $M" >&2
hooks=()
if [ -n "$KERNEL_FROM" ]; then
	hooks+=(--customize-hook="chroot \"\$1\" apt-get install -y -q -t $KERNEL_FROM linux-image-amd64")
fi
hooks+=(--customize-hook='chroot "$1" apt-get clean')
mapfile -t mirrors <<<"$MIRRORS"
mmdebstrap --variant=minbase --mode=root --quiet \
	--aptopt='APT::Install-Recommends "false"' \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--include="$INCLUDE" "${hooks[@]}" \
	"$SUITE" "$root" "${mirrors[@]}" >&2

# Baked files, units, and what makes the boot quiet and quick.
for b in $BAKE; do install -D -m 0644 "$here/${b%%:*}" "$root/${b#*:}"; done
for u in $ENABLE; do chroot "$root" systemctl enable "$u" >&2; done
for u in $MASK; do ln -sf /dev/null "$root/etc/systemd/system/$u"; done
echo nfqknockd-vm >"$root/etc/hostname"
printf '/dev/vda / ext4 rw,noatime 0 1\n' >"$root/etc/fstab"
# A fixed machine id: no first-boot setup in the guest.
echo 4e4b564d5445535400000000000000a1 >"$root/etc/machine-id"
rm -rf "$root/var/lib/apt/lists/"*

mkdir -p "$work/boot"
: >"$work/kernels"
for k in "$root"/boot/vmlinuz-*; do
	v=${k##*/vmlinuz-}
	cp "$k" "$work/boot/"
	cp "$root/boot/initrd.img-$v" "$work/boot/"
	echo "$v" >>"$work/kernels"
done
[ -s "$work/kernels" ] || { echo "image.sh: no kernel in $name" >&2; exit 1; }
mb=$(du -sm "$root" | cut -f1)
mke2fs -q -t ext4 -L root -d "$root" "$work/root.img" "$((mb * 13 / 10 + 400))M" >&2
rm -rf "$root"
# Older builds of the same recipe go; this one takes their place.
rm -rf "$cache/$name"-*
mv "$work" "$dir"
trap - EXIT
date -u +%FT%TZ >"$dir/done"
echo "image.sh: $name built in $(($(date +%s) - start)) s, $(du -sh "$dir/root.img" | cut -f1), kernels: $(tr '\n' ' ' <"$dir/kernels")" >&2
echo "$dir"
