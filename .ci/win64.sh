#!/usr/bin/env bash
# win-x64: installs Debian's mingw-w64 cross toolchain (POSIX threads) and wine64 when missing, then
# cross-builds libtokenkernels.dll and the native GoogleTest suite (CUDA off) and runs the suite under
# wine64: `cmake --workflow --preset win64`. Wine runs headless and quiet in its own prefix,
# build/win64/wine-prefix (created on the first run, about 700 MB; cmake/toolchains/wine-run.sh). The
# workflow's output, with ctest's per-test lines ("N/M Test #K: name ... Passed"), goes to
# build/ci-logs/win64.log; the exit status is ctest's (or the failing configure/build step's).
# CMAKE_BUILD_PARALLEL_LEVEL and CTEST_PARALLEL_LEVEL default to the core count: each of the ~800
# test cases is its own wine process, so the suite's time is mostly process starts.
set -uo pipefail
cd "$(dirname "$0")/.."
logs=build/ci-logs
mkdir -p "$logs"

echo "== installing the mingw-w64 cross toolchain and wine64 (when missing)"
if ! bash .ci/install-win64.sh > "$logs/install-win64.log" 2>&1; then
    cat "$logs/install-win64.log"
    echo "install-win64.sh failed"
    exit 1
fi

echo "== win-x64 cross build, native tests under wine64: cmake --workflow --preset win64"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
export CTEST_PARALLEL_LEVEL=${CTEST_PARALLEL_LEVEL:-$(nproc)}
start=$SECONDS
cmake --workflow --preset win64 2>&1 | tee "$logs/win64.log"
rc=${PIPESTATUS[0]}
echo "win64 workflow: exit $rc after $((SECONDS - start)) s"
exit "$rc"
