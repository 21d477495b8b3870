# Cross-compiles for win-x64 with Debian's mingw-w64 toolchain in its POSIX-threads variant
# (x86_64-w64-mingw32-g++-posix: std::thread, std::mutex and std::condition_variable come from
# winpthreads; the win32 variant has none of them), and runs the target's programs under wine64:
# CMake prepends CMAKE_CROSSCOMPILING_EMULATOR to every test command that is a target (and to
# gtest_discover_tests' listing run), so ctest runs the .exe test programs here. .ci/install-win64.sh
# installs both; the `win64` preset uses this file.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR AMD64)

set(_tk_triple x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${_tk_triple}-gcc-posix)
set(CMAKE_CXX_COMPILER ${_tk_triple}-g++-posix)
set(CMAKE_RC_COMPILER ${_tk_triple}-windres)

set(CMAKE_FIND_ROOT_PATH /usr/${_tk_triple})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Nothing from the mingw runtime is needed where the programs run: libstdc++, libgcc and
# winpthreads are linked in (-static), so libtokenkernels.dll and the test programs import Windows
# system DLLs only (KERNEL32.dll and msvcrt.dll), as a NuGet package's DLL must.
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-static")
set(CMAKE_MODULE_LINKER_FLAGS_INIT "-static")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")

# GCC on 64-bit Windows keeps the stack 16-byte aligned only, yet would spill an __m256 or __m512
# value with an aligned move (vmovaps to the stack, GCC bug 54412), which faults on Windows alone. The
# library's AVX2 and AVX-512 kernels compile to no aligned 32- or 64-byte move today (objdump -d), and
# this keeps it so: the assembler writes every aligned vector move as its unaligned twin, which runs as
# fast on aligned addresses and cannot fault on the others.
set(CMAKE_C_FLAGS_INIT "-Wa,-muse-unaligned-vector-move")
set(CMAKE_CXX_FLAGS_INIT "-Wa,-muse-unaligned-vector-move")

# wine64 (Debian installs it as /usr/lib/wine/wine64, with no command on PATH unless the `wine`
# package is installed too), through wine-run.sh: quiet, headless, in its own prefix under the build
# tree (build/win64/wine-prefix), and with wine's background processes kept off CTest's output pipes.
# A list: CMake passes it before the program's path.
find_program(TOKENKERNELS_WINE NAMES wine64 wine PATHS /usr/lib/wine NO_CMAKE_FIND_ROOT_PATH)
if(TOKENKERNELS_WINE)
  set(CMAKE_CROSSCOMPILING_EMULATOR
      /bin/sh;${CMAKE_CURRENT_LIST_DIR}/wine-run.sh;${TOKENKERNELS_WINE};${CMAKE_BINARY_DIR}/wine-prefix)
endif()
