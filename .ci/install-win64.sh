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

bash "$(dirname "$0")/apt-install.sh" install-win64 "${missing[@]}"
x86_64-w64-mingw32-g++-posix --version | head -n 1
{ command -v wine64 >/dev/null 2>&1 && wine64 --version; } || /usr/lib/wine/wine64 --version
