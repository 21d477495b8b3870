#!/usr/bin/env bash
# linux-arm64: installs Debian's aarch64 cross toolchain and qemu-user when missing, then cross-builds
# the library and the native GoogleTest suite (CUDA off) and runs the suite under qemu-aarch64:
# `cmake --workflow --preset arm64`. The workflow's output, with ctest's per-test lines
# ("N/M Test #K: name ... Passed"), goes to build/ci-logs/arm64.log; the exit status is ctest's (or
# the failing configure/build step's). CMAKE_BUILD_PARALLEL_LEVEL defaults to the core count.
set -uo pipefail
cd "$(dirname "$0")/.."
logs=build/ci-logs
mkdir -p "$logs"
rm -f "$logs/arm64.log"  # a failed install must not leave an earlier run's results to be counted

echo "== installing the aarch64 cross toolchain and qemu-user (when missing)"
if ! bash .ci/install-arm64.sh > "$logs/install-arm64.log" 2>&1; then
    cat "$logs/install-arm64.log"
    echo "install-arm64.sh failed"
    exit 1
fi

echo "== linux-arm64 cross build, native tests under qemu-aarch64: cmake --workflow --preset arm64"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
start=$SECONDS
cmake --workflow --preset arm64 2>&1 | tee "$logs/arm64.log"
rc=${PIPESTATUS[0]}
echo "arm64 workflow: exit $rc after $((SECONDS - start)) s"
exit "$rc"
