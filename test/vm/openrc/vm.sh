#!/bin/bash
# test/vm/openrc/vm.sh OUTDIR: the OpenRC row of `make vm-test`. Builds (or
# finds in the cache) the OpenRC image (openrc.recipe, by test/vm/image.sh),
# puts the .apk, the prober, the scenario (guest.sh, as /vm/run) and its
# config on the input disk, boots bookworm-backports' 6.12 kernel
# (VM_OPENRC_KERNEL=6.1 for Debian 12's own) with test/vm/boot.sh, and
# leaves the results in OUTDIR/out (see guest.sh), the console in
# OUTDIR/console.log, and OUTDIR/vm (seconds, accel, init: as vm-test.sh
# writes for its VMs), so that `matrix.sh DIR ... openrc` prints its row
# when OUTDIR is DIR/openrc. It prints the results. Run as root.
#   VM_APK      the .apk to test (default: `make apk`, then dist's newest)
#   VM_PROBER   a static build of test/vm/prober (default: built here)
#   PROBE_EVERY (default 5ms), PROBE_PORT (2222), SETTLE (1, seconds),
#   N_RESTART, N_KILL, N_FLUSH (default 1 each), BOOTS (yes: the reboot
#   check; no): the scenario's config
# Exit 0 when the VM ran to its end (OUTDIR/out/done), else 1.
set -euo pipefail
out=$1
top=$(cd "$(dirname "$0")/../../.." && pwd)
vm=$top/test/vm
t0=$(date +%s)
mkdir -p "$out"
out=$(cd "$out" && pwd)

apk=${VM_APK:-}
if [ -z "$apk" ]; then
	make -C "$top" apk >&2
	apk=$(ls -t "$top"/dist/nfqknockd*.apk | head -n 1)
fi
img=$(bash "$vm/image.sh" "$vm/openrc/openrc.recipe")
t1=$(date +%s)
k=${VM_OPENRC_KERNEL:-6.12}
v=$(grep "^$k\." "$img/kernels" | sort -V | tail -n 1)
[ -n "$v" ] || { echo "vm.sh: no $k kernel in $img/kernels" >&2; exit 1; }

in=$(mktemp -d "${TMPDIR:-/tmp}/vm-openrc.XXXXXX")
trap 'rm -rf "$in"' EXIT
if [ -n "${VM_PROBER:-}" ]; then
	cp "$VM_PROBER" "$in/prober"
else
	(cd "$top" && CGO_ENABLED=0 go build -trimpath -o "$in/prober" ./test/vm/prober)
fi
cp "$apk" "$in/nfqknockd.apk"
cp "$vm/openrc/guest.sh" "$in/run"
cat >"$in/config" <<CONF
PROBE_EVERY=${PROBE_EVERY:-5ms}
PROBE_PORT=${PROBE_PORT:-2222}
SETTLE=${SETTLE:-1}
N_RESTART=${N_RESTART:-1}
N_KILL=${N_KILL:-1}
N_FLUSH=${N_FLUSH:-1}
BOOTS=${BOOTS:-yes}
CONF

rc=0
bash "$vm/boot.sh" "$img/root.img" "$img/boot/vmlinuz-$v" "$img/boot/initrd.img-$v" "$in" "$out" || rc=$?
t2=$(date +%s)
# The `vm` file of vm-test.sh's VMs, which matrix.sh reads.
{
	echo "seconds=$((t2 - t1))"
	echo "boot_rc=$rc"
	echo "accel=$(cat "${VM_CACHE:-/var/cache/nfqknockd-vm}/accel/$(sha256sum "$img/boot/vmlinuz-$v" | cut -c1-16)" 2>/dev/null || echo "${VM_ACCEL:-?}")"
	echo "name=openrc"
	echo "init=openrc $(sed -n 's/^openrc=//p' "$out/out/info" 2>/dev/null)"
	echo "image_seconds=$((t1 - t0))"
} >"$out/vm"
{
	echo "vm.sh: openrc on $v: image $((t1 - t0)) s (with the .apk), VM $((t2 - t1)) s, boot.sh exit $rc"
	cat "$out/out/info" "$out/out/checks" 2>/dev/null
	column -t -s "$(printf '\t')" "$out/out/events.tsv" 2>/dev/null || cat "$out/out/events.tsv" 2>/dev/null
} | tee "$out/summary.txt"
[ "$rc" = 0 ] && [ -e "$out/out/done" ]
