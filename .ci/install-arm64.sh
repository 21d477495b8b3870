#!/usr/bin/env bash
# Installs what the linux-arm64 build needs when it is missing: Debian's aarch64 cross compiler
# (g++-aarch64-linux-gnu, with the aarch64 C library under /usr/aarch64-linux-gnu), qemu-user
# (qemu-aarch64, which runs the aarch64 test programs here) and the GoogleTest sources
# (/usr/src/googletest, built for the target by tests/native/CMakeLists.txt). With everything
# present it checks and exits without touching apt.
set -euo pipefail

missing=()
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 && command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 \
  || missing+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null 2>&1 || missing+=(qemu-user)
[ -f /usr/src/googletest/CMakeLists.txt ] || missing+=(googletest)
[ "${#missing[@]}" -eq 0 ] && exit 0

bash "$(dirname "$0")/apt-install.sh" install-arm64 "${missing[@]}"
aarch64-linux-gnu-g++ --version | head -n 1
qemu-aarch64 --version | head -n 1
