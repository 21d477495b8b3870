#!/usr/bin/env bash
# Installs what the win-x64 build needs when it is missing: Debian's mingw-w64 cross compiler in its
# POSIX-threads variant (x86_64-w64-mingw32-g++-posix: the library's std::thread, std::mutex and
# std::condition_variable need it; the win32 variant has none), wine64 (runs the 64-bit console test
# program here, headless) and the GoogleTest sources (/usr/src/googletest, built for the target by
# tests/native/CMakeLists.txt). With everything present it checks and exits without touching apt.
set -euo pipefail

missing=()
command -v x86_64-w64-mingw32-gcc-posix >/dev/null 2>&1 && command -v x86_64-w64-mingw32-g++-posix >/dev/null 2>&1 \
  || missing+=(g++-mingw-w64-x86-64-posix)
command -v wine64 >/dev/null 2>&1 || [ -x /usr/lib/wine/wine64 ] || missing+=(wine64)
[ -f /usr/src/googletest/CMakeLists.txt ] || missing+=(googletest)
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-win64: missing ${missing[*]}; run as root (apt-get)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "install-win64: installing ${missing[*]}"
# The package lists may already know the packages; refresh them only when the install fails.
# No recommends: wine64 recommends wine32 (an i386 multiarch) and libwine fonts, sound and X libraries
# that a console test program does not use.
# apt's summary (download size, disk space) is kept from its output.
apt_install() {
  local out
  out=$(apt-get install -y -q --no-install-recommends "${missing[@]}" 2>&1) || { echo "$out" | tail -n 20 >&2; return 1; }
  echo "$out" | grep -E '^(Need to get|After this operation|[0-9]+ upgraded)' || true
}
start=$SECONDS
if ! apt_install; then
  apt-get update -qq
  apt_install
fi
echo "install-win64: installed in $((SECONDS - start)) s"
x86_64-w64-mingw32-g++-posix --version | head -n 1
{ command -v wine64 >/dev/null 2>&1 && wine64 --version; } || /usr/lib/wine/wine64 --version
