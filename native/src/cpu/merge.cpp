// CPU backend of bipartite token merging (ToMe family). Matching normalises the metric rows once
// into packed float32 panels and runs a blocked GEMM (cpu/merge_microkernel.hpp) whose epilogue
// keeps each source's running best destination, so the (N/2) x (N/2) score matrix never exists.
// Merging then decides per item which sources merge and where every token goes, and writes each
// output row from its own list of contributors, so rows are independent and the float32 sums run in
// a fixed order (the destination's own term, then its sources by increasing position).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <numeric>
#include <utility>
#include <vector>

#include "core/dispatch.hpp"
#include "core/parallel.hpp"
#include "core/regions.hpp"
#include "cpu/float16.hpp"
#include "cpu/merge_microkernel.hpp"
#include "ops/lane_sum.hpp"
#include "ops/merge.hpp"
#include "ops/pool.hpp"

namespace tk::cpu {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

template <class T>
T* row_at(const TokenRows& t, int64_t b, int64_t i) {
    return static_cast<T*>(t.data) + b * t.batch_stride + i * t.token_stride;
}

// Cache-line aligned, uninitialised floats: the micro-kernel's vector loads of packed panels and
// score rows then never straddle two cache lines, and nothing is zeroed that is written anyway.
struct AlignedDelete {
    void operator()(float* p) const noexcept { ::operator delete(p, std::align_val_t{64}); }
};
using AlignedFloats = std::unique_ptr<float[], AlignedDelete>;

AlignedFloats allocate_floats(int64_t count) {
    return AlignedFloats(static_cast<float*>(::operator new(static_cast<size_t>(count) * sizeof(float), std::align_val_t{64})));
}

// Channels per block of the blocked GEMM: a kc x nr destination panel (32 KiB for AVX-512) stays in
// L1 while source panels stream past it.
constexpr int64_t kChannelBlock = 256;

// The normalised metric of a wave of items, sources and destinations packed for the micro-kernel. Per
// item, block after block of kChannelBlock channels, the sources are [ceil(Ns / mr)][kc][mr] and the
// destinations [ceil(Nd / nr)][kc][nr], so every micro-kernel call and every run of calls over
// consecutive panels reads contiguous memory. Zero padding past Ns and Nd lets the kernel's tails
// read initialised memory; the padded scores are never looked at.
struct PackedMetric {
    int64_t source_rows;       // Ns rounded up to mr
    int64_t destination_cols;  // Nd rounded up to nr
    AlignedFloats sources;
    AlignedFloats destinations;
    std::vector<uint8_t> source_has_nan;  // [B, Ns]
};

// In the lane order of ops/lane_sum.hpp: it vectorises as written (one float accumulator would be a
// serial chain the compiler may not reorder), and every CPU and thread count gives the same sum.
template <class T>
float sum_of_squares(const T* row, int64_t channels) {
    return lane_sum(channels, [&](int64_t c) {
        const float v = to_float(row[c]);
        return v * v;
    });
}

// Packs items [first_item, first_item + items) into slots 0, 1, ... of `packed`. One task per item
// and panel: the panel's rows are read once for their norms and once to write the panel, whose
// kc x lanes blocks stay in L1 while they fill.
template <class T>
void normalise_and_pack(const MergePlan& plan, const MicroKernel& kernel, int64_t first_item, int64_t items,
                        PackedMetric& packed) {
    const int64_t channels = plan.metric_channels;
    const int64_t sources = merge_source_count(plan.tokens);
    const int64_t destinations = merge_destination_count(plan.tokens);
    const int64_t source_panels = packed.source_rows / kernel.mr;
    const int64_t panels_per_item = source_panels + packed.destination_cols / kernel.nr;
    const int64_t elements_per_panel = (kernel.mr + kernel.nr) / 2 * channels;
    parallel_for(items * panels_per_item, min_tasks_per_chunk(elements_per_panel), [&](int64_t begin, int64_t end) {
        for (int64_t task = begin; task < end; ++task) {
            const int64_t slot = task / panels_per_item;
            const int64_t b = first_item + slot;
            const int64_t panel = task % panels_per_item;
            const bool is_source = panel < source_panels;
            const int64_t lanes = is_source ? kernel.mr : kernel.nr;
            const int64_t padded_count = is_source ? packed.source_rows : packed.destination_cols;
            const int64_t first = (is_source ? panel : panel - source_panels) * lanes;  // source or destination index
            const int64_t valid = std::min(lanes, (is_source ? sources : destinations) - first);
            float* item = (is_source ? packed.sources.get() : packed.destinations.get()) + slot * padded_count * channels;
            // Lane `lane` of channel c in block k0 lives at block_base(k0) + c * lanes + lane.
            auto block_base = [&](int64_t k0) { return item + k0 * padded_count + first * std::min(kChannelBlock, channels - k0); };
            for (int64_t lane = valid; lane < lanes; ++lane) {  // zero padding past the last token
                for (int64_t k0 = 0; k0 < channels; k0 += kChannelBlock) {
                    const int64_t kc = std::min(kChannelBlock, channels - k0);
                    float* out = block_base(k0) + lane;
                    for (int64_t c = 0; c < kc; ++c) out[c * lanes] = 0.0f;
                }
            }
            for (int64_t lane = 0; lane < valid; ++lane) {
                const int64_t n = first + lane;
                const T* row = row_at<const T>(plan.metric, b, is_source ? 2 * n : 2 * n + 1);
                const float sum_squares = sum_of_squares(row, channels);
                // Divided, not multiplied by a reciprocal: rows that are positive multiples of one
                // another then normalise to the same vector more often, and tie as they should.
                const float norm = std::max(std::sqrt(sum_squares), kCosineEps);
                for (int64_t k0 = 0; k0 < channels; k0 += kChannelBlock) {
                    const int64_t kc = std::min(kChannelBlock, channels - k0);
                    float* out = block_base(k0) + lane;
                    for (int64_t c = 0; c < kc; ++c) out[c * lanes] = to_float(row[k0 + c]) / norm;
                }
                // A normalised value is NaN only if the row holds a NaN (then so is the sum) or an
                // Inf (then the sum is Inf too, and Inf / Inf is NaN), so finite sums need no scan.
                bool has_nan = false;
                if (is_source && !std::isfinite(sum_squares)) {
                    for (int64_t c = 0; c < channels; ++c) has_nan |= is_nan(to_float(row[c]) / norm);
                }
                if (is_source) packed.source_has_nan[static_cast<size_t>(b * sources + n)] = has_nan ? 1 : 0;
            }
        }
    });
}

// For every source s of every item: its best destination index d (token 2d + 1) and score.
struct Matches {
    std::vector<float> best;              // [B, Ns]
    std::vector<int32_t> destination;     // [B, Ns]
};

Matches match(const MergePlan& plan) {
    const MicroKernel& kernel = best_micro_kernel();
    const int64_t channels = plan.metric_channels;
    const int64_t sources = merge_source_count(plan.tokens);
    const int64_t destinations = merge_destination_count(plan.tokens);
    const int64_t first_candidate = plan.protect_second ? 1 : 0;
    const bool any_candidate = destinations > first_candidate;

    Matches m;
    m.best.assign(static_cast<size_t>(plan.batch * sources), kNegInf);
    // A source without a better candidate keeps the lowest candidate (position 1 when there is none).
    m.destination.assign(static_cast<size_t>(plan.batch * sources), static_cast<int32_t>(any_candidate ? first_candidate : 0));
    if (!any_candidate) return m;

    // Items are packed and matched a wave at a time: the packed copy is still in cache when the GEMM
    // reads it, and one allocation of a few MiB serves every wave instead of B items' worth of fresh
    // pages per call.
    constexpr int64_t kWaveBytes = int64_t{8} << 20;
    PackedMetric packed;
    packed.source_rows = round_up(sources, kernel.mr);
    packed.destination_cols = round_up(destinations, kernel.nr);
    const int64_t item_bytes = (packed.source_rows + packed.destination_cols) * channels * static_cast<int64_t>(sizeof(float));
    const int64_t threads = num_threads();
    const int64_t wave = std::min(plan.batch, std::max(threads, kWaveBytes / std::max<int64_t>(item_bytes, 1)));
    packed.sources = allocate_floats(wave * packed.source_rows * channels);
    packed.destinations = allocate_floats(wave * packed.destination_cols * channels);
    packed.source_has_nan.assign(static_cast<size_t>(plan.batch * sources), 0);

    // Cache blocking (Goto): a kc x nr destination panel stays in L1 while the mc x kc source block
    // streams from L2; the mc x nc score tile is the only place scores are ever stored.
    const int64_t col_block = round_up(std::min<int64_t>(256, packed.destination_cols), kernel.nr);
    // Source blocks of at most 144 rows, as even as mr allows (no nearly empty last block), and for
    // small waves enough of them that every thread gets a few.
    int64_t blocks_per_item = std::max<int64_t>((sources + 143) / 144, (4 * threads + wave - 1) / wave);
    blocks_per_item = std::min(blocks_per_item, (sources + kernel.mr - 1) / kernel.mr);
    const int64_t row_block = round_up((sources + blocks_per_item - 1) / blocks_per_item, kernel.mr);
    blocks_per_item = (sources + row_block - 1) / row_block;

    for (int64_t first_item = 0; first_item < plan.batch; first_item += wave) {
        const int64_t items = std::min(wave, plan.batch - first_item);
        dispatch_float(plan.metric.dtype, [&](auto tag) {
            normalise_and_pack<storage_t<decltype(tag)>>(plan, kernel, first_item, items, packed);
        });
        // Tiny matches (a few tokens) stay on one thread: waking a team would cost more than the work.
        parallel_for(items * blocks_per_item, min_tasks_per_chunk(row_block * destinations * plan.metric_channels),
                     [&](int64_t begin, int64_t end) {
            const AlignedFloats scores = allocate_floats(row_block * col_block);
            for (int64_t task = begin; task < end; ++task) {
                const int64_t slot = task / blocks_per_item;
                const int64_t b = first_item + slot;
                const int64_t s0 = task % blocks_per_item * row_block;
                const int64_t rows = std::min(row_block, sources - s0);
                const int64_t padded_rows = round_up(rows, kernel.mr);
                const float* item_sources = packed.sources.get() + slot * packed.source_rows * channels;
                const float* item_destinations = packed.destinations.get() + slot * packed.destination_cols * channels;
                float* best = m.best.data() + b * sources + s0;
                int32_t* destination = m.destination.data() + b * sources + s0;
                for (int64_t d0 = 0; d0 < destinations; d0 += col_block) {
                    const int64_t cols = std::min(col_block, destinations - d0);
                    const int64_t padded_cols = round_up(cols, kernel.nr);
                    // k0 == 0 runs even with Cm = 0, so the tile is always written (zeros then).
                    for (int64_t k0 = 0; k0 == 0 || k0 < channels; k0 += kChannelBlock) {
                        const int64_t kc = std::min(kChannelBlock, channels - k0);
                        for (int64_t j = 0; j < padded_cols; j += kernel.nr) {
                            const float* b_panel = item_destinations + k0 * packed.destination_cols + (d0 + j) * kc;
                            for (int64_t i = 0; i < padded_rows; i += kernel.mr) {
                                const float* a_panel = item_sources + k0 * packed.source_rows + (s0 + i) * kc;
                                kernel.fn(kc, a_panel, b_panel, scores.get() + i * col_block + j, col_block, k0 > 0);
                            }
                        }
                    }
                    // Running argmax in increasing destination order with a strict `>`: the lower
                    // destination wins ties, within and across tiles, and a NaN score never wins.
                    const int64_t first_col = std::max<int64_t>(first_candidate - d0, 0);
                    for (int64_t i = 0; i < rows; ++i)
                        kernel.row_argmax(scores.get() + i * col_block, first_col, cols, d0, &best[i], &destination[i]);
                }
            }
        });
    }

    for (int64_t b = 0; b < plan.batch; ++b) {
        for (int64_t s = 0; s < sources; ++s) {
            const size_t index = static_cast<size_t>(b * sources + s);
            if (packed.source_has_nan[index]) {
                m.best[index] = std::numeric_limits<float>::quiet_NaN();
                m.destination[index] = static_cast<int32_t>(first_candidate);
            }
        }
        if (plan.protect_first) {
            m.best[static_cast<size_t>(b * sources)] = kNegInf;
            m.destination[static_cast<size_t>(b * sources)] = static_cast<int32_t>(first_candidate);
        }
    }
    return m;
}

// Where every token of every item goes, decided before any feature is touched.
struct Routing {
    std::vector<int32_t> token_of_row;      // [B, N']: input token written to each output row, -1 for padding
    std::vector<int32_t> merged_begin;      // [B, Nd + 1]: CSR offsets into merged_sources per destination
    std::vector<int32_t> merged_sources;    // [B, Ns]: source indices, increasing within each destination
};

// Ranking of sources for selection: higher best first, NaN below -inf, the protected source 0 below
// everything (so it never merges, whatever NaNs there are), ties to the lower position.
struct SourceRank {
    int rank_class;  // 0: a number, 1: NaN, 2: protected
    float best;
};

// Per-thread buffers of route_item, reused across items.
struct RoutingScratch {
    std::vector<int32_t> order;         // sources, best first
    std::vector<uint8_t> merged;        // per source
    std::vector<int32_t> row_of_token;  // the source map of the item
    std::vector<int32_t> unmerged;      // unmerged sources in ToMe order
    std::vector<int32_t> next_slot;     // per destination, while filling merged_sources
};

void route_item(const MergePlan& plan, const Matches& m, int64_t b, Routing& routing, RoutingScratch& scratch) {
    std::vector<int32_t>& order = scratch.order;
    std::vector<uint8_t>& merged = scratch.merged;
    std::vector<int32_t>& row_of_token = scratch.row_of_token;
    std::vector<int32_t>& unmerged = scratch.unmerged;
    const int64_t tokens = plan.tokens;
    const int64_t sources = merge_source_count(tokens);
    const int64_t destinations = merge_destination_count(tokens);
    const float* best = m.best.data() + b * sources;
    const int32_t* destination = m.destination.data() + b * sources;

    auto rank_of = [&](int32_t s) {
        if (s == 0 && plan.protect_first) return SourceRank{2, 0.0f};
        return is_nan(best[s]) ? SourceRank{1, 0.0f} : SourceRank{0, best[s]};
    };
    order.resize(static_cast<size_t>(sources));
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int32_t x, int32_t y) {
        const SourceRank rx = rank_of(x), ry = rank_of(y);
        if (rx.rank_class != ry.rank_class) return rx.rank_class < ry.rank_class;
        if (rx.best != ry.best) return rx.best > ry.best;
        return x < y;
    });
    int64_t merge_count = plan.r;
    if (plan.use_threshold) {
        merge_count = 0;
        while (merge_count < plan.r && best[order[static_cast<size_t>(merge_count)]] > plan.threshold) ++merge_count;
    }
    merged.assign(static_cast<size_t>(sources), 0);
    for (int64_t k = 0; k < merge_count; ++k) merged[static_cast<size_t>(order[static_cast<size_t>(k)])] = 1;

    int32_t* token_of_row = routing.token_of_row.data() + b * plan.output_tokens;
    row_of_token.assign(static_cast<size_t>(tokens), -1);
    int32_t next_row = 0;
    auto emit = [&](int64_t token) {
        row_of_token[static_cast<size_t>(token)] = next_row;
        token_of_row[next_row++] = static_cast<int32_t>(token);
    };
    if (plan.order == TK_MERGE_ORDER_POSITIONAL) {
        for (int64_t t = 0; t < tokens; ++t)
            if (t % 2 == 1 || !merged[static_cast<size_t>(t / 2)]) emit(t);
    } else {
        // ToMe: unmerged sources by descending best (original order with protect_first), then the
        // destinations; protect_second interleaves them as [unm[0], dst[0], unm[1:], dst[1:]].
        unmerged.clear();
        if (plan.protect_first) {
            for (int32_t s = 0; s < sources; ++s)
                if (!merged[static_cast<size_t>(s)]) unmerged.push_back(s);
        } else {
            unmerged.assign(order.begin() + merge_count, order.end());
        }
        const size_t leading = plan.protect_second ? 1 : 0;
        const size_t unmerged_head = std::min(leading, unmerged.size());
        const int64_t destination_head = std::min<int64_t>(static_cast<int64_t>(leading), destinations);
        for (size_t k = 0; k < unmerged_head; ++k) emit(2 * int64_t{unmerged[k]});
        for (int64_t d = 0; d < destination_head; ++d) emit(2 * d + 1);
        for (size_t k = unmerged_head; k < unmerged.size(); ++k) emit(2 * int64_t{unmerged[k]});
        for (int64_t d = destination_head; d < destinations; ++d) emit(2 * d + 1);
    }
    for (int64_t row = next_row; row < plan.output_tokens; ++row) token_of_row[row] = -1;

    int32_t* merged_begin = routing.merged_begin.data() + b * (destinations + 1);
    int32_t* merged_sources = routing.merged_sources.data() + b * sources;
    std::fill(merged_begin, merged_begin + destinations + 1, 0);
    for (int64_t s = 0; s < sources; ++s)
        if (merged[static_cast<size_t>(s)]) ++merged_begin[destination[s] + 1];
    for (int64_t d = 0; d < destinations; ++d) merged_begin[d + 1] += merged_begin[d];
    // Filling in increasing s keeps each destination's list in increasing source position.
    std::vector<int32_t>& next_slot = scratch.next_slot;
    next_slot.assign(merged_begin, merged_begin + destinations);
    for (int32_t s = 0; s < sources; ++s) {
        if (!merged[static_cast<size_t>(s)]) continue;
        merged_sources[next_slot[static_cast<size_t>(destination[s])]++] = s;
        row_of_token[static_cast<size_t>(2 * s)] = row_of_token[static_cast<size_t>(2 * destination[s] + 1)];
    }

    if (plan.source_map.data != nullptr) {
        for (int64_t t = 0; t < tokens; ++t) *row_at<int32_t>(plan.source_map, b, t) = row_of_token[static_cast<size_t>(t)];
    }
    if (plan.merge_count.data != nullptr) *row_at<int32_t>(plan.merge_count, b, 0) = static_cast<int32_t>(merge_count);
}

template <class T>
void write_rows(const MergePlan& plan, const Routing& routing) {
    const int64_t channels = plan.channels;
    const int64_t sources = merge_source_count(plan.tokens);
    const int64_t destinations = merge_destination_count(plan.tokens);
    const bool has_size = plan.size.data != nullptr;
    auto size_of = [&](int64_t b, int64_t token) { return has_size ? *row_at<const float>(plan.size, b, token) : 1.0f; };

    // A token with nothing merged into it (an unmerged source, a destination that took no source, or
    // any destination under DROP) is copied bit for bit, size included.
    auto merged_range = [&](int64_t b, int64_t token) {
        if (token % 2 == 0 || plan.mode == TK_MERGE_DROP) return std::pair<int32_t, int32_t>{0, 0};
        const int32_t* merged_begin = routing.merged_begin.data() + b * (destinations + 1) + (token - 1) / 2;
        return std::pair<int32_t, int32_t>{merged_begin[0], merged_begin[1]};
    };
    parallel_for(plan.batch * plan.output_tokens, min_tasks_per_chunk(channels), [&](int64_t begin, int64_t end) {
        std::vector<float> acc(static_cast<size_t>(channels));
        float* a = acc.data();
        for (int64_t index = begin; index < end; ++index) {
            const int64_t b = index / plan.output_tokens;
            const int64_t row = index % plan.output_tokens;
            const int32_t token = routing.token_of_row[static_cast<size_t>(index)];
            T* out = row_at<T>(plan.out, b, row);
            if (token < 0) {  // threshold-mode padding
                std::fill(out, out + channels, from_float<T>(0.0f));
                if (plan.out_size.data != nullptr) *row_at<float>(plan.out_size, b, row) = 0.0f;
                continue;
            }
            const auto [first_merged, end_merged] = merged_range(b, token);
            const T* x_d = row_at<const T>(plan.x, b, token);
            float out_size = size_of(b, token);
            if (first_merged == end_merged) {
                std::memcpy(out, x_d, static_cast<size_t>(channels) * sizeof(T));
            } else {
                const int32_t* merged = routing.merged_sources.data() + b * sources;
                if (plan.mode == TK_MERGE_WEIGHTED_MEAN) {
                    for (int64_t c = 0; c < channels; ++c) a[c] = out_size * to_float(x_d[c]);
                } else {
                    for (int64_t c = 0; c < channels; ++c) a[c] = to_float(x_d[c]);
                }
                for (int32_t k = first_merged; k < end_merged; ++k) {
                    const int64_t source_token = 2 * int64_t{merged[k]};
                    const T* x_a = row_at<const T>(plan.x, b, source_token);
                    const float size_a = size_of(b, source_token);
                    out_size += size_a;
                    switch (plan.mode) {
                        case TK_MERGE_WEIGHTED_MEAN:
                            for (int64_t c = 0; c < channels; ++c) a[c] += size_a * to_float(x_a[c]);
                            break;
                        case TK_MERGE_AMAX:
                            for (int64_t c = 0; c < channels; ++c) a[c] = max_propagate_nan(a[c], to_float(x_a[c]));
                            break;
                        default:  // MEAN, SUM
                            for (int64_t c = 0; c < channels; ++c) a[c] += to_float(x_a[c]);
                            break;
                    }
                }
                if (plan.mode == TK_MERGE_WEIGHTED_MEAN) {
                    for (int64_t c = 0; c < channels; ++c) a[c] /= out_size;
                } else if (plan.mode == TK_MERGE_MEAN) {
                    const float count = static_cast<float>(1 + end_merged - first_merged);
                    for (int64_t c = 0; c < channels; ++c) a[c] /= count;
                }
                for (int64_t c = 0; c < channels; ++c) out[c] = from_float<T>(a[c]);
            }
            if (plan.out_size.data != nullptr) *row_at<float>(plan.out_size, b, row) = out_size;
        }
    });
}

}  // namespace

void merge_match(const MergePlan& plan) {
    const int64_t sources = merge_source_count(plan.tokens);
    const Matches m = match(plan);
    for (int64_t b = 0; b < plan.batch; ++b)
        for (int64_t s = 0; s < sources; ++s) {
            const size_t index = static_cast<size_t>(b * sources + s);
            *row_at<int32_t>(plan.match_dst, b, s) = 2 * m.destination[index] + 1;
            *row_at<float>(plan.match_best, b, s) = m.best[index];
        }
}

void merge(const MergePlan& plan) {
    const int64_t sources = merge_source_count(plan.tokens);
    const int64_t destinations = merge_destination_count(plan.tokens);
    const Matches m = match(plan);

    Routing routing;
    routing.token_of_row.resize(static_cast<size_t>(plan.batch * plan.output_tokens));
    routing.merged_begin.resize(static_cast<size_t>(plan.batch * (destinations + 1)));
    routing.merged_sources.resize(static_cast<size_t>(plan.batch * sources));
    parallel_for(plan.batch, min_tasks_per_chunk(plan.tokens * 16), [&](int64_t begin, int64_t end) {
        RoutingScratch scratch;
        for (int64_t b = begin; b < end; ++b) route_item(plan, m, b, routing, scratch);
    });
    dispatch_float(plan.x.dtype, [&](auto tag) { write_rows<storage_t<decltype(tag)>>(plan, routing); });
}

void unmerge(const UnmergePlan& plan) {
    dispatch_float(plan.y.dtype, [&](auto tag) {
        using T = storage_t<decltype(tag)>;
        const size_t row_bytes = static_cast<size_t>(plan.channels) * sizeof(T);
        parallel_for(plan.batch * plan.tokens, min_tasks_per_chunk(plan.channels), [&](int64_t begin, int64_t end) {
            for (int64_t index = begin; index < end; ++index) {
                const int64_t b = index / plan.tokens;
                const int64_t i = index % plan.tokens;
                const int64_t source_row = plan.source_map.dtype == TK_DTYPE_I32 ? *row_at<const int32_t>(plan.source_map, b, i)
                                                                                 : *row_at<const int64_t>(plan.source_map, b, i);
                std::memcpy(row_at<T>(plan.out, b, i), row_at<const T>(plan.y, b, source_row), row_bytes);
            }
        });
    });
}

}  // namespace tk::cpu
