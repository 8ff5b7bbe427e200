#!/usr/bin/env bash
# spentrss.sh BIN [N...]: the resident memory of a fresh nfqknockd that
# takes over a table whose set spent holds N used one-time sequences (N
# keys added by nft while no daemon runs, as a restart or a SIGKILL leaves
# them). Found by the soak (make soak): its RSS-growth rule failed because
# every restarted daemon started bigger than the one before. Root; one
# throw-away network namespace, removed at the end.
set -euo pipefail
bin=${1:?usage: spentrss.sh bin/nfqknockd [N...]}; shift
[ $# -gt 0 ] || set -- 0 500 2000 6000
ns=spentrss-$$ d=$(mktemp -d) pid=
trap 'kill $pid 2>/dev/null; ip netns delete $ns 2>/dev/null; rm -rf $d' EXIT
ip netns add $ns && ip -n $ns link set lo up
printf 'open=a\nclose=b\n' > $d/s && chmod 600 $d/s
start() {
	ip netns exec $ns "$bin" --guard 2222 --secret-file $d/s --one-time --state-dir $d/state > $d/log 2>&1 & pid=$!
	for _ in $(seq 200); do grep -q msg=started $d/log && return; sleep 0.05; done
	echo "daemon did not start:"; cat $d/log; exit 1
}
start; sleep 1; kill -QUIT $pid; wait $pid
for n in "$@"; do
	if [ "$n" -gt 0 ]; then
		python3 -c "import sys; n=int(sys.argv[1]); print('add element inet nfqknock spent { ' + ', '.join('fd00:%x::%x timeout 50m' % (n, i) for i in range(n)) + ' }')" "$n" > $d/add.nft
		ip netns exec $ns nft -f $d/add.nft
	fi
	start; sleep 2
	printf 'added %6d: %s %s\n' "$n" "$(grep -o ' kept=[0-9]*' $d/log | tr -d ' ')" "$(grep -E 'VmRSS|VmHWM' /proc/$pid/status | tr -s ' \t\n' ' ')"
	kill -QUIT $pid; wait $pid
done
ip netns exec $ns nft delete table inet nfqknock
