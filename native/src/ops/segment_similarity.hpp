// Segment similarity (SPEC section 5, tk_segment_similarity): PruneVid's static/dynamic test, the mean
// cosine similarity over the pairs of distinct frames of a segment at each token position. The plan
// the boundary validates, and the arithmetic both backends run, so that their outputs are the same bits.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/host_device.hpp"
#include "ops/lane_sum.hpp"
#include "ops/strided_tensor.hpp"

namespace tk {

// torch.nn.functional.normalize's clamp of the norm, which PruneVid's normalisation uses.
constexpr float kSegmentNormEps = 1e-12f;

struct SegmentSimilarityPlan {
    int64_t frames;     // T
    int64_t positions;  // N tokens per frame
    int64_t channels;   // C
    int64_t segments;   // S
    int32_t device_ordinal;
    StridedTensor x;        // [T, N, C]
    StridedTensor lengths;  // [S] i32
    StridedTensor out;      // [S, N] f32
};

// Frames [begin, end) of segment s: the lengths before it summed, a negative length counting as 0, and
// clipped to [0, T). Host lengths are validated (each >= 1, summing to T), so the clipping only matters
// for device lengths, which cannot be checked without a host synchronisation.
TK_HOST_DEVICE void segment_frames(const SegmentSimilarityPlan& p, int64_t s, int64_t* begin, int64_t* end) {
    const int32_t* lengths = static_cast<const int32_t*>(p.lengths.data);
    int64_t start = 0;
    for (int64_t j = 0; j < s && start < p.frames; ++j) {
        const int32_t length = lengths[j * p.lengths.strides[0]];
        start += length > 0 ? length : 0;
    }
    if (start > p.frames) start = p.frames;
    const int32_t length = lengths[s * p.lengths.strides[0]];
    const int64_t stop = start + (length > 0 ? length : 0);
    *begin = start;
    *end = stop < p.frames ? stop : p.frames;
}

// max(|a|, eps), |a|^2 a lane sum (ops/lane_sum.hpp).
template <class A, class ToFloat>
TK_HOST_DEVICE float segment_clamped_norm(const A* a, int64_t channels, ToFloat to_float_fn) {
    return fmaxf(sqrtf(lane_sum(channels, [&](int64_t c) { const float u = to_float_fn(a[c]); return u * u; })), kSegmentNormEps);
}

// The mean over the W (W - 1) / 2 pairs w < t of rows [0, W) (row(w) points at row w's C channels) of
// cos(a, b) = a.b / (max(|a|, eps) max(|b|, eps)), eps = 1e-12: dot(a, b) a.b as a lane sum, norm(w)
// the row's segment_clamped_norm (computed again or looked up: the same bits), the pairs' cosines added
// in increasing (w, t) in float32, then divided by the pair count. NaN for W < 2 (PruneVid's 0 / 0).
template <class RowFn, class NormFn, class DotFn>
TK_HOST_DEVICE float segment_mean_similarity_of(int64_t window, RowFn row, NormFn norm, DotFn dot) {
    if (window < 2) return NAN;
    float sum = 0.0f;
    for (int64_t w = 0; w + 1 < window; ++w) {
        const auto* a = row(w);
        const float norm_a = norm(w);
        for (int64_t t = w + 1; t < window; ++t) sum += dot(a, row(t)) / (norm_a * norm(t));
    }
    return sum / static_cast<float>(window * (window - 1) / 2);
}

// The same with a.b the lane sum (ops/lane_sum.hpp) of to_float_fn(a[c]) * to_float_fn(b[c]).
template <class RowFn, class NormFn, class ToFloat>
TK_HOST_DEVICE float segment_mean_similarity(int64_t window, int64_t channels, RowFn row, NormFn norm, ToFloat to_float_fn) {
    return segment_mean_similarity_of(window, row, norm, [&](const auto* a, const auto* b) {
        return lane_sum(channels, [&](int64_t c) { return to_float_fn(a[c]) * to_float_fn(b[c]); });
    });
}

namespace cpu {
void segment_similarity(const SegmentSimilarityPlan& plan);
}  // namespace cpu
namespace cuda {
void segment_similarity(const SegmentSimilarityPlan& plan, void* stream);
}  // namespace cuda

}  // namespace tk
