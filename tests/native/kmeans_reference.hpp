// Reference batched k-means (SPEC section 6, "k-means"), written for clarity from the contract rather
// than from the library's code: float64 distances and means, the same counter-based random stream
// for k-means++ (re-derived here from the SPEC), and the margin of every decision, so that tests can
// redraw inputs on which float32 rounding could decide differently. Inputs are the values read out of
// the tensors (already rounded to their dtypes), row-major.
#pragma once

#include <cstdint>
#include <vector>

#include "tokenkernels/tokenkernels.h"

namespace tkt {

struct KMeansInputs {
    int64_t batch = 0;
    int64_t tokens = 0;                  // N
    int64_t channels = 0;                // C
    std::vector<double> x;               // [B, N, C]
    std::vector<int64_t> lengths;        // [B], empty when absent
    std::vector<int64_t> item_clusters;  // [B], empty when absent
    std::vector<double> initial_centres; // [B, K, C], TK_KMEANS_INIT_GIVEN
};

struct KMeansResult {
    std::vector<double> centres;      // [B, K, C]
    std::vector<int32_t> assignment;  // [B, N]
    std::vector<double> sizes;        // [B, K]
    std::vector<int32_t> iterations;  // [B]
    // The smallest relative gap of any decision (nearest centre against the next, a k-means++ draw
    // against the prefix sums around it, the best candidate's potential against the next, the centre
    // shift against the tolerance, the farthest points' distances): inf when nothing was compared.
    double margin = 0.0;
};

// The SPEC's draw `draw` of item `item`: (splitmix64(splitmix64(seed ^ splitmix64(item)) + draw) >> 11) * 2^-53.
double reference_kmeans_uniform(uint64_t seed, uint64_t item, uint64_t draw);

KMeansResult reference_kmeans(const tk_kmeans_params& params, const KMeansInputs& in);

}  // namespace tkt
