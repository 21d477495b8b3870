# Included by CTest (TEST_INCLUDE_FILES) after the discovered GoogleTest cases, in builds whose tests
# run under qemu-user (the arm64 preset). qemu-user 7.2 (Debian 12) aborts a child process that
# fork() made from a multi-threaded program as soon as the child starts a thread of its own, in
# qemu's own code ("qemu_plugin_vcpu_init_hook: assertion failed: (success)", "cpu_exec: assertion
# failed: (cpu == current_cpu)"): a 20-line C program with no TokenKernels code in it does the same.
# A case whose output shows one of these aborts is reported as skipped (the emulator could not run
# it), not as failed; any other failure of the same case still fails. Today this is
# CpuThreads.ForkedChildRunsOpsOnItsOwnThreads; it runs natively in every x86-64 build. CTest appends
# these expressions to the one gtest_discover_tests set ("[  SKIPPED ]", GTEST_SKIP).
foreach(_tk_test IN LISTS tokenkernels_tests_TESTS)
  set_tests_properties("${_tk_test}" PROPERTIES SKIP_REGULAR_EXPRESSION
    "ERROR:[^\n]*qemu_plugin_vcpu_init_hook: assertion failed;ERROR:[^\n]*cpu_exec: assertion failed: \\(cpu == current_cpu\\)")
endforeach()
