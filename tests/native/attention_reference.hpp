// Reference attention-based pruning (SPEC section 3, header section 3), written for clarity from the
// contract rather than from the library's code: dense float64 softmax and plain loops and sorts.
// Inputs are the values read out of the tensors (already rounded to their dtypes), row-major.
#pragma once

#include <cstdint>
#include <vector>

#include "tokenkernels/tokenkernels.h"

namespace tkt {

// ---- Importance -------------------------------------------------------------------------------------

// Sizes of an attention or Q/K problem. Hk is H for the attention matrix.
struct AttentionShape {
    int64_t batch = 1;
    int64_t heads = 1;      // H
    int64_t key_heads = 1;  // Hk
    int64_t queries = 1;    // Nq
    int64_t keys = 1;       // Nk
    int64_t head_dim = 1;   // d
};

// The divisor the contract applies: H for a head mean times the query count for a query mean.
double reference_importance_divisor(const tk_importance_params& params, int64_t heads);

// Importance [B, key_end - key_begin] of an attention matrix attn [B, H, Nq, Nk], in float64.
std::vector<double> reference_attention_importance(const tk_importance_params& params, const AttentionShape& shape,
                                                   const std::vector<double>& attn);

// The same in float32 in the contract's order (heads outer, queries inner, one accumulator per key,
// one division at the end): what tk_attention_importance must reproduce bit for bit.
std::vector<float> reference_attention_importance_f32(const tk_importance_params& params, const AttentionShape& shape,
                                                      const std::vector<double>& attn);

// Whether query i sees key j: always without causal, else j <= i + Nk - Nq.
bool reference_visible(bool causal, int64_t queries, int64_t keys, int64_t i, int64_t j);

// Natural-log log-sum-exp [B, H, Nq] of scale * q k^T over the keys each row sees (-inf for a row
// that sees none), q [B, H, Nq, d] and k [B, Hk, Nk, d], query head h reading key head h / (H / Hk).
std::vector<double> reference_row_lse(const AttentionShape& shape, const std::vector<double>& q, const std::vector<double>& k,
                                      double scale, bool causal);

// The attention probabilities P [B, H, Nq, Nk] (0 where a key is not visible; a row that sees no key
// is all 0).
std::vector<double> reference_probabilities(const AttentionShape& shape, const std::vector<double>& q,
                                            const std::vector<double>& k, double scale, bool causal);

// ---- Top-k, gather --------------------------------------------------------------------------------

struct TopkResult {
    std::vector<int32_t> indices;  // [B, k]: kept positions ascending, then -1
    std::vector<int32_t> ranked;   // [B, k]: the same by rank, then -1
};

// scores [B, N] (NaN allowed); lengths and item_k are per item, or empty when absent.
TopkResult reference_topk(int64_t batch, int64_t tokens, int64_t k, const std::vector<double>& scores,
                          const std::vector<int64_t>& lengths, const std::vector<int64_t>& item_k);

// out [B, k, C]: row i is x row indices[b, i], or zeros for -1. x [B, N, C].
std::vector<double> reference_gather(int64_t batch, int64_t tokens, int64_t channels, const std::vector<double>& x,
                                     int64_t k, const std::vector<int64_t>& indices);

// ---- VisionZip contextual tokens ------------------------------------------------------------------

struct ContextualResult {
    std::vector<std::vector<int64_t>> targets;      // per item: the m target positions
    std::vector<std::vector<int64_t>> assignment;   // per item: [N] target slot of each assigned token, -1 otherwise
    std::vector<double> out;                         // [B, m, C]
    // The smallest gap, over assigned tokens, between the best and the runner-up similarity (inf when
    // no token had two targets to choose from): tests redraw inputs until it is comfortable.
    double margin = 0.0;
};

ContextualResult reference_contextual(int64_t batch, int64_t tokens, int64_t metric_channels, int64_t channels,
                                      const std::vector<double>& metric, const std::vector<double>& x, int64_t kept_count,
                                      const std::vector<int64_t>& kept, int64_t contextual);

}  // namespace tkt
