// Temporal redundancy in video (SPEC section 5): the validated plans handed to a backend, and the
// cosine both backends compute, so that CPU and CUDA give the same bits. The header's comments on
// tk_temporal_similarity and tk_evs are the contract.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/host_device.hpp"
#include "core/regions.hpp"
#include "ops/lane_sum.hpp"
#include "ops/strided_tensor.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tk {

// PyTorch's cosine_similarity clamps each norm at 1e-8.
constexpr float kTemporalCosineEps = 1e-8f;

// tk_temporal_similarity, and the scoring pass of tk_evs.
struct TemporalSimilarityPlan {
    int64_t batch;
    int64_t frames;           // T
    int64_t positions;        // P tokens per frame
    int64_t channels;         // C
    int32_t device_ordinal;
    bool dissimilarity;       // write 1 - cos (EVS) instead of cos
    StridedTensor x;          // [B, T, P, C]
    StridedTensor reference;  // [T] i32, data NULL for the previous frame
    StridedTensor out;        // [B, T, P] f32
};

// The frame frame t is compared with, or -1 for none: t - 1 without a reference tensor, else
// reference[t]; a value outside [0, T) (possible only on the device, where it is not checked) is none.
TK_HOST_DEVICE int64_t reference_frame(const TemporalSimilarityPlan& p, int64_t t) {
    if (p.reference.data == nullptr) return t - 1;
    const int64_t r = static_cast<const int32_t*>(p.reference.data)[t * p.reference.strides[0]];
    return r >= 0 && r < p.frames ? r : -1;
}

// The lanes added in order 0 to 15, then the clamped norms and the quotient.
TK_HOST_DEVICE float finish_cosine(const float* dot, const float* aa, const float* bb) {
    float d = 0.0f, na = 0.0f, nb = 0.0f;
    for (int l = 0; l < kSumLanes; ++l) {
        d += dot[l];
        na += aa[l];
        nb += bb[l];
    }
    const float norm_a = fmaxf(sqrtf(na), kTemporalCosineEps);
    const float norm_b = fmaxf(sqrtf(nb), kTemporalCosineEps);
    return d / (norm_a * norm_b);
}

// cos(a, b) = a.b / (max(|a|, eps) max(|b|, eps)), the three sums in lane_sum's order.
template <class A, class ToFloat>
TK_HOST_DEVICE float temporal_cosine(const A* a, const A* b, int64_t channels, ToFloat to_float_fn) {
    float dot[kSumLanes] = {};
    float aa[kSumLanes] = {};
    float bb[kSumLanes] = {};
    int64_t c = 0;
    for (; c + kSumLanes <= channels; c += kSumLanes)
        for (int l = 0; l < kSumLanes; ++l) {
            const float u = to_float_fn(a[c + l]);
            const float v = to_float_fn(b[c + l]);
            dot[l] += u * v;
            aa[l] += u * u;
            bb[l] += v * v;
        }
    for (int l = 0; c + l < channels; ++l) {
        const float u = to_float_fn(a[c + l]);
        const float v = to_float_fn(b[c + l]);
        dot[l] += u * v;
        aa[l] += u * u;
        bb[l] += v * v;
    }
    return finish_cosine(dot, aa, bb);
}

// tk_evs: the retained count K and where the outputs go (each data NULL when absent).
struct EvsPlan {
    TemporalSimilarityPlan similarity;  // dissimilarity = true, out = the score region
    int64_t retained;                   // K
    int64_t height, width;              // the frame grid, P = H * W
    StridedTensor tokens;               // x viewed as [B, T * P, C] (the boundary checked it can be)
    StridedTensor out;                  // [B, K, C] of x's dtype
    StridedTensor indices;              // [B, K] i32; the workspace's region when absent
    StridedTensor positions;            // [B, K, 3] i32
    StridedTensor mask;                 // [B, T * P] i32
};

// K = max(P, floor(T * P * (1 - q))), in double as Python's int(total_tokens * (1 - q)).
inline int64_t evs_retained_tokens(int64_t frames, int64_t positions, double pruning_rate) {
    const int64_t total = frames * positions;
    const auto kept = static_cast<int64_t>(static_cast<double>(total) * (1.0 - pruning_rate));
    return kept > positions ? kept : positions;
}

// tk_evs's scratch, the same on both backends: the scores [B, T * P] f32 and the kept positions
// [B, K] i32 (used when the caller gives no indices). The top-k it runs needs none.
struct EvsLayout {
    uint64_t scores;
    uint64_t indices;
    uint64_t total;
};

inline EvsLayout evs_layout(const EvsPlan& p) {
    RegionCursor cursor;
    EvsLayout layout{};
    const int64_t tokens = p.similarity.frames * p.similarity.positions;
    layout.scores = cursor.take(static_cast<uint64_t>(p.similarity.batch * tokens) * sizeof(float));
    layout.indices = cursor.take(static_cast<uint64_t>(p.similarity.batch * p.retained) * sizeof(int32_t));
    layout.total = cursor.total();
    return layout;
}

namespace cpu {
void temporal_similarity(const TemporalSimilarityPlan& plan);
// workspace: evs_layout(plan).total bytes, or NULL to allocate them.
void evs(const EvsPlan& plan, void* workspace);
}  // namespace cpu
namespace cuda {
void temporal_similarity(const TemporalSimilarityPlan& plan, void* stream);
// workspace: evs_layout(plan).total bytes, or NULL to allocate them stream-ordered.
void evs(const EvsPlan& plan, void* workspace, void* stream);
}  // namespace cuda

}  // namespace tk
