// Attention-based pruning (SPEC section 3): the validated plans handed to a backend. The header's
// comments on tk_importance_params, tk_qk_importance, tk_topk, tk_gather and
// tk_visionzip_contextual are the contract.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/strided_tensor.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tk {

// tk_attention_importance and tk_qk_importance.
struct ImportancePlan {
    int64_t batch;
    int64_t heads;            // H
    int64_t key_heads;        // Hk (tk_qk_importance; H for tk_attention_importance)
    int64_t queries;          // Nq
    int64_t keys;             // Nk
    int64_t head_dim;         // d (tk_qk_importance)
    int64_t query_begin, query_end;
    int64_t key_begin, key_end;
    float divisor;            // H (head mean) times query_end - query_begin (query mean), else 1
    float scale;
    int32_t causal;
    int32_t device_ordinal;
    StridedTensor attn;       // [B, H, Nq, Nk]
    StridedTensor q;          // [B, H, Nq, d]
    StridedTensor k;          // [B, Hk, Nk, d]
    StridedTensor lse;        // [B, H, Nq] f32, data NULL when absent
    StridedTensor out;        // [B, key_end - key_begin] f32
};

struct TopkPlan {
    int64_t batch;
    int64_t tokens;           // N
    int64_t k;
    int32_t device_ordinal;
    StridedTensor scores;     // [B, N]
    StridedTensor lengths;    // [B] i32, data NULL when absent
    StridedTensor item_k;     // [B] i32, data NULL when absent
    StridedTensor indices;    // [B, k] i32
    StridedTensor ranked;     // [B, k] i32, data NULL when absent
};

struct GatherPlan {
    int64_t batch;
    int64_t tokens;           // N
    int64_t k;
    int64_t channels;
    int32_t device_ordinal;
    StridedTensor x;          // [B, N, C]
    StridedTensor indices;    // [B, k] i32 or i64
    StridedTensor out;        // [B, k, C]
};

struct ContextualPlan {
    int64_t batch;
    int64_t tokens;           // N
    int64_t kept;             // K
    int64_t contextual;       // m
    int64_t metric_channels;  // Cm
    int64_t channels;         // C
    int32_t device_ordinal;
    StridedTensor metric;     // [B, N, Cm]
    StridedTensor x;          // [B, N, C]
    StridedTensor kept_indices;  // [B, K] i32 or i64
    StridedTensor out;        // [B, m, C]
};

namespace cpu {
void attention_importance(const ImportancePlan& plan);
void qk_importance(const ImportancePlan& plan);
void topk(const TopkPlan& plan);
void gather(const GatherPlan& plan);
void visionzip_contextual(const ContextualPlan& plan);

// Top-k's selection of one row, for ops that rank small groups inside their own tasks: the count best
// of score[0, length) under the contract's order (higher first, NaN last, ties to the lower position),
// in increasing position, into order[0, count) (order has length entries; keys is scratch); then,
// where wanted, those re-sorted best first.
void choose_best_in_position_order(const float* score, int64_t length, int64_t count, int32_t* order, std::vector<uint32_t>& keys);
void sort_best_by_rank(const float* score, int64_t count, int32_t* order);
}  // namespace cpu

namespace cuda {
void attention_importance(const ImportancePlan& plan, void* stream);
// Scratch on the device for this plan; the op allocates it stream-ordered when given NULL.
uint64_t qk_importance_workspace_bytes(const ImportancePlan& plan);
void qk_importance(const ImportancePlan& plan, void* workspace, void* stream);
uint64_t topk_workspace_bytes(const TopkPlan& plan);
void topk(const TopkPlan& plan, void* workspace, void* stream);
void gather(const GatherPlan& plan, void* stream);
uint64_t contextual_workspace_bytes(const ContextualPlan& plan);
void visionzip_contextual(const ContextualPlan& plan, void* workspace, void* stream);
}  // namespace cuda

}  // namespace tk
