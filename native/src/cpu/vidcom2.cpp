// VidCom2's scoring on the CPU (SPEC section 5, "VidCom2"): the channel variances in one pass of 64
// row lanes (one task per item and lane, reading its rows whole), the scored channels by top-k, then one task
// per frame normalising its tokens and summing them, and one per frame scoring them against the
// centres. Each sum follows ops/vidcom2.hpp's and ops/lane_sum.hpp's orders, so the bits are CUDA's.
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/dispatch.hpp"
#include "core/parallel.hpp"
#include "cpu/float16.hpp"
#include "ops/attention.hpp"
#include "ops/lane_sum.hpp"
#include "ops/temporal.hpp"
#include "ops/vidcom2.hpp"

namespace tk::cpu {
namespace {

// sums[c] = the lanes of partials [lanes, count] added in order.
void add_lanes(const float* partials, int64_t lanes, int64_t count, float* sums) {
    std::fill(sums, sums + count, 0.0f);
    for (int64_t l = 0; l < lanes; ++l)
        for (int64_t c = 0; c < count; ++c) sums[c] += partials[l * count + c];
}

// Each item's negated channel variances into keys [B, C], from one pass of one task per (item, lane),
// lane l adding the rows l, l + 64, ... of the item shifted by its first row: d and d^2 into the lane's
// two partial rows [2, C]; then the lanes in order, S1 into sums [B, C] and S2 into keys.
template <class T>
void channel_statistics(const VideoSelectionPlan& p, float* partials, float* sums, float* keys) {
    const TemporalSimilarityPlan& s = p.similarity;
    const int64_t tokens = s.frames * s.positions;
    const int64_t lanes = row_lanes(tokens);
    const T* x = static_cast<const T*>(s.x.data);
    parallel_for(s.batch * lanes, min_tasks_per_chunk(tokens / lanes * s.channels), [&](int64_t begin, int64_t end) {
        for (int64_t task = begin; task < end; ++task) {
            const int64_t b = task / lanes;
            float* lane_sums = partials + task * 2 * s.channels;
            float* lane_squares = lane_sums + s.channels;
            std::fill(lane_sums, lane_sums + 2 * s.channels, 0.0f);
            const T* first = x + b * s.x.strides[0];
            for (int64_t n = task % lanes; n < tokens; n += kRowLanes) {
                const T* row = first + n / s.positions * s.x.strides[1] + n % s.positions * s.x.strides[2];
                for (int64_t c = 0; c < s.channels; ++c) {
                    const float d = to_float(row[c]) - to_float(first[c]);
                    lane_sums[c] += d;
                    lane_squares[c] += d * d;
                }
            }
        }
    });
    const auto count = static_cast<float>(tokens);
    for (int64_t b = 0; b < s.batch; ++b) {
        float* s1 = sums + b * s.channels;
        float* s2 = keys + b * s.channels;
        std::fill(s1, s1 + s.channels, 0.0f);
        std::fill(s2, s2 + s.channels, 0.0f);
        for (int64_t l = 0; l < lanes; ++l) {
            const float* lane_sums = partials + (b * lanes + l) * 2 * s.channels;
            for (int64_t c = 0; c < s.channels; ++c) {
                s1[c] += lane_sums[c];
                s2[c] += lane_sums[s.channels + c];
            }
        }
        for (int64_t c = 0; c < s.channels; ++c) s2[c] = negated_variance(s1[c], s2[c], count);
    }
}

// Per frame: each token's scored channels normalised into features [B * T * P, C'], and the frame's
// 64-lane sum of them into sums [B * T, C'].
template <class T>
void normalise_frames(const VideoSelectionPlan& p, const int32_t* channels, float* features, float* sums) {
    const TemporalSimilarityPlan& s = p.similarity;
    const int64_t scored = p.scored_channels;
    const T* x = static_cast<const T*>(s.x.data);
    parallel_for(s.batch * s.frames, min_tasks_per_chunk(s.positions * s.channels), [&](int64_t begin, int64_t end) {
        std::vector<float> lanes(static_cast<size_t>(kRowLanes * scored));
        for (int64_t frame = begin; frame < end; ++frame) {
            const int64_t b = frame / s.frames, t = frame % s.frames;
            const int32_t* chosen = channels + b * scored;
            std::fill(lanes.begin(), lanes.end(), 0.0f);
            for (int64_t i = 0; i < s.positions; ++i) {
                const T* row = x + b * s.x.strides[0] + t * s.x.strides[1] + i * s.x.strides[2];
                float* f = features + (frame * s.positions + i) * scored;
                for (int64_t j = 0; j < scored; ++j) f[j] = to_float(row[chosen[j]]);
                const float norm = normalising_norm(lane_sum(scored, [&](int64_t j) { return f[j] * f[j]; }));
                float* lane = lanes.data() + i % kRowLanes * scored;
                for (int64_t j = 0; j < scored; ++j) {
                    f[j] = f[j] / norm;
                    lane[j] += f[j];
                }
            }
            add_lanes(lanes.data(), kRowLanes, scored, sums + frame * scored);
        }
    });
}

// Per frame: each token's negated score -(v + w) into scores, and the frame's importance -S(v) / P.
void score_frames(const VideoSelectionPlan& p, const float* features, const float* frame_centres, const float* video_centres,
                  float* scores, float* importance) {
    const TemporalSimilarityPlan& s = p.similarity;
    const int64_t scored = p.scored_channels;
    parallel_for(s.batch * s.frames, min_tasks_per_chunk(s.positions * scored), [&](int64_t begin, int64_t end) {
        for (int64_t frame = begin; frame < end; ++frame) {
            const float* frame_centre = frame_centres + frame * scored;
            const float* video_centre = video_centres + frame / s.frames * scored;
            float lanes[kRowLanes] = {};
            for (int64_t i = 0; i < s.positions; ++i) {
                const int64_t token = frame * s.positions + i;
                const float* f = features + token * scored;
                const float to_video = lane_sum(scored, [&](int64_t j) {
                    const float d = f[j] - video_centre[j];
                    return d * d;
                });
                const float to_frame = lane_sum(scored, [&](int64_t j) {
                    const float d = f[j] - frame_centre[j];
                    return d * d;
                });
                const float v = gaussian_kernel_sum(to_video);
                scores[token] = -(v + gaussian_kernel_sum(to_frame));
                lanes[i % kRowLanes] += v;
            }
            float sum = 0.0f;
            for (float lane : lanes) sum += lane;
            importance[frame] = -(sum / static_cast<float>(s.positions));
        }
    });
}

}  // namespace

void vidcom2_scores(const VideoSelectionPlan& plan, void* base, const VideoSelectionLayout& layout) {
    const TemporalSimilarityPlan& s = plan.similarity;
    const int64_t scored = plan.scored_channels;
    const VidCom2Scratch w = vidcom2_scratch(base, layout);

    dispatch_float(s.x.dtype, [&](auto tag) { channel_statistics<storage_t<decltype(tag)>>(plan, w.partials, w.channel_sums, w.channel_keys); });
    topk(scored_channels_plan(plan, w.channel_keys, w.channels));
    dispatch_float(s.x.dtype, [&](auto tag) { normalise_frames<storage_t<decltype(tag)>>(plan, w.channels, w.features, w.frame_centres); });
    // The video centre from the frame sums in frame order, then each frame's sum becomes its centre.
    const auto tokens = static_cast<float>(s.frames * s.positions);
    for (int64_t b = 0; b < s.batch; ++b) {
        float* centre = w.video_centres + b * scored;
        std::fill(centre, centre + scored, 0.0f);
        for (int64_t t = 0; t < s.frames; ++t)
            for (int64_t j = 0; j < scored; ++j) centre[j] += w.frame_centres[(b * s.frames + t) * scored + j];
        for (int64_t j = 0; j < scored; ++j) centre[j] = centre[j] / tokens;
    }
    const auto positions = static_cast<float>(s.positions);
    for (int64_t i = 0; i < s.batch * s.frames * scored; ++i) w.frame_centres[i] = w.frame_centres[i] / positions;

    score_frames(plan, w.features, w.frame_centres, w.video_centres, w.scores, w.importance);
    for (int64_t b = 0; b < s.batch; ++b)
        vidcom2_frame_budgets(w.importance + b * s.frames, s.frames, s.positions, plan.retained, plan.retention_ratio,
                              plan.temperature, w.frame_keeps + b * s.frames, w.frame_offsets + b * s.frames);
}

}  // namespace tk::cpu
