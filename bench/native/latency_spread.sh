#!/usr/bin/env bash
# The latency spread of a small CPU op under a busy host, for this tree's library and for the library of
# another commit (default f01bd8e, the last one built on OpenMP), timed by the same program in one run:
# tokenkernels_latency_spread (bench/native/latency_spread.cpp) against each library through
# LD_LIBRARY_PATH, with no other process and with one process spinning on a core, alternating the two
# libraries so that both see the same machine.
#
#   bench/native/latency_spread.sh [BASE_REF] [CALLS]
set -euo pipefail
cd "$(dirname "$0")/../.."
base_ref=${1:-f01bd8e}
calls=${2:-2000}
build=build/latency
base_tree=$build/base-tree

cmake -S . -B "$build/current" -DCMAKE_BUILD_TYPE=Release -DTOKENKERNELS_CUDA=OFF -DTOKENKERNELS_BUILD_TESTS=OFF \
    -DTOKENKERNELS_BUILD_BENCHMARKS=ON -DTOKENKERNELS_MANAGED_TESTS=OFF > /dev/null
cmake --build "$build/current" --target tokenkernels_latency_spread --parallel > /dev/null

rm -rf "$base_tree" && mkdir -p "$base_tree"
git archive "$base_ref" | tar -x -C "$base_tree"
cmake -S "$base_tree" -B "$build/base" -DCMAKE_BUILD_TYPE=Release -DTOKENKERNELS_CUDA=OFF -DTOKENKERNELS_BUILD_TESTS=OFF \
    -DTOKENKERNELS_BUILD_BENCHMARKS=OFF > /dev/null
cmake --build "$build/base" --target tokenkernels --parallel > /dev/null

program=$build/current/bin/tokenkernels_latency_spread
echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) cores; $(date -u +%Y-%m-%d); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "base: $base_ref ($(ldd "$build/base/lib/libtokenkernels.so" | grep -o 'libgomp\.so[.0-9]*' | head -n 1 || echo 'no OpenMP')); current: $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo +dirty)"
echo
echo "| threads | gap between calls | other load | library | p50 ms | p90 ms | p99 ms | max ms | CPU ms per call |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
# Two rounds of each configuration, the libraries alternating; each row is one run of $calls calls.
for config in "2 1000 0" "2 1000 1" "2 20 1" "1 1000 1"; do
    read -r threads gap busy <<< "$config"
    for round in 1 2; do
        for which in base current; do
            line=$(LD_LIBRARY_PATH=$build/$which/lib "$program" --calls "$calls" --threads "$threads" --gap-us "$gap" --busy-cores "$busy")
            numbers=$(echo "$line" | sed -E 's/.*p50 ([0-9.]+) p90 ([0-9.]+) p99 ([0-9.]+) max ([0-9.]+) ms; CPU ([0-9.]+).*/\1 | \2 | \3 | \4 | \5/')
            label=$([ "$which" = base ] && echo "$base_ref (OpenMP)" || echo "this tree (own pool)")
            load=$([ "$busy" = 0 ] && echo "none" || echo "a process spinning on one core")
            echo "| $threads | $gap us | $load | $label | $numbers |"
        done
    done
done
