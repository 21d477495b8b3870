// The score ordering shared by the CUDA merge kernels.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/dtype.cuh"
#include "tokenkernels/tokenkernels.h"

namespace tk::cuda::merge_detail {

// Unsigned key ordered as the contract ranks scores: NaN (1) below -inf (0x007fffff) below every
// other float; -0 and +0 are one value. 0 is left for the protected source, below NaN.
__device__ __forceinline__ uint32_t order_key(float score) {
    if (score != score) return 1u;
    const uint32_t bits = __float_as_uint(score == 0.0f ? 0.0f : score);
    return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

// Selection key of source s: its score key above, the complement of s below, so that keys are
// distinct and a higher key means a higher score, ties to the lower position. A protected source
// gets score key 0: it ranks below every other source, NaN included, and never merges while another
// source can.
__device__ __forceinline__ uint64_t selection_key(float best, int64_t source, int32_t protect_first) {
    const uint32_t score_key = protect_first && source == 0 ? 0u : order_key(best);
    return (static_cast<uint64_t>(score_key) << 32) | (0xffffffffu - static_cast<uint32_t>(source));
}

// The cosine of two rows from their raw dot product and inverse norms (1 / max(|x|, eps), NaN for
// a row holding NaN or Inf). A finite row whose float32 squared norm overflows has inverse norm 0:
// the CPU backend normalises it to the zero vector, whose cosine with any row is 0, so that is the
// answer here too, whatever the dot (which may itself overflow, and Inf * 0 is NaN).
__device__ __forceinline__ float cosine_of(float dot, float inverse_norm_a, float inverse_norm_b) {
    if (inverse_norm_a == 0.0f || inverse_norm_b == 0.0f) return 0.0f;
    return dot * inverse_norm_a * inverse_norm_b;
}

}  // namespace tk::cuda::merge_detail
