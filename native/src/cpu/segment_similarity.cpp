// CPU backend of tk_segment_similarity (SPEC section 5): one task per (segment, block of positions).
// A position's W rows are converted to float32 once (exactly; f32 rows are read in place) and their
// clamped norms kept, then ops/segment_similarity.hpp's mean over the pairs runs on them, its dot
// products the lane sums of ops/lane_sum.hpp (in one AVX-512 register where the CPU has it): the
// arithmetic the CUDA backend runs on the raw rows, so the bits are the same.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/dispatch.hpp"
#include "core/parallel.hpp"
#include "cpu/float16.hpp"
#include "cpu/isa.hpp"
#include "ops/segment_similarity.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#define TK_SEGMENT_X86_KERNELS 1
#include <immintrin.h>
#endif

namespace tk::cpu {

namespace {

// Positions per task: enough work per task for C of a few hundred channels.
constexpr int64_t kPositionBlock = 8;

// a.b over float32 rows as ops/lane_sum.hpp adds it.
float lane_dot_portable(const float* a, const float* b, int64_t channels) {
    return lane_sum(channels, [&](int64_t c) { return a[c] * b[c]; });
}

#if defined(TK_SEGMENT_X86_KERNELS)
// The same with the 16 lanes in one register, each product and sum rounded on its own: the same bits. A
// masked tail adds +0 to the lanes past C, which leaves them unchanged (a lane that starts at +0 never
// holds -0).
__attribute__((target("avx512f"))) float lane_dot_avx512(const float* a, const float* b, int64_t channels) {
    __m512 partial = _mm512_setzero_ps();
    for (int64_t c = 0; c < channels; c += kSumLanes) {
        const __mmask16 lanes =
            channels - c >= kSumLanes ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (channels - c)) - 1u);
        partial = _mm512_add_ps(partial, _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes, a + c), _mm512_maskz_loadu_ps(lanes, b + c)));
    }
    alignas(64) float lane[kSumLanes];
    _mm512_store_ps(lane, partial);
    float sum = 0.0f;
    for (const float v : lane) sum += v;
    return sum;
}
#endif

using LaneDotFn = float (*)(const float*, const float*, int64_t);

LaneDotFn best_lane_dot() {
#if defined(TK_SEGMENT_X86_KERNELS)
    if (cpu_isa() == CpuIsa::kAvx512) return lane_dot_avx512;
#endif
    return lane_dot_portable;
}

template <class T>
void segment_similarity_typed(const SegmentSimilarityPlan& p) {
    static const LaneDotFn dot = best_lane_dot();
    const T* x = static_cast<const T*>(p.x.data);
    float* out = static_cast<float*>(p.out.data);
    const int64_t blocks = (p.positions + kPositionBlock - 1) / kPositionBlock;
    std::vector<int64_t> begin(static_cast<size_t>(p.segments)), end(static_cast<size_t>(p.segments));
    int64_t widest = 0;
    for (int64_t s = 0; s < p.segments; ++s) {
        segment_frames(p, s, &begin[s], &end[s]);
        widest = std::max(widest, end[s] - begin[s]);
    }
    const int64_t mean_window = std::max<int64_t>(p.frames / std::max<int64_t>(p.segments, 1), 1);
    parallel_for(p.segments * blocks, min_tasks_per_chunk(kPositionBlock * mean_window * mean_window * p.channels),
                 [&](int64_t first, int64_t last) {
                     std::vector<float> rows(std::is_same_v<T, float> ? 0 : static_cast<size_t>(widest * p.channels));
                     std::vector<float> norms(static_cast<size_t>(widest));
                     for (int64_t task = first; task < last; ++task) {
                         const int64_t s = task / blocks;
                         const int64_t window = end[s] - begin[s];
                         const int64_t i0 = task % blocks * kPositionBlock;
                         const int64_t i1 = std::min(i0 + kPositionBlock, p.positions);
                         for (int64_t i = i0; i < i1; ++i) {
                             const T* first_row = x + begin[s] * p.x.strides[0] + i * p.x.strides[1];
                             if constexpr (!std::is_same_v<T, float>) {
                                 for (int64_t w = 0; w < window; ++w) {
                                     const T* source = first_row + w * p.x.strides[0];
                                     float* row = rows.data() + w * p.channels;
                                     for (int64_t c = 0; c < p.channels; ++c) row[c] = to_float(source[c]);
                                 }
                             }
                             // float32 rows are read in place; the others from their float32 copies.
                             const auto row = [&](int64_t w) -> const float* {
                                 if constexpr (std::is_same_v<T, float>) return first_row + w * p.x.strides[0];
                                 else return rows.data() + w * p.channels;
                             };
                             // segment_clamped_norm's bits: the copies hold the rows' exact values.
                             for (int64_t w = 0; w < window; ++w)
                                 norms[w] = fmaxf(sqrtf(dot(row(w), row(w), p.channels)), kSegmentNormEps);
                             const auto norm = [&](int64_t w) { return norms[w]; };
                             out[s * p.out.strides[0] + i * p.out.strides[1]] = segment_mean_similarity_of(
                                 window, row, norm, [&](const float* a, const float* b) { return dot(a, b, p.channels); });
                         }
                     }
                 });
}

}  // namespace

void segment_similarity(const SegmentSimilarityPlan& plan) {
    dispatch_float(plan.x.dtype, [&](auto tag) { segment_similarity_typed<storage_t<decltype(tag)>>(plan); });
}

}  // namespace tk::cpu
