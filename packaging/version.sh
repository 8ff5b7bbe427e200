#!/bin/sh
# Prints the version of the nfqknockd packages, one that deb, rpm and apk all
# accept (nfpm reads it as semver): on a v-tag, the tag without its v
# (v1.2.3 -> 1.2.3); elsewhere a pre-release of the last v-tag (or of 0.0.0)
# stamped with the commit time in UTC, 1.2.3-git20251125011000, which nfpm
# writes 1.2.3~git20251125011000 for deb and rpm, 1.2.3_git20251125011000 for apk.
set -e
tag=$(git describe --tags --match 'v[0-9]*' --abbrev=0 2>/dev/null || true)
if [ -n "$tag" ] && [ "$(git describe --tags --match 'v[0-9]*' --exact-match 2>/dev/null || true)" = "$tag" ]; then
	echo "${tag#v}"
	exit 0
fi
base=${tag#v}
stamp=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S 2>/dev/null || echo 0)
echo "${base:-0.0.0}-git${stamp}"
