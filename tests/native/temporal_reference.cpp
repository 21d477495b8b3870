#include "temporal_reference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace tkt {

tk_tensor video_desc(tk_tensor five) {
    tk_tensor four = five;
    four.rank = 4;
    four.shape[2] = five.shape[2] * five.shape[3];
    four.strides[2] = five.strides[3];
    four.shape[3] = five.shape[4];
    four.strides[3] = five.strides[4];
    return four;
}

namespace {

// torch.nn.functional.cosine_similarity: each norm clamped at 1e-8.
double cosine(const HostTensor& x, int64_t b, int64_t t, int64_t r, int64_t h, int64_t w) {
    double dot = 0.0, uu = 0.0, vv = 0.0;
    for (int64_t c = 0; c < x.shape()[4]; ++c) {
        const double u = x.get(b, t, h, w, c);
        const double v = x.get(b, r, h, w, c);
        dot += u * v;
        uu += u * u;
        vv += v * v;
    }
    return dot / (std::max(std::sqrt(uu), 1e-8) * std::max(std::sqrt(vv), 1e-8));
}

}  // namespace

std::vector<double> reference_temporal_similarity(const HostTensor& x, const std::vector<int32_t>& reference) {
    const auto& s = x.shape();
    std::vector<double> out;
    for (int64_t b = 0; b < s[0]; ++b)
        for (int64_t t = 0; t < s[1]; ++t) {
            const int64_t r = reference.empty() ? t - 1 : reference[static_cast<size_t>(t)];
            for (int64_t h = 0; h < s[2]; ++h)
                for (int64_t w = 0; w < s[3]; ++w)
                    out.push_back(r < 0 ? -std::numeric_limits<double>::infinity() : cosine(x, b, t, r, h, w));
        }
    return out;
}

EvsReference reference_evs(const HostTensor& x, double pruning_rate) {
    const auto& s = x.shape();
    const int64_t positions = s[2] * s[3];
    const int64_t tokens = s[1] * positions;
    EvsReference ref;
    // vLLM's compute_retained_tokens_count: max(tokens_per_frame, int(total_tokens * (1 - q))).
    ref.retained = std::max<int64_t>(positions, static_cast<int64_t>(static_cast<double>(tokens) * (1.0 - pruning_rate)));
    const std::vector<double> similarity = reference_temporal_similarity(x, {});
    for (int64_t b = 0; b < s[0]; ++b) {
        std::vector<double> score(static_cast<size_t>(tokens));
        for (int64_t i = 0; i < tokens; ++i) score[static_cast<size_t>(i)] = 1.0 - similarity[static_cast<size_t>(b * tokens + i)];
        // argsort(descending=True, stable=True), NaN after every number.
        std::vector<int64_t> order(static_cast<size_t>(tokens));
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) {
            const double a = score[static_cast<size_t>(i)], c = score[static_cast<size_t>(j)];
            if (std::isnan(a) || std::isnan(c)) return !std::isnan(a) && std::isnan(c);
            return a > c;
        });
        std::vector<int64_t> kept(order.begin(), order.begin() + ref.retained);
        std::sort(kept.begin(), kept.end());
        ref.scores.push_back(std::move(score));
        ref.kept.push_back(std::move(kept));
    }
    return ref;
}

}  // namespace tkt
