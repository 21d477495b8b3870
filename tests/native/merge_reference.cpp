#include "merge_reference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "support.hpp"

namespace tkt {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

double metric_at(const MergeInputs& in, int64_t b, int64_t i, int64_t c) {
    return in.metric[static_cast<size_t>((b * in.tokens + i) * in.metric_channels + c)];
}

double x_at(const MergeInputs& in, int64_t b, int64_t i, int64_t c) {
    return in.x[static_cast<size_t>((b * in.tokens + i) * in.channels + c)];
}

double size_at(const MergeInputs& in, int64_t b, int64_t i) {
    return in.size.empty() ? 1.0 : in.size[static_cast<size_t>(b * in.tokens + i)];
}

// What one destination becomes from itself and its merged sources (in increasing position), in the
// arithmetic of Real. For Real = float this is the contract's exact recipe: the destination's own
// term first, then each source, each product rounded before it is added (this file is compiled with
// -ffp-contract=off, so no fused multiply-add), true division.
template <class Real>
Real combine(tk_merge_mode mode, Real xd, double sd, const std::vector<Real>& xs, const std::vector<double>& ss) {
    if (xs.empty()) return xd;  // nothing merged in: the token is copied
    switch (mode) {
        case TK_MERGE_WEIGHTED_MEAN: {
            Real numerator = static_cast<Real>(sd) * xd;
            Real denominator = static_cast<Real>(sd);
            for (size_t k = 0; k < xs.size(); ++k) {
                numerator += static_cast<Real>(ss[k]) * xs[k];
                denominator += static_cast<Real>(ss[k]);
            }
            return numerator / denominator;
        }
        case TK_MERGE_MEAN: {
            Real sum = xd;
            for (Real v : xs) sum += v;
            return sum / static_cast<Real>(1 + xs.size());
        }
        case TK_MERGE_SUM: {
            Real sum = xd;
            for (Real v : xs) sum += v;
            return sum;
        }
        case TK_MERGE_AMAX: {
            Real m = xd;
            for (Real v : xs)
                m = (std::isnan(m) || std::isnan(v)) ? std::numeric_limits<Real>::quiet_NaN() : std::max(m, v);
            return m;
        }
        default:  // TK_MERGE_DROP
            return xd;
    }
}

}  // namespace

int64_t reference_effective_r(const tk_merge_params& p, int64_t tokens) {
    const int64_t protected_tokens = p.protect_first + p.protect_second;
    // Candidate destinations: odd positions, less token 1 when it is protected.
    const int64_t candidates = tokens / 2 - p.protect_second;
    if (candidates <= 0 || tokens <= protected_tokens) return 0;
    return std::min<int64_t>(p.r, (tokens - protected_tokens) / 2);
}

int64_t reference_output_tokens(const tk_merge_params& p, int64_t tokens) {
    return p.use_threshold ? tokens : tokens - reference_effective_r(p, tokens);
}

MatchResult reference_match(const tk_merge_params& p, const MergeInputs& in) {
    const int64_t N = in.tokens;
    const int64_t S = (N + 1) / 2;
    const int64_t D = N / 2;
    MatchResult m;
    m.sources = S;
    m.dst.assign(static_cast<size_t>(in.batch * S), -1);
    m.best.assign(static_cast<size_t>(in.batch * S), -kInf);
    m.second.assign(static_cast<size_t>(in.batch * S), -kInf);
    std::vector<double> unit(static_cast<size_t>(N * in.metric_channels));
    for (int64_t b = 0; b < in.batch; ++b) {
        for (int64_t i = 0; i < N; ++i) {
            double norm2 = 0;
            for (int64_t c = 0; c < in.metric_channels; ++c) norm2 += metric_at(in, b, i, c) * metric_at(in, b, i, c);
            const double divisor = cosine_norm(norm2);
            for (int64_t c = 0; c < in.metric_channels; ++c)
                unit[static_cast<size_t>(i * in.metric_channels + c)] = metric_at(in, b, i, c) / divisor;
        }
        std::vector<bool> has_nan(static_cast<size_t>(N), false);
        for (int64_t i = 0; i < N; ++i)
            for (int64_t c = 0; c < in.metric_channels; ++c)
                if (std::isnan(metric_at(in, b, i, c))) has_nan[static_cast<size_t>(i)] = true;
        for (int64_t s = 0; s < S; ++s) {
            const size_t at = static_cast<size_t>(b * S + s);
            if (p.protect_first && s == 0) continue;  // never a source: -inf
            if (has_nan[static_cast<size_t>(2 * s)]) {
                m.best[at] = std::numeric_limits<double>::quiet_NaN();  // every score is NaN
                continue;
            }
            for (int64_t d = 0; d < D; ++d) {
                if (p.protect_second && d == 0) continue;               // token 1 takes nothing
                if (has_nan[static_cast<size_t>(2 * d + 1)]) continue;  // a NaN destination is never chosen
                double score = 0;
                for (int64_t c = 0; c < in.metric_channels; ++c)
                    score += unit[static_cast<size_t>(2 * s * in.metric_channels + c)] *
                             unit[static_cast<size_t>((2 * d + 1) * in.metric_channels + c)];
                if (m.dst[at] < 0 || score > m.best[at]) {  // strict: ties keep the lower destination
                    if (m.dst[at] >= 0) m.second[at] = m.best[at];
                    m.best[at] = score;
                    m.dst[at] = 2 * d + 1;
                } else if (score > m.second[at]) {
                    m.second[at] = score;
                }
            }
        }
    }
    return m;
}

std::vector<int64_t> reference_ranking(const double* best, int64_t sources) {
    std::vector<int64_t> order(static_cast<size_t>(sources));
    for (int64_t s = 0; s < sources; ++s) order[static_cast<size_t>(s)] = s;
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        const double x = best[a];
        const double y = best[b];
        if (std::isnan(y)) return !std::isnan(x);  // NaN ranks below everything, -inf included
        if (std::isnan(x)) return false;
        return x > y;
    });
    return order;
}

MergeResult reference_merge(const tk_merge_params& p, const MergeInputs& in, const MatchResult& match) {
    const int64_t N = in.tokens;
    const int64_t C = in.channels;
    const int64_t S = (N + 1) / 2;
    const int64_t D = N / 2;
    const int64_t r = reference_effective_r(p, N);
    MergeResult res;
    res.output_tokens = reference_output_tokens(p, N);
    const int64_t rows = res.output_tokens;
    res.merge_count.assign(static_cast<size_t>(in.batch), 0);
    res.source_map.assign(static_cast<size_t>(in.batch * N), -1);
    res.out.assign(static_cast<size_t>(in.batch * rows * C), 0.0);
    res.out32.assign(static_cast<size_t>(in.batch * rows * C), 0.0f);
    res.out_size.assign(static_cast<size_t>(in.batch * rows), 0.0);
    res.merged.resize(static_cast<size_t>(in.batch));

    for (int64_t b = 0; b < in.batch; ++b) {
        const double* best = match.best.data() + b * S;
        const int64_t* dst = match.dst.data() + b * S;
        std::vector<int64_t> ranking = reference_ranking(best, S);
        // A protected token 0 never becomes a source, so it never merges, not even when NaN sources
        // (which rank below its -inf) would leave it among the r best.
        if (p.protect_first && S > 0) {
            ranking.erase(std::find(ranking.begin(), ranking.end(), int64_t{0}));
            ranking.push_back(0);
        }
        int64_t count = r;
        if (p.use_threshold) {
            count = 0;
            // The ranking is descending, so the sources above the threshold come first.
            while (count < r && best[ranking[static_cast<size_t>(count)]] > static_cast<double>(p.threshold)) ++count;
        }
        res.merge_count[static_cast<size_t>(b)] = static_cast<int32_t>(count);
        std::vector<bool> merged(static_cast<size_t>(S), false);
        for (int64_t k = 0; k < count; ++k) {
            const int64_t s = ranking[static_cast<size_t>(k)];
            merged[static_cast<size_t>(s)] = true;
            res.merged[static_cast<size_t>(b)].push_back(2 * s);
            if (dst[s] < 0) res.determined = false;
        }
        std::sort(res.merged[static_cast<size_t>(b)].begin(), res.merged[static_cast<size_t>(b)].end());

        // The surviving tokens in output order.
        std::vector<int64_t> survivors;
        // ToMe returns x untouched when its r is 0, so fixed mode with r = 0 keeps the original order.
        if (p.order == TK_MERGE_ORDER_POSITIONAL || (!p.use_threshold && r == 0)) {
            for (int64_t i = 0; i < N; ++i)
                if (i % 2 == 1 || !merged[static_cast<size_t>(i / 2)]) survivors.push_back(i);
        } else {
            std::vector<int64_t> unmerged;  // in ranking order
            for (int64_t k = count; k < S; ++k) unmerged.push_back(2 * ranking[static_cast<size_t>(k)]);
            if (p.protect_first) std::sort(unmerged.begin(), unmerged.end());
            std::vector<int64_t> destinations;
            for (int64_t d = 0; d < D; ++d) destinations.push_back(2 * d + 1);
            if (p.protect_second) {
                // ToMe: cat([unm[:, :1], dst[:, :1], unm[:, 1:], dst[:, 1:]])
                if (!unmerged.empty()) survivors.push_back(unmerged[0]);
                if (!destinations.empty()) survivors.push_back(destinations[0]);
                for (size_t k = 1; k < unmerged.size(); ++k) survivors.push_back(unmerged[k]);
                for (size_t k = 1; k < destinations.size(); ++k) survivors.push_back(destinations[k]);
            } else {
                survivors = unmerged;
                survivors.insert(survivors.end(), destinations.begin(), destinations.end());
            }
        }

        std::vector<int64_t> row_of(static_cast<size_t>(N), -1);
        for (size_t k = 0; k < survivors.size(); ++k)
            row_of[static_cast<size_t>(survivors[k])] = static_cast<int64_t>(k);
        for (int64_t s = 0; s < S; ++s)
            if (merged[static_cast<size_t>(s)] && dst[s] >= 0)
                row_of[static_cast<size_t>(2 * s)] = row_of[static_cast<size_t>(dst[s])];
        for (int64_t i = 0; i < N; ++i)
            res.source_map[static_cast<size_t>(b * N + i)] = static_cast<int32_t>(row_of[static_cast<size_t>(i)]);

        std::vector<std::vector<int64_t>> merged_into(static_cast<size_t>(N));  // increasing position
        for (int64_t s = 0; s < S; ++s)
            if (merged[static_cast<size_t>(s)] && dst[s] >= 0)
                merged_into[static_cast<size_t>(dst[s])].push_back(2 * s);
        for (size_t k = 0; k < survivors.size(); ++k) {
            const int64_t t = survivors[k];
            const std::vector<int64_t>& sources = merged_into[static_cast<size_t>(t)];
            const size_t row = static_cast<size_t>(b * rows) + k;
            double size_sum = size_at(in, b, t);
            std::vector<double> ss;
            for (int64_t a : sources) ss.push_back(size_at(in, b, a));
            if (p.mode != TK_MERGE_DROP)
                for (double v : ss) size_sum += v;
            res.out_size[row] = size_sum;
            for (int64_t c = 0; c < C; ++c) {
                std::vector<double> xs;
                std::vector<float> xs32;
                for (int64_t a : sources) {
                    xs.push_back(x_at(in, b, a, c));
                    xs32.push_back(static_cast<float>(x_at(in, b, a, c)));
                }
                const double xd = x_at(in, b, t, c);
                res.out[row * static_cast<size_t>(C) + static_cast<size_t>(c)] =
                    combine<double>(p.mode, xd, size_at(in, b, t), xs, ss);
                res.out32[row * static_cast<size_t>(C) + static_cast<size_t>(c)] =
                    combine<float>(p.mode, static_cast<float>(xd), size_at(in, b, t), xs32, ss);
            }
        }
    }
    return res;
}

}  // namespace tkt
