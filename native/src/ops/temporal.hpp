// Temporal redundancy in video (SPEC section 5): the validated plans handed to a backend, and what
// both backends compute alike (the cosine, the reference frames, DyCoke's per-frame counts), so that
// CPU and CUDA give the same bits. The header's comments on tk_temporal_similarity, tk_evs,
// tk_dycoke_ttm and tk_framefusion_merge are the contract.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/host_device.hpp"
#include "core/regions.hpp"
#include "ops/attention.hpp"
#include "ops/lane_sum.hpp"
#include "ops/strided_tensor.hpp"
#include "ops/vidcom2.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tk {

// PyTorch's cosine_similarity clamps each norm at 1e-8.
constexpr float kTemporalCosineEps = 1e-8f;
// DyCoke's temporal windows: frame 4i is kept whole, 4i + 1 and 4i + 3 are compared with the frame
// before them, 4i + 2 with 4i.
constexpr int64_t kDyCokeWindow = 4;

enum class TemporalReference {
    kPrevious,       // t - 1
    kTensor,         // reference[t]
    kDyCokeWindows,  // t - 1 for odd t, t - 2 for t = 4i + 2, none for t = 4i
};

enum class TemporalScore {
    kCosine,          // tk_temporal_similarity
    kOneMinusCosine,  // EVS: the most dissimilar rank first, as vLLM's 1 - cos
    kNegativeCosine,  // DyCoke: the least similar rank first, exactly (topk(largest=False) of cos)
};

// tk_temporal_similarity, and the scoring pass of the video methods.
struct TemporalSimilarityPlan {
    int64_t batch;
    int64_t frames;           // T
    int64_t positions;        // P tokens per frame
    int64_t channels;         // C
    int32_t device_ordinal;
    TemporalReference reference_rule;
    TemporalScore score;
    StridedTensor x;          // [B, T, P, C]
    StridedTensor reference;  // [T] i32 (kTensor)
    StridedTensor out;        // [B, T, P] f32
};

// The frame frame t is compared with, or -1 for none. A reference[t] outside [0, T) (possible only on
// the device, where it is not checked) is none.
TK_HOST_DEVICE int64_t reference_frame(const TemporalSimilarityPlan& p, int64_t t) {
    switch (p.reference_rule) {
        case TemporalReference::kPrevious: return t - 1;
        case TemporalReference::kDyCokeWindows: return t % 2 == 1 ? t - 1 : (t % kDyCokeWindow == 2 ? t - 2 : -1);
        default: {
            const int64_t r = static_cast<const int32_t*>(p.reference.data)[t * p.reference.strides[0]];
            return r >= 0 && r < p.frames ? r : -1;
        }
    }
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

// A token's score from its cosine (-inf without a reference frame: +inf for both selections).
TK_HOST_DEVICE float temporal_score(TemporalScore score, float cosine) {
    switch (score) {
        case TemporalScore::kOneMinusCosine: return 1.0f - cosine;
        case TemporalScore::kNegativeCosine: return -cosine;
        default: return cosine;
    }
}

// DyCoke: tokens kept of frame t, and the output row its first kept token goes to; `kept` is what a
// compared frame keeps.
TK_HOST_DEVICE int64_t dycoke_frame_keeps(int64_t t, int64_t positions, int64_t kept) {
    return t % kDyCokeWindow == 0 ? positions : kept;
}
TK_HOST_DEVICE int64_t dycoke_frame_offset(int64_t t, int64_t positions, int64_t kept) {
    const int64_t whole = (t + kDyCokeWindow - 1) / kDyCokeWindow;  // window starts before t
    return whole * positions + (t - whole) * kept;
}

enum class VideoMethod { kEvs, kDyCoke, kVidCom2 };

// tk_evs, tk_dycoke_ttm and tk_vidcom2: which tokens each item keeps, and where the outputs go (each
// data NULL when absent).
struct VideoSelectionPlan {
    VideoMethod method;
    TemporalSimilarityPlan similarity;  // the scoring pass (VidCom2: x and the sizes); its out is set by the backend
    int64_t retained;                   // K per item
    int64_t frame_keeps;                // DyCoke: the tokens a compared frame keeps
    int64_t scored_channels;            // VidCom2: C'
    float retention_ratio;              // VidCom2: r
    float temperature;                  // VidCom2: the frame-budget softmax temperature
    int64_t height, width;              // the frame grid, P = H * W
    StridedTensor tokens;               // x viewed as [B, T * P, C] (the boundary checked it can be)
    StridedTensor out;                  // [B, K, C] of x's dtype
    StridedTensor indices;              // [B, K] i32; the workspace's region when absent
    StridedTensor positions;            // [B, K, 3] i32
    StridedTensor mask;                 // [B, T * P] i32
};

// EVS: K = max(P, floor(T * P * (1 - q))), in double as Python's int(total_tokens * (1 - q)).
inline int64_t evs_retained_tokens(int64_t frames, int64_t positions, double pruning_rate) {
    const int64_t total = frames * positions;
    const auto kept = static_cast<int64_t>(static_cast<double>(total) * (1.0 - pruning_rate));
    return kept > positions ? kept : positions;
}

// DyCoke: a compared frame keeps int((1 - merging_ratio) * P), in double as its code computes it.
inline int64_t dycoke_frame_keeps_of(int64_t positions, double merging_ratio) {
    return static_cast<int64_t>((1.0 - merging_ratio) * static_cast<double>(positions));
}
inline int64_t dycoke_retained_tokens(int64_t frames, int64_t positions, double merging_ratio) {
    return dycoke_frame_offset(frames, positions, dycoke_frame_keeps_of(positions, merging_ratio));
}

// The video methods' scratch, the same on both backends: the scores [B, T * P] f32 and the kept
// positions [B, K] i32 (used when the caller gives no indices); DyCoke and VidCom2 also rank each frame
// on its own: per-frame counts and first output slots [B * T] i32 and per-frame kept positions
// [B * T, P] i32. VidCom2 scores with: the channels' shifted sums [B, C] f32, the negated variances [B, C] f32,
// the scored channels [B, C'] i32, the 64-lane partial sums (two per channel, or one per frame and
// scored channel), the normalised tokens [B * T * P, C'] f32, the frame sums then centres [B * T, C'] f32,
// the video centres [B, C'] f32, the video-centre kernel sums v [B * T * P] f32 and the frame
// importances [B * T] f32.
struct VideoSelectionLayout {
    uint64_t scores;
    uint64_t indices;
    uint64_t frame_keeps;
    uint64_t frame_offsets;
    uint64_t frame_indices;
    uint64_t channel_sums;
    uint64_t channel_keys;
    uint64_t channels;
    uint64_t partials;
    uint64_t features;
    uint64_t frame_centres;
    uint64_t video_centres;
    uint64_t video_scores;
    uint64_t importance;
    uint64_t total;
};

// Lanes of a 64-lane sum over `rows` rows that hold any: the others would add zeros.
inline int64_t row_lanes(int64_t rows) { return rows < kRowLanes ? rows : kRowLanes; }

// Floats of 64-lane partial sums VidCom2 needs at most: the pass over each item's C channels (two sums
// each), or over each frame's C' scored channels.
inline int64_t vidcom2_partial_floats(const VideoSelectionPlan& p) {
    const TemporalSimilarityPlan& s = p.similarity;
    const int64_t over_channels = s.batch * row_lanes(s.frames * s.positions) * 2 * s.channels;
    const int64_t over_frames = s.batch * s.frames * row_lanes(s.positions) * p.scored_channels;
    return over_channels > over_frames ? over_channels : over_frames;
}

inline VideoSelectionLayout video_selection_layout(const VideoSelectionPlan& p) {
    RegionCursor cursor;
    VideoSelectionLayout layout{};
    const int64_t frames = p.similarity.batch * p.similarity.frames;
    const int64_t tokens = frames * p.similarity.positions;
    layout.scores = cursor.take(static_cast<uint64_t>(tokens) * sizeof(float));
    layout.indices = cursor.take(static_cast<uint64_t>(p.similarity.batch * p.retained) * sizeof(int32_t));
    if (p.method != VideoMethod::kEvs) {
        layout.frame_keeps = cursor.take(static_cast<uint64_t>(frames) * sizeof(int32_t));
        layout.frame_offsets = cursor.take(static_cast<uint64_t>(frames) * sizeof(int32_t));
        layout.frame_indices = cursor.take(static_cast<uint64_t>(tokens) * sizeof(int32_t));
    }
    if (p.method == VideoMethod::kVidCom2) {
        const auto floats = [](int64_t count) { return static_cast<uint64_t>(count) * sizeof(float); };
        const int64_t batch = p.similarity.batch, scored = p.scored_channels;
        layout.channel_sums = cursor.take(floats(batch * p.similarity.channels));
        layout.channel_keys = cursor.take(floats(batch * p.similarity.channels));
        layout.channels = cursor.take(static_cast<uint64_t>(batch * scored) * sizeof(int32_t));
        layout.partials = cursor.take(floats(vidcom2_partial_floats(p)));
        layout.features = cursor.take(floats(tokens * scored));
        layout.frame_centres = cursor.take(floats(frames * scored));
        layout.video_centres = cursor.take(floats(batch * scored));
        layout.video_scores = cursor.take(floats(tokens));
        layout.importance = cursor.take(floats(frames));
    }
    layout.total = cursor.total();
    return layout;
}

// tk_framefusion_merge: which tokens merge into the same position of the previous frame, and where
// the outputs go (out_size and source_map data NULL when absent).
struct FrameFusionPlan {
    TemporalSimilarityPlan similarity;  // cosine to the previous frame; its out is set by the backend
    float threshold;                    // merge when cos >= threshold
    int64_t max_merges;                 // at most this many per item (the highest cosines); -1: no cap
    StridedTensor out;                  // [B, T * P, C] of x's dtype
    StridedTensor out_size;             // [B, T * P] f32
    StridedTensor source_map;           // [B, T * P] i32
    StridedTensor merge_count;          // [B] i32
};

// FrameFusion's scratch, the same on both backends: the cosines [B, T * P] f32, each token's output
// row [B, T * P] i32 (its run head's), and with a cap the capped top-k's positions [B, cap] i32.
struct FrameFusionLayout {
    uint64_t scores;
    uint64_t rows;
    uint64_t capped;
    uint64_t total;
};

inline FrameFusionLayout framefusion_layout(const FrameFusionPlan& p) {
    RegionCursor cursor;
    FrameFusionLayout layout{};
    const int64_t tokens = p.similarity.batch * p.similarity.frames * p.similarity.positions;
    layout.scores = cursor.take(static_cast<uint64_t>(tokens) * sizeof(float));
    layout.rows = cursor.take(static_cast<uint64_t>(tokens) * sizeof(int32_t));
    if (p.max_merges >= 0) layout.capped = cursor.take(static_cast<uint64_t>(p.similarity.batch * p.max_merges) * sizeof(int32_t));
    layout.total = cursor.total();
    return layout;
}

// A token merges when its cosine reaches the threshold: never NaN, and never -inf, which marks frame 0
// (no previous frame) even under a threshold of -inf.
TK_HOST_DEVICE bool fuses(float cosine, float threshold) { return cosine >= threshold && cosine != -INFINITY; }

// The top-k FrameFusion's cap ranks the cosines with: the max_merges highest of each item.
inline TopkPlan capped_merges_plan(const FrameFusionPlan& p, float* scores, int32_t* capped) {
    const TemporalSimilarityPlan& s = p.similarity;
    TopkPlan plan{};
    plan.batch = s.batch;
    plan.tokens = s.frames * s.positions;
    plan.k = p.max_merges;
    plan.device_ordinal = s.device_ordinal;
    plan.scores = StridedTensor{scores, TK_DTYPE_F32, {plan.tokens, 1, 0, 0}};
    plan.indices = StridedTensor{capped, TK_DTYPE_I32, {p.max_merges, 1, 0, 0}};
    return plan;
}

// The ops a video method composes, the same on both backends. scores [B, T * P] f32, kept [B, K] i32.
// EVS ranks the whole video of each item.
inline TopkPlan video_topk_plan(const VideoSelectionPlan& p, float* scores, const StridedTensor& kept) {
    const TemporalSimilarityPlan& s = p.similarity;
    TopkPlan plan{};
    plan.batch = s.batch;
    plan.tokens = s.frames * s.positions;
    plan.k = p.retained;
    plan.device_ordinal = s.device_ordinal;
    plan.scores = StridedTensor{scores, TK_DTYPE_F32, {plan.tokens, 1, 0, 0}};
    plan.indices = kept;
    return plan;
}

// DyCoke and VidCom2 rank each frame on its own, frame f keeping frame_keeps[f] (B * T items of P tokens), into
// frame_indices [B * T, P].
inline TopkPlan frame_topk_plan(const VideoSelectionPlan& p, float* scores, int32_t* frame_keeps, int32_t* frame_indices) {
    const TemporalSimilarityPlan& s = p.similarity;
    TopkPlan plan{};
    plan.batch = s.batch * s.frames;
    plan.tokens = s.positions;
    plan.k = s.positions;
    plan.device_ordinal = s.device_ordinal;
    plan.scores = StridedTensor{scores, TK_DTYPE_F32, {s.positions, 1, 0, 0}};
    plan.item_k = StridedTensor{frame_keeps, TK_DTYPE_I32, {1, 0, 0, 0}};
    plan.indices = StridedTensor{frame_indices, TK_DTYPE_I32, {s.positions, 1, 0, 0}};
    return plan;
}

// The kept tokens' rows into out.
inline GatherPlan kept_rows_plan(const VideoSelectionPlan& p, const StridedTensor& kept) {
    const TemporalSimilarityPlan& s = p.similarity;
    GatherPlan plan{};
    plan.batch = s.batch;
    plan.tokens = s.frames * s.positions;
    plan.k = p.retained;
    plan.channels = s.channels;
    plan.device_ordinal = s.device_ordinal;
    plan.x = p.tokens;
    plan.indices = kept;
    plan.out = p.out;
    return plan;
}

// VidCom2's regions of the workspace at base (video_selection_layout).
struct VidCom2Scratch {
    float* scores;
    float* partials;
    float* channel_sums;
    float* channel_keys;
    int32_t* channels;
    float* features;
    float* frame_centres;
    float* video_centres;
    float* video_scores;
    float* importance;
    int32_t* frame_keeps;
    int32_t* frame_offsets;
};

inline VidCom2Scratch vidcom2_scratch(void* base, const VideoSelectionLayout& l) {
    return {at_offset<float>(base, l.scores),          at_offset<float>(base, l.partials),
            at_offset<float>(base, l.channel_sums),    at_offset<float>(base, l.channel_keys),
            at_offset<int32_t>(base, l.channels),      at_offset<float>(base, l.features),
            at_offset<float>(base, l.frame_centres),   at_offset<float>(base, l.video_centres),
            at_offset<float>(base, l.video_scores),    at_offset<float>(base, l.importance),
            at_offset<int32_t>(base, l.frame_keeps),   at_offset<int32_t>(base, l.frame_offsets)};
}

// The channels VidCom2 scores: the C' lowest variances of each item (the highest negated ones), ties to
// the lower channel, NaN last, in increasing channel order. keys [B, C] f32, channels [B, C'] i32.
inline TopkPlan scored_channels_plan(const VideoSelectionPlan& p, float* keys, int32_t* channels) {
    const TemporalSimilarityPlan& s = p.similarity;
    TopkPlan plan{};
    plan.batch = s.batch;
    plan.tokens = s.channels;
    plan.k = p.scored_channels;
    plan.device_ordinal = s.device_ordinal;
    plan.scores = StridedTensor{keys, TK_DTYPE_F32, {s.channels, 1, 0, 0}};
    plan.indices = StridedTensor{channels, TK_DTYPE_I32, {p.scored_channels, 1, 0, 0}};
    return plan;
}

namespace cpu {
void temporal_similarity(const TemporalSimilarityPlan& plan);
// workspace: video_selection_layout(plan).total bytes, or NULL to allocate them.
void select_video_tokens(const VideoSelectionPlan& plan, void* workspace);
// workspace: framefusion_layout(plan).total bytes, or NULL to allocate them.
void framefusion_merge(const FrameFusionPlan& plan, void* workspace);
// VidCom2's scoring (cpu/vidcom2.cpp) in the workspace at base: the negated scores -(v + w) and each
// frame's count and first output slot.
void vidcom2_scores(const VideoSelectionPlan& plan, void* base, const VideoSelectionLayout& layout);
}  // namespace cpu
namespace cuda {
void temporal_similarity(const TemporalSimilarityPlan& plan, void* stream);
// workspace: video_selection_layout(plan).total bytes, or NULL to allocate them stream-ordered.
void select_video_tokens(const VideoSelectionPlan& plan, void* workspace, void* stream);
// workspace: framefusion_layout(plan).total bytes, or NULL to allocate them stream-ordered.
void framefusion_merge(const FrameFusionPlan& plan, void* workspace, void* stream);
// VidCom2's scoring (cuda/vidcom2.cu), as the CPU's.
void vidcom2_scores(const VideoSelectionPlan& plan, void* base, const VideoSelectionLayout& layout, void* stream);
}  // namespace cuda

}  // namespace tk
