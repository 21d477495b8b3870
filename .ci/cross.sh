#!/usr/bin/env bash
# .ci/cross.sh arm64|win64: installs the target's cross toolchain and emulator when missing
# (.ci/install-<target>.sh), then cross-builds the library and the native GoogleTest suite (CUDA off)
# and runs the suite under the emulator: `cmake --workflow --preset <target>`.
#   arm64: Debian's aarch64 cross compiler, the suite under qemu-aarch64.
#   win64: Debian's mingw-w64 cross compiler (POSIX threads), libtokenkernels.dll, the suite under
#          wine64, headless and quiet in its own prefix, build/win64/wine-prefix (created on the first
#          run, about 700 MB; cmake/toolchains/wine-run.sh). Each of the ~800 test cases is its own
#          wine process, so the suite's time is mostly process starts: CTEST_PARALLEL_LEVEL defaults
#          to the core count.
# The workflow's output, with ctest's per-test lines ("N/M Test #K: name ... Passed"), goes to
# build/ci-logs/<target>.log; the exit status is ctest's (or the failing configure/build step's).
# CMAKE_BUILD_PARALLEL_LEVEL defaults to the core count.
set -uo pipefail
cd "$(dirname "$0")/.."
target=${1:-}
case "$target" in
    arm64) what="linux-arm64 cross build, native tests under qemu-aarch64" ;;
    win64) what="win-x64 cross build, native tests under wine64"
           export CTEST_PARALLEL_LEVEL=${CTEST_PARALLEL_LEVEL:-$(nproc)} ;;
    *) echo "usage: .ci/cross.sh arm64|win64" >&2; exit 2 ;;
esac
logs=build/ci-logs
mkdir -p "$logs"
rm -f "$logs/$target.log"  # a failed install must not leave an earlier run's results to be counted

echo "== installing the $target cross toolchain and emulator (when missing)"
if ! bash ".ci/install-$target.sh" > "$logs/install-$target.log" 2>&1; then
    cat "$logs/install-$target.log"
    echo "install-$target.sh failed"
    exit 1
fi

echo "== $what: cmake --workflow --preset $target"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
start=$SECONDS
cmake --workflow --preset "$target" 2>&1 | tee "$logs/$target.log"
rc=${PIPESTATUS[0]}
echo "$target workflow: exit $rc after $((SECONDS - start)) s"
exit "$rc"
