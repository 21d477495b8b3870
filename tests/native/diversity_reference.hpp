// Reference diversity selection (SPEC section 4, header section 4), written for clarity from the
// contract rather than from the library's code: per item the full float64 distance matrix, then the
// greedy loop recomputing every score from the matrix at each step. Inputs are the values read out
// of the tensors (already rounded to their dtypes), row-major.
#pragma once

#include <cstdint>
#include <vector>

#include "tokenkernels/tokenkernels.h"

namespace tkt {

struct DiversityInputs {
    int64_t batch = 0;
    int64_t tokens = 0;                // N
    int64_t channels = 0;              // C
    std::vector<double> x;             // [B, N, C]
    std::vector<int64_t> lengths;      // [B], empty when absent
    std::vector<int64_t> item_k;       // [B], empty when absent
    std::vector<int64_t> first_index;  // [B], TK_FIRST_INDEX
    std::vector<double> first_score;   // [B, N], TK_FIRST_SCORE
};

struct DiversityResult {
    std::vector<int32_t> order;   // [B, k]: the tokens in the order chosen, then -1
    std::vector<int32_t> sorted;  // [B, k]: the same ascending, then -1
    // The smallest gap, over every choice made by ranking (the first center by most_isolated or score,
    // then each greedy step), between the winning score and the best score below it (exact ties are
    // decided by the lower index on both sides): tests redraw inputs until it is comfortable. inf when
    // no choice compared two different numbers.
    double margin = 0.0;
};

// d(i, j) of the contract in float64: 1 - dot(u_i, u_j), u = x / max(|x|, 1e-12), or the squared
// Euclidean distance. NaN wherever a row holds NaN.
double reference_distance(tk_distance distance, const double* a, const double* b, int64_t channels);

DiversityResult reference_diversity(const tk_diversity_params& params, const DiversityInputs& in);

// DivPrune's published selection (its llava_arch.py), literally, in float64, on one image's features
// [N, C]: the matrix 1 - (x / |x|)(x / |x|)^T; the first token the argmax over columns of each
// column's second smallest entry (topk(2, largest=False)[1]); then, each step, the minimum over the
// rows of the tokens chosen so far, and its argmax (the first of equal maxima). Returns k tokens.
std::vector<int64_t> reference_divprune(const std::vector<double>& features, int64_t tokens, int64_t channels, int64_t k);

}  // namespace tkt
