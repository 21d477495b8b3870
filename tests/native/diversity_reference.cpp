#include "diversity_reference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "support.hpp"

namespace tkt {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

// The contract's ranking: a number above NaN, the larger number above the smaller, the lower index on
// ties.
bool ranks_above(double a, int64_t index_a, double b, int64_t index_b) {
    if (std::isnan(a) != std::isnan(b)) return std::isnan(b);
    if (!std::isnan(a) && a != b) return a > b;
    return index_a < index_b;
}

// The best of candidates by the ranking, and its gap to the best number strictly below it.
struct Choice {
    int64_t index = -1;
    double gap = kInf;
};

Choice choose(const std::vector<double>& score, const std::vector<int64_t>& candidates) {
    Choice c;
    for (int64_t i : candidates)
        if (c.index < 0 || ranks_above(score[static_cast<size_t>(i)], i, score[static_cast<size_t>(c.index)], c.index)) c.index = i;
    const double best = score[static_cast<size_t>(c.index)];
    if (std::isnan(best)) return c;
    for (int64_t i : candidates) {
        const double s = score[static_cast<size_t>(i)];
        if (!std::isnan(s) && s < best) c.gap = std::min(c.gap, best - s);
    }
    return c;
}

}  // namespace

double reference_distance(tk_distance distance, const double* a, const double* b, int64_t channels) {
    if (distance == TK_DISTANCE_L2) {
        double sum = 0.0;
        for (int64_t c = 0; c < channels; ++c) sum += (a[c] - b[c]) * (a[c] - b[c]);
        return sum;
    }
    double aa = 0.0, bb = 0.0, ab = 0.0;
    for (int64_t c = 0; c < channels; ++c) {
        aa += a[c] * a[c];
        bb += b[c] * b[c];
        ab += a[c] * b[c];
    }
    return 1.0 - ab / (cosine_norm(aa) * cosine_norm(bb));
}

DiversityResult reference_diversity(const tk_diversity_params& params, const DiversityInputs& in) {
    const int64_t n = in.tokens, channels = in.channels, k = params.k;
    DiversityResult result;
    result.order.assign(static_cast<size_t>(in.batch * k), -1);
    result.sorted.assign(static_cast<size_t>(in.batch * k), -1);
    result.margin = kInf;
    for (int64_t b = 0; b < in.batch; ++b) {
        const int64_t length = in.lengths.empty() ? n : in.lengths[static_cast<size_t>(b)];
        const int64_t count = std::min(in.item_k.empty() ? k : in.item_k[static_cast<size_t>(b)], length);
        if (count == 0) continue;
        const double* x = in.x.data() + b * n * channels;
        std::vector<double> d(static_cast<size_t>(length * length));
        for (int64_t i = 0; i < length; ++i)
            for (int64_t j = 0; j < length; ++j)
                d[static_cast<size_t>(i * length + j)] = reference_distance(params.distance, x + i * channels, x + j * channels, channels);
        auto dist = [&](int64_t i, int64_t j) { return d[static_cast<size_t>(i * length + j)]; };

        std::vector<int64_t> all(static_cast<size_t>(length));
        for (int64_t i = 0; i < length; ++i) all[static_cast<size_t>(i)] = i;
        int64_t first = 0;
        if (params.first == TK_FIRST_INDEX) {
            first = in.first_index[static_cast<size_t>(b)];
        } else {
            std::vector<double> score(static_cast<size_t>(length));
            for (int64_t i = 0; i < length; ++i) {
                if (params.first == TK_FIRST_SCORE) {
                    score[static_cast<size_t>(i)] = in.first_score[static_cast<size_t>(b * n + i)];
                    continue;
                }
                // The nearest other token; a NaN distance is nobody's nearest.
                double nearest = kNan;
                for (int64_t j = 0; j < length; ++j)
                    if (j != i && !std::isnan(dist(i, j)) && (std::isnan(nearest) || dist(i, j) < nearest)) nearest = dist(i, j);
                score[static_cast<size_t>(i)] = nearest;
            }
            if (length > 1 || params.first == TK_FIRST_SCORE) {
                const Choice c = choose(score, all);
                first = c.index;
                result.margin = std::min(result.margin, c.gap);
            }
        }

        std::vector<int64_t> chosen = {first};
        for (int64_t step = 1; step < count; ++step) {
            std::vector<double> score(static_cast<size_t>(length), kNan);
            std::vector<int64_t> candidates;
            for (int64_t j = 0; j < length; ++j) {
                if (std::find(chosen.begin(), chosen.end(), j) != chosen.end()) continue;
                candidates.push_back(j);
                double s = params.objective == TK_DIVERSITY_MAX_SUM ? 0.0 : kNan;
                for (int64_t c : chosen) {
                    const double v = dist(j, c);
                    if (params.objective == TK_DIVERSITY_MAX_SUM) {
                        s += v;
                    } else if (!std::isnan(v) && (std::isnan(s) || v < s)) {
                        s = v;
                    }
                }
                score[static_cast<size_t>(j)] = s;
            }
            const Choice c = choose(score, candidates);
            chosen.push_back(c.index);
            result.margin = std::min(result.margin, c.gap);
        }
        std::vector<int64_t> ascending = chosen;
        std::sort(ascending.begin(), ascending.end());
        for (int64_t i = 0; i < count; ++i) {
            result.order[static_cast<size_t>(b * k + i)] = static_cast<int32_t>(chosen[static_cast<size_t>(i)]);
            result.sorted[static_cast<size_t>(b * k + i)] = static_cast<int32_t>(ascending[static_cast<size_t>(i)]);
        }
    }
    return result;
}

std::vector<int64_t> reference_divprune(const std::vector<double>& features, int64_t tokens, int64_t channels, int64_t k) {
    std::vector<double> unit(features.size());
    for (int64_t i = 0; i < tokens; ++i) {
        double norm = 0.0;
        for (int64_t c = 0; c < channels; ++c) norm += features[static_cast<size_t>(i * channels + c)] * features[static_cast<size_t>(i * channels + c)];
        norm = std::sqrt(norm);
        for (int64_t c = 0; c < channels; ++c)
            unit[static_cast<size_t>(i * channels + c)] = features[static_cast<size_t>(i * channels + c)] / norm;
    }
    std::vector<double> m(static_cast<size_t>(tokens * tokens));
    for (int64_t i = 0; i < tokens; ++i)
        for (int64_t j = 0; j < tokens; ++j) {
            double dot = 0.0;
            for (int64_t c = 0; c < channels; ++c) dot += unit[static_cast<size_t>(i * channels + c)] * unit[static_cast<size_t>(j * channels + c)];
            m[static_cast<size_t>(i * tokens + j)] = 1.0 - dot;
        }
    auto argmax = [&](const std::vector<double>& scores) {
        int64_t best = 0;
        for (int64_t j = 1; j < tokens; ++j)
            if (scores[static_cast<size_t>(j)] > scores[static_cast<size_t>(best)]) best = j;
        return best;
    };
    std::vector<int64_t> s;
    std::vector<double> scores(static_cast<size_t>(tokens));
    for (int64_t i = 0; i < k; ++i) {
        for (int64_t j = 0; j < tokens; ++j) {
            std::vector<double> column;
            if (i == 0) {
                for (int64_t r = 0; r < tokens; ++r) column.push_back(m[static_cast<size_t>(r * tokens + j)]);
                std::sort(column.begin(), column.end());  // topk(2, largest=False): the two smallest
                scores[static_cast<size_t>(j)] = column[1];
            } else {
                double smallest = kInf;
                for (int64_t r : s) smallest = std::min(smallest, m[static_cast<size_t>(r * tokens + j)]);
                scores[static_cast<size_t>(j)] = smallest;
            }
        }
        s.push_back(argmax(scores));
    }
    return s;
}

}  // namespace tkt
