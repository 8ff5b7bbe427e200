#!/bin/sh
# gen.sh prints edges.tsv: knock sequences around period rotations and at
# the edges of the grace interval, computed with openssl dgst, awk and GNU
# date only, independently of the Go code that knock/edges_test.go checks.
#
#   sh gen.sh > edges.tsv
#
# Columns (tab-separated; secrets hold no tabs):
#   unix_time  the instant
#   tz         UTC: periods are floor(t/period)*period;
#              a zone name: the C rule (start of the local hour in that zone)
#   digest start end period grace open_secret close_secret
#   period_start prev_start next_start   the period holding t and its neighbours
#   prev_open prev_close cur_open cur_close next_open next_close
#   accept     which neighbour's sequences are also valid at t:
#              prev (t - period_start < grace), next (next_start - t < grace), or -
set -eu
export LC_ALL=C

# ports DIGEST SECRET PERIOD_START START END: the port sequence.
ports() {
	printf '%s%s' "$2" "$3" | openssl dgst "-$1" -binary | od -An -v -tu1 |
		awk -v s="$4" -v e="$5" '
			{ for (i = 1; i <= NF; i++) b[n++] = $i }
			END {
				for (i = 0; i < n / 2; i++) {
					p = (b[2 * i] * 256 + b[2 * i + 1]) % (e - s) + s
					printf "%s%d", (i ? " " : ""), p
				}
			}'
}

# start TZ PERIOD T: the start of the period holding T (T >= 0).
start() {
	if [ "$1" = UTC ]; then
		echo $(( $3 - $3 % $2 ))
	else
		m=$(TZ="$1" date -d "@$3" +%M) s=$(TZ="$1" date -d "@$3" +%S)
		echo $(( $3 - ${m#0} * 60 - ${s#0} ))
	fi
}

# rows TZ DIGEST START END PERIOD GRACE OPEN CLOSE ROTATION: the rows for
# instants around the rotation ROTATION.
rows() {
	tz=$1 d=$2 a=$3 b=$4 period=$5 grace=$6 os=$7 cs=$8 r=$9
	for t in $(( r - grace - 1 )) $(( r - grace )) $(( r - grace + 1 )) \
		$(( r - 1 )) "$r" $(( r + 1 )) \
		$(( r + grace - 1 )) $(( r + grace )) $(( r + grace + 1 )); do
		p=$(start "$tz" "$period" "$t")
		prev=$(start "$tz" "$period" $(( p - 1 )))
		next=$(start "$tz" "$period" $(( p + period )))
		if [ $(( t - p )) -lt "$grace" ]; then
			accept=prev
		elif [ $(( next - t )) -lt "$grace" ]; then
			accept=next
		else
			accept=-
		fi
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t' \
			"$t" "$tz" "$d" "$a" "$b" "$period" "$grace" "$os" "$cs" "$p" "$prev" "$next"
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
			"$(ports "$d" "$os" "$prev" "$a" "$b")" "$(ports "$d" "$cs" "$prev" "$a" "$b")" \
			"$(ports "$d" "$os" "$p" "$a" "$b")" "$(ports "$d" "$cs" "$p" "$a" "$b")" \
			"$(ports "$d" "$os" "$next" "$a" "$b")" "$(ports "$d" "$cs" "$next" "$a" "$b")" \
			"$accept"
	done
}

printf 'unix_time\ttz\tdigest\tstart\tend\tperiod\tgrace\topen_secret\tclose_secret\tperiod_start\tprev_start\tnext_start\tprev_open\tprev_close\tcur_open\tcur_close\tnext_open\tnext_close\taccept\n'
# 2025-11-04 11:00 and 12:00 UTC, the defaults and the C vectors' secrets.
rows UTC md5 1 65535 3600 60 123 321 1762257600
rows UTC md5 1 65535 3600 60 helloworld123 goodbyeworld123 1762261200
rows UTC sha256 1000 2000 3600 60 a b 1762257600
# A ten-minute period with a 30 s grace.
rows UTC sha384 2 65535 600 30 abracadabra ahalaymahalay 1762258200
# A day with a five-minute grace; secrets with spaces.
rows UTC sha512 1024 49151 86400 300 'open sesame' 'close  the door' 1762300800
# The C rule in a half-hour zone: 2025-11-04 18:00 IST = 12:30 UTC.
rows Asia/Kolkata md5 1 65535 3600 60 123 321 1762259400
rows Asia/Kolkata sha256 10000 20000 3600 60 abracadabra ahalaymahalay 1762263000
