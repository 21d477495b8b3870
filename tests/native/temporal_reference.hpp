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

// The same in the float32 arithmetic SPEC section 5 prescribes (16 interleaved lanes per sum, each
// operation rounded on its own), which both backends must match bit for bit.
std::vector<float> reference_temporal_similarity_f32(const HostTensor& x, const std::vector<int32_t>& reference);

// A video method's choice on every item: the retained count, the kept flat positions t * P + p in
// increasing order, and, for each token, its ranking value and the value at the edge of its group's
// kept set (the item for EVS, the frame for DyCoke), to tell a near-tie apart from an error.
struct SelectionReference {
    int64_t retained;
    std::vector<std::vector<int64_t>> kept;      // [B][K]
    std::vector<std::vector<double>> value;      // [B][T * P]
    std::vector<std::vector<double>> boundary;   // [B][T * P]
};

// EVS (vLLM's compute_retention_mask): value = 1 - cos to the previous frame (+inf in frame 0), the K
// highest of the video kept, K = max(P, int(T * P * (1 - q))), stable order.
SelectionReference reference_evs(const HostTensor& x, double pruning_rate);

// DyCoke's TTM: frame 4i whole; frames 4i + 1, 4i + 3 against the frame before, 4i + 2 against 4i; each
// compared frame keeps its int((1 - merging_ratio) * P) tokens of lowest cosine (value), stable order.
SelectionReference reference_dycoke(const HostTensor& x, double merging_ratio);

// FrameFusion's merging of one video: merged[t, p] when the float32 cosine (the contract's bits, from
// reference_temporal_similarity_f32) reaches the threshold, and with a cap (>= 0) only the cap highest
// (ties to the lower position); each run of merged tokens joins the token before it at its position.
struct FrameFusionReference {
    std::vector<int64_t> merge_count;          // [B]
    std::vector<std::vector<int64_t>> rows;    // [B][T * P]: each token's output row
    std::vector<std::vector<double>> out;      // [B][kept * C]: run means in float64
    std::vector<std::vector<double>> sizes;    // [B][kept]
};
FrameFusionReference reference_framefusion(const HostTensor& x, float threshold, int64_t max_merges);

}  // namespace tkt
