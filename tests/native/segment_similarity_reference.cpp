#include "segment_similarity_reference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tkt {

std::vector<double> reference_segment_similarity(const HostArray& x, const std::vector<int32_t>& lengths) {
    const int64_t positions = x.shape()[1], channels = x.shape()[2];
    std::vector<double> out;
    int64_t first = 0;
    for (const int32_t window : lengths) {
        for (int64_t p = 0; p < positions; ++p) {
            if (window < 2) {
                out.push_back(std::numeric_limits<double>::quiet_NaN());
                continue;
            }
            // PruneVid: F.normalize each row, then (sum over all ordered pairs of n_w.n_t minus the W
            // self-terms) / (W (W - 1)); here the self-terms are left out rather than taken as 1.
            double pair_sum = 0.0;
            for (int64_t w = 0; w < window; ++w)
                for (int64_t t = 0; t < window; ++t) {
                    if (w == t) continue;
                    double dot = 0.0, uu = 0.0, vv = 0.0;
                    for (int64_t c = 0; c < channels; ++c) {
                        const double u = x.get(first + w, p, c), v = x.get(first + t, p, c);
                        dot += u * v;
                        uu += u * u;
                        vv += v * v;
                    }
                    pair_sum += dot / (std::max(std::sqrt(uu), 1e-12) * std::max(std::sqrt(vv), 1e-12));
                }
            out.push_back(pair_sum / (static_cast<double>(window) * (window - 1)));
        }
        first += window;
    }
    return out;
}

}  // namespace tkt
