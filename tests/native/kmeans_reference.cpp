// Reference batched k-means: see kmeans_reference.hpp.
#include "kmeans_reference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace tkt {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

uint64_t mix(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// |a - b| relative to the larger magnitude (1 when both are 0).
double relative_gap(double a, double b) {
    const double scale = std::max(std::abs(a), std::abs(b));
    return scale == 0.0 ? kInf : std::abs(a - b) / scale;
}

struct Problem {
    const double* x;  // [L, C]
    int64_t length, channels;

    const double* row(int64_t i) const { return x + i * channels; }
    double distance(const double* a, const double* b) const {
        double sum = 0.0;
        for (int64_t c = 0; c < channels; ++c) sum += (a[c] - b[c]) * (a[c] - b[c]);
        return sum;
    }
};

}  // namespace

double reference_kmeans_uniform(uint64_t seed, uint64_t item, uint64_t draw) {
    return static_cast<double>(mix(mix(seed ^ mix(item)) + draw) >> 11) / 9007199254740992.0;
}

KMeansResult reference_kmeans(const tk_kmeans_params& params, const KMeansInputs& in) {
    const int64_t big_k = params.clusters, n = in.tokens, channels = in.channels;
    KMeansResult r;
    r.centres.assign(static_cast<size_t>(in.batch * big_k * channels), 0.0);
    r.assignment.assign(static_cast<size_t>(in.batch * n), -1);
    r.sizes.assign(static_cast<size_t>(in.batch * big_k), 0.0);
    r.iterations.assign(static_cast<size_t>(in.batch), 0);
    r.margin = kInf;
    for (int64_t b = 0; b < in.batch; ++b) {
        const int64_t length = in.lengths.empty() ? n : in.lengths[static_cast<size_t>(b)];
        const int64_t wanted = in.item_clusters.empty() ? big_k : in.item_clusters[static_cast<size_t>(b)];
        const int64_t k = std::min(wanted, length);
        if (k == 0) continue;
        const Problem p{in.x.data() + b * n * channels, length, channels};
        std::vector<std::vector<double>> centres(static_cast<size_t>(k), std::vector<double>(static_cast<size_t>(channels)));
        if (params.init == TK_KMEANS_INIT_GIVEN) {
            for (int64_t j = 0; j < k; ++j)
                for (int64_t c = 0; c < channels; ++c)
                    centres[static_cast<size_t>(j)][static_cast<size_t>(c)] =
                        in.initial_centres[static_cast<size_t>((b * big_k + j) * channels + c)];
        } else {
            // Greedy k-means++: the first centre uniform, then per step 2 + floor(ln k) candidates drawn
            // in proportion to the squared distance to the nearest chosen centre, the best kept.
            uint64_t draw = 0;
            const auto uniform = [&] { return reference_kmeans_uniform(params.seed, static_cast<uint64_t>(b), draw++); };
            const int64_t first = std::min<int64_t>(static_cast<int64_t>(std::floor(uniform() * static_cast<double>(length))), length - 1);
            std::copy(p.row(first), p.row(first) + channels, centres[0].begin());
            std::vector<double> closest(static_cast<size_t>(length));
            for (int64_t i = 0; i < length; ++i) closest[static_cast<size_t>(i)] = p.distance(p.row(i), centres[0].data());
            const int64_t trials = 2 + static_cast<int64_t>(std::floor(std::log(static_cast<double>(k))));
            for (int64_t j = 1; j < k; ++j) {
                std::vector<double> prefix(static_cast<size_t>(length));
                std::partial_sum(closest.begin(), closest.end(), prefix.begin());
                const double potential = prefix.back();
                int64_t best = -1;
                double best_potential = kInf, second_potential = kInf;
                std::vector<double> best_closest;
                for (int64_t t = 0; t < trials; ++t) {
                    const double target = uniform() * potential;
                    int64_t chosen = 0;
                    while (chosen < length - 1 && prefix[static_cast<size_t>(chosen)] < target) ++chosen;
                    // How far the draw is from the prefix sums on either side of its choice.
                    r.margin = std::min(r.margin, relative_gap(target, prefix[static_cast<size_t>(chosen)]));
                    if (chosen > 0) r.margin = std::min(r.margin, relative_gap(target, prefix[static_cast<size_t>(chosen - 1)]));
                    std::vector<double> candidate_closest(closest);
                    double candidate_potential = 0.0;
                    for (int64_t i = 0; i < length; ++i) {
                        double& d = candidate_closest[static_cast<size_t>(i)];
                        d = std::min(d, p.distance(p.row(i), p.row(chosen)));
                        candidate_potential += d;
                    }
                    if (candidate_potential < best_potential) {
                        second_potential = best_potential;
                        best_potential = candidate_potential;
                        best = chosen;
                        best_closest = candidate_closest;
                    } else if (candidate_potential < second_potential && candidate_potential != best_potential) {
                        second_potential = candidate_potential;
                    }
                }
                // Equal potentials (the same candidate drawn twice) are no decision.
                if (second_potential < kInf) r.margin = std::min(r.margin, relative_gap(best_potential, second_potential));
                closest = best_closest;
                std::copy(p.row(best), p.row(best) + channels, centres[static_cast<size_t>(j)].begin());
            }
        }
        // Lloyd.
        double tolerance = 0.0;
        if (params.tolerance > 0.0) {
            double total = 0.0;
            for (int64_t c = 0; c < channels; ++c) {
                double mean = 0.0, variance = 0.0;
                for (int64_t i = 0; i < length; ++i) mean += p.row(i)[c];
                mean /= static_cast<double>(length);
                for (int64_t i = 0; i < length; ++i) variance += (p.row(i)[c] - mean) * (p.row(i)[c] - mean);
                total += variance / static_cast<double>(length);
            }
            tolerance = params.tolerance * total / static_cast<double>(std::max<int64_t>(channels, 1));
        }
        std::vector<int32_t> labels(static_cast<size_t>(length)), previous(static_cast<size_t>(length), -1);
        std::vector<double> nearest(static_cast<size_t>(length));
        const auto assign = [&] {
            for (int64_t i = 0; i < length; ++i) {
                double best = kInf, second = kInf;
                int32_t label = 0;
                for (int64_t j = 0; j < k; ++j) {
                    const double d = p.distance(p.row(i), centres[static_cast<size_t>(j)].data());
                    if (d < best) {
                        second = best;
                        best = d;
                        label = static_cast<int32_t>(j);
                    } else if (d < second) {
                        second = d;
                    }
                }
                labels[static_cast<size_t>(i)] = label;
                nearest[static_cast<size_t>(i)] = best;
                if (second < kInf) r.margin = std::min(r.margin, relative_gap(best, second));
            }
        };
        bool strict = false, relocated = false;
        int32_t iteration = 0;
        while (iteration < params.max_iterations) {
            ++iteration;
            assign();
            std::vector<std::vector<double>> sums(static_cast<size_t>(k), std::vector<double>(static_cast<size_t>(channels), 0.0));
            std::vector<int64_t> counts(static_cast<size_t>(k), 0);
            for (int64_t i = 0; i < length; ++i) {
                const int32_t j = labels[static_cast<size_t>(i)];
                for (int64_t c = 0; c < channels; ++c) sums[static_cast<size_t>(j)][static_cast<size_t>(c)] += p.row(i)[c];
                ++counts[static_cast<size_t>(j)];
            }
            // Empty clusters, in increasing order, take the farthest points from their centres.
            std::vector<int64_t> by_distance(static_cast<size_t>(length));
            std::iota(by_distance.begin(), by_distance.end(), 0);
            std::stable_sort(by_distance.begin(), by_distance.end(),
                             [&](int64_t a, int64_t c) { return nearest[static_cast<size_t>(a)] > nearest[static_cast<size_t>(c)]; });
            // The list of empty clusters is taken before any relocation.
            std::vector<int64_t> empty;
            for (int64_t j = 0; j < k; ++j)
                if (counts[static_cast<size_t>(j)] == 0) empty.push_back(j);
            int64_t e = 0;
            for (int64_t j : empty) {
                const int64_t far = by_distance[static_cast<size_t>(e++)];
                if (e < length)
                    r.margin = std::min(r.margin, relative_gap(nearest[static_cast<size_t>(far)],
                                                               nearest[static_cast<size_t>(by_distance[static_cast<size_t>(e)])]));
                const int32_t old = labels[static_cast<size_t>(far)];
                for (int64_t c = 0; c < channels; ++c) {
                    sums[static_cast<size_t>(old)][static_cast<size_t>(c)] -= p.row(far)[c];
                    sums[static_cast<size_t>(j)][static_cast<size_t>(c)] = p.row(far)[c];
                }
                counts[static_cast<size_t>(j)] = 1;
                // A cluster that lost its every point is the zero vector.
                if (--counts[static_cast<size_t>(old)] == 0)
                    std::fill(sums[static_cast<size_t>(old)].begin(), sums[static_cast<size_t>(old)].end(), 0.0);
            }
            double shift = 0.0;
            for (int64_t j = 0; j < k; ++j) {
                auto& centre = centres[static_cast<size_t>(j)];
                for (int64_t c = 0; c < channels; ++c) {
                    double value = sums[static_cast<size_t>(j)][static_cast<size_t>(c)];
                    if (counts[static_cast<size_t>(j)] > 0) value /= static_cast<double>(counts[static_cast<size_t>(j)]);
                    shift += (value - centre[static_cast<size_t>(c)]) * (value - centre[static_cast<size_t>(c)]);
                    centre[static_cast<size_t>(c)] = value;
                }
            }
            if (labels == previous) {
                strict = true;
                break;
            }
            // The shift against the tolerance: a near-tie when within rounding of it, which for a
            // tolerance of 0 means a shift that float32 sums could round to 0 or not: a tiny one, or
            // a zero one after a relocation (points summed, then one moved out, against the same points summed
            // without it in a later iteration).
            double energy = 0.0;
            for (const auto& centre : centres)
                for (double v : centre) energy += v * v;
            relocated = relocated || e > 0;
            const bool near_tolerance = tolerance > 0.0 && std::abs(shift - tolerance) <= 1e-4 * tolerance;
            const bool near_zero = (relocated || shift > 0.0) && shift <= tolerance + 1e-9 * energy;
            if (near_tolerance || near_zero) r.margin = 0.0;
            if (shift <= tolerance) break;
            previous = labels;
        }
        if (!strict) assign();
        r.iterations[static_cast<size_t>(b)] = iteration;
        for (int64_t j = 0; j < k; ++j)
            for (int64_t c = 0; c < channels; ++c)
                r.centres[static_cast<size_t>((b * big_k + j) * channels + c)] = centres[static_cast<size_t>(j)][static_cast<size_t>(c)];
        for (int64_t i = 0; i < length; ++i) {
            r.assignment[static_cast<size_t>(b * n + i)] = labels[static_cast<size_t>(i)];
            r.sizes[static_cast<size_t>(b * big_k + labels[static_cast<size_t>(i)])] += 1.0;
        }
    }
    return r;
}

}  // namespace tkt
