// Diversity selection (SPEC section 4): the validated plan handed to a backend. The header's comment
// on tk_diversity_params and tk_diversity_select is the contract.
#pragma once

#include <cstdint>

#include "ops/strided_tensor.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tk {

struct DiversityPlan {
    int64_t batch;
    int64_t tokens;            // N
    int64_t channels;          // C
    int64_t k;
    tk_distance distance;
    tk_first_center first;
    tk_diversity_objective objective;
    int32_t device_ordinal;
    StridedTensor x;            // [B, N, C]
    StridedTensor lengths;      // [B] i32, data NULL when absent
    StridedTensor item_k;       // [B] i32, data NULL when absent
    StridedTensor first_index;  // [B] i32 (TK_FIRST_INDEX)
    StridedTensor first_score;  // [B, N] float (TK_FIRST_SCORE)
    StridedTensor order;        // [B, k] i32
    StridedTensor sorted;       // [B, k] i32, data NULL when absent
};

namespace cpu {
// One item's packed copies (the tokens, the first center's GEMM panels, the chosen rows) and, for the
// most isolated first center, a tile of scores for each of `threads` scanning threads. Given a
// workspace of this size the op allocates nothing large and runs the items one after another.
uint64_t diversity_workspace_bytes(const DiversityPlan& plan, int64_t threads);
// workspace: NULL, or at least diversity_workspace_bytes(plan, 1) bytes (checked at the ABI); the
// first center's scan then runs on as many threads as the workspace has buffers for.
void diversity_select(const DiversityPlan& plan, void* workspace, uint64_t workspace_bytes);
}  // namespace cpu

namespace cuda {
// Scratch on the device for this plan; the op allocates it stream-ordered when given NULL.
uint64_t diversity_workspace_bytes(const DiversityPlan& plan);
void diversity_select(const DiversityPlan& plan, void* workspace, void* stream);
}  // namespace cuda

}  // namespace tk
