#!/usr/bin/env bash
# .ci/apt-install.sh WHO PACKAGE...: installs Debian packages for one of the install-*.sh scripts (WHO
# names it in messages): as root, without recommends (wine64 recommends wine32, an i386 multiarch, and
# libwine's fonts, sound and X libraries), refreshing the package lists only when the first try fails. Keeps
# apt's summary (download size, disk space) and says how long it took.
set -euo pipefail
who=$1
shift
if [ "$(id -u)" -ne 0 ]; then
  echo "$who: missing $*; run as root (apt-get)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "$who: installing $*"
apt_install() {
  local out
  out=$(apt-get install -y -q --no-install-recommends "$@" 2>&1) || { echo "$out" | tail -n 20 >&2; return 1; }
  echo "$out" | grep -E '^(Need to get|After this operation|[0-9]+ upgraded)' || true
}
start=$SECONDS
if ! apt_install "$@"; then
  apt-get update -qq
  apt_install "$@"
fi
echo "$who: installed in $((SECONDS - start)) s"
