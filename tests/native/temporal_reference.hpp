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

// VidCom2 (SPEC section 5, "VidCom2"), step by step in float64: the C' = max(1, int(C * channel_ratio))
// lowest-variance channels (population variance, ties to the lower channel, NaN last), each token's
// normalised selection f, the frame and video centres, the score g(|f - c|^2) + g(|f - c_t|^2) with
// g(d) = sum over a = 2^-3 .. 2^1 of exp(-d / (2a)), the frame budgets from the softmax of -mean(v) at the
// temperature, apportioned exactly (every frame 1, then the K - T highest slot priorities ideal_t - j,
// ties to the lower frame). What a float32 implementation may decide otherwise on a near-tie is
// returned with the choice: the ideal counts and the gap between the last slot granted and the first
// refused, the scores, and the relative variance gap at the edge of the channel choice.
struct VidCom2Reference {
    int64_t retained;                                 // K = max(T, int(T * P * retention_ratio))
    int64_t scored_channels;                          // C'
    std::vector<std::vector<int64_t>> channels;       // [B][C']: the scored channels, increasing
    std::vector<double> channel_gap;                  // [B]: (v[C'] - v[C' - 1]) / v[C'] in variance order (+inf when C' = C)
    std::vector<std::vector<double>> ideal;           // [B][T]: scale_t * P
    std::vector<std::vector<int64_t>> frame_keeps;    // [B][T]: k_t, summing to K
    std::vector<double> budget_margin;                // [B]: the (K - T)-th highest slot priority minus the next (+inf if none)
    std::vector<std::vector<double>> score;           // [B][T * P]: v + w (lower is kept first)
};
VidCom2Reference reference_vidcom2(const HostTensor& x, double retention_ratio, double channel_ratio, double temperature);

// The tokens VidCom2 keeps with the frame counts frame_keeps [B][T] (the reference's or another
// implementation's): each frame's k_t lowest scores, ties to the lower position, NaN last; value is the
// score and boundary the score of the frame's last kept token.
SelectionReference vidcom2_selection(const VidCom2Reference& ref, int64_t positions,
                                     const std::vector<std::vector<int64_t>>& frame_keeps);

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
