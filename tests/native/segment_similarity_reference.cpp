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

namespace {

// sum over c of term(c) in 16 interleaved float32 lanes, then the lanes in order.
template <class Term>
float lanes(int64_t count, Term term) {
    float lane[16] = {};
    for (int64_t c = 0; c < count; ++c) lane[c % 16] += term(c);
    float sum = 0.0f;
    for (float l : lane) sum += l;
    return sum;
}

}  // namespace

std::vector<float> reference_segment_similarity_f32(const HostArray& x, const std::vector<int32_t>& lengths) {
    const int64_t positions = x.shape()[1], channels = x.shape()[2];
    std::vector<float> out;
    int64_t first = 0;
    for (const int32_t window : lengths) {
        for (int64_t p = 0; p < positions; ++p) {
            const auto value = [&](int64_t t, int64_t c) { return static_cast<float>(x.get(first + t, p, c)); };
            const auto norm = [&](int64_t t) {
                return std::max(std::sqrt(lanes(channels, [&](int64_t c) { return value(t, c) * value(t, c); })), 1e-12f);
            };
            float sum = 0.0f;
            for (int64_t w = 0; w < window; ++w)
                for (int64_t t = w + 1; t < window; ++t)
                    sum += lanes(channels, [&](int64_t c) { return value(w, c) * value(t, c); }) / (norm(w) * norm(t));
            out.push_back(window < 2 ? std::numeric_limits<float>::quiet_NaN() : sum / static_cast<float>(window * (window - 1) / 2));
        }
        first += window;
    }
    return out;
}

}  // namespace tkt
