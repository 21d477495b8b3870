#!/usr/bin/env bash
# The C ABI under libFuzzer (tests/fuzz/abi_fuzzer.cpp): installs clang-14 and its runtimes when
# missing, builds the fuzz preset (CPU backend, AddressSanitizer + UndefinedBehaviorSanitizer), and
# runs one fuzzer process per core for TK_FUZZ_SECONDS (default 240), each from a copy of the
# committed seed corpus (tests/fuzz/corpus) and its own random seed (printed in its log,
# build/fuzz/run/P.log). Prints each process's count of
# calls, then one line "fuzzer: N calls (A accepted, R rejected) in S s, P processes: no finding" or
# "...: FINDING"; the inputs that broke an invariant are kept in build/ci-logs/fuzz-findings. The exit
# status is 0 only when the build succeeded and no process found anything.
set -uo pipefail
cd "$(dirname "$0")/.."
logs=build/ci-logs
mkdir -p "$logs"
seconds=${TK_FUZZ_SECONDS:-240}
processes=${TK_FUZZ_PROCESSES:-$(nproc)}

echo "== installing clang-14 and its sanitizer and libFuzzer runtimes (when missing)"
if ! bash .ci/install-fuzz.sh > "$logs/install-fuzz.log" 2>&1; then
    cat "$logs/install-fuzz.log"
    echo "install-fuzz.sh failed"
    exit 1
fi

echo "== fuzz build: cmake --preset fuzz && cmake --build --preset fuzz"
if ! { cmake --preset fuzz && cmake --build --preset fuzz; } > "$logs/fuzz-build.log" 2>&1; then
    tail -n 40 "$logs/fuzz-build.log"
    echo "the fuzz build failed"
    exit 1
fi

echo "== $processes fuzzer processes for $seconds s each"
work=build/fuzz/run
findings=$logs/fuzz-findings
rm -rf "$work" "$findings"
mkdir -p "$findings"
pids=()
for p in $(seq 1 "$processes"); do
    mkdir -p "$work/$p/corpus"
    cp tests/fuzz/corpus/* "$work/$p/corpus/"
    # -timeout: an input running a minute is a hang (a thread pool that never returns, say).
    # -rss_limit_mb: inputs that set 1024 threads leave that many pool workers, each with its
    # sanitizer caches (about 1 GB resident in all).
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        build/fuzz/bin/tokenkernels_abi_fuzzer -max_total_time="$seconds" -timeout=60 -rss_limit_mb=4096 \
        -artifact_prefix="$findings/$p-" "$work/$p/corpus" > "$work/$p.log" 2>&1 &
    pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || status=1
done

calls=0; accepted=0; rejected=0
for p in $(seq 1 "$processes"); do
    line=$(grep -E '^tokenkernels fuzzer: [0-9]+ calls' "$work/$p.log" | tail -n 1)
    echo "process $p: ${line:-no count printed}"
    if [ -n "$line" ]; then
        read -r c a r <<< "$(echo "$line" | sed -E 's/.*: ([0-9]+) calls \(([0-9]+) accepted, ([0-9]+) rejected\).*/\1 \2 \3/')"
        calls=$((calls + c)); accepted=$((accepted + a)); rejected=$((rejected + r))
    else
        status=1
    fi
    if grep -qE 'FINDING|ERROR: (AddressSanitizer|libFuzzer)|runtime error:' "$work/$p.log"; then
        status=1
        grep -E 'FINDING|ERROR: |runtime error:|SUMMARY' "$work/$p.log" | head -n 20
        cp "$work/$p.log" "$findings/"
    fi
done
verdict="no finding"
[ "$status" -ne 0 ] && verdict="FINDING (build/ci-logs/fuzz-findings)"
echo "fuzzer: $calls calls ($accepted accepted, $rejected rejected) in $seconds s, $processes processes: $verdict"
exit "$status"
