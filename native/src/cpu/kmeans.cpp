// Batched Lloyd k-means on the CPU (SPEC section 6, "k-means"). Items are independent problems: each
// runs on one thread in its own scratch slot (the packed float32 rows, the centres, the sums, the
// labels), so an item's result does not depend on the thread count, and an iteration allocates
// nothing. The assignment step is the N x K distance block of the diversity ops (the same bits for a
// pair whatever the tile); the update sums each cluster's points in increasing token order.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>

#include "core/dispatch.hpp"
#include "core/parallel.hpp"
#include "core/regions.hpp"
#include "cpu/diversity_distance.hpp"
#include "cpu/float16.hpp"
#include "ops/kmeans.hpp"

namespace tk::cpu {

namespace {

// Rows whose distances one distance_block call computes: a tile of rows x centres in cache.
constexpr int64_t kRowTile = 32;

// Floats per packed row: C rounded up to the 16 lanes of the distance block (zero padded).
int64_t packed_stride(int64_t channels) { return round_up(std::max<int64_t>(channels, 1), 16); }

// Where one item's scratch lies in a slot.
struct SlotLayout {
    uint64_t rows, centres, sums, counts, labels, previous, nearest, order, prefix, candidates, tile, pointers, moments;
    uint64_t bytes;  // one slot, a multiple of kWorkspaceAlignment
};

SlotLayout slot_layout(const KMeansPlan& plan) {
    const uint64_t n = static_cast<uint64_t>(plan.tokens), k = static_cast<uint64_t>(plan.clusters);
    const uint64_t stride = static_cast<uint64_t>(packed_stride(plan.channels));
    const uint64_t trials = static_cast<uint64_t>(kmeans_local_trials(plan.clusters));
    const uint64_t columns = std::max(k, trials);
    RegionCursor cursor;
    SlotLayout s{};
    s.rows = cursor.take(n * stride * sizeof(float));
    s.centres = cursor.take(k * stride * sizeof(float));
    s.sums = cursor.take(k * stride * sizeof(float));
    s.counts = cursor.take(k * sizeof(int64_t));
    s.labels = cursor.take(n * sizeof(int32_t));
    s.previous = cursor.take(n * sizeof(int32_t));
    s.nearest = cursor.take(n * sizeof(float));
    s.order = cursor.take(n * sizeof(int32_t));
    s.prefix = cursor.take(n * sizeof(double));
    s.candidates = cursor.take(trials * n * sizeof(float));
    s.tile = cursor.take(static_cast<uint64_t>(kRowTile) * columns * sizeof(float));
    s.pointers = cursor.take(columns * sizeof(const float*));
    s.moments = cursor.take(2 * static_cast<uint64_t>(std::max<int64_t>(plan.channels, 0)) * sizeof(double));
    s.bytes = cursor.used();
    return s;
}

// One item's scratch, carved from a slot.
struct Slot {
    float* rows;
    float* centres;
    float* sums;
    int64_t* counts;
    int32_t* labels;
    int32_t* previous;
    float* nearest;  // each row's distance to its centre (k-means++: to the nearest chosen centre)
    int32_t* order;
    double* prefix;
    float* candidates;
    float* tile;
    const float** pointers;
    double* moments;  // the tolerance's per-channel means and variances

    Slot(const SlotLayout& s, void* base)
        : rows(at_offset<float>(base, s.rows)),
          centres(at_offset<float>(base, s.centres)),
          sums(at_offset<float>(base, s.sums)),
          counts(at_offset<int64_t>(base, s.counts)),
          labels(at_offset<int32_t>(base, s.labels)),
          previous(at_offset<int32_t>(base, s.previous)),
          nearest(at_offset<float>(base, s.nearest)),
          order(at_offset<int32_t>(base, s.order)),
          prefix(at_offset<double>(base, s.prefix)),
          candidates(at_offset<float>(base, s.candidates)),
          tile(at_offset<float>(base, s.tile)),
          pointers(at_offset<const float*>(base, s.pointers)),
          moments(at_offset<double>(base, s.moments)) {}
};

bool is_nan(float v) { return v != v; }

int64_t per_item(const StridedTensor& t, int64_t b, int64_t absent) {
    return t.data != nullptr ? *(static_cast<const int32_t*>(t.data) + b * t.strides[0]) : absent;
}

// One problem: L packed rows of `stride` floats, `count` clusters.
class Item {
public:
    Item(const Slot& slot, int64_t length, int64_t count, int64_t channels, DistanceBlockFn distance_block)
        : s_(slot),
          length_(length),
          count_(count),
          channels_(channels),
          stride_(packed_stride(channels)),
          distance_block_(distance_block) {}

    float* row(int64_t i) const { return s_.rows + i * stride_; }
    float* centre(int64_t k) const { return s_.centres + k * stride_; }

    // distances[t * length + i] = d(row i, centres[t]) for t < centre_count, through the tile.
    void distances_to(const float* const* centres, int64_t centre_count, float* distances) const {
        const float* rows[kRowTile];
        for (int64_t i0 = 0; i0 < length_; i0 += kRowTile) {
            const int64_t n = std::min(kRowTile, length_ - i0);
            for (int64_t r = 0; r < n; ++r) rows[r] = row(i0 + r);
            distance_block_(rows, n, centres, centre_count, stride_, s_.tile, centre_count);
            for (int64_t r = 0; r < n; ++r)
                for (int64_t t = 0; t < centre_count; ++t) distances[t * length_ + i0 + r] = s_.tile[r * centre_count + t];
        }
    }

    // labels = the nearest centre of each row (ties to the lower cluster; a NaN distance is never the
    // nearest, and a row with only NaN distances goes to cluster 0); nearest = that distance.
    void assign() const {
        for (int64_t k = 0; k < count_; ++k) s_.pointers[k] = centre(k);
        const float* rows[kRowTile];
        for (int64_t i0 = 0; i0 < length_; i0 += kRowTile) {
            const int64_t n = std::min(kRowTile, length_ - i0);
            for (int64_t r = 0; r < n; ++r) rows[r] = row(i0 + r);
            distance_block_(rows, n, s_.pointers, count_, stride_, s_.tile, count_);
            for (int64_t r = 0; r < n; ++r) {
                const float* d = s_.tile + r * count_;
                int64_t best = -1;
                float best_distance = d[0];
                for (int64_t k = 0; k < count_; ++k)
                    if (!is_nan(d[k]) && (best < 0 || d[k] < best_distance)) {
                        best = k;
                        best_distance = d[k];
                    }
                s_.labels[i0 + r] = static_cast<int32_t>(std::max<int64_t>(best, 0));
                s_.nearest[i0 + r] = best_distance;
            }
        }
    }

    // The update: new centres into sums, then swapped with the centres. Returns the squared shift of
    // the centres, summed over clusters (float64).
    double update() {
        std::fill(s_.sums, s_.sums + count_ * stride_, 0.0f);
        std::fill(s_.counts, s_.counts + count_, int64_t{0});
        for (int64_t i = 0; i < length_; ++i) {
            const int64_t k = s_.labels[i];
            float* sum = s_.sums + k * stride_;
            const float* x = row(i);
            for (int64_t c = 0; c < stride_; ++c) sum[c] += x[c];
            ++s_.counts[k];
        }
        relocate_empty_clusters();
        double shift = 0.0;
        for (int64_t k = 0; k < count_; ++k) {
            float* sum = s_.sums + k * stride_;
            // sklearn's _average_centers: the sum times the float32 rounding of 1 / count; a cluster
            // that relocation emptied stays the zero vector.
            if (s_.counts[k] > 0) {
                const float alpha = static_cast<float>(1.0 / static_cast<double>(s_.counts[k]));
                for (int64_t c = 0; c < stride_; ++c) sum[c] *= alpha;
            }
            const float* old = centre(k);
            for (int64_t c = 0; c < channels_; ++c) {
                const double d = static_cast<double>(sum[c]) - static_cast<double>(old[c]);
                shift += d * d;
            }
        }
        std::swap(s_.centres, s_.sums);
        return shift;
    }

    // sklearn's _relocate_empty_clusters_dense: the e-th empty cluster (in increasing order) becomes
    // the e-th farthest point from its centre (ties to the lower token, NaN distances last), which
    // leaves its old cluster's sum. Labels are not changed, as in sklearn.
    void relocate_empty_clusters() const {
        int64_t empty = 0;
        for (int64_t k = 0; k < count_; ++k) empty += s_.counts[k] == 0;
        if (empty == 0) return;
        for (int64_t i = 0; i < length_; ++i) s_.order[i] = static_cast<int32_t>(i);
        const float* distance = s_.nearest;
        std::partial_sort(s_.order, s_.order + empty, s_.order + length_, [distance](int32_t a, int32_t b) {
            const float da = distance[a], db = distance[b];
            if (is_nan(da) != is_nan(db)) return is_nan(db);
            if (!is_nan(da) && da != db) return da > db;
            return a < b;
        });
        // The empty clusters are those before any relocation (sklearn's list): marked -1 first, so that a
        // cluster a relocation empties is not relocated in turn.
        for (int64_t k = 0; k < count_; ++k)
            if (s_.counts[k] == 0) s_.counts[k] = -1;
        int64_t e = 0;
        for (int64_t k = 0; k < count_ && e < empty; ++k) {
            if (s_.counts[k] != -1) continue;
            const int64_t far = s_.order[e++];
            const int64_t old = s_.labels[far];
            const float* x = row(far);
            float* from = s_.sums + old * stride_;
            float* to = s_.sums + k * stride_;
            for (int64_t c = 0; c < stride_; ++c) {
                from[c] -= x[c];
                to[c] = x[c];
            }
            s_.counts[k] = 1;
            // A cluster whose every point left is the zero vector, as sklearn's sum minus its points
            // is in exact arithmetic (its float32 residue would depend on the order of removal).
            if (--s_.counts[old] == 0) std::fill(from, from + stride_, 0.0f);
        }
    }

    // Greedy k-means++ (sklearn's _kmeans_plusplus) on the counter-based stream of item `item`.
    void seed_plus_plus(uint64_t seed, uint64_t item) const {
        uint64_t draw = 0;
        const double first_draw = kmeans_uniform(seed, item, draw++);
        const int64_t first = std::min<int64_t>(static_cast<int64_t>(first_draw * static_cast<double>(length_)), length_ - 1);
        std::memcpy(centre(0), row(first), static_cast<size_t>(stride_) * sizeof(float));
        const float* first_centre = centre(0);
        distances_to(&first_centre, 1, s_.nearest);
        double potential = sequential_sum(s_.nearest);
        const int64_t trials = kmeans_local_trials(count_);
        int32_t candidate[64];
        for (int64_t c = 1; c < count_; ++c) {
            double running = 0.0;
            for (int64_t i = 0; i < length_; ++i) s_.prefix[i] = running += static_cast<double>(s_.nearest[i]);
            for (int64_t t = 0; t < trials; ++t) {
                const double target = kmeans_uniform(seed, item, draw++) * potential;
                // numpy's searchsorted (left): the first prefix >= target; none (NaN) gives the last row.
                int64_t chosen = length_ - 1;
                if (!std::isnan(potential))
                    chosen = std::min<int64_t>(std::lower_bound(s_.prefix, s_.prefix + length_, target) - s_.prefix, length_ - 1);
                candidate[t] = static_cast<int32_t>(chosen);
                s_.pointers[t] = row(chosen);
            }
            distances_to(s_.pointers, trials, s_.candidates);
            int64_t best = -1;
            double best_potential = 0.0;
            for (int64_t t = 0; t < trials; ++t) {
                float* d = s_.candidates + t * length_;
                for (int64_t i = 0; i < length_; ++i) {
                    const float closest = s_.nearest[i];
                    // np.minimum: NaN when either is NaN.
                    d[i] = (is_nan(d[i]) || is_nan(closest)) ? std::numeric_limits<float>::quiet_NaN()
                                                             : std::min(d[i], closest);
                }
                const double p = sequential_sum(d);
                const bool better = best < 0 || (!std::isnan(p) && (std::isnan(best_potential) || p < best_potential));
                if (better) {
                    best = t;
                    best_potential = p;
                }
            }
            std::memcpy(s_.nearest, s_.candidates + best * length_, static_cast<size_t>(length_) * sizeof(float));
            potential = best_potential;
            std::memcpy(centre(c), row(candidate[best]), static_cast<size_t>(stride_) * sizeof(float));
        }
    }

    // tolerance x the mean over channels of the per-channel (population) variance, in float64, as
    // sklearn's _tolerance scales tol.
    double scaled_tolerance(double tolerance) const {
        if (tolerance == 0.0) return 0.0;
        // Row by row (the rows are contiguous), each channel's sums still in increasing token order.
        double* mean = s_.moments;
        double* variance = s_.moments + channels_;
        std::fill(mean, mean + 2 * channels_, 0.0);
        for (int64_t i = 0; i < length_; ++i)
            for (int64_t c = 0; c < channels_; ++c) mean[c] += row(i)[c];
        for (int64_t c = 0; c < channels_; ++c) mean[c] /= static_cast<double>(length_);
        for (int64_t i = 0; i < length_; ++i)
            for (int64_t c = 0; c < channels_; ++c) {
                const double d = row(i)[c] - mean[c];
                variance[c] += d * d;
            }
        double total = 0.0;
        for (int64_t c = 0; c < channels_; ++c) total += variance[c] / static_cast<double>(length_);
        return tolerance * (channels_ > 0 ? total / static_cast<double>(channels_) : 0.0);
    }

    // Lloyd's iterations; returns how many ran. Leaves the final labels and centres in the slot.
    int64_t lloyd(int64_t max_iterations, double tolerance) {
        std::fill(s_.previous, s_.previous + length_, -1);
        bool strict = false;
        int64_t iteration = 0;
        while (iteration < max_iterations) {
            ++iteration;
            assign();
            const double shift = update();
            if (std::equal(s_.labels, s_.labels + length_, s_.previous)) {
                strict = true;
                break;
            }
            if (shift <= tolerance) break;
            std::copy(s_.labels, s_.labels + length_, s_.previous);
        }
        // Labels that match the final centres, as sklearn's last E-step.
        if (!strict) assign();
        return iteration;
    }

    const Slot& slot() const { return s_; }

private:
    double sequential_sum(const float* values) const {
        double sum = 0.0;
        for (int64_t i = 0; i < length_; ++i) sum += static_cast<double>(values[i]);
        return sum;
    }

    Slot s_;
    int64_t length_, count_, channels_, stride_;
    DistanceBlockFn distance_block_;
};

template <class T>
void cluster_item(const KMeansPlan& plan, int64_t b, const SlotLayout& layout, void* base, DistanceBlockFn distance_block) {
    const int64_t length = per_item(plan.lengths, b, plan.tokens);
    const int64_t count = std::min(per_item(plan.item_clusters, b, plan.clusters), length);
    const int64_t channels = plan.channels, stride = packed_stride(channels);
    Slot slot(layout, base);
    int64_t iterations = 0;
    if (count > 0) {
        for (int64_t i = 0; i < length; ++i) {
            const T* x = static_cast<const T*>(plan.x.data) + b * plan.x.strides[0] + i * plan.x.strides[1];
            float* out = slot.rows + i * stride;
            for (int64_t c = 0; c < channels; ++c) out[c] = to_float(x[c]);
            std::fill(out + channels, out + stride, 0.0f);
        }
        Item item(slot, length, count, channels, distance_block);
        if (plan.init == TK_KMEANS_INIT_GIVEN) {
            for (int64_t k = 0; k < count; ++k) {
                const float* given = static_cast<const float*>(plan.initial_centres.data) + b * plan.initial_centres.strides[0] +
                                     k * plan.initial_centres.strides[1];
                float* out = item.centre(k);
                for (int64_t c = 0; c < channels; ++c) out[c] = given[c * plan.initial_centres.strides[2]];
                std::fill(out + channels, out + stride, 0.0f);
            }
        } else {
            item.seed_plus_plus(plan.seed, static_cast<uint64_t>(b));
        }
        iterations = item.lloyd(plan.max_iterations, item.scaled_tolerance(plan.tolerance));
        slot = item.slot();
    }
    // Outputs: centres and sizes past count zero, labels past length -1.
    std::fill(slot.counts, slot.counts + count, int64_t{0});
    for (int64_t i = 0; i < length && count > 0; ++i) ++slot.counts[slot.labels[i]];
    float* centres = static_cast<float*>(plan.centres.data) + b * plan.centres.strides[0];
    for (int64_t k = 0; k < plan.clusters; ++k)
        for (int64_t c = 0; c < channels; ++c)
            centres[k * plan.centres.strides[1] + c * plan.centres.strides[2]] = k < count ? slot.centres[k * stride + c] : 0.0f;
    int32_t* assignment = static_cast<int32_t*>(plan.assignment.data) + b * plan.assignment.strides[0];
    for (int64_t i = 0; i < plan.tokens; ++i)
        assignment[i * plan.assignment.strides[1]] = (i < length && count > 0) ? slot.labels[i] : -1;
    if (plan.sizes.data != nullptr) {
        float* sizes = static_cast<float*>(plan.sizes.data) + b * plan.sizes.strides[0];
        for (int64_t k = 0; k < plan.clusters; ++k)
            sizes[k * plan.sizes.strides[1]] = k < count ? static_cast<float>(slot.counts[k]) : 0.0f;
    }
    if (plan.iterations.data != nullptr)
        *(static_cast<int32_t*>(plan.iterations.data) + b * plan.iterations.strides[0]) = static_cast<int32_t>(iterations);
}

}  // namespace

uint64_t kmeans_workspace_bytes(const KMeansPlan& plan, int64_t threads) {
    const int64_t slots = std::min<int64_t>(std::max<int64_t>(threads, 1), plan.batch);
    if (slots <= 0) return 0;
    return static_cast<uint64_t>(slots) * slot_layout(plan).bytes + kWorkspaceAlignment - 1;
}

void kmeans(const KMeansPlan& plan, void* workspace, uint64_t workspace_bytes) {
    const SlotLayout layout = slot_layout(plan);
    int64_t slots = std::min<int64_t>(num_threads(), plan.batch);
    std::unique_ptr<unsigned char[]> owned;
    void* base;
    if (workspace != nullptr) {
        base = aligned_start(workspace);
        const uint64_t skipped = static_cast<uint64_t>(static_cast<unsigned char*>(base) - static_cast<unsigned char*>(workspace));
        slots = std::min<int64_t>(slots, static_cast<int64_t>((workspace_bytes - skipped) / layout.bytes));
    } else {
        owned.reset(new unsigned char[static_cast<size_t>(slots) * layout.bytes + kWorkspaceAlignment - 1]);
        base = aligned_start(owned.get());
    }
    slots = std::max<int64_t>(slots, 1);
    const DistanceBlockFn distance_block = best_distance_block(true);
    dispatch_float(plan.x.dtype, [&](auto tag) {
        using T = storage_t<decltype(tag)>;
        std::atomic<int64_t> next{0};
        parallel_team(slots, [&](const Team& team) {
            void* slot_base = static_cast<unsigned char*>(base) + static_cast<uint64_t>(team.thread) * layout.bytes;
            for (int64_t b = next.fetch_add(1); b < plan.batch; b = next.fetch_add(1))
                cluster_item<T>(plan, b, layout, slot_base, distance_block);
        });
    });
}

}  // namespace tk::cpu
