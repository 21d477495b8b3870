// Copies into outputs far larger than the cache (a video method's kept tokens: 100 MB and more) with
// non-temporal stores where the CPU has AVX2 or AVX-512: the destination's cache lines are written
// without being read first, which saves a third of the traffic of a plain copy, and the output does not
// evict the input still to be read. Elsewhere, and for smaller outputs, a plain memcpy.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tk::cpu {

// Outputs of at least this many bytes in all are written with streaming stores.
constexpr uint64_t kStreamingOutputBytes = uint64_t{32} << 20;

// dst[0, bytes) = src[0, bytes); with `streaming`, the aligned body through non-temporal stores, which
// the task must order with streaming_fence() before it ends.
void copy_bytes(void* dst, const void* src, size_t bytes, bool streaming);
void streaming_fence();

}  // namespace tk::cpu
