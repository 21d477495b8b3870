// Which vector variant the CPU kernels run (the merge micro-kernels, the diversity distances): the
// widest this CPU has, at most the one the environment variable TK_CPU_ISA names (portable, avx2 or
// avx512; read once per process, any other value ignored), so that the narrower variants that other
// machines run can be tested and timed on a wide one.
#pragma once

namespace tk::cpu {

enum class CpuIsa { kPortable = 0, kAvx2 = 1, kAvx512 = 2 };

CpuIsa cpu_isa();

}  // namespace tk::cpu
