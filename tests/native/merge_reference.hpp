// Reference bipartite token merging (SPEC section 2, header section 2), written for clarity from the
// contract rather than from the library's code: float64 matching with plain loops and sorts, then
// the merge in float64 (the high-precision reference) and in float32 (the same-precision one).
#pragma once

#include <cstdint>
#include <vector>

#include "tokenkernels/tokenkernels.h"

namespace tkt {

// Inputs read out of the tensors (so already rounded to their dtypes), row-major.
struct MergeInputs {
    int64_t batch = 0;
    int64_t tokens = 0;           // N
    int64_t metric_channels = 0;  // Cm
    int64_t channels = 0;         // C
    std::vector<double> metric;   // [B, N, Cm]
    std::vector<double> x;        // [B, N, C]
    std::vector<double> size;     // [B, N], empty when absent (all ones)
};

// ToMe's clamp from the contract: r <= (N - protected) / 2, 0 without a candidate destination.
int64_t reference_effective_r(const tk_merge_params& params, int64_t tokens);
// Rows of tk_merge's outputs: N - effective r (fixed) or N (threshold).
int64_t reference_output_tokens(const tk_merge_params& params, int64_t tokens);

// Matching: for source s (token 2s) of item b, dst[b * S + s] is the position of its best candidate
// destination (-1 when protected, destination-less, or NaN) and best its cosine score (-inf when
// protected or destination-less, NaN when its metric holds NaN). Destinations whose metric holds NaN
// are no candidates. second is the runner-up score
// (-inf when there is none), for tests that avoid near-ties.
struct MatchResult {
    int64_t sources = 0;
    std::vector<int64_t> dst;
    std::vector<double> best;
    std::vector<double> second;
};
MatchResult reference_match(const tk_merge_params& params, const MergeInputs& in);

// Source order of the ranking: best descending, NaN after -inf, ties to the lower position.
std::vector<int64_t> reference_ranking(const double* best, int64_t sources);

struct MergeResult {
    int64_t output_tokens = 0;                 // N'
    bool determined = true;                    // false if a merged source has no defined destination
    std::vector<int32_t> merge_count;          // [B]
    std::vector<int32_t> source_map;           // [B, N]
    std::vector<double> out;                   // [B, N', C] in float64
    std::vector<float> out32;                  // [B, N', C] in float32 as the contract prescribes, not
                                               // rounded to a dtype
    std::vector<double> out_size;              // [B, N']
    std::vector<std::vector<int64_t>> merged;  // per item: positions of the merged sources, ascending
};
// The merge given a match (reference_match's, or another backend's converted to doubles).
MergeResult reference_merge(const tk_merge_params& params, const MergeInputs& in, const MatchResult& match);

}  // namespace tkt
