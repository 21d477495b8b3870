// CPU backend of temporal redundancy (SPEC section 5). The similarity pass is parallel over items and
// blocks of positions, each task walking the frames in order, so the frame a token is compared with
// was read a few rows earlier and is still in cache: the input comes from memory about once. EVS
// composes that pass with the top-k and gather ops (cpu/attention.cpp) over its scratch.
#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "core/dispatch.hpp"
#include "core/parallel.hpp"
#include "cpu/float16.hpp"
#include "ops/attention.hpp"
#include "ops/temporal.hpp"

namespace tk::cpu {

namespace {

// Positions per task: 8 rows of a frame and 8 of its reference stay in L1/L2 for C up to a few
// thousand channels.
constexpr int64_t kPositionBlock = 8;

template <class T>
void temporal_similarity_typed(const TemporalSimilarityPlan& p) {
    const int64_t blocks = (p.positions + kPositionBlock - 1) / kPositionBlock;
    const T* x = static_cast<const T*>(p.x.data);
    float* out = static_cast<float*>(p.out.data);
    const auto convert = [](T v) { return to_float(v); };
    parallel_for(p.batch * blocks, min_tasks_per_chunk(p.frames * kPositionBlock * p.channels), [&](int64_t begin, int64_t end) {
        for (int64_t task = begin; task < end; ++task) {
            const int64_t b = task / blocks;
            const int64_t p0 = task % blocks * kPositionBlock;
            const int64_t p1 = std::min(p0 + kPositionBlock, p.positions);
            for (int64_t t = 0; t < p.frames; ++t) {
                const int64_t r = reference_frame(p, t);
                for (int64_t i = p0; i < p1; ++i) {
                    float value = -std::numeric_limits<float>::infinity();  // no reference: most dissimilar
                    if (r >= 0) {
                        const T* row = x + b * p.x.strides[0] + t * p.x.strides[1] + i * p.x.strides[2];
                        const T* ref = x + b * p.x.strides[0] + r * p.x.strides[1] + i * p.x.strides[2];
                        value = temporal_cosine(row, ref, p.channels, convert);
                    }
                    out[b * p.out.strides[0] + t * p.out.strides[1] + i * p.out.strides[2]] =
                        p.dissimilarity ? 1.0f - value : value;
                }
            }
        }
    });
}

}  // namespace

void temporal_similarity(const TemporalSimilarityPlan& plan) {
    dispatch_float(plan.x.dtype, [&](auto tag) { temporal_similarity_typed<storage_t<decltype(tag)>>(plan); });
}

void evs(const EvsPlan& plan, void* workspace) {
    const TemporalSimilarityPlan& s = plan.similarity;
    const int64_t tokens = s.frames * s.positions;
    const EvsLayout layout = evs_layout(plan);
    std::unique_ptr<char[]> owned;
    if (workspace == nullptr) {
        owned.reset(new char[layout.total]);
        workspace = owned.get();
    }
    void* base = aligned_start(workspace);
    float* scores = at_offset<float>(base, layout.scores);

    // 1 - cos to the previous frame; frame 0 has none and scores +inf, so it is always kept.
    TemporalSimilarityPlan scoring = s;
    scoring.dissimilarity = true;
    scoring.out = StridedTensor{scores, TK_DTYPE_F32, {tokens, s.positions, 1, 0}};
    temporal_similarity(scoring);

    // The K highest scores, ties to the lower position: the stable descending order's first K.
    StridedTensor indices = plan.indices;
    if (indices.data == nullptr) indices = StridedTensor{at_offset<int32_t>(base, layout.indices), TK_DTYPE_I32, {plan.retained, 1, 0, 0}};
    TopkPlan topk_plan{};
    topk_plan.batch = s.batch;
    topk_plan.tokens = tokens;
    topk_plan.k = plan.retained;
    topk_plan.device_ordinal = s.device_ordinal;
    topk_plan.scores = StridedTensor{scores, TK_DTYPE_F32, {tokens, 1, 0, 0}};
    topk_plan.indices = indices;
    topk(topk_plan);

    if (plan.out.data != nullptr) {
        GatherPlan gather_plan{};
        gather_plan.batch = s.batch;
        gather_plan.tokens = tokens;
        gather_plan.k = plan.retained;
        gather_plan.channels = s.channels;
        gather_plan.device_ordinal = s.device_ordinal;
        gather_plan.x = plan.tokens;
        gather_plan.indices = indices;
        gather_plan.out = plan.out;
        gather(gather_plan);
    }
    const auto kept_at = [&](int64_t b, int64_t i) {
        return int64_t{static_cast<const int32_t*>(indices.data)[b * indices.strides[0] + i * indices.strides[1]]};
    };
    if (plan.positions.data != nullptr) {
        auto* positions = static_cast<int32_t*>(plan.positions.data);
        for (int64_t b = 0; b < s.batch; ++b)
            for (int64_t i = 0; i < plan.retained; ++i) {
                const int64_t token = kept_at(b, i);
                const int64_t cell = token % s.positions;
                int32_t* at = positions + b * plan.positions.strides[0] + i * plan.positions.strides[1];
                at[0] = static_cast<int32_t>(token / s.positions);
                at[plan.positions.strides[2]] = static_cast<int32_t>(cell / plan.width);
                at[2 * plan.positions.strides[2]] = static_cast<int32_t>(cell % plan.width);
            }
    }
    if (plan.mask.data != nullptr) {
        auto* mask = static_cast<int32_t*>(plan.mask.data);
        for (int64_t b = 0; b < s.batch; ++b) {
            for (int64_t i = 0; i < tokens; ++i) mask[b * plan.mask.strides[0] + i * plan.mask.strides[1]] = 0;
            for (int64_t i = 0; i < plan.retained; ++i) mask[b * plan.mask.strides[0] + kept_at(b, i) * plan.mask.strides[1]] = 1;
        }
    }
}

}  // namespace tk::cpu
