// Copies into outputs far larger than the cache (a video method's kept tokens: 100 MB and more) with
// non-temporal stores where the CPU has AVX2 or AVX-512: the destination's cache lines are written
// without being read first, which saves a third of the traffic of a plain copy, and the output does not
// evict the input still to be read. Elsewhere, and for smaller outputs, a plain memcpy.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tk::cpu {

// Whether an output of rows rows of row_bytes each is written with streaming stores: 32 MiB and more.
inline bool streams_output(int64_t rows, size_t row_bytes) {
    constexpr uint64_t kStreamingOutputBytes = uint64_t{32} << 20;
    return static_cast<uint64_t>(rows) * row_bytes >= kStreamingOutputBytes;
}

// dst[0, bytes) = src[0, bytes); with `streaming`, the aligned body through non-temporal stores, which
// the task must order with streaming_fence() before it ends.
void copy_bytes(void* dst, const void* src, size_t bytes, bool streaming);
void streaming_fence();

}  // namespace tk::cpu
