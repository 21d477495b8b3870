// The CUDA code this library holds, as CMake's CUDA_ARCHITECTURES list at build time ("80-real;90"),
// and which devices can run it, by CUDA's compatibility rules:
//   - machine code for sm_XY (entries "XY" and "XY-real") runs on compute capability X.Z for every
//     Z >= Y; arch-specific machine code (sm_XYa) only on X.Y;
//   - PTX for compute_XY (entries "XY" and "XY-virtual") is compiled by the driver for every
//     capability >= X.Y; arch-specific PTX (compute_XYa) only for X.Y;
//   - family-specific code (XYf, CUDA 12.9 and newer) runs on X.Z for every Z >= Y.
// Plain host code: built, and answering, with or without the CUDA backend.
#pragma once

namespace tk {

// The list as CMake spells it; "" when the CUDA backend is not built.
const char* cuda_architectures();

enum class CapabilitySupport { kNo, kYes, kUnknown };

// Whether this library's CUDA code runs on a device of compute capability major.minor; kNo without
// CUDA. kUnknown when an entry names no fixed code ("all", "all-major", "native"): the driver decides.
// The list is read once, so the per-tensor device check does not parse it again.
CapabilitySupport cuda_capability_support(int major, int minor);

}  // namespace tk
