#include "cpu/streaming_copy.hpp"

#include <algorithm>
#include <cstring>

#include "cpu/isa.hpp"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define TK_STREAMING_X86 1
#include <immintrin.h>
#endif

namespace tk::cpu {
namespace {

#if defined(TK_STREAMING_X86)
// Bytes up to dst's next `width`-byte boundary: those go by memcpy, the whole vectors after them by
// non-temporal stores, the rest by memcpy.
size_t unaligned_head(const char* dst, size_t bytes, size_t width) {
    return std::min(bytes, (width - reinterpret_cast<uintptr_t>(dst) % width) % width);
}

__attribute__((target("avx512f"))) void copy_avx512(char* dst, const char* src, size_t bytes) {
    size_t i = unaligned_head(dst, bytes, 64);
    std::memcpy(dst, src, i);
    for (; i + 64 <= bytes; i += 64) _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + i), _mm512_loadu_si512(src + i));
    std::memcpy(dst + i, src + i, bytes - i);
}

__attribute__((target("avx2"))) void copy_avx2(char* dst, const char* src, size_t bytes) {
    size_t i = unaligned_head(dst, bytes, 32);
    std::memcpy(dst, src, i);
    for (; i + 32 <= bytes; i += 32)
        _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)));
    std::memcpy(dst + i, src + i, bytes - i);
}
#endif

}  // namespace

void copy_bytes(void* dst, const void* src, size_t bytes, bool streaming) {
#if defined(TK_STREAMING_X86)
    if (streaming && cpu_isa() == CpuIsa::kAvx512) return copy_avx512(static_cast<char*>(dst), static_cast<const char*>(src), bytes);
    if (streaming && cpu_isa() == CpuIsa::kAvx2) return copy_avx2(static_cast<char*>(dst), static_cast<const char*>(src), bytes);
#endif
    (void)streaming;
    std::memcpy(dst, src, bytes);
}

void streaming_fence() {
#if defined(TK_STREAMING_X86)
    _mm_sfence();
#endif
}

}  // namespace tk::cpu
