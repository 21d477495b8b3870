#include "attention_reference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "support.hpp"

namespace tkt {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

size_t at(int64_t i) { return static_cast<size_t>(i); }

}  // namespace

// ---- Importance -------------------------------------------------------------------------------------

double reference_importance_divisor(const tk_importance_params& params, int64_t heads) {
    double divisor = 1.0;
    if (params.head_reduce == TK_REDUCE_MEAN) divisor *= static_cast<double>(heads);
    if (params.query_reduce == TK_REDUCE_MEAN) divisor *= static_cast<double>(params.query_end - params.query_begin);
    return divisor;
}

std::vector<double> reference_attention_importance(const tk_importance_params& params, const AttentionShape& shape,
                                                   const std::vector<double>& attn) {
    const int64_t width = params.key_end - params.key_begin;
    const double divisor = reference_importance_divisor(params, shape.heads);
    std::vector<double> out(at(shape.batch * width), 0.0);
    for (int64_t b = 0; b < shape.batch; ++b)
        for (int64_t j = params.key_begin; j < params.key_end; ++j) {
            double sum = 0.0;
            for (int64_t h = 0; h < shape.heads; ++h)
                for (int64_t i = params.query_begin; i < params.query_end; ++i)
                    sum += attn[at(((b * shape.heads + h) * shape.queries + i) * shape.keys + j)];
            out[at(b * width + j - params.key_begin)] = sum / divisor;
        }
    return out;
}

std::vector<float> reference_attention_importance_f32(const tk_importance_params& params, const AttentionShape& shape,
                                                      const std::vector<double>& attn) {
    const int64_t width = params.key_end - params.key_begin;
    const auto divisor = static_cast<float>(reference_importance_divisor(params, shape.heads));
    std::vector<float> out(at(shape.batch * width), 0.0f);
    for (int64_t b = 0; b < shape.batch; ++b)
        for (int64_t j = params.key_begin; j < params.key_end; ++j) {
            float sum = 0.0f;
            for (int64_t h = 0; h < shape.heads; ++h)
                for (int64_t i = params.query_begin; i < params.query_end; ++i)
                    sum += static_cast<float>(attn[at(((b * shape.heads + h) * shape.queries + i) * shape.keys + j)]);
            out[at(b * width + j - params.key_begin)] = sum / divisor;
        }
    return out;
}

bool reference_visible(bool causal, int64_t queries, int64_t keys, int64_t i, int64_t j) {
    return !causal || j <= i + keys - queries;
}

namespace {

// scale * q_i . k_j for query head h of item b.
double scaled_dot(const AttentionShape& s, const std::vector<double>& q, const std::vector<double>& k, double scale,
                  int64_t b, int64_t h, int64_t i, int64_t j) {
    const int64_t key_head = h / (s.heads / s.key_heads);
    const double* qi = q.data() + ((b * s.heads + h) * s.queries + i) * s.head_dim;
    const double* kj = k.data() + ((b * s.key_heads + key_head) * s.keys + j) * s.head_dim;
    double dot = 0.0;
    for (int64_t c = 0; c < s.head_dim; ++c) dot += qi[c] * kj[c];
    return scale * dot;
}

}  // namespace

std::vector<double> reference_row_lse(const AttentionShape& s, const std::vector<double>& q, const std::vector<double>& k,
                                      double scale, bool causal) {
    std::vector<double> lse(at(s.batch * s.heads * s.queries), -kInf);
    for (int64_t b = 0; b < s.batch; ++b)
        for (int64_t h = 0; h < s.heads; ++h)
            for (int64_t i = 0; i < s.queries; ++i) {
                double row_max = -kInf;
                for (int64_t j = 0; j < s.keys; ++j)
                    if (reference_visible(causal, s.queries, s.keys, i, j))
                        row_max = std::max(row_max, scaled_dot(s, q, k, scale, b, h, i, j));
                if (row_max == -kInf) continue;
                double sum = 0.0;
                for (int64_t j = 0; j < s.keys; ++j)
                    if (reference_visible(causal, s.queries, s.keys, i, j)) sum += std::exp(scaled_dot(s, q, k, scale, b, h, i, j) - row_max);
                lse[at((b * s.heads + h) * s.queries + i)] = row_max + std::log(sum);
            }
    return lse;
}

std::vector<double> reference_probabilities(const AttentionShape& s, const std::vector<double>& q,
                                            const std::vector<double>& k, double scale, bool causal) {
    const std::vector<double> lse = reference_row_lse(s, q, k, scale, causal);
    std::vector<double> p(at(s.batch * s.heads * s.queries * s.keys), 0.0);
    for (int64_t b = 0; b < s.batch; ++b)
        for (int64_t h = 0; h < s.heads; ++h)
            for (int64_t i = 0; i < s.queries; ++i)
                for (int64_t j = 0; j < s.keys; ++j) {
                    if (!reference_visible(causal, s.queries, s.keys, i, j)) continue;
                    p[at(((b * s.heads + h) * s.queries + i) * s.keys + j)] =
                        std::exp(scaled_dot(s, q, k, scale, b, h, i, j) - lse[at((b * s.heads + h) * s.queries + i)]);
                }
    return p;
}

// ---- Top-k, gather --------------------------------------------------------------------------------

TopkResult reference_topk(int64_t batch, int64_t tokens, int64_t k, const std::vector<double>& scores,
                          const std::vector<int64_t>& lengths, const std::vector<int64_t>& item_k) {
    TopkResult result;
    result.indices.assign(at(batch * k), -1);
    result.ranked.assign(at(batch * k), -1);
    for (int64_t b = 0; b < batch; ++b) {
        const int64_t length = lengths.empty() ? tokens : lengths[at(b)];
        const int64_t count = std::min(item_k.empty() ? k : item_k[at(b)], length);
        std::vector<int64_t> order(at(length));
        std::iota(order.begin(), order.end(), int64_t{0});
        const double* row = scores.data() + b * tokens;
        // Stable: equal scores (and NaNs among themselves) keep increasing position.
        std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) {
            const bool nan_x = std::isnan(row[x]), nan_y = std::isnan(row[y]);
            if (nan_x || nan_y) return !nan_x && nan_y;
            return row[x] > row[y];
        });
        std::vector<int64_t> kept(order.begin(), order.begin() + count);
        for (int64_t r = 0; r < count; ++r) result.ranked[at(b * k + r)] = static_cast<int32_t>(kept[at(r)]);
        std::sort(kept.begin(), kept.end());
        for (int64_t r = 0; r < count; ++r) result.indices[at(b * k + r)] = static_cast<int32_t>(kept[at(r)]);
    }
    return result;
}

std::vector<double> reference_gather(int64_t batch, int64_t tokens, int64_t channels, const std::vector<double>& x,
                                     int64_t k, const std::vector<int64_t>& indices) {
    std::vector<double> out(at(batch * k * channels), 0.0);
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t i = 0; i < k; ++i) {
            const int64_t token = indices[at(b * k + i)];
            if (token < 0) continue;
            for (int64_t c = 0; c < channels; ++c) out[at((b * k + i) * channels + c)] = x[at((b * tokens + token) * channels + c)];
        }
    return out;
}

// ---- VisionZip contextual tokens ------------------------------------------------------------------

ContextualResult reference_contextual(int64_t batch, int64_t tokens, int64_t metric_channels, int64_t channels,
                                      const std::vector<double>& metric, const std::vector<double>& x, int64_t kept_count,
                                      const std::vector<int64_t>& kept, int64_t contextual) {
    ContextualResult result;
    result.margin = kInf;
    result.out.assign(at(batch * contextual * channels), 0.0);
    auto metric_row = [&](int64_t b, int64_t n) { return metric.data() + (b * tokens + n) * metric_channels; };
    auto x_row = [&](int64_t b, int64_t n) { return x.data() + (b * tokens + n) * channels; };
    auto norm = [&](const double* v) {
        double sum = 0.0;
        for (int64_t c = 0; c < metric_channels; ++c) sum += v[c] * v[c];
        return cosine_norm(sum);
    };
    for (int64_t b = 0; b < batch; ++b) {
        std::vector<bool> is_kept(at(tokens), false);
        for (int64_t i = 0; i < kept_count; ++i) is_kept[at(kept[at(b * kept_count + i)])] = true;
        std::vector<int64_t> remaining;
        for (int64_t n = 0; n < tokens; ++n)
            if (!is_kept[at(n)]) remaining.push_back(n);
        std::vector<int64_t> targets;
        std::vector<int64_t> assignment(at(tokens), -1);
        if (contextual > 0) {
            const int64_t step = std::max<int64_t>(1, static_cast<int64_t>(remaining.size()) / contextual);
            for (int64_t t = 0; t < contextual; ++t) targets.push_back(remaining[at(t * step)]);
            for (int64_t n : remaining) {
                if (std::find(targets.begin(), targets.end(), n) != targets.end()) continue;
                const double* a = metric_row(b, n);
                double best = -kInf, second = -kInf;
                int64_t best_target = 0;
                for (int64_t t = 0; t < contextual; ++t) {
                    const double* v = metric_row(b, targets[at(t)]);
                    double dot = 0.0;
                    for (int64_t c = 0; c < metric_channels; ++c) dot += a[c] * v[c];
                    const double similarity = dot / (norm(a) * norm(v));
                    if (std::isnan(similarity)) continue;
                    if (similarity > best) {
                        second = best;
                        best = similarity;
                        best_target = t;
                    } else {
                        second = std::max(second, similarity);
                    }
                }
                assignment[at(n)] = best_target;
                if (second > -kInf) result.margin = std::min(result.margin, best - second);
            }
            for (int64_t t = 0; t < contextual; ++t) {
                std::vector<double> sum(at(channels), 0.0);
                int64_t count = 0;
                for (int64_t n = 0; n < tokens; ++n) {
                    if (assignment[at(n)] != t) continue;
                    ++count;
                    for (int64_t c = 0; c < channels; ++c) sum[at(c)] += x_row(b, n)[c];
                }
                double* out = result.out.data() + (b * contextual + t) * channels;
                for (int64_t c = 0; c < channels; ++c)
                    out[c] = x_row(b, targets[at(t)])[c] + (count > 0 ? sum[at(c)] / static_cast<double>(count) : 0.0);
            }
        }
        result.targets.push_back(targets);
        result.assignment.push_back(assignment);
    }
    return result;
}

}  // namespace tkt
