#!/bin/sh
# The win64 toolchain's CMAKE_CROSSCOMPILING_EMULATOR (x86_64-w64-mingw32.cmake):
#   wine-run.sh WINE PREFIX PROGRAM.exe [ARGS...]
# runs a Windows console program under WINE (wine64): quiet (WINEDEBUG=-all; TK_WINEDEBUG=err+all
# shows wine's own errors), headless (no Mono or Gecko installer) and in its own prefix, PREFIX
# (created on first use, about 5 s), so that neither a CI machine's nor a user's ~/.wine is touched.
#
# Wine's own background processes (wineserver, services.exe, winedevice.exe, ...) start with the first
# program and would inherit its output: CTest, which reads a test's output through a pipe until every
# holder has closed it, would then wait for them to exit, about 2.5 s after every test. So the first
# caller starts them itself, holding none of the caller's files, with a server that stays 15 s after
# the last program (one test after another then starts in about 0.05 s instead of 2.5 s); a lock
# beside the prefix makes concurrent callers (ctest -j) wait until they are up.
set -u
wine=$1
prefix=$2
shift 2
WINEPREFIX=$prefix
WINEDEBUG=${TK_WINEDEBUG:--all}
WINEDLLOVERRIDES=mscoree,mshtml=
export WINEPREFIX WINEDEBUG WINEDLLOVERRIDES

# Without address-space randomisation (setarch -R) where the system allows it. Debian's wine64 has no
# preloader to reserve Windows' fixed addresses before the program starts, and Linux places a
# program's heap up to 1 GiB past its end: about one start in 7,000 the heap of wine64 (loaded at
# 0x7d000000) covers 0x7ffe0000, where Windows' shared user data must go, and wine exits with status 1
# and nothing on stdout ("err:virtual:virtual_alloc_first_teb wine: failed to map the shared user
# data: c0000018"): a test that fails at random. Unrandomised, the heap starts 48 MiB below it.
unrandomised=
arch=$(uname -m)
if command -v setarch >/dev/null 2>&1 && setarch "$arch" -R true >/dev/null 2>&1; then
    unrandomised="setarch $arch -R"
fi

wineserver=$(dirname "$wine")/wineserver
[ -x "$wineserver" ] || wineserver=$(command -v wineserver || true)
start_session() {
    # Exit status 0 only when no server was running for this prefix and this call started one.
    if [ -n "$wineserver" ] && "$wineserver" -p15 </dev/null >/dev/null 2>&1 9>&-; then
        $unrandomised "$wine" wineboot </dev/null >/dev/null 2>&1 9>&-
    fi
}
mkdir -p "$prefix"
if command -v flock >/dev/null 2>&1; then
    (flock 9 && start_session) 9>"$prefix.lock"
else
    start_session
fi
exec $unrandomised "$wine" "$@"
