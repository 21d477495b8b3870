#!/usr/bin/env bash
# Fills .gpu/ (git-ignored) on a build machine with what bench/gpu/run.sh needs on a GPU machine that
# cannot fetch anything:
#   .gpu/googletest             GoogleTest sources (from $GOOGLETEST_SOURCE, default Debian's
#                               /usr/src/googletest), built there when the image has no GoogleTest;
#   .gpu/dotnet-runtime.tar.xz  this machine's .NET runtime, packed by shared/gpu/pack-dotnet-runtime.sh;
#   .gpu/managed/               the managed test program, built here, run there on that runtime;
#   .gpu/cli/                   the CLI's test program (run.sh runs its CUDA tests: compress and bench on the device).
# The .NET parts are left out, saying so, where dotnet is not installed. Carry .gpu with the run:
# its files travel with the working tree only when named (the device tool's carry: [".gpu"]).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo_root"
mkdir -p .gpu

googletest_source=${GOOGLETEST_SOURCE:-/usr/src/googletest}
if [ -f "$googletest_source/CMakeLists.txt" ]; then
    rm -rf .gpu/googletest
    cp -r "$googletest_source" .gpu/googletest
    echo "copied GoogleTest sources from $googletest_source"
else
    echo "no GoogleTest sources at $googletest_source (apt-get install googletest, or set GOOGLETEST_SOURCE):" \
        "run.sh will need a GoogleTest installed on the GPU machine"
fi

if command -v dotnet >/dev/null; then
    pack_script=
    for candidate in "$repo_root/shared/gpu/pack-dotnet-runtime.sh" "$repo_root/../shared/gpu/pack-dotnet-runtime.sh"; do
        [ -f "$candidate" ] && pack_script=$candidate && break
    done
    if [ -z "$pack_script" ]; then
        echo "shared/gpu/pack-dotnet-runtime.sh not found beside or inside the repository" >&2
        exit 1
    fi
    bash "$pack_script" .gpu/dotnet-runtime.tar.xz
    rm -rf .gpu/managed
    # The build puts this machine's CPU-only native library beside the tests; run.sh replaces it with
    # the CUDA build in a scratch copy.
    dotnet build -c Release tests/managed/TokenKernels.Tests/TokenKernels.Tests.csproj -o .gpu/managed
    rm -rf .gpu/cli
    dotnet build -c Release tests/managed/TokenKernels.Cli.Tests/TokenKernels.Cli.Tests.csproj -o .gpu/cli
else
    echo "dotnet not found: no .NET runtime or managed tests packed; run.sh will skip the managed step"
fi

du -sh .gpu
