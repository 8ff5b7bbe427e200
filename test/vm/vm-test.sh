#!/bin/bash
# test/vm/vm-test.sh: the host side of `make vm-test` (root). Builds the
# packages (make deb, and newer versions for the upgrade event) and the
# prober, builds or reuses the images (image.sh), boots each kernel of
# VM_KERNELS with systemd as PID 1 (boot.sh, guest: systemd/run), then prints
# the matrix (matrix.sh) and writes it to dist/vm-matrix.md. Exits non-zero
# when a security check fails (see matrix.sh).
#
# Knobs (environment; `make vm-test VAR=...` passes them):
#   VM_KERNELS  kernel names, default "5.10 6.1 6.12 newest":
#               5.10 bullseye; 6.1 bookworm; 6.12 bookworm-backports;
#               newest trixie-backports (the newest kernel Debian ships);
#               openrc: the OpenRC image and scenario (test/vm/openrc/vm.sh,
#               the .apk's scripts, bookworm-backports' 6.12)
#   VM_REPEAT   "issue19" (default): 20 flush ruleset, 20 reload nftables,
#               5 delete table, 5 restart, 5 kill -9, 2 upgrades; or a number
#               N: N of each (at most 2 upgrades), for a quicker run
#   VM_BOOTS    yes (default): the two reboots (ssh.service, ssh.socket)
#   VM_STRICT   persist (default): prober successes must be 0 on kernels with
#               table flag PERSIST (6.9+); all: on every kernel
#   VM_PROBE_EVERY  the prober's interval, default 5ms
#   VM_JOBS     VMs at once, default 1 (2 cores: more stretches the times)
#   VM_OUT      results, default dist/vm; VM_CACHE, VM_ACCEL... see boot.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cd "$top"
[ "$(id -u)" = 0 ] || { echo "vm-test: run as root (mmdebstrap, qemu)" >&2; exit 2; }
kernels=${VM_KERNELS:-5.10 6.1 6.12 newest}
out=${VM_OUT:-$top/dist/vm}
GO=${GO:-go}
t_all=$(date +%s)
# The commit under test, taken now: the tree may move while the VMs run.
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo -dirty)

# kernel NAME: prints "RECIPE GLOB": the image recipe, and the kernel
# version glob within it (the highest match is taken).
kernel() {
	case $1 in
	5.10) echo "bullseye 5.10.*" ;;
	6.1) echo "bookworm 6.1.*" ;;
	6.12) echo "bookworm 6.12.*" ;;
	newest) echo "trixie *" ;;
	openrc) echo "openrc -" ;; # test/vm/openrc/vm.sh builds its own image
	*) echo "vm-test: unknown kernel $1 (5.10, 6.1, 6.12, newest)" >&2; return 1 ;;
	esac
}

case ${VM_REPEAT:-issue19} in
issue19) n_flush=20 n_reloadnft=20 n_delete=5 n_restart=5 n_kill=5 n_up=2 ;;
*) n_flush=$VM_REPEAT n_reloadnft=$VM_REPEAT n_delete=$VM_REPEAT n_restart=$VM_REPEAT n_kill=$VM_REPEAT
	n_up=$((VM_REPEAT < 2 ? VM_REPEAT : 2)) ;;
esac

work=$(mktemp -d /tmp/vm-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
in=$work/in
mkdir -p "$in/debs"

# The packages: this commit's, and n_up newer builds of the same code.
t0=$(date +%s)
echo "== vm-test: packages (make deb)"
make -s deb DIST="$work/deb0" >"$work/make.log" 2>&1 || { cat "$work/make.log"; exit 1; }
cp "$work"/deb0/*.deb "$in/debs/base.deb"
for i in $(seq "$n_up"); do
	make -s deb DIST="$work/deb$i" PKG_VERSION="99.0.$i" >"$work/make.log" 2>&1 || { cat "$work/make.log"; exit 1; }
	cp "$work/deb$i"/*.deb "$in/debs/up$i.deb"
done
CGO_ENABLED=0 $GO build -trimpath -o "$in/prober" ./test/vm/prober
cp "$here/systemd/run" "$in/run"
cat >"$in/config" <<EOF
N_FLUSH=$n_flush
N_RELOADNFT=$n_reloadnft
N_DELETE=$n_delete
N_RESTART=$n_restart
N_KILL=$n_kill
PROBE_EVERY=${VM_PROBE_EVERY:-5ms}
PROBE_PORT=2222
SETTLE=${VM_SETTLE:-1}
BOOTS=${VM_BOOTS:-yes}
EOF
echo "   $(($(date +%s) - t0)) s: $(ls "$in/debs" | tr '\n' ' ')"

# The images, each once.
declare -A imgdir
for k in $kernels; do
	read -r recipe _ <<<"$(kernel "$k")"
	[ "$recipe" != openrc ] || continue
	[ -n "${imgdir[$recipe]:-}" ] && continue
	t0=$(date +%s)
	echo "== vm-test: image $recipe"
	imgdir[$recipe]=$("$here/image.sh" "$here/images/$recipe.recipe" | tail -n 1)
	echo "   $(($(date +%s) - t0)) s: ${imgdir[$recipe]}"
done

# run_vm NAME: boots kernel NAME, results in $out/NAME.
run_vm() {
	local k=$1 recipe glob dir v o t0 rc=0
	if [ "$k" = openrc ]; then
		# The OpenRC row: its own script, the same prober and repetitions; it
		# writes $out/openrc/vm itself. It builds the .apk (make apk).
		echo "== vm-test: openrc ..."
		t0=$(date +%s)
		VM_PROBER="$in/prober" N_FLUSH=$n_flush N_RESTART=$n_restart N_KILL=$n_kill \
			BOOTS=${VM_BOOTS:-yes} PROBE_EVERY=${VM_PROBE_EVERY:-5ms} \
			bash "$here/openrc/vm.sh" "$out/openrc" >"$work/openrc.log" 2>&1 || rc=$?
		echo "== vm-test: openrc done in $(($(date +%s) - t0)) s (exit $rc)"
		return 0
	fi
	read -r recipe glob <<<"$(kernel "$k")"
	dir=${imgdir[$recipe]}
	# shellcheck disable=SC2053
	v=$(while read -r x; do [[ $x != $glob ]] || echo "$x"; done <"$dir/kernels" | sort -V | tail -n 1)
	[ -n "$v" ] || { echo "vm-test: no kernel $glob in $dir" >&2; return 1; }
	o=$out/$k
	rm -rf "$o"
	mkdir -p "$o"
	echo "== vm-test: $k ($v) ..."
	t0=$(date +%s)
	"$here/boot.sh" "$dir/root.img" "$dir/boot/vmlinuz-$v" "$dir/boot/initrd.img-$v" "$in" "$o" || rc=$?
	{
		echo "seconds=$(($(date +%s) - t0))"
		echo "boot_rc=$rc"
		echo "accel=$(cat "${VM_CACHE:-/var/cache/nfqknockd-vm}/accel/$(sha256sum "$dir/boot/vmlinuz-$v" | cut -c1-16)" 2>/dev/null || echo "${VM_ACCEL:-?}")"
		echo "name=$k"
		echo "init=systemd"
	} >"$o/vm"
	echo "== vm-test: $k done in $(($(date +%s) - t0)) s (qemu exit $rc)"
}

running=0
for k in $kernels; do
	run_vm "$k" &
	running=$((running + 1))
	if [ "$running" -ge "${VM_JOBS:-1}" ]; then
		wait -n || true
		running=$((running - 1))
	fi
done
wait || true

{
	echo "total_seconds=$(($(date +%s) - t_all))"
	echo "host_kernel=$(uname -r)"
	echo "cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
	echo "nproc=$(nproc)"
	echo "commit=$commit"
	echo "repeat=${VM_REPEAT:-issue19}"
	echo "strict=${VM_STRICT:-persist}"
	echo "probe_every=${VM_PROBE_EVERY:-5ms}"
} >"$out/host"
mkdir -p "$top/dist"
VM_STRICT=${VM_STRICT:-persist} bash "$here/matrix.sh" "$out" $kernels
