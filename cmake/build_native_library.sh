#!/bin/sh
# Configures (once) and builds the native library for managed/native.targets on Linux and macOS.
# `dotnet run` and `dotnet build` show nothing of a build step's output, and a first build takes a
# minute or two, so its progress also goes to the terminal when there is one (/dev/tty); CI logs and
# other runs without a terminal get the normal MSBuild log only.
#
#   build_native_library.sh SOURCE_DIR BUILD_DIR [extra CMake configure arguments...]
set -u
source_dir=${1%/.}
build_dir=${2%/.}
shift 2
mkdir -p "$build_dir"
configure_log=$build_dir/tokenkernels-configure.log
# In a subshell: a redirection that fails on a special built-in would end a POSIX shell (dash) itself.
if ( : > /dev/tty ) 2>/dev/null; then terminal=/dev/tty; else terminal=/dev/null; fi
say() {
    echo "$*"
    echo "$*" > "$terminal"
}

if [ ! -f "$build_dir/CMakeCache.txt" ]; then
    say "TokenKernels: configuring the native library in $build_dir (first build only; it takes a minute or two)"
    if ! cmake -S "$source_dir" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DTOKENKERNELS_BUILD_TESTS=OFF \
        -DTOKENKERNELS_BUILD_BENCHMARKS=OFF "$@" > "$configure_log" 2>&1; then
        cat "$configure_log"
        say "TokenKernels: configuring the native library failed; the output is above and in $configure_log"
        exit 1
    fi
    cat "$configure_log"
fi

# The build's own lines ("[ 40%] Building CXX object ...") to both; its status through a file, as sh
# has no pipefail.
status_file="$build_dir/.tokenkernels-build-status"
{ cmake --build "$build_dir" --target tokenkernels --config Release --parallel "${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" 2>&1; echo $? > "$status_file"; } |
    while IFS= read -r line; do
        echo "$line"
        case "$line" in
            *"%]"*) echo "TokenKernels: $line" > "$terminal" ;;
        esac
    done
status=$(cat "$status_file" 2>/dev/null || echo 1)
rm -f "$status_file"
[ "$status" -eq 0 ] || say "TokenKernels: building the native library failed (exit $status); the output is above"
exit "$status"
