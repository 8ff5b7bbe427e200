#!/bin/sh
# onetime.sh prints onetime.tsv: one-time knock sequences computed with
# openssl dgst, od and awk only, independently of the Go code that
# knock/onetime_vectors_test.go checks.
#
#   sh onetime.sh > onetime.tsv
#
# A one-time sequence of a secret, a period and a nonce (0..1023):
#   port 0       port 0 of the C-compatible sequence, from
#                D = digest(secret || decimal(period_start));
#   ports 1..n-1 port i is (256*E[2i] + E[2i+1]) mod (end-start) + start with
#                E = digest(secret || decimal(period_start) || "/" || decimal(nonce)).
#
# Columns (tab-separated; secrets hold no tabs):
#   digest start end secret period_start nonce sequence
set -eu
export LC_ALL=C

# ports DIGEST DATA START END: the ports of digest(DATA).
ports() {
	printf '%s' "$2" | openssl dgst "-$1" -binary | od -An -v -tu1 |
		awk -v s="$3" -v e="$4" '
			{ for (i = 1; i <= NF; i++) b[n++] = $i }
			END {
				for (i = 0; i < n / 2; i++) {
					p = (b[2 * i] * 256 + b[2 * i + 1]) % (e - s) + s
					printf "%s%d", (i ? " " : ""), p
				}
			}'
}

# row DIGEST START END SECRET PERIOD_START NONCE
row() {
	first=$(ports "$1" "$4$5" "$2" "$3")
	rest=$(ports "$1" "$4$5/$6" "$2" "$3")
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s %s\n' "$1" "$2" "$3" "$4" "$5" "$6" "${first%% *}" "${rest#* }"
}

printf 'digest\tstart\tend\tsecret\tperiod_start\tnonce\tsequence\n'
for d in md5 sha256 sha384 sha512; do
	# The full range, a small one, a tiny one (ports 1000..1002) and a
	# range of one port (every sequence the same).
	for r in 1-65535 1000-2000 1000-1003 1000-1001; do
		a=${r%-*} b=${r#*-}
		# 2025-11-04 11:00 and 12:00 UTC (hourly periods), and a day.
		row "$d" "$a" "$b" helloworld123 1762257600 0
		row "$d" "$a" "$b" helloworld123 1762257600 1
		row "$d" "$a" "$b" helloworld123 1762257600 1023
		row "$d" "$a" "$b" 'open sesame, "quoted" \back' 1762261200 0
		row "$d" "$a" "$b" 'open sesame, "quoted" \back' 1762261200 1
		row "$d" "$a" "$b" 'open sesame, "quoted" \back' 1762261200 1023
		row "$d" "$a" "$b" 'géheim☃秘密' 1762214400 0
		row "$d" "$a" "$b" 'géheim☃秘密' 1762214400 1
		row "$d" "$a" "$b" 'géheim☃秘密' 1762214400 1023
	done
done
