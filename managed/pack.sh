#!/usr/bin/env bash
# Builds the native libraries the NuGet packages ship and packs the four packages into one folder:
#   TokenKernels               the C# API (netstandard2.1, net8.0), with symbols (.snupkg)
#   TokenKernels.OnnxRuntime   the C# side of ONNX Runtime (RegisterTokenKernels, the OrtValue bridges), with symbols
#   TokenKernels.Runtime.Cpu   libtokenkernels.so for linux-x64 and linux-arm64, libtokenkernels.dll for win-x64 (CUDA OFF),
#                              each with the ONNX Runtime custom-op library beside it (libtokenkernels_ort.so/.dll)
#   TokenKernels.Runtime.Cuda  libtokenkernels_cuda.so for linux-x64 (CUDA and CPU backends), with
#                              libtokenkernels_cuda_ort.so, the custom-op library built against it
# Every library links libstdc++ in (TOKENKERNELS_STATIC_CXX_RUNTIME) and has no OpenMP, so it needs only
# glibc 2.34 or newer and libgcc_s; the script checks both with readelf before packing. A custom-op library
# needs the main library beside it too, by the soname it was linked against: the packages ship the main library
# as libtokenkernels.so (no soname links in a package), so the loader finds that dependency only because
# RegisterTokenKernels loads the main library first and the loader matches the soname of a library already
# loaded; the script checks that the custom-op library asks for exactly that soname. The custom-op libraries
# are built with TOKENKERNELS_ORT=ON, against ONNX Runtime's headers from the NuGet package
# Microsoft.ML.OnnxRuntime, which the script restores first.
#
#   bash managed/pack.sh [output folder, default build/packages]
#
# Needs CMake, g++, the .NET SDK; for linux-arm64 Debian's aarch64 toolchain (.ci/install-arm64.sh); for the
# CUDA package nvcc (.ci/install-cuda.sh); for win-x64 mingw-w64 (.ci/install-win64.sh). TOKENKERNELS_PACK_CUDA=OFF
# skips the CUDA package (AUTO, the default, packs it when nvcc is found; ON requires it); TOKENKERNELS_PACK_WIN64
# likewise for win-x64; linux-arm64 is required (TOKENKERNELS_PACK_ARM64=ON/AUTO).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$(mkdir -p "${1:-build/packages}" && cd "${1:-build/packages}" && pwd)
pack_cuda=${TOKENKERNELS_PACK_CUDA:-AUTO}
pack_arm64=${TOKENKERNELS_PACK_ARM64:-AUTO}
pack_win64=${TOKENKERNELS_PACK_WIN64:-AUTO}

step() { echo "== pack: $*"; }

# Configures build/pack/<name> (once, or again when the custom-op library is not switched on there yet) and builds
# the main library; prints the path of a stripped copy of the built file.
build_library() {
    local name=$1
    shift
    local dir=build/pack/$name
    if [ ! -f "$dir/CMakeCache.txt" ] || ! grep -qE '^TOKENKERNELS_ORT:[A-Z]+=ON$' "$dir/CMakeCache.txt"; then
        cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DTOKENKERNELS_BUILD_TESTS=OFF \
            -DTOKENKERNELS_BUILD_BENCHMARKS=OFF -DTOKENKERNELS_MANAGED_TESTS=OFF \
            -DTOKENKERNELS_STATIC_CXX_RUNTIME=ON -DTOKENKERNELS_ORT=ON "$@" >&2
    fi
    cmake --build "$dir" --target tokenkernels --parallel "${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" >&2
    # The real file behind the lib*.so -> lib*.so.X.Y -> lib*.so.X.Y.Z links; a Windows DLL is in bin/.
    stripped_copy "$dir" "$(ls "$dir"/lib/lib*.so "$dir"/bin/*.dll 2>/dev/null | grep -v '_ort\.' | head -n 1)"
}

# Builds the custom-op library in build/pack/<name> (configured by build_library); prints the path of a stripped copy.
build_ort_library() {
    local dir=build/pack/$1
    cmake --build "$dir" --target tokenkernels_ort --parallel "${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" >&2
    stripped_copy "$dir" "$(ls "$dir"/lib/lib*_ort.so "$dir"/bin/*_ort.dll 2>/dev/null | head -n 1)"
}

# Writes a copy of a built library without debug sections to build/pack/<name>/package/; prints its path.
stripped_copy() {
    local dir=$1 built stripped
    if [ -z "$2" ]; then
        echo "pack: the build in $dir made no library under lib/ or bin/" >&2
        exit 1
    fi
    built=$(readlink -f "$2")
    # The statically linked C++ runtime brings its debug sections: a stripped copy is what ships.
    stripped=$root/$dir/package/$(basename "$built")
    mkdir -p "$dir/package"
    case "$built" in
        *.dll) x86_64-w64-mingw32-strip --strip-debug -o "$stripped" "$built" ;;
        *) "${STRIP_TOOL:-strip}" --strip-debug -o "$stripped" "$built" ;;
    esac
    echo "$stripped"
}

# Fails unless the DLL imports Windows system DLLs only (no mingw runtime: libstdc++, libgcc, winpthread), and
# the one DLL named as the second argument (the custom-op library's libtokenkernels.dll).
check_imports_only_windows() {
    local library=$1 also=${2:-} imports unexpected
    imports=$(x86_64-w64-mingw32-objdump -p "$library" | sed -n 's/.*DLL Name: *//p' | tr '\n' ' ')
    unexpected=$(echo "$imports" | tr ' ' '\n' | grep -viE '^(kernel32|msvcrt|ucrtbase|advapi32|ntdll|api-ms-win-[a-z0-9-]+)\.dll$' \
        | grep -vixF "${also:-none}" | grep -v '^$' || true)
    echo "   $(basename "$library"): imports $imports" >&2
    if [ -n "$unexpected" ]; then
        echo "pack: $library imports $unexpected; a shipped DLL may import Windows system DLLs only${also:+ (and $also)}" >&2
        exit 1
    fi
}

# Fails unless the library's NEEDED entries are glibc's own and libgcc_s (no OpenMP, no libstdc++), and the one
# soname given as the third argument (the custom-op library's main library), and it asks for no glibc symbol
# version above 2.34 (Ubuntu 22.04, Debian 12, RHEL 9, JetPack 6).
check_needs_only_glibc() {
    local library=$1 readelf=$2 also=${3:-} needed unexpected newest
    needed=$("$readelf" -d "$library" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
    unexpected=$(echo "$needed" | tr ' ' '\n' | grep -vE '^(libc|libm|libdl|libpthread|librt|libgcc_s|ld-linux[-a-z0-9_]*)\.so(\.[0-9.]+)?$' \
        | grep -vxF "${also:-none}" | grep -v '^$' || true)
    newest=$("$readelf" --dyn-syms -W "$library" | grep -oE 'GLIBC_[0-9]+\.[0-9]+' | sort -V | tail -n 1)
    echo "   $(basename "$library"): needs $needed(symbols up to $newest)" >&2
    if [ -n "$unexpected" ]; then
        echo "pack: $library needs $unexpected from the system; a shipped library may need only glibc and libgcc_s${also:+ (and $also)}" >&2
        exit 1
    fi
    if [ "$(printf '%s\nGLIBC_2.34\n' "$newest" | sort -V | tail -n 1)" != GLIBC_2.34 ]; then
        echo "pack: $library asks for $newest; the packages promise glibc 2.34" >&2
        exit 1
    fi
}

# Fails unless the custom-op library asks for the main library by the main library's soname (which the loader
# matches against the main library RegisterTokenKernels loaded first), and no other file of TokenKernels'.
check_ort_needs_main() {
    local ort=$1 main=$2 readelf=$3 soname
    soname=$("$readelf" -d "$main" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
    if [ -z "$soname" ] || ! "$readelf" -d "$ort" | grep -q "(NEEDED).*\[$soname\]"; then
        echo "pack: $ort does not need ${soname:-a soname} of $main; it must be linked against the library it ships beside" >&2
        exit 1
    fi
    check_needs_only_glibc "$ort" "$readelf" "$soname"
    if ! "$readelf" --dyn-syms -W "$ort" | grep -qE ' FUNC +GLOBAL +DEFAULT +[0-9]+ RegisterCustomOps$'; then
        echo "pack: $ort does not export RegisterCustomOps, the entry point ONNX Runtime calls" >&2
        exit 1
    fi
}

# Fails unless the DLL exports RegisterCustomOps (ORT's headers leave the export to the library on Windows).
check_dll_exports_entry_point() {
    if ! x86_64-w64-mingw32-objdump -p "$1" | sed -n '/\[Ordinal\/Name Pointer\] Table/,/^$/p' | grep -qE '\] RegisterCustomOps$'; then
        echo "pack: $1 does not export RegisterCustomOps, the entry point ONNX Runtime calls" >&2
        exit 1
    fi
}

have_nvcc() { command -v nvcc >/dev/null 2>&1; }
have_arm64() { command -v aarch64-linux-gnu-g++ >/dev/null 2>&1; }
have_mingw() { command -v x86_64-w64-mingw32-g++-posix >/dev/null 2>&1; }

step "ONNX Runtime's headers for the custom-op library (restoring Microsoft.ML.OnnxRuntime into the NuGet cache)"
dotnet restore tests/managed/TokenKernels.OnnxRuntime.Tests/TokenKernels.OnnxRuntime.Tests.csproj --nologo -v quiet >&2

step "linux-x64 CPU library"
cpu_x64=$(build_library linux-x64 -DTOKENKERNELS_CUDA=OFF)
check_needs_only_glibc "$cpu_x64" readelf
cpu_args=(-p:TokenKernelsNativeLinuxX64="$cpu_x64")
step "linux-x64 ONNX Runtime custom-op library"
ort_x64=$(build_ort_library linux-x64)
check_ort_needs_main "$ort_x64" "$cpu_x64" readelf
cpu_args+=(-p:TokenKernelsOrtLinuxX64="$ort_x64")

if [ "$pack_arm64" = ON ] || { [ "$pack_arm64" = AUTO ] && have_arm64; }; then
    step "linux-arm64 CPU library (cross-compiled)"
    cpu_arm64=$(STRIP_TOOL=aarch64-linux-gnu-strip build_library linux-arm64 -DTOKENKERNELS_CUDA=OFF \
        -DCMAKE_TOOLCHAIN_FILE="$root/cmake/toolchains/aarch64-linux-gnu.cmake")
    check_needs_only_glibc "$cpu_arm64" aarch64-linux-gnu-readelf
    cpu_args+=(-p:TokenKernelsNativeLinuxArm64="$cpu_arm64")
    step "linux-arm64 ONNX Runtime custom-op library (cross-compiled)"
    ort_arm64=$(STRIP_TOOL=aarch64-linux-gnu-strip build_ort_library linux-arm64)
    check_ort_needs_main "$ort_arm64" "$cpu_arm64" aarch64-linux-gnu-readelf
    cpu_args+=(-p:TokenKernelsOrtLinuxArm64="$ort_arm64")
else
    echo "pack: no aarch64-linux-gnu-g++ (bash .ci/install-arm64.sh installs it): TokenKernels.Runtime.Cpu cannot be packed without linux-arm64" >&2
    exit 1
fi

if [ "$pack_win64" = ON ] || { [ "$pack_win64" = AUTO ] && have_mingw; }; then
    step "win-x64 CPU library (cross-compiled with mingw-w64)"
    cpu_win64=$(build_library win-x64 -DTOKENKERNELS_CUDA=OFF \
        -DCMAKE_TOOLCHAIN_FILE="$root/cmake/toolchains/x86_64-w64-mingw32.cmake")
    check_imports_only_windows "$cpu_win64"
    cpu_args+=(-p:TokenKernelsNativeWinX64="$cpu_win64")
    step "win-x64 ONNX Runtime custom-op library (cross-compiled with mingw-w64)"
    ort_win64=$(build_ort_library win-x64)
    # It imports the main DLL by its file name, which the package keeps (libtokenkernels.dll).
    check_imports_only_windows "$ort_win64" "$(basename "$cpu_win64")"
    check_dll_exports_entry_point "$ort_win64"
    cpu_args+=(-p:TokenKernelsOrtWinX64="$ort_win64")
else
    echo "pack: no x86_64-w64-mingw32-g++-posix (bash .ci/install-win64.sh installs it): TokenKernels.Runtime.Cpu without win-x64" >&2
fi

cuda_args=()
if [ "$pack_cuda" = ON ] || { [ "$pack_cuda" = AUTO ] && have_nvcc; }; then
    step "linux-x64 CUDA library (sm_80, sm_90, compute_90 PTX; the CUDA runtime linked statically)"
    cuda_x64=$(build_library linux-x64-cuda -DTOKENKERNELS_CUDA=ON -DTOKENKERNELS_OUTPUT_NAME=tokenkernels_cuda)
    check_needs_only_glibc "$cuda_x64" readelf
    cuda_args=(-p:TokenKernelsNativeCudaLinuxX64="$cuda_x64")
    # Linked against libtokenkernels_cuda (soname libtokenkernels_cuda.so.X.Y), so it is packed under its own
    # name beside it, apart from the CPU package's libtokenkernels_ort.so when both packages are installed.
    step "linux-x64 ONNX Runtime custom-op library for the CUDA library (CPU and CUDA execution providers)"
    ort_cuda_x64=$(build_ort_library linux-x64-cuda)
    check_ort_needs_main "$ort_cuda_x64" "$cuda_x64" readelf
    cuda_args+=(-p:TokenKernelsOrtCudaLinuxX64="$ort_cuda_x64")
else
    echo "pack: TokenKernels.Runtime.Cuda skipped (no nvcc; bash .ci/install-cuda.sh installs CUDA 11.8)" >&2
fi

# Repository URL and commit for the package metadata, when the clone has them.
meta=()
if url=$(git remote get-url origin 2>/dev/null); then meta+=(-p:RepositoryUrl="$url"); fi
if commit=$(git rev-parse HEAD 2>/dev/null); then meta+=(-p:RepositoryCommit="$commit"); fi

step "dotnet pack into $out"
dotnet pack managed/TokenKernels/TokenKernels.csproj -c Release -o "$out" "${meta[@]}" --nologo -v quiet
dotnet pack managed/TokenKernels.Runtime.Cpu/TokenKernels.Runtime.Cpu.csproj -c Release -o "$out" "${meta[@]}" "${cpu_args[@]}" --nologo -v quiet
if [ ${#cuda_args[@]} -gt 0 ]; then
    dotnet pack managed/TokenKernels.Runtime.Cuda/TokenKernels.Runtime.Cuda.csproj -c Release -o "$out" "${meta[@]}" "${cuda_args[@]}" --nologo -v quiet
fi
dotnet pack managed/TokenKernels.OnnxRuntime/TokenKernels.OnnxRuntime.csproj -c Release -o "$out" "${meta[@]}" --nologo -v quiet
ls -l "$out"
