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

std::vector<float> reference_temporal_similarity_f32(const HostTensor& x, const std::vector<int32_t>& reference) {
    const auto& s = x.shape();
    std::vector<float> out;
    for (int64_t b = 0; b < s[0]; ++b)
        for (int64_t t = 0; t < s[1]; ++t) {
            const int64_t r = reference.empty() ? t - 1 : reference[static_cast<size_t>(t)];
            for (int64_t h = 0; h < s[2]; ++h)
                for (int64_t w = 0; w < s[3]; ++w) {
                    if (r < 0) {
                        out.push_back(-std::numeric_limits<float>::infinity());
                        continue;
                    }
                    // Lane l adds the channels l, l + 16, ... in increasing order.
                    float dot[16] = {}, uu[16] = {}, vv[16] = {};
                    for (int64_t c = 0; c < s[4]; ++c) {
                        const auto u = static_cast<float>(x.get(b, t, h, w, c));
                        const auto v = static_cast<float>(x.get(b, r, h, w, c));
                        dot[c % 16] += u * v;
                        uu[c % 16] += u * u;
                        vv[c % 16] += v * v;
                    }
                    float d = 0.0f, nu = 0.0f, nv = 0.0f;
                    for (int l = 0; l < 16; ++l) {
                        d += dot[l];
                        nu += uu[l];
                        nv += vv[l];
                    }
                    out.push_back(d / (std::max(std::sqrt(nu), 1e-8f) * std::max(std::sqrt(nv), 1e-8f)));
                }
        }
    return out;
}

namespace {

// Positions [begin, end) ordered by value, best first (higher when descending), NaN after every number,
// ties in position order (a stable sort).
std::vector<int64_t> stable_order(const std::vector<double>& value, int64_t begin, int64_t end, bool descending) {
    std::vector<int64_t> order(static_cast<size_t>(end - begin));
    std::iota(order.begin(), order.end(), begin);
    std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) {
        const double a = value[static_cast<size_t>(i)], c = value[static_cast<size_t>(j)];
        if (std::isnan(a) || std::isnan(c)) return !std::isnan(a) && std::isnan(c);
        return descending ? a > c : a < c;
    });
    return order;
}

// Keeps the first `count` of order in `kept`, and records for each position of order the value of the
// last one kept.
void keep_first(const std::vector<int64_t>& order, int64_t count, const std::vector<double>& value,
                std::vector<int64_t>& kept, std::vector<double>& boundary) {
    const double edge = count > 0 ? value[static_cast<size_t>(order[static_cast<size_t>(count - 1)])] : 0.0;
    for (size_t r = 0; r < order.size(); ++r) {
        if (static_cast<int64_t>(r) < count) kept.push_back(order[r]);
        boundary[static_cast<size_t>(order[r])] = edge;
    }
}

}  // namespace

SelectionReference reference_evs(const HostTensor& x, double pruning_rate) {
    const auto& s = x.shape();
    const int64_t positions = s[2] * s[3];
    const int64_t tokens = s[1] * positions;
    SelectionReference ref;
    // vLLM's compute_retained_tokens_count: max(tokens_per_frame, int(total_tokens * (1 - q))).
    ref.retained = std::max<int64_t>(positions, static_cast<int64_t>(static_cast<double>(tokens) * (1.0 - pruning_rate)));
    const std::vector<double> similarity = reference_temporal_similarity(x, {});
    for (int64_t b = 0; b < s[0]; ++b) {
        std::vector<double> value(static_cast<size_t>(tokens));
        for (int64_t i = 0; i < tokens; ++i) value[static_cast<size_t>(i)] = 1.0 - similarity[static_cast<size_t>(b * tokens + i)];
        std::vector<int64_t> kept;
        std::vector<double> boundary(static_cast<size_t>(tokens));
        keep_first(stable_order(value, 0, tokens, true), ref.retained, value, kept, boundary);
        std::sort(kept.begin(), kept.end());
        ref.kept.push_back(std::move(kept));
        ref.value.push_back(std::move(value));
        ref.boundary.push_back(std::move(boundary));
    }
    return ref;
}

SelectionReference reference_dycoke(const HostTensor& x, double merging_ratio) {
    const auto& s = x.shape();
    const int64_t frames = s[1];
    const int64_t positions = s[2] * s[3];
    // dycole_ttm: merging_ratio = 1 - merging_ratio; int(merging_ratio * num_tokens_per_frame).
    const auto compared_keeps = static_cast<int64_t>((1.0 - merging_ratio) * static_cast<double>(positions));
    std::vector<int32_t> reference(static_cast<size_t>(frames));
    for (int64_t t = 0; t < frames; ++t)
        reference[static_cast<size_t>(t)] = static_cast<int32_t>(t % 2 == 1 ? t - 1 : t % 4 == 2 ? t - 2 : -1);
    const std::vector<double> similarity = reference_temporal_similarity(x, reference);
    SelectionReference ref;
    ref.retained = 0;
    for (int64_t t = 0; t < frames; ++t) ref.retained += reference[static_cast<size_t>(t)] < 0 ? positions : compared_keeps;
    for (int64_t b = 0; b < s[0]; ++b) {
        std::vector<double> value(similarity.begin() + b * frames * positions, similarity.begin() + (b + 1) * frames * positions);
        std::vector<int64_t> kept;
        std::vector<double> boundary(value.size());
        for (int64_t t = 0; t < frames; ++t) {
            const int64_t count = reference[static_cast<size_t>(t)] < 0 ? positions : compared_keeps;
            std::vector<int64_t> frame_kept;
            keep_first(stable_order(value, t * positions, (t + 1) * positions, false), count, value, frame_kept, boundary);
            std::sort(frame_kept.begin(), frame_kept.end());
            kept.insert(kept.end(), frame_kept.begin(), frame_kept.end());
        }
        ref.kept.push_back(std::move(kept));
        ref.value.push_back(std::move(value));
        ref.boundary.push_back(std::move(boundary));
    }
    return ref;
}

namespace {

// VidCom2's multi-scale Gaussian kernel: exp(-d / (2a)) for a = 1/8, 1/4, 1/2, 1, 2.
double gaussian_sum(double d) {
    double sum = 0.0;
    for (double a : {0.125, 0.25, 0.5, 1.0, 2.0}) sum += std::exp(-d / (2.0 * a));
    return sum;
}

double squared_distance(const std::vector<double>& u, const std::vector<double>& v) {
    double d = 0.0;
    for (size_t j = 0; j < u.size(); ++j) d += (u[j] - v[j]) * (u[j] - v[j]);
    return d;
}

}  // namespace

VidCom2Reference reference_vidcom2(const HostTensor& x, double retention_ratio, double channel_ratio, double temperature) {
    const auto& s = x.shape();
    const int64_t frames = s[1], positions = s[2] * s[3], channels = s[4], tokens = frames * positions;
    const auto token = [&](int64_t b, int64_t n, int64_t c) { return x.get(b, n / positions, n % positions / s[3], n % s[3], c); };
    VidCom2Reference ref;
    // int(T * P * r) and int(C * channel_ratio) in double, as Python.
    ref.retained = std::max<int64_t>(frames, static_cast<int64_t>(static_cast<double>(tokens) * retention_ratio));
    ref.scored_channels = std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(channels) * channel_ratio));
    const int64_t scored = ref.scored_channels;
    for (int64_t b = 0; b < s[0]; ++b) {
        // 1. Population variance of each channel over the item's T * P tokens; the C' lowest.
        std::vector<double> variance(static_cast<size_t>(channels));
        for (int64_t c = 0; c < channels; ++c) {
            double mean = 0.0;
            for (int64_t n = 0; n < tokens; ++n) mean += token(b, n, c);
            mean /= static_cast<double>(tokens);
            double sum = 0.0;
            for (int64_t n = 0; n < tokens; ++n) sum += (token(b, n, c) - mean) * (token(b, n, c) - mean);
            variance[static_cast<size_t>(c)] = sum / static_cast<double>(tokens);
        }
        const std::vector<int64_t> by_variance = stable_order(variance, 0, channels, false);
        std::vector<int64_t> chosen(by_variance.begin(), by_variance.begin() + scored);
        std::sort(chosen.begin(), chosen.end());
        double gap = std::numeric_limits<double>::infinity();
        if (scored < channels) {
            const double last = variance[static_cast<size_t>(by_variance[static_cast<size_t>(scored - 1)])];
            const double next = variance[static_cast<size_t>(by_variance[static_cast<size_t>(scored)])];
            gap = next == last ? 0.0 : (next - last) / std::abs(next);
        }

        // 2. Each token's chosen channels, normalised (F.normalize: the norm clamped at 1e-12).
        std::vector<std::vector<double>> f(static_cast<size_t>(tokens), std::vector<double>(static_cast<size_t>(scored)));
        for (int64_t n = 0; n < tokens; ++n) {
            double norm = 0.0;
            for (int64_t j = 0; j < scored; ++j) {
                const double u = token(b, n, chosen[static_cast<size_t>(j)]);
                f[static_cast<size_t>(n)][static_cast<size_t>(j)] = u;
                norm += u * u;
            }
            norm = std::max(std::sqrt(norm), 1e-12);
            for (double& v : f[static_cast<size_t>(n)]) v /= norm;
        }

        // 3. The frame centres and the video centre.
        std::vector<std::vector<double>> frame_centre(static_cast<size_t>(frames), std::vector<double>(static_cast<size_t>(scored), 0.0));
        std::vector<double> video_centre(static_cast<size_t>(scored), 0.0);
        for (int64_t n = 0; n < tokens; ++n)
            for (int64_t j = 0; j < scored; ++j) {
                frame_centre[static_cast<size_t>(n / positions)][static_cast<size_t>(j)] += f[static_cast<size_t>(n)][static_cast<size_t>(j)];
                video_centre[static_cast<size_t>(j)] += f[static_cast<size_t>(n)][static_cast<size_t>(j)];
            }
        for (auto& centre : frame_centre)
            for (double& v : centre) v /= static_cast<double>(positions);
        for (double& v : video_centre) v /= static_cast<double>(tokens);

        // 4. Distinctiveness to the video (v) and to the frame (w); the score v + w.
        std::vector<double> score(static_cast<size_t>(tokens)), importance(static_cast<size_t>(frames), 0.0);
        for (int64_t n = 0; n < tokens; ++n) {
            const double v = gaussian_sum(squared_distance(f[static_cast<size_t>(n)], video_centre));
            const double w = gaussian_sum(squared_distance(f[static_cast<size_t>(n)], frame_centre[static_cast<size_t>(n / positions)]));
            score[static_cast<size_t>(n)] = v + w;
            importance[static_cast<size_t>(n / positions)] -= v / static_cast<double>(positions);
        }

        // 5. Frame shares: softmax of the importance at the temperature, scale = min(r ((1 + p) - mean p), 1).
        double top = -std::numeric_limits<double>::infinity();
        for (double v : importance) top = std::isnan(v) || std::isnan(top) ? std::numeric_limits<double>::quiet_NaN() : std::max(top, v);
        std::vector<double> p(static_cast<size_t>(frames));
        double z = 0.0;
        for (int64_t t = 0; t < frames; ++t) z += p[static_cast<size_t>(t)] = std::exp((importance[static_cast<size_t>(t)] - top) / temperature);
        double mean = 0.0;
        for (double& v : p) mean += v /= z;
        mean /= static_cast<double>(frames);
        std::vector<double> ideal(static_cast<size_t>(frames));
        for (int64_t t = 0; t < frames; ++t)
            ideal[static_cast<size_t>(t)] = std::min(retention_ratio * ((1.0 + p[static_cast<size_t>(t)]) - mean), 1.0) * static_cast<double>(positions);

        // 6. Exact count: one token per frame, then the K - T highest priorities ideal_t - j of the slots
        // j = 1 .. P - 1, ties to the lower frame; each ideal first rounded down to a multiple of 2^-20 (NaN as 0).
        struct Slot {
            double priority;
            int64_t frame;
        };
        std::vector<Slot> slots;
        for (int64_t t = 0; t < frames; ++t) {
            const double q = std::isnan(ideal[static_cast<size_t>(t)]) ? 0.0 : std::floor(ideal[static_cast<size_t>(t)] * 1048576.0) / 1048576.0;
            for (int64_t j = 1; j < positions; ++j) slots.push_back({q - static_cast<double>(j), t});
        }
        std::stable_sort(slots.begin(), slots.end(), [](const Slot& a, const Slot& c) {
            return a.priority > c.priority || (a.priority == c.priority && a.frame < c.frame);
        });
        const auto extra = static_cast<size_t>(ref.retained - frames);
        std::vector<int64_t> keeps(static_cast<size_t>(frames), 1);
        for (size_t i = 0; i < extra; ++i) ++keeps[static_cast<size_t>(slots[i].frame)];
        const double margin = extra > 0 && extra < slots.size() ? slots[extra - 1].priority - slots[extra].priority
                                                                : std::numeric_limits<double>::infinity();

        ref.channels.push_back(std::move(chosen));
        ref.channel_gap.push_back(gap);
        ref.ideal.push_back(std::move(ideal));
        ref.frame_keeps.push_back(std::move(keeps));
        ref.budget_margin.push_back(margin);
        ref.score.push_back(std::move(score));
    }
    return ref;
}

SelectionReference vidcom2_selection(const VidCom2Reference& ref, int64_t positions,
                                     const std::vector<std::vector<int64_t>>& frame_keeps) {
    SelectionReference sel;
    sel.retained = ref.retained;
    for (size_t b = 0; b < ref.score.size(); ++b) {
        const std::vector<double>& value = ref.score[b];
        const auto frames = static_cast<int64_t>(frame_keeps[b].size());
        std::vector<int64_t> kept;
        std::vector<double> boundary(value.size());
        // Frame by frame, each frame's kept tokens in increasing position: the flat order sorted.
        for (int64_t t = 0; t < frames; ++t)
            keep_first(stable_order(value, t * positions, (t + 1) * positions, false), frame_keeps[b][static_cast<size_t>(t)], value, kept,
                       boundary);
        std::sort(kept.begin(), kept.end());
        sel.kept.push_back(std::move(kept));
        sel.value.push_back(value);
        sel.boundary.push_back(std::move(boundary));
    }
    return sel;
}

FrameFusionReference reference_framefusion(const HostTensor& x, float threshold, int64_t max_merges) {
    const auto& s = x.shape();
    const int64_t frames = s[1], positions = s[2] * s[3], channels = s[4], tokens = frames * positions;
    const std::vector<float> similarity = reference_temporal_similarity_f32(x, {});
    FrameFusionReference ref;
    for (int64_t b = 0; b < s[0]; ++b) {
        std::vector<double> value(similarity.begin() + b * tokens, similarity.begin() + (b + 1) * tokens);
        std::vector<bool> merged(static_cast<size_t>(tokens), false);
        std::vector<int64_t> candidates = stable_order(value, 0, tokens, true);
        if (max_merges >= 0 && max_merges < tokens) candidates.resize(static_cast<size_t>(max_merges));
        // Frame 0 has no previous frame to merge into, whatever the threshold.
        for (int64_t i : candidates) merged[static_cast<size_t>(i)] = i >= positions && value[static_cast<size_t>(i)] >= threshold;
        // Rows in token order for the tokens that stay; a merged one joins its position's previous frame.
        std::vector<int64_t> rows(static_cast<size_t>(tokens));
        int64_t kept = 0;
        for (int64_t i = 0; i < tokens; ++i)
            rows[static_cast<size_t>(i)] = merged[static_cast<size_t>(i)] ? rows[static_cast<size_t>(i - positions)] : kept++;
        std::vector<double> out(static_cast<size_t>(kept * channels), 0.0), sizes(static_cast<size_t>(kept), 0.0);
        for (int64_t i = 0; i < tokens; ++i) {
            const int64_t row = rows[static_cast<size_t>(i)];
            sizes[static_cast<size_t>(row)] += 1.0;
            for (int64_t c = 0; c < channels; ++c)
                out[static_cast<size_t>(row * channels + c)] += x.get(b, i / positions, i % positions / s[3], i % s[3], c);
        }
        for (int64_t row = 0; row < kept; ++row)
            for (int64_t c = 0; c < channels; ++c) out[static_cast<size_t>(row * channels + c)] /= sizes[static_cast<size_t>(row)];
        ref.merge_count.push_back(tokens - kept);
        ref.rows.push_back(std::move(rows));
        ref.out.push_back(std::move(out));
        ref.sizes.push_back(std::move(sizes));
    }
    return ref;
}

}  // namespace tkt
