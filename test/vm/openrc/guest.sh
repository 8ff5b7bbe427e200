#!/bin/bash
# test/vm/openrc/guest.sh: the guest side of `make vm-test` under OpenRC (the
# image of test/vm/openrc/openrc.recipe: sysvinit's /sbin/init, Debian's
# openrc with supervise-daemon, no systemd). inittab's vm line runs it from
# the input disk as /vm/run once the default runlevel is up. It does what an
# Alpine admin does with the .apk: puts the .apk's files in place (Debian has
# no apk: the files of its data part, as apk would), writes the secrets, sets
# the guard in /etc/conf.d/nfqknockd, `rc-update add`, `rc-service start`;
# knocks and runs real ssh through `nfqknock proxy` from client namespaces;
# then puts the guard through OpenRC's events (restart, reload with new
# secrets, kill -9 and supervise-daemon's respawn, stop and start again) and
# `nft flush ruleset`, while a prober from a source that never knocked tries
# a guarded port every PROBE_EVERY.
#
# /vm holds: config (sourced: PROBE_EVERY, PROBE_PORT, SETTLE, N_RESTART,
# N_KILL, N_FLUSH), prober (static), nfqknockd.apk. It writes /vm/out:
#   info       key=value: kernel, init, openrc, nft, the daemon's start line,
#              its capabilities, how supervise-daemon runs it
#   table.txt  `nft list table inet nfqknock`;  tables.txt  `nft list tables`
#   checks     key=value, as the systemd guest's (plus the OpenRC ones)
#   events.tsv one line per event, the systemd guest's columns
#   messages.txt (syslog: the daemon's log), rc-status.txt, run.log, done
set -u
if [ "$0" != /run/vmtest-run ]; then
	# Run from a copy, so that /vm can be unmounted at the end.
	cp "$0" /run/vmtest-run && exec /bin/bash /run/vmtest-run "$@"
fi
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
OUT=/vm/out
mkdir -p "$OUT"
exec >>"$OUT/run.log" 2>&1
. /vm/config
P=/usr/local/sbin/vmprober
G=10.0.1.1 # the host's address as the clients see it (its veth side)
PIDF=/run/openrc/options/nfqknockd/child_pid
# The phase (setup, boot) lives on the root disk's overlay, which survives
# the reboot.
STATE=/var/lib/vmtest
mkdir -p "$STATE"
phase=$(cat "$STATE/phase" 2>/dev/null || echo setup)
# log: a line in run.log and on the console.
log() {
	local l
	l="[$(cut -d' ' -f1 /proc/uptime)] vmtest: $*"
	echo "$l"
	echo "$l" >/dev/console
}
check() { echo "$1=$2" >>"$OUT/checks"; log "check $1=$2"; }
now() { date +%s%3N; }

# finish [reboot]: the logs to /vm/out, then power off (or reboot).
finish() {
	log "finish ($phase)"
	rc-status -a >"$OUT/rc-status-$phase.txt" 2>&1
	cp /var/log/messages "$OUT/messages.txt" 2>/dev/null
	cp /var/log/nfqknockd.log "$OUT/nfqknockd.log" 2>/dev/null
	# journal-PHASE.txt as the systemd guest's, which matrix.sh reads: the
	# kernel's log, then the daemon's lines as "nfqknockd[]: LINE" (no pid).
	{
		dmesg
		sed -n 's/^.* nfqknockd: /nfqknockd[]: /p' /var/log/messages 2>/dev/null
		sed 's/^/nfqknockd[]: /' /var/log/nfqknockd.log 2>/dev/null
	} >"$OUT/journal-$phase.txt"
	if [ "${1:-}" = reboot ]; then
		[ -z "${LISTENER:-}" ] || kill "$LISTENER"
		exec >/dev/console 2>&1
		sync
		reboot
		exit 0
	fi
	touch "$OUT/done"
	[ -z "${LISTENER:-}" ] || kill "$LISTENER"
	exec >/dev/console 2>&1
	cd / && sync && umount /vm
	sync
	poweroff -f
}

# mkns NAME N: a network namespace NAME joined to this one by a veth pair:
# here 10.0.N.1/24 and fd00:N::1/64, there 10.0.N.2 and fd00:N::2, with
# fixed MAC addresses (as the systemd guest's).
mkns() {
	ip netns add "$1"
	ip link add "v$2h" address "02:00:00:00:0$2:01" type veth peer name "v$2n" address "02:00:00:00:0$2:02"
	ip link set "v$2n" netns "$1"
	ip addr add "10.0.$2.1/24" dev "v$2h"
	ip addr add "fd00:$2::1/64" dev "v$2h" nodad
	ip link set "v$2h" up
	ip -n "$1" link set lo up
	ip -n "$1" addr add "10.0.$2.2/24" dev "v$2n"
	ip -n "$1" addr add "fd00:$2::2/64" dev "v$2n" nodad
	ip -n "$1" link set "v$2n" up
	ip -n "$1" route add default via "10.0.$2.1"
	ip -n "$1" -6 route add default via "fd00:$2::1"
}

# knock NS SECRETFILE HOST [open|close]: nfqknock from namespace NS; what
# it says goes to knock.log.
knock() {
	echo "[$(cut -d' ' -f1 /proc/uptime)] $1 ${4:-open} $3" >>"$OUT/knock.log"
	ip netns exec "$1" nfqknock --secret-file "$2" "${4:-open}" "$3" >>"$OUT/knock.log" 2>&1
}
# reach NS ADDR:PORT: one connect attempt, 2 s.
reach() { ip netns exec "$1" $P -once -timeout 2s "$2" >/dev/null 2>&1; }
# opens NS ADDR:PORT NAME: a check NAME: ok when a connect gets through
# within 3 tries (2 s each: the knock may still be in the daemon's queue
# under emulation), with the try that did; else FAIL.
opens() {
	local i
	for i in 1 2 3; do
		if reach "$1" "$2"; then
			[ $i = 1 ] && check "$3" ok || check "$3" "ok (try $i)"
			return 0
		fi
	done
	check "$3" FAIL
}

# fresh_knocker: gives namespace knk a source address that never knocked.
# The counter lives in a file: knock_after runs in $(...) subshells.
fresh_knocker() {
	local knk_n
	knk_n=$(($(cat /run/vmknk 2>/dev/null || echo 10) + 1))
	[ $knk_n -lt 250 ] || knk_n=11
	echo $knk_n >/run/vmknk
	ip -n knk addr flush dev v3n scope global
	ip -n knk addr add "10.0.3.$knk_n/24" dev v3n
	ip -n knk route replace default via 10.0.3.1
}

# knock_after [SECRETFILE]: a fresh source knocks and connects: 1 or 0.
knock_after() {
	fresh_knocker
	knock knk "${1:-/root/secrets}" 10.0.3.1 >/dev/null 2>&1
	if reach knk 10.0.3.1:22; then echo 1; else echo 0; fi
}

# daemon_pid: the daemon's pid as supervise-daemon recorded it, if it runs.
daemon_pid() {
	local p
	p=$(cat "$PIDF" 2>/dev/null) || return 1
	[ -n "$p" ] && [ -d "/proc/$p" ] && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = nfqknockd ] && echo "$p"
}

# LOGS: where the daemon's log can be: syslog (error_logger), or the file
# error_log where supervise-daemon has no --stderr-logger.
LOGS="/var/log/messages /var/log/nfqknockd.log"
# starts: how many times a daemon logged its start.
starts() {
	cat $LOGS 2>/dev/null | grep -c 'msg=started'
}

# reload_secrets: rc-service nfqknockd reload, then until the daemon has
# logged that it re-read them (at most 30 s).
reload_secrets() {
	local n end=$(($(now) + 30000)) rc
	n=$(cat $LOGS 2>/dev/null | grep -c 'msg=reloaded')
	rc-service nfqknockd reload
	rc=$?
	while [ "$(cat $LOGS 2>/dev/null | grep -c 'msg=reloaded')" -le "$n" ] && [ "$(now)" -lt $end ]; do
		sleep 0.1
	done
	return $rc
}

# wait_guard [PID [STARTS]]: until OpenRC has the service started, the
# daemon runs with a pid other than PID, more daemons than STARTS logged
# their start, and its table exists; at most 60 s.
wait_guard() {
	local p end=$(($(now) + 60000))
	while [ "$(now)" -lt $end ]; do
		if rc-service nfqknockd status >/dev/null 2>&1 && p=$(daemon_pid) && [ "$p" != "${1:-}" ] &&
			[ "$(starts)" -gt "${2:--1}" ] && nft list table inet nfqknock >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	log "wait_guard: no guard after 60 s"
	return 1
}

# event NAME I COMMAND...: probers on, COMMAND, guard back, probers off,
# then a knock from a fresh source (with KNOCK_SECRETS, default the
# secrets in force). One line of events.tsv (the systemd guest's columns).
event() {
	local name=$1 i=$2 t0 rc before n
	shift 2
	ip netns exec prb $P -every "$PROBE_EVERY" -timeout 300ms -out /run/p.txt 10.0.2.1:$PROBE_PORT &
	local pp=$!
	ip netns exec cli $P -every 50ms -timeout 1500ms -out /run/c.txt $G:$PROBE_PORT &
	local cp=$!
	sleep 1
	before=$(daemon_pid)
	n=$(starts)
	t0=$(now)
	"$@" >/run/ev.out 2>&1
	rc=$?
	case $name in kill9 | restart) wait_guard "$before" "$n" ;; *) wait_guard ;; esac
	echo "$(($(now) - t0))" >/run/ev.back
	sleep "$SETTLE"
	kill -TERM $pp $cp
	wait $pp $cp
	local k
	k=$(knock_after "${KNOCK_SECRETS:-/root/secrets}")
	(
		. /run/p.txt
		pt=$tries pok=$ok pref=$refused pto=$timeout poth=$other f=$first_ok_ms l=$last_ok_ms
		. /run/c.txt
		miss=0
		[ "$pok" = 0 ] || miss=$((l - f + ${PROBE_EVERY%ms}))
		since=-
		[ "$pok" = 0 ] || since=$((f - t0))
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$i" "$pt" "$pok" "$pref" \
			"$pto" "$poth" "$miss" "$since" "$tries" "$((tries - ok))" "$k" "$rc:$(head -c 80 /run/ev.out | tr '\t\n' '  ')"
	) >>"$OUT/events.tsv"
	log "event $name $i (guard and daemon back after $(cat /run/ev.back) ms): $(tail -n 1 "$OUT/events.tsv")"
}

kill_main() { kill -9 "$(daemon_pid)"; }

# new_secrets FILE: writes random open= and close= lines, mode 0600.
new_secrets() {
	install -m 0600 /dev/null "$1"
	printf 'open=%s\nclose=%s\n' "$(head -c 18 /dev/urandom | base64)" "$(head -c 18 /dev/urandom | base64)" >"$1"
}

# install_apk FILE: puts the files of the .apk's data part in place, with
# their modes, as apk would (its scripts act only under systemd: nothing).
install_apk() {
	local d=/run/apk f
	rm -rf "$d" && mkdir -p "$d"
	# An .apk is gzip streams of tar (signature, control, data) one after
	# the other; tar reads them as one archive.
	tar -xzf "$1" -C "$d" 2>>"$OUT/apk.err" || return 1
	(cd "$d" && find . -mindepth 1 ! -path './.*' -printf '%y %m %p\n') >"$OUT/apk-files.txt"
	while read -r t m f; do
		f=${f#./}
		case $t in
		d) [ -d "/$f" ] || install -d -m "$m" "/$f" ;;
		f) install -D -m "$m" "$d/$f" "/$f" ;;
		esac
	done <"$OUT/apk-files.txt"
}

# caps PID: the capability lines and NoNewPrivs of /proc/PID/status.
caps() { grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):' "/proc/$1/status" | tr -s '\t\n' '  '; }

# up_of PID: when process PID began, in seconds since boot.
up_of() {
	[ -n "$1" ] && awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", $22 / hz }' "/proc/$1/stat"
}

# install_bootprobe: an OpenRC service in the default runlevel, ordered
# before sshd (Debian's ssh script provides it) and nfqknockd, that probes
# sshd's port 22 from namespace bp (10.0.9.2) from then on, with a control
# prober on port 9 (closed, not guarded: every try should be refused).
install_bootprobe() {
	cat >/etc/init.d/vmbootprobe <<-EOF
		#!/sbin/openrc-run
		description="VM test: probes sshd's port from early boot (test/vm/openrc)"
		depend() {
			before sshd ssh nfqknockd
		}
		start() {
			ebegin "Starting the VM test's boot prober"
			ip netns add bp
			ip link add v9h address 02:00:00:00:09:01 type veth peer name v9n address 02:00:00:00:09:02
			ip link set v9n netns bp
			ip addr add 10.0.9.1/24 dev v9h
			ip link set v9h up
			ip -n bp link set lo up
			ip -n bp addr add 10.0.9.2/24 dev v9n
			ip -n bp link set v9n up
			ip netns exec bp $P -every 20ms -timeout 1s -out /run/vmbootctl.txt 10.0.9.1:9 </dev/null >/dev/null 2>&1 &
			echo \$! >/run/vmbootctl.pid
			ip netns exec bp $P -every $PROBE_EVERY -timeout 300ms -ready /run/vmbootprobe.first -out /run/vmbootprobe.txt 10.0.9.1:22 </dev/null >/dev/null 2>&1 &
			echo \$! >/run/vmbootprobe.pid
			i=0
			while [ ! -e /run/vmbootprobe.first ] && [ \$i -lt 300 ]; do sleep 0.01; i=\$((i + 1)); done
			eend 0
		}
	EOF
	chmod 0755 /etc/init.d/vmbootprobe
	rc-update add vmbootprobe default >/dev/null 2>&1
}

if [ "$phase" = boot ]; then
	log "after the reboot: $(uname -r)"
	kill -TERM "$(cat /run/vmbootprobe.pid)" "$(cat /run/vmbootctl.pid)"
	sleep 1.5
	cp /run/vmbootprobe.txt "$OUT/boot-service.txt"
	sed 's/^/control_/' /run/vmbootctl.txt >>"$OUT/boot-service.txt"
	{
		# Seconds since boot: when the processes began (sshd: the
		# listener, the oldest sshd), when the guard was first seen
		# (first_timeout_up above).
		echo "nfqknockd_process_up=$(up_of "$(daemon_pid)")"
		echo "sshd_process_up=$(up_of "$(pgrep -o -x sshd)")"
		st=$(cat $LOGS 2>/dev/null | grep 'msg=started' | tail -n 1 | sed -n 's/^time=\([^ ]*\) .*/\1/p')
		echo "nfqknockd_started_log=$st"
		# The same in seconds since boot: the log has the wall clock.
		[ -z "$st" ] || echo "nfqknockd_started_up=$(awk -v now="$(date +%s.%N)" -v t="$(date -d "$st" +%s.%N)" \
			'{ printf "%.2f", t - (now - $1) }' /proc/uptime)"
	} >>"$OUT/boot-service.txt"
	ok=$(sed -n 's/^ok=//p' "$OUT/boot-service.txt")
	check boot_service "${ok:-none}"
	# sshd's process began after the daemon had its table in place (its
	# "started" line; start_post). The prober's first timeout is no such
	# mark: under a loaded emulation a refused try can time out too.
	g=$(sed -n 's/^nfqknockd_started_up=//p' "$OUT/boot-service.txt")
	d=$(sed -n 's/^sshd_process_up=//p' "$OUT/boot-service.txt")
	if [ -n "$g" ] && [ -n "$d" ] && awk -v g="$g" -v d="$d" 'BEGIN { exit !(g < d) }'; then
		check boot_guard_before_sshd "ok (the daemon started at $g s, sshd began at $d s)"
	else
		check boot_guard_before_sshd "FAIL: the daemon started at ${g:-never} s, sshd began at ${d:-?} s"
	fi
	mkns knk 3
	mkns sshc 4
	check boot_service_knock "$(knock_after)"
	out=$(ip netns exec sshc ssh -F none -i /root/.ssh/id_ed25519 -o BatchMode=yes \
		-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=30 \
		-o "ProxyCommand nfqknock --secret-file /root/secrets proxy %h %p" root@10.0.4.1 echo through 2>>"$OUT/ssh.err")
	[ "$out" = through ] && check ssh_boot ok || check ssh_boot FAIL
	finish
fi

log "start: $(uname -r), pid 1 $(readlink /proc/1/exe)"
cp /vm/prober $P && chmod 0755 $P
# The daemon logs through error_logger (logger, syslog): a syslog daemon
# to read it, as an Alpine system has.
if command -v busybox >/dev/null; then
	busybox syslogd -O /var/log/messages
fi
{
	echo "kernel=$(uname -r)"
	echo "init=$(readlink /proc/1/exe) ($(dpkg-query -W -f '${Package} ${Version}' sysvinit-core))"
	echo "openrc=$(dpkg-query -W -f '${Version}' openrc)"
	echo "nft=$(nft --version)"
	echo "sshd=$(dpkg-query -W -f '${Version}' openssh-server)"
	if RC_SVCNAME=probe supervise-daemon probe --capabilities ^cap_net_admin --help >/dev/null 2>&1; then
		echo "supervise_daemon_capabilities=yes"
	else
		echo "supervise_daemon_capabilities=no ($(RC_SVCNAME=probe supervise-daemon probe --capabilities ^cap_net_admin 2>&1 | head -n 1 | tr -d '*' | sed 's/^ *//'))"
	fi
} >"$OUT/info"

install_apk /vm/nfqknockd.apk && [ -x /etc/init.d/nfqknockd ] && [ -x /usr/sbin/nfqknockd ] &&
	check install ok || check install FAIL
new_secrets /etc/nfqknockd/secrets
install -m 0600 /etc/nfqknockd/secrets /root/secrets
sed -i "s/^NFQKNOCKD_OPTS=.*/NFQKNOCKD_OPTS=\"--guard 22,$PROBE_PORT --spa 62201\"/" /etc/conf.d/nfqknockd
rc-service nfqknockd checkconfig >"$OUT/checkconfig.txt" 2>&1 && check checkconfig ok || check checkconfig FAIL
rc-update add nfqknockd default >/dev/null 2>&1 && [ -e /etc/runlevels/default/nfqknockd ] &&
	check rc_update ok || check rc_update FAIL

# sshd: Debian's ssh service (an LSB script that OpenRC runs) is in the
# default runlevel when openssh-server's install enabled it; else add it.
if ! rc-service ssh status >/dev/null 2>&1; then
	rc-update add ssh default >/dev/null 2>&1
	rc-service ssh start >/dev/null 2>&1
	check ssh_service "started by the test"
fi
mkdir -p /root/.ssh && chmod 700 /root/.ssh
ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519
cp /root/.ssh/id_ed25519.pub /root/.ssh/authorized_keys
mkns cli 1
mkns prb 2
mkns knk 3
mkns sshc 4
$P -listen "[::]:$PROBE_PORT" &
LISTENER=$!
sleep 1

# start
t0=$(now)
rc-service nfqknockd start >"$OUT/start.txt" 2>&1 && check start ok || check start FAIL
wait_guard "" 0 && check start_guard "$(($(now) - t0))ms" || check start_guard FAIL
pid=$(daemon_pid)
nft list table inet nfqknock >"$OUT/table.txt" 2>&1
nft list tables >"$OUT/tables.txt" 2>&1
{
	echo "modules=$(lsmod | awk '/^(nft_queue|xt_NFQUEUE|nft_compat|nfnetlink_queue)/{printf "%s ", $1}')"
	echo "startline=$(cat $LOGS 2>/dev/null | grep -m1 'msg=started' | sed 's/^.*nfqknockd[^:]*: //')"
	echo "daemon_log=$(for f in $LOGS; do grep -qs 'msg=started' "$f" && printf '%s ' "$f"; done)"
	echo "daemon_cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline")"
	echo "daemon_caps=$(caps "$pid")"
	echo "daemon_parent=$(tr '\0' ' ' <"/proc/$(awk '{print $4}' "/proc/$pid/stat")/cmdline")"
} >>"$OUT/info"
eff=$(sed -n 's/^CapEff:[[:space:]]*//p' "/proc/$pid/status")
[ "$eff" = 0000000000001000 ] && check daemon_cap_net_admin_only ok || check daemon_cap_net_admin_only "FAIL: CapEff $eff"

# Knock and ssh, as a user would.
reach cli $G:22 && check blocked_before FAIL || check blocked_before ok
knock cli /root/secrets $G
opens cli $G:22 knock4
knock cli /root/secrets fd00:1::1
opens cli "[fd00:1::1]:22" knock6
fresh_knocker
knock knk /root/secrets 10.0.3.1
opens knk 10.0.3.1:22 close_opened
knock knk /root/secrets 10.0.3.1 close
sleep 0.5
reach knk 10.0.3.1:22 && check close FAIL || check close ok
# SPA (--spa 62201): one packet opens, one closes.
fresh_knocker
ip netns exec knk nfqknock --secret-file /root/secrets open --spa 10.0.3.1 >/dev/null 2>&1
opens knk 10.0.3.1:22 spa_open
ip netns exec knk nfqknock --secret-file /root/secrets close --spa 10.0.3.1 >/dev/null 2>&1
sleep 0.5
reach knk 10.0.3.1:22 && check spa_close FAIL || check spa_close ok
out=$(ip netns exec sshc ssh -F none -i /root/.ssh/id_ed25519 -o BatchMode=yes \
	-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=30 \
	-o "ProxyCommand nfqknock --secret-file /root/secrets proxy %h %p" root@10.0.4.1 echo through 2>>"$OUT/ssh.err")
[ "$out" = through ] && check ssh ok || check ssh FAIL
a=$(. /etc/conf.d/nfqknockd && nfqknockd --secret-file /etc/nfqknockd/secrets $NFQKNOCKD_OPTS -s 2>&1)
b=$(nfqknock --secret-file /root/secrets show 2>&1)
[ "$a" = "$b" ] && check show ok || check show "FAIL: $a / $b"

printf 'event\ti\ttries\tok\trefused\ttimeout\tother\tmissing_ms\tfirst_ok_after_ms\tclient_tries\tclient_fail\tknock_after\texit:output\n' >"$OUT/events.tsv"
for i in $(seq "$N_RESTART"); do event restart "$i" rc-service nfqknockd restart; done

# Reload with new secrets: the daemon re-reads /etc/nfqknockd/secrets
# (no credential copy under OpenRC): the new ones open, the old ones no
# longer.
new_secrets /root/secrets.new
cp /root/secrets.new /etc/nfqknockd/secrets
KNOCK_SECRETS=/root/secrets.new event reload 1 reload_secrets
check reload_new_secrets_open "$(knock_after /root/secrets.new)"
check reload_old_secrets_open "$(knock_after /root/secrets)"
cp /root/secrets /etc/nfqknockd/secrets
reload_secrets >/dev/null 2>&1
check reload_back_open "$(knock_after /root/secrets)"

# A crash: supervise-daemon starts the daemon again after its respawn
# delay (2 s); the table guards meanwhile.
for i in $(seq "$N_KILL"); do
	event kill9 "$i" kill_main
	check "kill9_${i}_respawned_ms" "$(cat /run/ev.back)"
done
rc-service nfqknockd status >/dev/null 2>&1 && check kill9_service_started ok || check kill9_service_started FAIL

for i in $(seq "$N_FLUSH"); do event flush "$i" nft flush ruleset; done

# A restart with flags that the daemon refuses stops nothing: stop_pre's
# checkconfig fails, openrc-run goes no further, the daemon keeps running
# with its table.
pid=$(daemon_pid)
cp /etc/conf.d/nfqknockd /root/confd.good
sed -i 's/^NFQKNOCKD_OPTS=.*/NFQKNOCKD_OPTS="--guard 0"/' /etc/conf.d/nfqknockd
rc-service nfqknockd restart >"$OUT/restart-refused.txt" 2>&1 && check restart_bad_flags "FAIL: exit 0" || {
	if [ "$(daemon_pid)" = "$pid" ] && nft list table inet nfqknock >/dev/null 2>&1 &&
		rc-service nfqknockd status >/dev/null 2>&1; then
		check restart_bad_flags "refused, the daemon runs on"
	else
		check restart_bad_flags "FAIL: the daemon or its table is gone"
	fi
}
cp /root/confd.good /etc/conf.d/nfqknockd
check restart_bad_flags_knock "$(knock_after)"

# stop: SIGTERM, the daemon deletes its table: the guarded ports are open
# to all (as a stop promises); then start again.
rc-service nfqknockd stop >"$OUT/stop.txt" 2>&1 && check stop ok || check stop FAIL
sleep 0.5
nft list table inet nfqknock >/dev/null 2>&1 && check stop_table FAIL:kept || check stop_table gone
daemon_pid >/dev/null && check stop_daemon FAIL:runs || check stop_daemon gone
fresh_knocker
reach knk 10.0.3.1:$PROBE_PORT && check stop_port_open_to_all yes || check stop_port_open_to_all no
t0=$(now)
n=$(starts)
rc-service nfqknockd start >>"$OUT/start.txt" 2>&1 && check start_again ok || check start_again FAIL
wait_guard "" "$n" && check start_again_guard "$(($(now) - t0))ms" || check start_again_guard FAIL
fresh_knocker
reach knk 10.0.3.1:$PROBE_PORT && check start_again_blocked FAIL || check start_again_blocked ok
check start_again_knock "$(knock_after)"
out=$(ip netns exec sshc ssh -F none -i /root/.ssh/id_ed25519 -o BatchMode=yes \
	-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=30 \
	-o "ProxyCommand nfqknock --secret-file /root/secrets proxy %h %p" root@10.0.4.1 echo through 2>>"$OUT/ssh.err")
[ "$out" = through ] && check ssh_end ok || check ssh_end FAIL
nft list tables >"$OUT/tables-end.txt" 2>&1
if [ "${BOOTS:-yes}" = yes ]; then
	# A reboot: OpenRC stops the daemon (SIGTERM, its table goes) and
	# starts it at boot, before sshd; the boot prober shows whether sshd
	# ever answered a source that never knocked.
	install_bootprobe
	echo boot >"$STATE/phase"
	finish reboot
fi
finish
