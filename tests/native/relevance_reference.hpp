// Float64 reference of query relevance and conditional DPP selection (SPEC section 7, CDPruner),
// written for clarity from the SPEC: whole matrices, no packing, no threads.
#pragma once

#include <cstdint>
#include <vector>

namespace tkt {

struct RelevanceInputs {
    int64_t batch = 0, tokens = 0, text_tokens = 0, channels = 0;
    bool negate = false;
    std::vector<double> visual;        // [B, N, C] row-major
    std::vector<double> text;          // [B, T, C]
    std::vector<int64_t> lengths;      // [B] or empty
    std::vector<int64_t> text_lengths; // [B] or empty
};

// relevance [B, N].
std::vector<double> reference_relevance(const RelevanceInputs& in);

struct DppInputs {
    int64_t batch = 0, tokens = 0, channels = 0, k = 0;
    bool exp_weighting = false;
    double theta = 0.0;
    std::vector<double> x;           // [B, N, C]
    std::vector<double> relevance;   // [B, N] or empty (w = 1)
    std::vector<int64_t> lengths;    // [B] or empty
    std::vector<int64_t> item_k;     // [B] or empty
};

struct DppResult {
    std::vector<std::vector<int64_t>> order;  // per item, the tokens in the order chosen
    // The smallest gap, over all steps, between the chosen residual and the best other, relative to
    // the largest initial residual: how far the choice is from a tie.
    double margin = 1e300;
};

DppResult reference_dpp(const DppInputs& in);

}  // namespace tkt
