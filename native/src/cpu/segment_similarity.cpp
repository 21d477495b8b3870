// CPU backend of tk_segment_similarity (SPEC section 5): one task per (segment, block of positions).
// A position's W rows are converted to float32 once (exactly; f32 rows are read in place) and their
// clamped norms kept, then ops/segment_similarity.hpp's segment_mean_similarity runs on them: the
// arithmetic the CUDA backend runs on the raw rows, so the bits are the same.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "core/dispatch.hpp"
#include "core/parallel.hpp"
#include "cpu/float16.hpp"
#include "ops/segment_similarity.hpp"

namespace tk::cpu {

namespace {

// Positions per task: enough work per task for C of a few hundred channels.
constexpr int64_t kPositionBlock = 8;

template <class T>
void segment_similarity_typed(const SegmentSimilarityPlan& p) {
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
                     const auto identity = [](float v) { return v; };
                     for (int64_t task = first; task < last; ++task) {
                         const int64_t s = task / blocks;
                         const int64_t window = end[s] - begin[s];
                         const int64_t i0 = task % blocks * kPositionBlock;
                         const int64_t i1 = std::min(i0 + kPositionBlock, p.positions);
                         for (int64_t i = i0; i < i1; ++i) {
                             const T* first_row = x + begin[s] * p.x.strides[0] + i * p.x.strides[1];
                             for (int64_t w = 0; w < window; ++w) {
                                 const T* source = first_row + w * p.x.strides[0];
                                 if constexpr (!std::is_same_v<T, float>) {
                                     float* row = rows.data() + w * p.channels;
                                     for (int64_t c = 0; c < p.channels; ++c) row[c] = to_float(source[c]);
                                 }
                                 norms[w] = segment_clamped_norm(source, p.channels, [](T v) { return to_float(v); });
                             }
                             // float32 rows are read in place; the others from their float32 copies.
                             const auto row = [&](int64_t w) -> const float* {
                                 if constexpr (std::is_same_v<T, float>) return first_row + w * p.x.strides[0];
                                 else return rows.data() + w * p.channels;
                             };
                             const auto norm = [&](int64_t w) { return norms[w]; };
                             out[s * p.out.strides[0] + i * p.out.strides[1]] =
                                 segment_mean_similarity(window, p.channels, row, norm, identity);
                         }
                     }
                 });
}

}  // namespace

void segment_similarity(const SegmentSimilarityPlan& plan) {
    dispatch_float(plan.x.dtype, [&](auto tag) { segment_similarity_typed<storage_t<decltype(tag)>>(plan); });
}

}  // namespace tk::cpu
