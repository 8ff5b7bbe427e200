#!/usr/bin/env bash
# Runs the given `go test -v` command, keeps its output, and ends with a
# summary: tests passed/failed/skipped and how many ran in network namespaces
# (they log "netns test: running" through internal/netns.RequireRoot).
set -uo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
pass=$(grep -c -- '--- PASS' "$log")
fail=$(grep -c -- '--- FAIL' "$log")
skip=$(grep -c -- '--- SKIP' "$log")
ns=$(grep -c 'netns test: running' "$log")
echo
echo "network-namespace tests that ran: $ns"
if [ "$skip" -gt 0 ]; then
	echo "skipped:"
	grep -- '--- SKIP' "$log" | sed 's/^/  /'
fi
echo "tests: $pass passed, $fail failed, $skip skipped"
exit "$rc"
