// Reference temporal redundancy (SPEC section 5), written for clarity from the SPEC and from vLLM's
// compute_retention_mask rather than from the library's code: float64, one token at a time.
#pragma once

#include <cstdint>
#include <vector>

#include "support.hpp"

namespace tkt {

// The [B, T, P, C] descriptor of a [B, T, H, W, C] view whose rows of one frame follow one another
// (HostTensor layouts without pad_w): P = H * W.
tk_tensor video_desc(tk_tensor five);

// cos(x[b, t, p], x[b, r(t), p]) in row-major [B, T, P] order, r(t) = t - 1 when reference is empty,
// else reference[t]; -inf where a frame has no reference.
std::vector<double> reference_temporal_similarity(const HostTensor& x, const std::vector<int32_t>& reference);

// EVS on one video: the scores (+inf for frame 0, else 1 - cos to the previous frame), the retained
// count and, per item, the kept flat positions t * P + p in increasing order.
struct EvsReference {
    int64_t retained;
    std::vector<std::vector<double>> scores;     // [B][T * P]
    std::vector<std::vector<int64_t>> kept;      // [B][K]
};
EvsReference reference_evs(const HostTensor& x, double pruning_rate);

}  // namespace tkt
