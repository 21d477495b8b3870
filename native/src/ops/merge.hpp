// Bipartite token merging (SPEC section 2): the validated plan handed to a backend and the
// bookkeeping both backends share. The header's comment on tk_merge_params is the contract.
#pragma once

#include <cstdint>

#include "core/host_device.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tk {

// A [B, N, C] tensor with contiguous channels, or a [B, N] / [B] one (channels = 1). data is NULL
// for an optional tensor the caller did not pass. Strides are in elements.
struct TokenRows {
    void* data;
    tk_dtype dtype;
    int64_t batch_stride;
    int64_t token_stride;
};

// Filled once at the ABI boundary after validation. Token i of an item is a source when i is even
// (source s = i / 2) and a destination when i is odd (destination d = (i - 1) / 2).
struct MergePlan {
    int64_t batch;
    int64_t tokens;           // N
    int64_t metric_channels;  // Cm
    int64_t channels;         // C (0 for tk_merge_match)
    int64_t r;                // fixed mode: effective r; threshold mode: the cap
    int64_t output_tokens;    // N - r (fixed) or N (threshold)
    int32_t use_threshold;
    float threshold;
    int32_t protect_first;
    int32_t protect_second;
    tk_merge_mode mode;
    tk_merge_order order;
    int32_t device_ordinal;
    TokenRows metric;      // [B, N, Cm]
    TokenRows x;           // [B, N, C]            (tk_merge)
    TokenRows size;        // [B, N] f32, optional (tk_merge)
    TokenRows out;         // [B, N', C]           (tk_merge)
    TokenRows out_size;    // [B, N'] f32, optional
    TokenRows source_map;  // [B, N] i32, optional
    TokenRows merge_count; // [B] i32 (batch_stride only), optional in fixed mode
    TokenRows match_dst;   // [B, ceil(N/2)] i32   (tk_merge_match)
    TokenRows match_best;  // [B, ceil(N/2)] f32   (tk_merge_match)
};

struct UnmergePlan {
    int64_t batch;
    int64_t merged_tokens;  // N'
    int64_t tokens;         // N
    int64_t channels;
    int32_t device_ordinal;
    TokenRows y;           // [B, N', C]
    TokenRows source_map;  // [B, N] i32 or i64
    TokenRows out;         // [B, N, C]
};

TK_HOST_DEVICE int64_t merge_source_count(int64_t tokens) { return (tokens + 1) / 2; }
TK_HOST_DEVICE int64_t merge_destination_count(int64_t tokens) { return tokens / 2; }

// ToMe's clamp: r <= (N - protected) / 2, and no merge at all when no destination is a candidate
// (protect_second with a single destination).
inline int64_t merge_effective_r(int64_t requested, int64_t tokens, int32_t protect_first, int32_t protect_second) {
    const int64_t protected_tokens = protect_first + protect_second;
    const int64_t clamp = tokens > protected_tokens ? (tokens - protected_tokens) / 2 : 0;
    const int64_t candidates = merge_destination_count(tokens) - protect_second;
    if (candidates <= 0) return 0;
    return requested < clamp ? requested : clamp;
}

// Cosine normalisation clamp of the SPEC.
constexpr float kCosineEps = 1e-12f;

namespace cpu {
void merge_match(const MergePlan& plan);
void merge(const MergePlan& plan);
void unmerge(const UnmergePlan& plan);
}  // namespace cpu

namespace cuda {
// Scratch tk_merge_match / tk_merge need on the device for this plan.
uint64_t merge_workspace_bytes(const MergePlan& plan);
// Enqueue on stream (a cudaStream_t). workspace holds merge_workspace_bytes(plan) bytes, or is NULL,
// in which case the op allocates and frees it stream-ordered itself.
void merge_match(const MergePlan& plan, void* workspace, void* stream);
void merge(const MergePlan& plan, void* workspace, void* stream);
void unmerge(const UnmergePlan& plan, void* stream);
}  // namespace cuda

}  // namespace tk
