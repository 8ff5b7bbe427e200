#!/bin/bash
# test/vm/boot.sh IMAGE KERNEL INITRD INDIR OUTDIR: boots one VM and waits
# for it to power off. Knows nothing of the guest's init or test; see
# test/vm/README.md for the interface. In short:
#   /dev/vda  IMAGE, snapshot=on (writes live as long as qemu, across guest
#             reboots, and never reach IMAGE)
#   /dev/vdb  a fresh ext4 disk (label vmio) holding a copy of INDIR; the
#             guest writes its results under /out of it
# After qemu exits, /out is copied to OUTDIR/out and the serial console is in
# OUTDIR/console.log. Exit 0 when qemu exited by itself, 124 when it was
# killed after VM_TIMEOUT seconds, else qemu's status.
# Knobs: VM_ACCEL (auto|kvm|tcg), VM_MEM (MiB), VM_SMP, VM_TIMEOUT (s),
# VM_APPEND (extra kernel arguments), VM_IO_MB, VM_CACHE, QEMU.
set -euo pipefail
[ $# = 5 ] || { echo "usage: $0 IMAGE KERNEL INITRD INDIR OUTDIR" >&2; exit 2; }
image=$1 kernel=$2 initrd=$3 indir=$4 outdir=$5
QEMU=${QEMU:-qemu-system-x86_64}
cache=${VM_CACHE:-/var/cache/nfqknockd-vm}
mkdir -p "$outdir"
work=$(mktemp -d "${TMPDIR:-/tmp}/vmboot.XXXXXX")
trap 'rm -rf "$work"' EXIT

# accel KERNEL: prints kvm or tcg. With VM_ACCEL=auto, boots KERNEL with KVM,
# no disk and no initrd for a few seconds: a working KVM reaches the
# root-mount panic in well under a second; a nested paravirtual KVM, where
# Debian's kernels hang, prints nothing. Cached per kernel file.
accel() {
	local k=$1 want=${VM_ACCEL:-auto} h f
	if [ "$want" != auto ]; then echo "$want"; return; fi
	if [ ! -w /dev/kvm ]; then echo tcg; return; fi
	h=$(sha256sum "$k" | cut -c1-16)
	f=$cache/accel/$h
	if [ ! -s "$f" ]; then
		mkdir -p "$cache/accel"
		timeout 8 "$QEMU" -accel kvm -cpu host -m 256 -nographic -no-reboot \
			-monitor none -serial "file:$work/probe.log" -kernel "$k" \
			-append 'console=ttyS0 panic=-1' >/dev/null 2>&1 || true
		if grep -qE 'Kernel panic|VFS: Unable' "$work/probe.log" 2>/dev/null; then
			echo kvm >"$f"
		else
			echo tcg >"$f"
		fi
	fi
	cat "$f"
}

a=$(accel "$kernel")
case $a in
kvm) accelargs=(-accel kvm -cpu host) ;;
*) accelargs=(-accel tcg -cpu max) ;;
esac

# The input/output disk: INDIR plus room for the results.
mb=$(du -sm "$indir" | cut -f1)
mke2fs -q -t ext4 -L vmio -d "$indir" "$work/io.img" "$((mb + ${VM_IO_MB:-256}))M"

echo "boot.sh: $(basename "$kernel") accel=$a" >&2
rc=0
timeout --foreground -k 10 "${VM_TIMEOUT:-3600}" "$QEMU" "${accelargs[@]}" \
	-m "${VM_MEM:-1024}" -smp "${VM_SMP:-2}" -nographic -monitor none \
	-serial "file:$outdir/console.log" -nic none \
	-drive "file=$image,format=raw,if=virtio,snapshot=on" \
	-drive "file=$work/io.img,format=raw,if=virtio" \
	-kernel "$kernel" -initrd "$initrd" \
	-append "root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=10 modprobe.blacklist=floppy,kvm_amd,kvm_intel ${VM_APPEND:-}" \
	</dev/null || rc=$?

rm -rf "$outdir/out"
debugfs -R "rdump /out $outdir" "$work/io.img" >/dev/null 2>&1 || true
exit "$rc"
