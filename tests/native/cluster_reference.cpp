#include "cluster_reference.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace tkt {
namespace {

// a and b differ, but by no more than the relative tolerance plus their error bounds.
bool close_but_different(double a, double b, double tolerance, double error_a = 0.0, double error_b = 0.0) {
    return a != b && std::fabs(a - b) <= tolerance * std::max(std::fabs(a), std::fabs(b)) + error_a + error_b;
}

}  // namespace

DpcResult dpc_knn_reference(const DpcInputs& in, double tie_tolerance) {
    const int64_t n = in.tokens, c = in.channels;
    DpcResult r;
    r.centres.assign(static_cast<size_t>(in.batch * in.clusters), -1);
    r.assignment.assign(static_cast<size_t>(in.batch * n), -1);
    r.density.assign(static_cast<size_t>(in.batch * n), 0.0);
    r.delta.assign(static_cast<size_t>(in.batch * n), 0.0);
    r.density_error.assign(static_cast<size_t>(in.batch * n), 0.0);
    r.delta_error.assign(static_cast<size_t>(in.batch * n), 0.0);
    for (int64_t b = 0; b < in.batch; ++b) {
        const int64_t length = in.lengths.empty() ? n : in.lengths[b];
        const int64_t k_clusters = std::min(in.item_clusters.empty() ? in.clusters : in.item_clusters[b], length);
        if (length == 0) continue;
        auto token = [&](int64_t i) { return &in.x[static_cast<size_t>((b * n + i) * c)]; };
        auto dot = [&](int64_t i, int64_t j) {
            double s = 0.0;
            for (int64_t ch = 0; ch < c; ++ch) s += token(i)[ch] * token(j)[ch];
            return s;
        };
        // d = sqrt(max((|a|^2 + |b|^2) - 2 a.b, 0)) / sqrt(C). The float32 sums of C products are exact
        // to (C + 1) eps times the sum of their magnitudes (at most |a|^2 + |b|^2 for the dot), so the
        // squared distance to within (2C + 4) eps (|a|^2 + |b|^2); err holds the distance's resulting
        // bound (d's own rounding is within the relative tolerance).
        const double rounding = (2.0 * static_cast<double>(c) + 4.0) * std::ldexp(1.0, -24);
        const double root_channels = std::sqrt(static_cast<double>(c));
        std::vector<double> norm(static_cast<size_t>(length));
        for (int64_t i = 0; i < length; ++i) norm[i] = dot(i, i);
        std::vector<double> d(static_cast<size_t>(length * length)), err(d.size());
        double largest = 0.0, largest_high = 0.0;
        for (int64_t i = 0; i < length; ++i)
            for (int64_t j = 0; j < length; ++j) {
                const double s = std::max(norm[i] + norm[j] - 2.0 * dot(i, j), 0.0);
                const double e = rounding * (norm[i] + norm[j]);
                const double v = std::sqrt(s) / root_channels;
                const double low = std::sqrt(std::max(s - e, 0.0)) / root_channels, high = std::sqrt(s + e) / root_channels;
                d[i * length + j] = v;
                err[i * length + j] = std::max(v - low, high - v);
                largest = std::max(largest, v);
                largest_high = std::max(largest_high, high);
            }
        // density: exp(-mean of the k smallest squared distances, the token itself included)
        const int64_t k = std::min(in.neighbours, length);
        std::vector<double> density(static_cast<size_t>(length)), density_error(density.size());
        for (int64_t i = 0; i < length; ++i) {
            std::vector<int64_t> row(static_cast<size_t>(length));
            std::iota(row.begin(), row.end(), 0);
            std::stable_sort(row.begin(), row.end(), [&](int64_t a, int64_t e) { return d[i * length + a] < d[i * length + e]; });
            double sum = 0.0, sum_error = 0.0;
            for (int64_t t = 0; t < k; ++t) {
                const double v = d[i * length + row[t]], e = err[i * length + row[t]];
                sum += v * v;
                sum_error += (2.0 * v + e) * e;
            }
            density[i] = std::exp(-sum / static_cast<double>(k));
            density_error[i] = density[i] * std::expm1(sum_error / static_cast<double>(k));
        }
        auto denser = [&](int64_t j, int64_t i) {
            return density[j] > density[i] || (density[j] == density[i] && j < i);
        };
        std::vector<double> delta(static_cast<size_t>(length)), delta_error(delta.size());
        for (int64_t i = 0; i < length; ++i) {
            double best = largest, low = largest, high = largest_high;
            for (int64_t j = 0; j < length; ++j)
                if (denser(j, i)) {
                    const double v = d[i * length + j], e = err[i * length + j];
                    if (v < best) {
                        best = v;
                        high = v + e;
                    }
                    low = std::min(low, v - e);
                }
            delta[i] = best;
            delta_error[i] = std::max(best - low, high - best);
        }
        // A density order that float32 may flip matters when it changes either token's delta.
        for (int64_t i = 0; i < length; ++i)
            for (int64_t j = 0; j < length; ++j)
                if (i != j && denser(i, j) &&
                    close_but_different(density[i], density[j], tie_tolerance, density_error[i], density_error[j])) {
                    const double dij = d[i * length + j] - err[i * length + j];
                    if (dij <= delta[j] * (1 + tie_tolerance) + delta_error[j] || dij < delta[i] * (1 + tie_tolerance) + delta_error[i])
                        r.near_tie = true;
                }
        std::vector<double> score(static_cast<size_t>(length));
        std::vector<double> score_error(static_cast<size_t>(length));
        for (int64_t i = 0; i < length; ++i) {
            score[i] = delta[i] * density[i];
            score_error[i] = delta_error[i] * density[i] + (delta[i] + delta_error[i]) * density_error[i];
        }
        std::vector<int64_t> order(static_cast<size_t>(length));
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t e) { return score[a] > score[e]; });
        for (int64_t t = 0; t + 1 < length && t < k_clusters; ++t)
            if (close_but_different(score[order[t]], score[order[t + 1]], tie_tolerance, score_error[order[t]],
                                    score_error[order[t + 1]]))
                r.near_tie = true;
        std::vector<int64_t> cluster_of(static_cast<size_t>(length), -1);
        for (int64_t j = 0; j < k_clusters; ++j) {
            r.centres[b * in.clusters + j] = order[j];
            cluster_of[order[j]] = j;
        }
        for (int64_t i = 0; i < length; ++i) {
            r.density[b * n + i] = density[i];
            r.delta[b * n + i] = delta[i];
            r.density_error[b * n + i] = density_error[i];
            r.delta_error[b * n + i] = delta_error[i];
            if (k_clusters == 0) continue;
            if (cluster_of[i] >= 0) {
                r.assignment[b * n + i] = cluster_of[i];
                continue;
            }
            int64_t best = 0;
            for (int64_t j = 1; j < k_clusters; ++j)
                if (d[i * length + order[j]] < d[i * length + order[best]]) best = j;
            for (int64_t j = 0; j < k_clusters; ++j)
                if (j != best && close_but_different(d[i * length + order[j]], d[i * length + order[best]], tie_tolerance,
                                                     err[i * length + order[j]], err[i * length + order[best]]))
                    r.near_tie = true;
            r.assignment[b * n + i] = best;
        }
    }
    return r;
}

ClusterMergeResult cluster_merge_reference(const ClusterMergeInputs& in) {
    const int64_t n = in.tokens, c = in.channels, kc = in.clusters;
    ClusterMergeResult r;
    r.out.assign(static_cast<size_t>(in.batch * kc * c), 0.0);
    r.out_size.assign(static_cast<size_t>(in.batch * kc), 0.0);
    for (int64_t b = 0; b < in.batch; ++b)
        for (int64_t j = 0; j < kc; ++j) {
            const int64_t centre = in.centres.empty() ? -1 : in.centres[b * kc + j];
            const bool blend = in.mode == MergeMode::kCentreBlend || in.mode == MergeMode::kCentreCountBlend;
            std::vector<double> sum(static_cast<size_t>(c), 0.0);
            double weight = 0.0, size = 0.0;
            for (int64_t i = 0; i < n; ++i) {
                if (in.assignment[b * n + i] != j) continue;
                const double s = in.sizes.empty() ? 1.0 : in.sizes[b * n + i];
                size += s;
                if (blend && i == centre) continue;
                const double w = in.mode == MergeMode::kSizeWeighted ? s : 1.0;
                for (int64_t ch = 0; ch < c; ++ch) sum[ch] += w * in.x[(b * n + i) * c + ch];
                weight += w;
            }
            double* out = &r.out[(b * kc + j) * c];
            if (blend) {
                if (centre < 0) continue;  // zeros, size 0
                for (int64_t ch = 0; ch < c; ++ch) {
                    const double v = in.x[(b * n + centre) * c + ch];
                    // FastVID: avg_weights = (1 / (n + 1)).clamp(min=beta), n the other members.
                    const double w = in.mode == MergeMode::kCentreCountBlend ? std::max(1.0 / (weight + 1.0), in.beta) : in.beta;
                    out[ch] = weight > 0 ? w * v + (1 - w) * sum[ch] / weight : v;
                }
            } else if (weight != 0.0) {
                for (int64_t ch = 0; ch < c; ++ch) out[ch] = sum[ch] / weight;
            }
            r.out_size[b * kc + j] = size;
        }
    return r;
}

ClusterAssignResult cluster_assign_reference(const ClusterAssignInputs& in, double tie_tolerance) {
    const int64_t n = in.tokens, c = in.channels, kc = in.clusters;
    ClusterAssignResult r;
    r.assignment.assign(static_cast<size_t>(in.batch * n), -1);
    const auto cosine = [&](int64_t b, int64_t i, int64_t j) {
        const double* a = &in.x[(b * n + i) * c];
        const double* z = &in.x[(b * n + j) * c];
        double dot = 0, na = 0, nz = 0;
        for (int64_t ch = 0; ch < c; ++ch) {
            dot += a[ch] * z[ch];
            na += a[ch] * a[ch];
            nz += z[ch] * z[ch];
        }
        return na == 0 || nz == 0 ? 0.0 : dot / (std::sqrt(na) * std::sqrt(nz));  // a zero row: 0
    };
    for (int64_t b = 0; b < in.batch; ++b) {
        const int64_t length = in.lengths.empty() ? n : in.lengths[b];
        int64_t first = -1;
        for (int64_t j = 0; j < kc && first < 0; ++j)
            if (in.centres[b * kc + j] >= 0) first = j;
        if (first < 0) continue;
        for (int64_t i = 0; i < length; ++i) {
            int64_t own = -1;
            for (int64_t j = 0; j < kc && own < 0; ++j)
                if (in.centres[b * kc + j] == i) own = j;
            if (own >= 0) {
                r.assignment[b * n + i] = own;
                continue;
            }
            int64_t best = -1;
            double best_value = 0;
            std::vector<double> values;
            for (int64_t j = 0; j < kc; ++j) {
                const int64_t centre = in.centres[b * kc + j];
                if (centre < 0) continue;
                const double v = cosine(b, i, centre);
                values.push_back(v);
                if (best < 0 || v > best_value) {
                    best = j;
                    best_value = v;
                }
            }
            int close = 0;
            for (double v : values)
                if (v != best_value && std::fabs(v - best_value) <= tie_tolerance) ++close;
            if (close > 0) r.near_tie = true;  // exact ties (C = 1, duplicates) are exact in float32 too
            r.assignment[b * n + i] = best;
        }
    }
    return r;
}

}  // namespace tkt
