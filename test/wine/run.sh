#!/bin/bash
# test/wine/run.sh (make wine-test; root): the Windows client, nfqknock.exe,
# under Wine 10 in a Debian trixie chroot (test/wine/chroot.sh builds it
# once, cached in WINE_CACHE, default /var/cache/nfqknockd-wine), against
# the Linux daemon. Prints one PASS or FAIL line a check, exits 1 when one
# failed. Its namespaces, processes and files go at the end, whatever
# happens. See test/wine/README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
GO=${GO:-go}
[ "$(id -u)" = 0 ] || { echo "wine-test: run as root (chroot, network namespaces)" >&2; exit 1; }
for c in mmdebstrap ip nc unshare python3 iconv; do
	command -v "$c" >/dev/null || { echo "wine-test: needs $c" >&2; exit 1; }
done
slow() { nice -n 19 ionice -c3 "$@"; }

t0=$(date +%s)
root=$(bash "$here/chroot.sh")
t1=$(date +%s)

srv=nfqk-wine-$$-s cli=nfqk-wine-$$-c
S=10.200.0.1 C=10.200.0.2
run=nfqk-run-$$            # the run's directory in the chroot: /$run, Z:\$run
rdir=$root/$run
appdata=$root/root/.wine/drive_c/users/root/AppData/Roaming/nfqknock # %AppData%\nfqknock
tmp=$(mktemp -d /tmp/nfqk-wine.XXXXXX)
pids=()
cleanup() {
	set +e
	inchroot wineserver -k >/dev/null 2>&1
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	# wineserver and any Wine process left: each process whose root is the chroot.
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -9 "${p#/proc/}" 2>/dev/null
	done
	wait 2>/dev/null
	ip netns delete "$srv" 2>/dev/null
	ip netns delete "$cli" 2>/dev/null
	rm -rf "$rdir" "$tmp" "$appdata" "$root/tmp/.wine-0"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== building nfqknock.exe (windows/amd64) and nfqknockd" >&2
mkdir -p "$rdir"
(cd "$repo" && CGO_ENABLED=0 GOOS=windows GOARCH=amd64 slow "$GO" build -trimpath -o "$rdir/nfqknock.exe" ./cmd/nfqknock)
(cd "$repo" && CGO_ENABLED=0 GOOS=windows GOARCH=amd64 slow "$GO" build -trimpath -o "$rdir/setacl.exe" ./test/wine/setacl)
(cd "$repo" && CGO_ENABLED=0 slow "$GO" build -trimpath -o "$tmp/nfqknockd" ./cmd/nfqknockd)
t2=$(date +%s)

# inchroot CMD ARGS...: CMD in the client namespace, in the chroot with its
# own /proc and /dev (a mount namespace of its own: nothing stays mounted),
# in /$run (Z:\$run), with Wine's environment; ended after 60 s (a hang).
inchroot() {
	ip netns exec "$cli" timeout 60 unshare -m --propagation private sh -c '
		r=$1; shift
		mount -t proc proc "$r/proc" && mount --rbind /dev "$r/dev" &&
		exec chroot "$r" env -i HOME=/root PATH=/usr/bin:/bin WINEPREFIX=/root/.wine \
			WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" TZ=UTC XDG_RUNTIME_DIR=/$0/xdg \
			sh -c "cd /$0 && exec \"\$@\"" sh "$@"' "$run" "$root" "$@"
}
winerun() { inchroot wine "$@"; } # winerun PROGRAM ARGS: Wine's PROGRAM (nfqknock.exe, icacls)
wine() { winerun nfqknock.exe "$@"; } # wine ARGS: nfqknock.exe ARGS

fails=0
info() { echo "INFO $*"; }
result() { # result NAME OK DETAIL...
	local name=$1 ok=$2; shift 2
	if [ "$ok" = 1 ]; then echo "PASS $name"; else echo "FAIL $name: $*"; fails=$((fails + 1)); fi
}

ip netns add "$srv"; ip netns add "$cli"
ip -n "$srv" link set lo up; ip -n "$cli" link set lo up
ip -n "$srv" link add veth0 type veth peer name veth0 netns "$cli"
ip -n "$srv" addr add $S/24 dev veth0; ip -n "$cli" addr add $C/24 dev veth0
ip -n "$srv" link set veth0 up; ip -n "$cli" link set veth0 up

openS=wine-open-$$ closeS=wine-close-$$
flags=(-d sha256 --range 20000-30000 --period 10m)
umask 077
mkdir "$rdir/xdg"
printf '# nfqknock secrets\nopen=%s\nclose=%s\n' "$openS" "$closeS" >"$rdir/secrets"

# The wineserver, in the client namespace (it makes the sockets of the
# Windows programs), and Wine's services, started once and kept for the run,
# their output to /dev/null: else each wine would start its own, which would
# hold the $(...) of the check open until they end (3 s a call).
t3=$(date +%s)
inchroot wineserver -p </dev/null >/dev/null 2>&1
inchroot wine wineboot </dev/null >/dev/null 2>&1
ver=$(wine --version 2>&1 || true)
t4=$(date +%s)
echo "== Wine $(chroot "$root" dpkg-query -W -f '${Version}' wine); nfqknock.exe --version: $ver (first start $((t4 - t3)) s)" >&2

# 1. show: the two lines of nfqknockd -s, with the same secrets and flags.
at=1765000000
want=$("$tmp/nfqknockd" -s --at $at "${flags[@]}" -o "$openS" -c "$closeS")
got=$(wine --at $at "${flags[@]}" --secret-file 'Z:\'"$run"'\secrets' show 2>&1) || true
[ "$got" = "$want" ] && ok=1 || ok=0
result "show: nfqknock.exe show prints nfqknockd -s's two lines" $ok "got $(printf %q "$got"), want $(printf %q "$want")"
# now (no --at), the relative path, and the default digest and range
want=$("$tmp/nfqknockd" -s -o "$openS" -c "$closeS")
got=$(wine --secret-file secrets show 2>&1) || true
want2=$("$tmp/nfqknockd" -s -o "$openS" -c "$closeS") # the hour may turn meanwhile
[ "$got" = "$want" ] || [ "$got" = "$want2" ] && ok=1 || ok=0
result "show: now, defaults, relative secret-file path" $ok "got $(printf %q "$got"), want $(printf %q "$want")"

# the client's own files: %AppData%\nfqknock\config and secrets
mkdir -p "$appdata"
cp "$rdir/secrets" "$appdata/secrets"
printf '[*]\ndigest = sha256\n[%s]\nrange = 20000-30000\nperiod = 10m\n' $S >"$appdata/config"
want=$("$tmp/nfqknockd" -s --at $at "${flags[@]}" -o "$openS" -c "$closeS")
got=$(wine --at $at show $S 2>&1) || true
rm -rf "$appdata"
[ "$got" = "$want" ] && ok=1 || ok=0
result "show $S: %AppData%\\nfqknock's config and secrets read" $ok "got $(printf %q "$got"), want $(printf %q "$want")"

# 2. open and close against the daemon in the server namespace.
ip netns exec "$srv" python3 "$here/echo22.py" $S 22 </dev/null >/dev/null 2>&1 & pids+=($!)
mkdir -m 0700 "$tmp/state"
ip netns exec "$srv" "$tmp/nfqknockd" "${flags[@]}" --guard 22 --spa 62201 --state-dir "$tmp/state" -o "$openS" -c "$closeS" >"$tmp/daemon.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do grep -q 'msg=started' "$tmp/daemon.log" && break; sleep 0.1; done
answers() { ip netns exec "$cli" nc -z -w 2 $S 22 2>/dev/null; }
waitlog() { # waitlog MSG: a line msg=MSG source=$C, up to 5 s
	for _ in $(seq 50); do grep -qE -- "msg=$1 source=${C//./\\.}( |\$)" "$tmp/daemon.log" && return 0; sleep 0.1; done
	return 1
}
if answers; then before=1; else before=0; fi
rc=0; out=$(wine "${flags[@]}" --secret-file secrets -v open $S 2>&1) || rc=$?
if [ $rc = 0 ] && [ $before = 0 ] && waitlog open && answers; then ok=1; else ok=0; fi
result "open: daemon logs msg=open source=$C, port 22 answers" $ok \
	"exit $rc, port 22 answered before: $before; client: $out; daemon log: $(tail -5 "$tmp/daemon.log")"
# The port must answer before the close: a close knocked at a closed port
# is logged as well.
if answers; then before=1; else before=0; fi
rc=0; out=$(wine "${flags[@]}" --secret-file secrets -v close $S 2>&1) || rc=$?
if [ $rc = 0 ] && [ $before = 1 ] && waitlog close && ! answers; then ok=1; else ok=0; fi
result "close: daemon logs msg=close source=$C, port 22 drops" $ok \
	"exit $rc, port 22 answered before: $before; client: $out; daemon log: $(tail -5 "$tmp/daemon.log")"

# proxy, as ssh's ProxyCommand: knocks open, carries stdin and stdout to
# port 22, knocks close when the connection ends.
opens=$(grep -c "msg=open source=" "$tmp/daemon.log" || true)
closes=$(grep -c "msg=close source=" "$tmp/daemon.log" || true)
rc=0; out=$(printf 'ping\n' | wine "${flags[@]}" --secret-file secrets proxy $S 22 2>&1) || rc=$?
sleep 0.5
o2=$(grep -c "msg=open source=$C" "$tmp/daemon.log" || true); c2=$(grep -c "msg=close source=$C" "$tmp/daemon.log" || true)
case $out in *hello-from-22*echo:ping*) carried=1;; *) carried=0;; esac
[ $rc = 0 ] && [ $carried = 1 ] && [ "$o2" -gt "$opens" ] && [ "$c2" -gt "$closes" ] && ! answers && ok=1 || ok=0
result "proxy $S 22: stdin and stdout carried, open and close knocked, port 22 drops after" $ok \
	"exit $rc; output: $out; daemon log: $(tail -3 "$tmp/daemon.log")"

# SPA: one UDP packet opens, one closes (the daemon has --spa 62201).
spa() { grep -cE -- "msg=$1 source=${C//./\\.} .*via=spa" "$tmp/daemon.log" || true; }
o1=$(spa open)
rc=0; out=$(wine "${flags[@]}" --secret-file secrets -v open --spa $S 2>&1) || rc=$?
for _ in $(seq 50); do [ "$(spa open)" -gt "$o1" ] && break; sleep 0.1; done
[ $rc = 0 ] && [ "$(spa open)" -gt "$o1" ] && answers && ok=1 || ok=0
result "open --spa: daemon logs msg=open source=$C via=spa, port 22 answers" $ok \
	"exit $rc; client: $out; daemon log: $(tail -3 "$tmp/daemon.log")"
c1=$(spa close)
rc=0; out=$(wine "${flags[@]}" --secret-file secrets -v close --spa $S 2>&1) || rc=$?
for _ in $(seq 50); do [ "$(spa close)" -gt "$c1" ] && break; sleep 0.1; done
[ $rc = 0 ] && [ "$(spa close)" -gt "$c1" ] && ! answers && ok=1 || ok=0
result "close --spa: daemon logs msg=close source=$C via=spa, port 22 drops" $ok \
	"exit $rc; client: $out; daemon log: $(tail -3 "$tmp/daemon.log")"

# 3. The secret file's checks. On Windows the client reads the file's owner
# and DACL (GetSecurityInfo); Wine makes them up from the Unix owner and
# mode: the owner's uid is the user (another uid: ANONYMOUS LOGON), the
# owner's bits an entry for the user, the others' bits one for Everyone.
want=$("$tmp/nfqknockd" -s --at $at -o "$openS" -c "$closeS")
secret() { # secret FILE MODE [CHOWN]: $out and $rc of show with FILE, made from secrets
	[ -e "$rdir/$1" ] || cp "$rdir/secrets" "$rdir/$1"
	chmod "$2" "$rdir/$1"; [ -z "${3:-}" ] || chown "$3" "$rdir/$1"
	rc=0; out=$(wine --at $at --secret-file "$1" show 2>&1) || rc=$?
}
has() { case $out in *"$1"*) return 0;; esac; return 1; }
secret s600 600
[ $rc = 0 ] && [ "$out" = "$want" ] && ok=1 || ok=0
result "secret file 600 (only the owner): read" $ok "exit $rc: $out"
for m in 604 644 666; do
	secret s$m $m
	[ $rc = 2 ] && has "Everyone (S-1-1-0) has access to it" && has "icacls s$m /inheritance:r /grant:r" && ok=1 || ok=0
	result "secret file $m (others may read): refused, names Everyone and the icacls fix" $ok "exit $rc: $out"
	[ $m != 644 ] || fix=${out##*Administrators: } # the icacls command the client prints
done
secret other 600 1000:1000
[ $rc = 2 ] && has "owned by " && has "not by you, SYSTEM or Administrators" && ok=1 || ok=0
owner=${out#*owned by }; owner=${owner%%, not by*}
result "secret file 600 owned by another uid: refused (Wine's owner: $owner)" $ok "exit $rc: $out"
utf16() { # utf16 NAME ICONV-ENCODING
	printf 'open=%s\r\nclose=%s\r\n' "$openS" "$closeS" | iconv -f UTF-8 -t "$2" >"$rdir/$1"
	rc=0; out=$(wine --secret-file "$1" show 2>&1) || rc=$?
	[ $rc = 2 ] && has "the file is UTF-16" && has "Set-Content -Encoding ascii" && ok=1 || ok=0
}
utf16 utf16bom UTF-16
result "secret file in UTF-16 with BOM: diagnosed, says how to save it" $ok "exit $rc: $out"
utf16 utf16le UTF-16LE
result "secret file in UTF-16LE without BOM: diagnosed" $ok "exit $rc: $out"

# What Wine cannot check, shown and not counted (see README.md).
secret s640 640
info "secret file 640 (group may read): exit $rc (0: read): Wine's DACL has no entry for the Unix group, nor for any account but the user, SYSTEM and Everyone"
for m in 600 640 644; do
	info "mode $m: Wine's owner and DACL: $(winerun setacl.exe s$m 2>&1)"
done
# shellcheck disable=SC2086 # the command as printed, split into words
rc=0; o=$(winerun $fix 2>&1) || rc=$?
info "$fix (the fix the client printed): exit $rc, said '$o', mode of s644 after: $(stat -c %a "$rdir/s644"): Wine's icacls is a stub"
# A DACL set through the Windows API (SetNamedSecurityInfo, test/wine/setacl),
# as icacls would: entries for BUILTIN\Users, which the client must refuse.
cp "$rdir/secrets" "$rdir/acl"; chmod 600 "$rdir/acl"
rc=0; o=$(winerun setacl.exe acl 'D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FR;;;BU)' 2>&1) || rc=$?
info "SetNamedSecurityInfo D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FR;;;BU) on a 600 file: exit $rc, DACL read back $o, mode after: $(stat -c %a "$rdir/acl"): Wine keeps no DACL of its own, only what a Unix mode says (BUILTIN\\Users is gone, the mode widened)"

echo "== times: chroot $((t1 - t0)) s, builds $((t2 - t1)) s, checks $(($(date +%s) - t2)) s; chroot $(du -sh "$root" --exclude="$run" 2>/dev/null | cut -f1)" >&2
exit $((fails > 0))
