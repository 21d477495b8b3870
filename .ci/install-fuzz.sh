#!/usr/bin/env bash
# Installs what the fuzz build needs when it is missing: Debian's clang-14 and its runtime libraries
# (libclang-rt-14-dev: libFuzzer, AddressSanitizer, UndefinedBehaviorSanitizer). With everything
# present it checks and exits without touching apt.
set -euo pipefail

missing=()
command -v clang++-14 >/dev/null 2>&1 && command -v clang-14 >/dev/null 2>&1 || missing+=(clang-14)
compgen -G "/usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a" >/dev/null || missing+=(libclang-rt-14-dev)
[ "${#missing[@]}" -eq 0 ] && exit 0

bash "$(dirname "$0")/apt-install.sh" install-fuzz "${missing[@]}"
clang++-14 --version | head -n 1
