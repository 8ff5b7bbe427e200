#!/usr/bin/env bash
# make demo: nfqknockd guarding port 22 in a throw-away "server" network
# namespace, and a "client" namespace that knocks. Touches nothing of the
# host: both namespaces, the veth between them, the daemon and its table are
# removed at the end, whatever happens.
set -euo pipefail
daemon=${1:-bin/nfqknockd}
[ "$(id -u)" = 0 ] || { echo "demo: run as root (it makes network namespaces)" >&2; exit 1; }
command -v nc >/dev/null || { echo "demo: needs nc (apt-get install -y netcat-openbsd)" >&2; exit 1; }
command -v nft >/dev/null || { echo "demo: needs nft to show the table (apt-get install -y nftables)" >&2; exit 1; }

srv=nfqk-demo-$$-s cli=nfqk-demo-$$-c
S=10.200.0.1 C=10.200.0.2
secret_open=demo-open-$$ secret_close=demo-close-$$
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	ip netns delete "$srv" 2>/dev/null || true
	ip netns delete "$cli" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "two network namespaces joined by veth: server $S, client $C"
ip netns add "$srv"; ip netns add "$cli"
ip -n "$srv" link set lo up; ip -n "$cli" link set lo up
ip -n "$srv" link add veth0 type veth peer name veth0 netns "$cli"
ip -n "$srv" addr add $S/24 dev veth0; ip -n "$cli" addr add $C/24 dev veth0
ip -n "$srv" link set veth0 up; ip -n "$cli" link set veth0 up

say "server: a service on port 22 (guarded) and on port 8080 (not guarded)"
ip netns exec "$srv" nc -lk $S 22 </dev/null >/dev/null & pids+=($!)
ip netns exec "$srv" nc -lk $S 8080 </dev/null >/dev/null & pids+=($!)

say "server: nfqknockd --range 1-65535 --guard 22"
ip netns exec "$srv" "$daemon" --range 1-65535 --guard 22 -o "$secret_open" -c "$secret_close" &
pids+=($!)
for _ in $(seq 50); do ip netns exec "$srv" nft list table inet nfqknock >/dev/null 2>&1 && break; sleep 0.1; done

try() { # try PORT: a TCP connect from the client, 2 s at most
	if ip netns exec "$cli" nc -z -w 2 $S "$1"; then echo "client -> $S:$1  connected"; else echo "client -> $S:$1  no answer (dropped)"; fi
}
say "before knocking"
try 22; try 8080

seq=$("$daemon" -s -o "$secret_open" -c "$secret_close")
open=$(echo "$seq" | sed -n 's/^OPEN: //p')
close=$(echo "$seq" | sed -n 's/^CLOSE: //p')
say "client knocks the open sequence (nfqknockd -s): $open"
for p in $open; do ip netns exec "$cli" nc -z -w 1 $S "$p" || true; done

say "after knocking"
try 22

say "what an admin sees: nft list table inet nfqknock"
warn=$(mktemp)
ip netns exec "$srv" nft list table inet nfqknock 2>"$warn"
if [ -s "$warn" ]; then
	echo "(nft also said on stderr, harmless with the compat NFQUEUE target, see README:"
	sed 's/^/   /' "$warn"; echo ")"
fi
rm -f "$warn"

say "client knocks the close sequence: $close"
for p in $close; do ip netns exec "$cli" nc -z -w 1 $S "$p" || true; done
try 22

say "done: namespaces, daemon and table are removed"
