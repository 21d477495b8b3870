#!/usr/bin/env bash
# The CUDA side of TokenKernels, checked and timed on a GPU machine that has nvcc, CMake and Python
# with PyTorch, but no .NET SDK and no network (see shared/gpu/README.md):
#   1. builds the native library with CUDA into build/gpu,
#   2. runs the native test suite (ctest), then the CUDA tests alone, failing on any that skipped for
#      another reason than "a CUDA device is present",
#   3. runs the CUDA tests but the large-size ones, at reduced scale (TK_TEST_SCALE=reduced), under
#      compute-sanitizer memcheck, racecheck, synccheck and initcheck, each stopped after
#      SANITIZER_TIMEOUT_S,
#   4. runs the managed test program on a carried .NET runtime, when .gpu/ holds one, and the CLI's CUDA tests,
#   5. runs the benchmark harness on the GPU: quick correctness over every case and dtype, then the
#      full cases in bf16 and f32 against the PyTorch baselines (CUDA events, same stream),
# writing logs, tables and JSON into $OUT (or build/gpu/results), and prints the step summary last.
# Every step runs even when an earlier one failed, except those that need what failed.
# bench/gpu/prepare.sh, run beforehand on a build machine, fills .gpu/ with what the GPU machine
# cannot fetch (GoogleTest sources, the .NET runtime, the managed test program); carry .gpu along.
#
#   bench/gpu/run.sh                    every step group, from the repository root or anywhere
#   bench/gpu/run.sh build tests        some of the groups: build tests sanitize managed bench
#   PYTHON=/path/to/python3             a Python with PyTorch other than the first found
#   CUDA_ARCHITECTURES=90               the machine code built (default 90, H100/H200)
#   SANITIZER_FILTER='*Cuda*:-*CudaLarge*', SANITIZER_TIMEOUT_S=150   the sanitized runs (defaults)
#
# Exit status: 0 when every step that ran passed, else 1.

# The step functions run through run_step "$@", which shellcheck cannot follow.
# shellcheck disable=SC2317
set -u

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo_root" || exit 1

build_dir=build/gpu
results_dir=${OUT:-$build_dir/results}
logs_dir=$results_dir/logs
test_binary=$build_dir/bin/tokenkernels_tests
library=$build_dir/lib/libtokenkernels.so
cuda_architectures=${CUDA_ARCHITECTURES:-90}
# The CUDA tests: every suite with Cuda in its name (pooling, merging, the device/stream/memory ABI).
cuda_test_filter='*Cuda*'
# Under the sanitizers, the same without the large-size suites, at reduced scale (tests/native/README.md),
# which would take too long there otherwise.
sanitizer_test_filter=${SANITIZER_FILTER:-'*Cuda*:-*CudaLarge*'}
# Skips with these messages are meant for other machines (without a device, with one the build has
# no code for, with a single device); any other skip here is a failure.
expected_skip_pattern='^(a CUDA device is present|device 0 [(]compute capability [0-9.]+[)] runs .*|one CUDA device: .*)$'
# Sanitized runs are slow: each is stopped after this long, so that the steps after it still run
# within one call of a machine that limits a command's time.
sanitizer_timeout_s=${SANITIZER_TIMEOUT_S:-150}
mkdir -p "$logs_dir"

# Step groups to run, from the arguments; all by default. Build outputs stay in build/gpu, so a later
# call on the same machine can run the other groups without building again.
all_groups="build tests sanitize managed bench"
groups=${*:-$all_groups}
for group in $groups; do
    case " $all_groups " in
        *" $group "*) ;;
        *) echo "unknown step group '$group' (expected some of: $all_groups)" >&2; exit 2 ;;
    esac
done
wants() { case " $groups " in *" $1 "*) return 0 ;; esac; return 1; }

step_names=()
step_results=()
step_seconds=()

record() {  # name result seconds
    step_names+=("$1")
    step_results+=("$2")
    step_seconds+=("$3")
}

# run_step NAME COMMAND...: runs COMMAND, its output shown and kept in logs/NAME.log.
run_step() {
    local name=$1
    shift
    local log=$logs_dir/$name.log
    local start=$SECONDS
    echo
    echo "=== $name: $*"
    "$@" 2>&1 | tee "$log"
    local status=${PIPESTATUS[0]}
    if [ "$status" -eq 0 ]; then
        record "$name" ok $((SECONDS - start))
    else
        record "$name" "FAILED (exit $status, logs/$name.log)" $((SECONDS - start))
    fi
    return "$status"
}

skip_step() {  # name reason
    echo
    echo "=== $1: skipped: $2"
    record "$1" "skipped: $2" 0
}

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3 /usr/bin/python3; do
        if [ -n "$candidate" ] && "$candidate" -c 'import torch' >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

print_environment() {
    echo "date:         $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "host:         $(uname -n), kernel $(uname -r)"
    if command -v nvidia-smi >/dev/null; then
        echo "GPU, driver:  $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1)"
    else
        echo "GPU, driver:  nvidia-smi not found"
    fi
    echo "nvcc:         $(nvcc --version 2>&1 | grep -i release || echo 'not found')"
    echo "cmake:        $(cmake --version 2>&1 | head -n 1)"
    echo "sanitizer:    $(compute-sanitizer --version 2>&1 | grep -i version | head -n 1 || echo 'not found')"
    if [ -n "$python" ]; then
        echo "python:       $python ($("$python" --version 2>&1))"
        "$python" -c 'import torch
cuda = torch.cuda.is_available()
print("PyTorch:      " + torch.__version__ + ", CUDA " + str(torch.version.cuda) +
      (", device " + torch.cuda.get_device_name(0) if cuda else ", no CUDA device visible"))' 2>&1
    else
        echo "python:       no interpreter with PyTorch found (set PYTHON)"
    fi
    local commit
    if commit=$(git rev-parse --short HEAD 2>/dev/null); then
        git diff --quiet HEAD 2>/dev/null || commit="$commit + local changes"
    else
        commit="unknown (no git checkout)"
    fi
    echo "commit:       $commit"
}

# A GoogleTest source tree carried in .gpu/googletest (the GPU image may have none, and cannot fetch
# one) is built and installed once into build/gpu-googletest.
build_carried_googletest() {
    cmake -S .gpu/googletest -B build/gpu-googletest/build -DCMAKE_BUILD_TYPE=Release -DBUILD_GMOCK=OFF \
        -DCMAKE_INSTALL_PREFIX="$repo_root/build/gpu-googletest/install" &&
        cmake --build build/gpu-googletest/build -j "$(nproc)" &&
        cmake --install build/gpu-googletest/build
}

configure() {
    local prefix_args=()
    if [ -d build/gpu-googletest/install ]; then
        prefix_args=("-DCMAKE_PREFIX_PATH=$repo_root/build/gpu-googletest/install")
    fi
    cmake -S . -B "$build_dir" -DTOKENKERNELS_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$cuda_architectures" \
        -DTOKENKERNELS_MANAGED_TESTS=OFF "${prefix_args[@]}"
}

# The CUDA tests alone; fails if one of them skipped for any reason but the expected ones.
cuda_tests_ran() {
    local output
    output=$(mktemp)
    "$test_binary" --gtest_filter="$cuda_test_filter" >"$output" 2>&1
    local status=$?
    cat "$output"
    # gtest prints the skip message on the line before "[  SKIPPED ] Suite.Test (n ms)".
    local unexpected
    unexpected=$(awk -v expected="$expected_skip_pattern" \
        '/^\[  SKIPPED \] .* \([0-9]+ ms\)$/ { if (previous !~ expected) print $4 } { previous = $0 }' "$output")
    rm -f "$output"
    if [ -n "$unexpected" ]; then
        echo "CUDA tests skipped on a GPU machine:" "$unexpected"
        return 1
    fi
    return "$status"
}

sanitize() {  # tool [sanitizer options...]
    TK_TEST_SCALE=reduced timeout "$sanitizer_timeout_s" compute-sanitizer --tool "$1" "${@:2}" --error-exitcode 1 \
        "$test_binary" --gtest_filter="$sanitizer_test_filter"
    local status=$?
    [ "$status" -eq 124 ] && echo "stopped after ${sanitizer_timeout_s} s (SANITIZER_TIMEOUT_S)"
    return "$status"
}

# The managed tests load the library from TOKENKERNELS_NATIVE_LIBRARY and, in some tests, from beside
# the test program: both are the CUDA build, in a scratch copy of the carried program.
managed_tests() {
    local dotnet_root=/tmp/tokenkernels-dotnet
    local tests=/tmp/tokenkernels-managed-tests
    rm -rf "$tests" && mkdir -p "$dotnet_root" &&
        tar -xJf .gpu/dotnet-runtime.tar.xz -C "$dotnet_root" &&
        cp -r .gpu/managed "$tests" &&
        cp "$library" "$tests/libtokenkernels.so" || return 1
    DOTNET_ROOT=$dotnet_root DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 \
        TOKENKERNELS_NATIVE_LIBRARY="$repo_root/$library" \
        "$dotnet_root/dotnet" "$tests/TokenKernels.Tests.dll"
}

# The CLI's CUDA tests (compress --device cuda against --device cpu for every method the CLI runs on CUDA, and bench
# --device cuda): the CLI runs as a child process on the same carried runtime, against the CUDA build.
cli_cuda_tests() {
    local dotnet_root=/tmp/tokenkernels-dotnet
    local tests=/tmp/tokenkernels-cli-tests
    rm -rf "$tests" && mkdir -p "$dotnet_root" &&
        { [ -x "$dotnet_root/dotnet" ] || tar -xJf .gpu/dotnet-runtime.tar.xz -C "$dotnet_root"; } &&
        cp -r .gpu/cli "$tests" &&
        cp "$library" "$tests/libtokenkernels.so" || return 1
    DOTNET_ROOT=$dotnet_root DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 \
        TOKENKERNELS_NATIVE_LIBRARY="$repo_root/$library" \
        "$dotnet_root/dotnet" "$tests/TokenKernels.Cli.Tests.dll" --filter "FullyQualifiedName~CudaCommandTests"
}

python=$(find_python) || python=
echo "=== TokenKernels GPU run (steps: $groups), results in $results_dir"
print_environment | tee "$results_dir/environment.txt"

built=no
if wants build; then
    if [ -d .gpu/googletest ] && [ ! -d build/gpu-googletest/install ]; then
        run_step googletest build_carried_googletest
    fi
    if run_step configure configure; then
        run_step build cmake --build "$build_dir" -j "$(nproc)" && built=yes
    else
        skip_step build "configure failed"
    fi
elif [ -x "$test_binary" ] && [ -f "$library" ]; then
    built=yes  # by an earlier call on this machine
fi

if [ "$built" != yes ]; then
    for group in tests sanitize managed bench; do
        wants "$group" && skip_step "$group" "the library is not built"
    done
fi
if [ "$built" = yes ] && wants tests; then
    run_step ctest ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)"
    run_step cuda_tests cuda_tests_ran
fi
if [ "$built" = yes ] && wants sanitize; then
    if command -v compute-sanitizer >/dev/null; then
        run_step memcheck sanitize memcheck --leak-check full
        run_step racecheck sanitize racecheck
        run_step synccheck sanitize synccheck
        run_step initcheck sanitize initcheck
    else
        skip_step sanitize "compute-sanitizer not on PATH"
    fi
fi
if [ "$built" = yes ] && wants managed; then
    if [ -f .gpu/dotnet-runtime.tar.xz ] && [ -f .gpu/managed/TokenKernels.Tests.dll ]; then
        run_step managed managed_tests
    else
        skip_step managed "no .gpu/dotnet-runtime.tar.xz and .gpu/managed/TokenKernels.Tests.dll (bench/gpu/prepare.sh makes them)"
    fi
    if [ -f .gpu/dotnet-runtime.tar.xz ] && [ -f .gpu/cli/TokenKernels.Cli.Tests.dll ]; then
        run_step cli_cuda cli_cuda_tests
    else
        skip_step cli_cuda "no .gpu/cli/TokenKernels.Cli.Tests.dll (bench/gpu/prepare.sh makes it)"
    fi
fi
if [ "$built" = yes ] && wants bench; then
    if [ -n "$python" ]; then
        run_step harness_quick "$python" bench/harness/run.py --lib "$library" --device cuda --quick \
            --json "$results_dir/harness-quick.json"
        run_step harness "$python" bench/harness/run.py --lib "$library" --device cuda --dtypes bf16 f32 \
            --json "$results_dir/harness-gpu.json" --markdown "$results_dir/harness-gpu.md"
        # The table once more, so that it sits next to the summary at the end of the output.
        echo
        echo "=== benchmark (full numbers in $results_dir/harness-gpu.json)"
        sed -n '/^case /,$p' "$logs_dir/harness.log"
    else
        skip_step bench "no Python with PyTorch (set PYTHON)"
    fi
fi

failed=0
{
    echo
    echo "=== summary ($results_dir)"
    printf '%-14s %7s  %s\n' step seconds result
    for i in "${!step_names[@]}"; do
        printf '%-14s %7s  %s\n' "${step_names[$i]}" "${step_seconds[$i]}" "${step_results[$i]}"
    done
} | tee "$results_dir/summary.txt"
for result in "${step_results[@]}"; do
    case $result in FAILED*) failed=1 ;; esac
done
exit "$failed"
