# Cross-compiles for linux-arm64 with Debian's aarch64 toolchain (g++-aarch64-linux-gnu; its C
# library and sysroot live in /usr/aarch64-linux-gnu), and runs the target's programs under
# qemu-user: CMake prepends CMAKE_CROSSCOMPILING_EMULATOR to every test command that is a target
# (and to gtest_discover_tests' listing run), so ctest runs the aarch64 test programs here.
# .ci/install-arm64.sh installs both; the `arm64` preset uses this file.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(_tk_triple aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${_tk_triple}-gcc)
set(CMAKE_CXX_COMPILER ${_tk_triple}-g++)

set(CMAKE_FIND_ROOT_PATH /usr/${_tk_triple})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# -L: the target's dynamic loader and libraries (ld-linux-aarch64.so.1, libc, libstdc++).
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;/usr/${_tk_triple})
