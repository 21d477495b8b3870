// Query relevance and conditional DPP selection (SPEC section 7, CDPruner): the validated plans handed
// to a backend, and the float32 arithmetic both backends share. The header's comments on
// tk_query_relevance and tk_conditional_dpp_select are the contract.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/host_device.hpp"
#include "ops/strided_tensor.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tk {

// CDPruner's min-max shift: r = ((s - min) + kRelevanceShift) / (max - min).
constexpr float kRelevanceShift = 1e-6f;

struct RelevancePlan {
    int64_t batch;
    int64_t tokens;       // N
    int64_t text_tokens;  // T
    int64_t channels;     // C
    bool negate;
    StridedTensor visual;        // [B, N, C]
    StridedTensor text;          // [B, T, C]
    StridedTensor lengths;       // [B] i32, data NULL when absent
    StridedTensor text_lengths;  // [B] i32, data NULL when absent
    StridedTensor relevance;     // [B, N] f32
};

struct DppPlan {
    int64_t batch;
    int64_t tokens;    // N
    int64_t channels;  // C
    int64_t k;
    tk_dpp_weighting weighting;
    float alpha;              // TK_DPP_WEIGHT_EXP: theta / (2 (1 - theta))
    StridedTensor x;          // [B, N, C]
    StridedTensor relevance;  // [B, N] f32, data NULL when absent (w = 1)
    StridedTensor lengths;    // [B] i32, data NULL when absent
    StridedTensor item_k;     // [B] i32, data NULL when absent
    StridedTensor order;      // [B, k] i32
    StridedTensor sorted;     // [B, k] i32, data NULL when absent
};

// The min-max normalisation of one score, given the item's min and max (NaN-free unless all are NaN).
TK_HOST_DEVICE float min_max_relevance(float score, float lo, float hi) {
    const float range = hi - lo;
    if (!(range > 0.0f)) return 1.0f;
    return ((score - lo) + kRelevanceShift) / range;
}

namespace cpu {
void query_relevance(const RelevancePlan& plan);
// One item's scratch: its packed unit rows, the Cholesky rows c_0 .. c_{k-2} and the residuals.
uint64_t conditional_dpp_workspace_bytes(const DppPlan& plan);
// workspace: NULL (allocated here) or at least conditional_dpp_workspace_bytes(plan) bytes.
void conditional_dpp_select(const DppPlan& plan, void* workspace);
}  // namespace cpu

namespace cuda {
void query_relevance(const RelevancePlan& plan, int32_t device_ordinal, void* stream);
uint64_t conditional_dpp_workspace_bytes(const DppPlan& plan);
// workspace: NULL (allocated stream-ordered) or at least conditional_dpp_workspace_bytes(plan) bytes.
void conditional_dpp_select(const DppPlan& plan, int32_t device_ordinal, void* workspace, void* stream);
}  // namespace cuda

}  // namespace tk
