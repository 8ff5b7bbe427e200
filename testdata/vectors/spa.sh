#!/bin/sh
# spa.sh prints spa.tsv: single-packet authorization packets computed with
# openssl (kdf, mac, enc -chacha20), od and awk only, independently of the
# Go code that spa/vectors_test.go checks.
#
#   sh spa.sh > spa.tsv
#   sh spa.sh seal SECRET PERIOD NONCE TIME ACTION PORTS DURATION ADDRESS
#                                    one row (without the header)
#   sh spa.sh open SECRET PERIOD PACKET
#                                    TIME ACTION PORTS DURATION ADDRESS of
#                                    the packet, after checking its tag and
#                                    key id; exit status 1 if they are wrong
#   sh spa.sh hchacha20 KEY NONCE16  HChaCha20(KEY, NONCE16), hex
#
# Keys:    prk = HKDF-Extract(SHA-256, "nfqknock spa v1", secret)
#          enc = HKDF-Expand(prk, "encrypt", 32), id = HKDF-Expand(prk, "key id", 32)
#          key id = HMAC-SHA256(id, int64 BE floor(time / period))[:8]
# Packet:  01 || key id || nonce (24) || XChaCha20-Poly1305(enc, nonce,
#          plaintext (64), aad = 01 || key id)
# XChaCha20-Poly1305 from openssl's ChaCha20 (-iv is a 4-byte little-endian
# block counter, then a 12-byte nonce) and Poly1305:
#   HChaCha20(k, n16): block 0 of ChaCha20(k, -iv n16) is rounds(s) + s for
#     the state s = constants, k, n16 (as counter and nonce); HChaCha20 is
#     rounds(s) words 0..3 and 12..15, so the block's words minus those of s.
#   sub = HChaCha20(enc, nonce[0:16]), n12 = 00000000 || nonce[16:24]
#   Poly1305 key = block 0 of ChaCha20(sub, n12)[0:32]
#   ciphertext = plaintext xor ChaCha20(sub, n12) from block 1
#   tag = Poly1305(aad || 7 zeros || ciphertext || le64(9) || le64(64))
#
# Columns (tab-separated; secrets hold no tabs; "-" for no ports, no address):
#   secret period nonce time action ports duration address key_id packet
# Ports are comma-separated; times and periods are not negative.
set -eu
export LC_ALL=C

salt=6e66716b6e6f636b20737061207631 # "nfqknock spa v1"

# hexof: stdin as lowercase hex.
hexof() { od -An -v -tx1 | tr -d ' \n'; }

# bin HEX: HEX as bytes on stdout.
bin() {
	# shellcheck disable=SC2059 # the format is the octal escapes
	printf "$(printf '%s' "$1" | awk '
		{
			for (i = 1; i < length($0); i += 2)
				printf "\\%03o", index("0123456789abcdef", substr($0, i, 1)) * 16 - 17 + index("0123456789abcdef", substr($0, i + 1, 1))
		}')"
}

# zeros N: N zero bytes, hex.
zeros() { awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++) printf "00" }'; }

# be N BYTES: the integer N (0 <= N < 2^53) big-endian, hex.
be() {
	awk -v n="$1" -v k="$2" 'BEGIN {
		for (i = k - 1; i >= 0; i--) { b[i] = n % 256; n = (n - b[i]) / 256 }
		for (i = 0; i < k; i++) printf "%02x", b[i]
	}'
}

# hkdf IKMHEX INFO: HKDF-SHA256 with our salt, 32 bytes, hex.
hkdf() {
	openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt "hexkey:$1" -kdfopt "hexsalt:$salt" \
		-kdfopt "info:$2" -binary HKDF | hexof
}

# hmac KEYHEX DATAHEX: HMAC-SHA256, hex.
hmac() { bin "$2" | openssl mac -digest SHA256 -macopt "hexkey:$1" HMAC | tr -d '\n' | tr A-F a-f; }

# poly KEYHEX DATAHEX: Poly1305, hex.
poly() { bin "$2" | openssl mac -macopt "hexkey:$1" Poly1305 | tr -d '\n' | tr A-F a-f; }

# chacha KEYHEX IVHEX DATAHEX: DATA xor ChaCha20(KEY, IV), hex.
chacha() { bin "$3" | openssl enc -chacha20 -K "$1" -iv "$2" | hexof; }

# hchacha20 KEYHEX N16HEX: HChaCha20, hex.
hchacha20() {
	chacha "$1" "$2" "$(zeros 64)" | awk -v n="$2" '
		function byte(s, i) { return index("0123456789abcdef", substr(s, 2 * i + 1, 1)) * 16 - 17 + index("0123456789abcdef", substr(s, 2 * i + 2, 1)) }
		function word(s, w) { return byte(s, 4 * w) + 256 * byte(s, 4 * w + 1) + 65536 * byte(s, 4 * w + 2) + 16777216 * byte(s, 4 * w + 3) }
		function out(v,  j) { for (j = 0; j < 4; j++) { printf "%02x", v % 256; v = (v - v % 256) / 256 } }
		{
			split("1634760805 857760878 2036477234 1797285236", c, " ") # "expand 32-byte k"
			for (w = 0; w < 4; w++) out((word($0, w) - c[w + 1] + 4294967296) % 4294967296)
			for (w = 0; w < 4; w++) out((word($0, 12 + w) - word(n, w) + 4294967296) % 4294967296)
		}'
}

# keys SECRET PERIOD TIME: sets enc, id and kid (the key id of TIME's period).
keys() {
	ikm=$(printf '%s' "$1" | hexof)
	enc=$(hkdf "$ikm" encrypt)
	id=$(hkdf "$ikm" 'key id')
	p=$(awk -v t="$3" -v p="$2" 'BEGIN { printf "%.0f", (t - t % p) / p }')
	kid=$(hmac "$id" "$(be "$p" 8)" | cut -c1-16)
}

# aead NONCEHEX: sets sub, n12 and pkey from enc.
aead() {
	sub=$(hchacha20 "$enc" "$(printf '%s' "$1" | cut -c1-32)")
	n12=00000000$(printf '%s' "$1" | cut -c33-48)
	pkey=$(chacha "$sub" "00000000$n12" "$(zeros 64)" | cut -c1-64)
}

# tag AADHEX CTHEX: the Poly1305 tag (aad is 9 bytes, ct 64).
tag() { poly "$pkey" "$1$(zeros 7)$2$(be 9 1)$(zeros 7)$(be 64 1)$(zeros 7)"; }

# addr ADDRESS: family byte and 16 address bytes, hex.
addr() {
	case $1 in
	-) printf '00%s' "$(zeros 16)" ;;
	*:*) printf '06'; printf '%s' "$1" | awk -F: '
		{
			n = split($0, g, ":"); z = 8 - n + 1
			if (substr($0, 1, 2) == "::") z++
			if (substr($0, length($0) - 1) == "::") z++
			for (i = 1; i <= n; i++) {
				if (g[i] == "") { if (!done) for (j = 0; j < z; j++) printf "0000"; done = 1; continue }
				printf "%s", substr("0000" g[i], length(g[i]) + 1)
			}
		}' | tr A-F a-f ;;
	*) printf '04'; printf '%s' "$1" | awk -F. '{ printf "%02x%02x%02x%02x", $1, $2, $3, $4 }'; zeros 12 ;;
	esac
}

# seal SECRET PERIOD NONCE TIME ACTION PORTS DURATION ADDRESS: prints the row.
seal() {
	keys "$1" "$2" "$4"
	case $5 in open) act=01 ;; close) act=02 ;; *) echo "spa.sh: action $5" >&2; exit 2 ;; esac
	ports=$(printf '%s' "$6" | awk -F, '
		$0 == "-" { n = 0 } $0 != "-" { n = NF }
		END { printf "%02x", n; for (i = 1; i <= 16; i++) printf "%04x", i <= n ? $i : 0 }')
	pt=$(be "$4" 8)$act$(addr "$8")$(be "$7" 4)$ports$(zeros 1)
	aead "$3"
	ct=$(chacha "$sub" "01000000$n12" "$pt")
	aad=01$kid
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$kid" \
		"$aad$3$ct$(tag "$aad" "$ct")"
}

# open SECRET PERIOD PACKET: prints the fields of the packet.
open() {
	pkt=$(printf '%s' "$3" | tr A-F a-f)
	if [ ${#pkt} -ne 226 ] || [ "$(printf '%s' "$pkt" | cut -c1-2)" != 01 ]; then
		echo "spa.sh: not a version 1 packet of 113 bytes" >&2; exit 1
	fi
	aad=$(printf '%s' "$pkt" | cut -c1-18)
	nonce=$(printf '%s' "$pkt" | cut -c19-66)
	ct=$(printf '%s' "$pkt" | cut -c67-194)
	ikm=$(printf '%s' "$1" | hexof)
	enc=$(hkdf "$ikm" encrypt)
	aead "$nonce"
	if [ "$(tag "$aad" "$ct")" != "$(printf '%s' "$pkt" | cut -c195-226)" ]; then
		echo "spa.sh: authentication failed" >&2; exit 1
	fi
	pt=$(chacha "$sub" "01000000$n12" "$ct")
	fields=$(printf '%s' "$pt" | awk '
		function byte(i) { return index("0123456789abcdef", substr($0, 2 * i + 1, 1)) * 16 - 17 + index("0123456789abcdef", substr($0, 2 * i + 2, 1)) }
		function num(i, k,  v, j) { v = 0; for (j = 0; j < k; j++) v = v * 256 + byte(i + j); return v }
		{
			bad = byte(0) >= 128 || byte(63) != 0 || byte(30) > 16
			a = byte(8); act = a == 1 ? "open" : a == 2 ? "close" : ""
			if (act == "") bad = 1
			f = byte(9)
			if (f == 0) addr = "-"
			else if (f == 4) addr = byte(10) "." byte(11) "." byte(12) "." byte(13)
			else if (f == 6) { addr = ""; for (i = 0; i < 8; i++) addr = addr (i ? ":" : "") sprintf("%x", num(10 + 2 * i, 2)) }
			else bad = 1
			for (i = (f == 4 ? 14 : f == 6 ? 26 : 10); i < 26; i++) if (byte(i)) bad = 1
			n = byte(30); ports = n ? "" : "-"
			for (i = 0; i < 16; i++) {
				v = num(31 + 2 * i, 2)
				if (i < n) { ports = ports (i ? "," : "") v; if (!v) bad = 1 } else if (v) bad = 1
			}
			if (bad) { print "malformed"; exit }
			printf "%.0f\t%s\t%s\t%.0f\t%s", num(0, 8), act, ports, num(26, 4), addr
		}')
	if [ "$fields" = malformed ]; then
		echo "spa.sh: malformed plaintext $pt" >&2; exit 1
	fi
	keys "$1" "$2" "${fields%%	*}"
	if [ "$aad" != "01$kid" ]; then
		echo "spa.sh: key id ${aad#01} is not the one of the period of ${fields%%	*}" >&2; exit 1
	fi
	printf '%s\n' "$fields"
}

case ${1-} in
seal) shift; seal "$@"; exit ;;
open) shift; open "$@"; exit ;;
hchacha20) shift; hchacha20 "$@"; echo; exit ;;
esac

n1=000102030405060708090a0b0c0d0e0f1011121314151617
n2=fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0efeeedecebeae9e8
n3=404142434445464748494a4b4c4d4e4f5051525354555657
printf 'secret\tperiod\tnonce\ttime\taction\tports\tduration\taddress\tkey_id\tpacket\n'
# 2025-11-04 11:30 UTC, hourly periods: no ports, the packet's source.
seal helloworld123 3600 $n1 1762259400 open - 0 -
seal helloworld123 3600 $n2 1762259400 open - 0 -
# A UTF-8 secret, close.
seal 'géheim☃秘密' 3600 $n1 1762259400 close - 0 -
seal 'open sesame, "quoted" \back' 3600 $n3 1762259400 close 22 0 -
# The last second of a period and the first of the next.
seal helloworld123 3600 $n1 1762261199 open 22 300 -
seal helloworld123 3600 $n1 1762261200 open 22 300 -
# 30-second and daily periods; IPv4.
seal helloworld123 30 $n3 1762259419 open 22,443 3600 192.0.2.7
seal 'géheim☃秘密' 86400 $n2 1762259400 open 8080 4294967295 10.255.0.1
# 16 ports; IPv6.
seal helloworld123 3600 $n2 1762259400 open 1,2,3,22,80,443,1000,4000,8080,8443,9000,30000,40000,50000,65534,65535 60 2001:db8::1
seal 'géheim☃秘密' 3600 $n3 1762259400 close 65535 1 2001:db8:1:2:3:4:5:6
seal helloworld123 60 $n1 1762259400 open 22 0 ::1
seal helloworld123 60 $n2 1762259400 close - 0 fe80::
# 2100-01-01, past 2^31 seconds; 1-second periods.
seal 'géheim☃秘密' 1 $n3 4102444800 open 22 0 198.51.100.1
