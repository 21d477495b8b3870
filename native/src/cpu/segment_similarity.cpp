// CPU backend of tk_segment_similarity (SPEC section 5): one task per (segment, block of positions),
// each position's mean pairwise cosine in ops/segment_similarity.hpp's order, so the CUDA backend gives
// the same bits.
#include <algorithm>
#include <vector>

#include "core/dispatch.hpp"
#include "core/parallel.hpp"
#include "cpu/float16.hpp"
#include "ops/segment_similarity.hpp"

namespace tk::cpu {

namespace {

// Positions per task: a block's W rows stay in cache while its pairs are formed.
constexpr int64_t kPositionBlock = 8;

template <class T>
void segment_similarity_typed(const SegmentSimilarityPlan& p) {
    const T* x = static_cast<const T*>(p.x.data);
    float* out = static_cast<float*>(p.out.data);
    const int64_t blocks = (p.positions + kPositionBlock - 1) / kPositionBlock;
    std::vector<int64_t> begin(static_cast<size_t>(p.segments)), end(static_cast<size_t>(p.segments));
    for (int64_t s = 0; s < p.segments; ++s) segment_frames(p, s, &begin[s], &end[s]);
    const int64_t mean_window = std::max<int64_t>(p.frames / std::max<int64_t>(p.segments, 1), 1);
    parallel_for(p.segments * blocks, min_tasks_per_chunk(kPositionBlock * mean_window * mean_window * p.channels),
                 [&](int64_t first, int64_t last) {
                     for (int64_t task = first; task < last; ++task) {
                         const int64_t s = task / blocks;
                         const int64_t i0 = task % blocks * kPositionBlock;
                         const int64_t i1 = std::min(i0 + kPositionBlock, p.positions);
                         const T* frame0 = x + begin[s] * p.x.strides[0];
                         for (int64_t i = i0; i < i1; ++i) {
                             const auto row = [&](int64_t w) { return frame0 + w * p.x.strides[0] + i * p.x.strides[1]; };
                             out[s * p.out.strides[0] + i * p.out.strides[1]] = segment_mean_similarity(
                                 end[s] - begin[s], p.channels, row, [](T v) { return to_float(v); });
                         }
                     }
                 });
}

}  // namespace

void segment_similarity(const SegmentSimilarityPlan& plan) {
    dispatch_float(plan.x.dtype, [&](auto tag) { segment_similarity_typed<storage_t<decltype(tag)>>(plan); });
}

}  // namespace tk::cpu
