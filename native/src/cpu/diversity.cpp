// CPU backend of diversity selection (SPEC section 4). Per item, the tokens are converted once into a
// packed float32 copy (unit rows for the cosine distance, the values for L2); every distance of the
// greedy loop is then one fixed-order float32 reduction over a row of that copy, whichever thread or
// block computes it, so the selection does not depend on the thread count.
//
// The most isolated first center needs each token's nearest other token: an all-pairs problem, run
// as a blocked GEMM on the register-blocked micro-kernels of token merging
// (cpu/merge_microkernel.hpp) with a running row minimum, never an N x N matrix. It is exact but
// lazy: the best nearest-neighbour distance of the rows finished so far, D*, is shared, and a row
// stops as soon as its running minimum ranks below D* (it can no longer win). The winner is never
// stopped, and finished rows hold exact minima, so the result is the plain argmax, whatever the
// timing between threads.
//
// The greedy loop keeps a running score per token (the min or the sum of its distances to the
// chosen tokens) and updates it with the newest center only. Max-min is evaluated lazily: a token's
// score only falls as centers are added, so a stale score is an upper bound, and a max-heap of stale
// scores refreshes only the tokens that could still be the argmax, a batch at a time against the
// centers they have not seen (each center row read once per batch). Max-sum scores grow, so they are
// updated eagerly, in parallel blocks of tokens whose winners are combined in block order.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <vector>

#include "core/dispatch.hpp"
#include "core/parallel.hpp"
#include "cpu/float16.hpp"
#include "cpu/merge_microkernel.hpp"
#include "ops/diversity.hpp"
#include "ops/merge.hpp"
#include "ops/pool.hpp"

namespace tk::cpu {

namespace {

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();

template <class T>
const T* token_row(const StridedTensor& x, int64_t b, int64_t i) {
    return static_cast<const T*>(x.data) + b * x.strides[0] + i * x.strides[1];
}

int32_t* index_at(const StridedTensor& t, int64_t b, int64_t i) {
    return static_cast<int32_t*>(t.data) + b * t.strides[0] + i * t.strides[1];
}

int64_t round_up(int64_t n, int64_t multiple) { return (n + multiple - 1) / multiple * multiple; }

// Enough elements of work per chunk that a thread is worth waking.
int64_t min_tasks_per_chunk(int64_t elements_per_task) {
    constexpr int64_t kMinElementsPerChunk = 1 << 15;
    return elements_per_task >= kMinElementsPerChunk ? 1 : kMinElementsPerChunk / std::max<int64_t>(elements_per_task, 1);
}

// The contract's order of scores: a number above NaN, a larger number above a smaller, and the
// lower token on ties (NaN against NaN included).
bool ranks_above(float a, int64_t token_a, float b, int64_t token_b) {
    const bool nan_a = is_nan(a), nan_b = is_nan(b);
    if (nan_a != nan_b) return nan_b;
    if (!nan_a && a != b) return a > b;
    return token_a < token_b;
}

// min(score, d) where a NaN distance never lowers a minimum (fmin): a score starts as NaN (no
// distance yet) and stays NaN only while every distance is.
float min_ignoring_nan(float score, float d) { return (d < score || is_nan(score)) ? d : score; }

// Cache-line aligned, uninitialised floats, as the micro-kernel's panels want them.
struct AlignedDelete {
    void operator()(float* p) const noexcept { ::operator delete(p, std::align_val_t{64}); }
};
using AlignedFloats = std::unique_ptr<float[], AlignedDelete>;

AlignedFloats allocate_floats(int64_t count) {
    return AlignedFloats(static_cast<float*>(::operator new(static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(float),
                                                            std::align_val_t{64})));
}

// Runs body(begin, end) over [0, n): split across threads, or in one call where the caller already
// runs items in parallel.
template <class Body>
void for_range(bool parallel, int64_t n, int64_t min_chunk, Body&& body) {
    if (parallel) {
        parallel_for(n, min_chunk, body);
    } else if (n > 0) {
        body(int64_t{0}, n);
    }
}

// ---- Distances between rows of the packed copy ----------------------------------------------------

// In 64 interleaved partial sums combined in a fixed order: the loop vectorises as written (four
// independent AVX-512 accumulators, so it is not bound by the latency of one add chain), and the value
// depends on the two rows alone.
template <bool kL2>
inline float row_distance(const float* a, const float* b, int64_t channels) {
    constexpr int64_t kLanes = 64;
    float partial[kLanes] = {};
    int64_t c = 0;
    for (; c + kLanes <= channels; c += kLanes)
        for (int64_t l = 0; l < kLanes; ++l) {
            if constexpr (kL2) {
                const float diff = a[c + l] - b[c + l];
                partial[l] += diff * diff;
            } else {
                partial[l] += a[c + l] * b[c + l];
            }
        }
    for (int64_t l = 0; c + l < channels; ++l) {
        if constexpr (kL2) {
            const float diff = a[c + l] - b[c + l];
            partial[l] += diff * diff;
        } else {
            partial[l] += a[c + l] * b[c + l];
        }
    }
    // Halving, so the wide steps are vector adds instead of a chain of 64 scalar ones.
    for (int64_t width = kLanes / 2; width >= 1; width /= 2)
        for (int64_t l = 0; l < width; ++l) partial[l] += partial[l + width];
    return kL2 ? partial[0] : 1.0f - partial[0];
}

// The squared length of a row, in the same 16 partial sums.
float sum_of_squares(const float* row, int64_t channels) {
    constexpr int64_t kLanes = 16;
    float partial[kLanes] = {};
    int64_t c = 0;
    for (; c + kLanes <= channels; c += kLanes)
        for (int64_t l = 0; l < kLanes; ++l) partial[l] += row[c + l] * row[c + l];
    for (int64_t l = 0; c + l < channels; ++l) partial[l] += row[c + l] * row[c + l];
    float sum = 0.0f;
    for (float p : partial) sum += p;
    return sum;
}

// out[i] = d(rows[i], center) for i in [begin, end), rows `stride` floats apart.
using DistancesFn = void (*)(const float* rows, int64_t stride, int64_t begin, int64_t end, const float* center,
                             int64_t channels, float* out);

template <bool kL2>
inline void distances_portable(const float* rows, int64_t stride, int64_t begin, int64_t end, const float* center,
                               int64_t channels, float* out) {
    for (int64_t i = begin; i < end; ++i) out[i] = row_distance<kL2>(rows + i * stride, center, channels);
}

#if defined(TK_MERGE_X86_KERNELS)
// The same code compiled for wider vectors, chosen at run time as the micro-kernels are.
template <bool kL2>
__attribute__((target("avx512f"), flatten)) void distances_avx512(const float* rows, int64_t stride, int64_t begin,
                                                                   int64_t end, const float* center, int64_t channels,
                                                                   float* out) {
    distances_portable<kL2>(rows, stride, begin, end, center, channels, out);
}
template <bool kL2>
__attribute__((target("avx2"), flatten)) void distances_avx2(const float* rows, int64_t stride, int64_t begin, int64_t end,
                                                              const float* center, int64_t channels, float* out) {
    distances_portable<kL2>(rows, stride, begin, end, center, channels, out);
}
#endif

// The widest variant this CPU runs, chosen once.
DistancesFn best_distances(bool l2) {
    struct Pair {
        DistancesFn cosine;
        DistancesFn l2;
    };
    static const Pair best = [] {
#if defined(TK_MERGE_X86_KERNELS)
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f")) return Pair{distances_avx512<false>, distances_avx512<true>};
        if (__builtin_cpu_supports("avx2")) return Pair{distances_avx2<false>, distances_avx2<true>};
#endif
        return Pair{distances_portable<false>, distances_portable<true>};
    }();
    return l2 ? best.l2 : best.cosine;
}

// ---- Packed tokens ----------------------------------------------------------------------------------

// One item's tokens [0, L) as float32 rows of `stride` floats (C rounded up to 16 floats): unit
// vectors u = x / max(|x|, eps) for the cosine distance, the values themselves for L2.
struct PackedTokens {
    int64_t count = 0;
    int64_t channels = 0;
    int64_t stride = 0;
    AlignedFloats rows;
    std::vector<float> squared_norm;  // L2: sum of squares of each row, for the all-pairs GEMM
    const float* row(int64_t i) const { return rows.get() + i * stride; }
};

template <class T>
void pack_tokens(const DiversityPlan& plan, int64_t b, int64_t count, bool parallel, PackedTokens& packed) {
    const int64_t channels = plan.channels;
    packed.count = count;
    packed.channels = channels;
    packed.stride = round_up(std::max<int64_t>(channels, 1), 16);
    packed.rows = allocate_floats(count * packed.stride);
    const bool l2 = plan.distance == TK_DISTANCE_L2;
    packed.squared_norm.assign(static_cast<size_t>(l2 ? count : 0), 0.0f);
    for_range(parallel, count, min_tasks_per_chunk(channels), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
            const T* x = token_row<T>(plan.x, b, i);
            float* out = packed.rows.get() + i * packed.stride;
            for (int64_t c = 0; c < channels; ++c) out[c] = to_float(x[c]);
            std::fill(out + channels, out + packed.stride, 0.0f);
            const float sum_squares = sum_of_squares(out, channels);
            if (l2) {
                packed.squared_norm[static_cast<size_t>(i)] = sum_squares;
            } else {
                // Divided, not multiplied by a reciprocal, as the other cosine ops normalise.
                const float norm = std::max(std::sqrt(sum_squares), kCosineEps);
                for (int64_t c = 0; c < channels; ++c) out[c] /= norm;
            }
        }
    });
}

// ---- Most isolated first center ---------------------------------------------------------------------

// Channels per block of the GEMM: a kc x nr column panel stays in L1 while row panels stream past.
constexpr int64_t kChannelBlock = 256;

// The packed rows in the micro-kernel's panel layouts: block after block of kChannelBlock channels,
// row panels [ceil(L / mr)][kc][mr] and column panels [ceil(L / nr)][kc][nr], zero past L.
struct GemmPanels {
    int64_t padded_rows;
    int64_t padded_cols;
    AlignedFloats rows;
    AlignedFloats cols;
};

void pack_panel(const PackedTokens& tokens, int64_t first, int64_t lanes, int64_t padded, float* base) {
    const int64_t channels = tokens.channels;
    const int64_t valid = std::min(lanes, tokens.count - first);
    for (int64_t k0 = 0; k0 == 0 || k0 < channels; k0 += kChannelBlock) {
        const int64_t kc = std::min(kChannelBlock, channels - k0);
        float* block = base + k0 * padded + first * kc;
        // Channel-major, so the block is written in order while `valid` rows are read in step.
        for (int64_t c = 0; c < kc; ++c) {
            float* out = block + c * lanes;
            for (int64_t lane = 0; lane < valid; ++lane) out[lane] = tokens.row(first + lane)[k0 + c];
            for (int64_t lane = valid; lane < lanes; ++lane) out[lane] = 0.0f;
        }
    }
}

GemmPanels pack_panels(const PackedTokens& tokens, const MicroKernel& kernel, bool parallel) {
    GemmPanels p;
    p.padded_rows = round_up(tokens.count, kernel.mr);
    p.padded_cols = round_up(tokens.count, kernel.nr);
    p.rows = allocate_floats(p.padded_rows * tokens.channels);
    p.cols = allocate_floats(p.padded_cols * tokens.channels);
    const int64_t row_panels = p.padded_rows / kernel.mr;
    const int64_t panels = row_panels + p.padded_cols / kernel.nr;
    for_range(parallel, panels, min_tasks_per_chunk(kernel.nr * tokens.channels), [&](int64_t begin, int64_t end) {
        for (int64_t panel = begin; panel < end; ++panel) {
            if (panel < row_panels) {
                pack_panel(tokens, panel * kernel.mr, kernel.mr, p.padded_rows, p.rows.get());
            } else {
                pack_panel(tokens, (panel - row_panels) * kernel.nr, kernel.nr, p.padded_cols, p.cols.get());
            }
        }
    });
    return p;
}

// Float bits made monotone as unsigned integers (for numbers; NaN is kept out of them).
uint32_t monotone_bits(float v) {
    const uint32_t bits = float_to_bits(v);
    return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
}
float from_monotone_bits(uint32_t m) { return bits_to_float((m & 0x80000000u) != 0 ? m & 0x7fffffffu : ~m); }

// A row's (nearest-neighbour distance, token) as one integer that orders as the contract ranks
// them, so the best finished row is an atomic maximum: the distance's monotone bits, then the
// complement of the token (the lower token ranks higher on ties). NaN distances are never keyed.
uint64_t rank_key(float distance, int64_t token) {
    return (uint64_t{monotone_bits(distance)} << 32) | (0xffffffffu - static_cast<uint32_t>(token));
}

// No distance seen yet: above the monotone bits of every number, +inf included.
constexpr uint32_t kNoDistance = 0xffffffffu;

void atomic_min(std::atomic<uint32_t>& target, uint32_t value) {
    uint32_t seen = target.load(std::memory_order_relaxed);
    while (value < seen && !target.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
    }
}

void atomic_max(std::atomic<uint64_t>& target, uint64_t value) {
    uint64_t seen = target.load(std::memory_order_relaxed);
    while (value > seen && !target.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
    }
}

// Row blocks of up to four row panels run as tasks; each scans column tiles of two column panels,
// starting at its own position (neighbouring tokens are often nearest neighbours), and stops when
// all its rows are out. A row is out once the smallest distance known for it ranks below D*, the
// best finished row: its own running minimum, or any distance to it that another block computed
// (d is symmetric, and the micro-kernel gives d(i, j) and d(j, i) the same bits), kept per token as
// an atomic minimum. Every bound is a distance that the row's own scan would also see, so a row
// that finishes holds its exact minimum and the winner always finishes.
int64_t most_isolated(const PackedTokens& tokens, bool l2, bool parallel) {
    const int64_t count = tokens.count;
    if (count == 1) return 0;
    const MicroKernel& kernel = best_micro_kernel();
    const GemmPanels panels = pack_panels(tokens, kernel, parallel);
    const int64_t channels = tokens.channels;
    constexpr int64_t kMaxRowPanels = 4;
    const int64_t row_block = kMaxRowPanels * kernel.mr;
    constexpr int64_t kMaxColTile = 64;  // two panels of the widest micro-kernel (nr = 32)
    const int64_t col_tile = std::min(2 * kernel.nr, kMaxColTile);
    const int64_t row_blocks = (count + row_block - 1) / row_block;
    const int64_t col_tiles = (count + col_tile - 1) / col_tile;

    std::atomic<uint64_t> best_key{0};
    std::vector<std::atomic<uint32_t>> known(static_cast<size_t>(count));
    for (std::atomic<uint32_t>& k : known) k.store(kNoDistance, std::memory_order_relaxed);
    std::vector<float> nearest(static_cast<size_t>(count), kNan);
    std::vector<uint8_t> finished(static_cast<size_t>(count), 0);
    const float* norm = l2 ? tokens.squared_norm.data() : nullptr;
    auto distance_of = [&](int64_t i, int64_t j, float g) {
        if (!l2) return 1.0f - g;
        const float d = norm[i] + norm[j] - 2.0f * g;
        return d < 0.0f ? 0.0f : d;  // cancellation; a squared distance is never negative
    };

    for_range(parallel, row_blocks, 1, [&](int64_t begin, int64_t end) {
        const AlignedFloats scores = allocate_floats(row_block * col_tile);
        std::vector<float> partial(static_cast<size_t>(row_block));
        std::vector<uint8_t> alive(static_cast<size_t>(row_block));
        for (int64_t block = begin; block < end; ++block) {
            const int64_t i0 = block * row_block;
            const int64_t rows = std::min(row_block, count - i0);
            const int64_t row_panels = (rows + kernel.mr - 1) / kernel.mr;
            std::fill(partial.begin(), partial.end(), kNan);
            std::fill(alive.begin(), alive.end(), 1);
            // Marks rows out against D*; returns how many remain.
            auto prune = [&] {
                const uint64_t bar = best_key.load(std::memory_order_relaxed);
                int64_t remaining = 0;
                for (int64_t r = 0; r < rows; ++r) {
                    if (!alive[static_cast<size_t>(r)]) continue;
                    const uint32_t other = known[static_cast<size_t>(i0 + r)].load(std::memory_order_relaxed);
                    float m = partial[static_cast<size_t>(r)];
                    if (other != kNoDistance) m = min_ignoring_nan(m, from_monotone_bits(other));
                    if (!is_nan(m) && rank_key(m, i0 + r) < bar) {
                        alive[static_cast<size_t>(r)] = 0;
                    } else {
                        ++remaining;
                    }
                }
                return remaining;
            };
            const int64_t first_tile = i0 / col_tile;
            for (int64_t t = 0; t < col_tiles && prune() > 0; ++t) {
                const int64_t j0 = (first_tile + t) % col_tiles * col_tile;
                const int64_t cols = std::min(col_tile, count - j0);
                const int64_t padded_cols = round_up(cols, kernel.nr);
                bool panel_alive[kMaxRowPanels] = {};
                for (int64_t r = 0; r < rows; ++r) panel_alive[r / kernel.mr] |= alive[static_cast<size_t>(r)] != 0;
                // k0 == 0 runs even with C = 0, so the tile is always written (zeros then).
                for (int64_t k0 = 0; k0 == 0 || k0 < channels; k0 += kChannelBlock) {
                    const int64_t kc = std::min(kChannelBlock, channels - k0);
                    for (int64_t j = 0; j < padded_cols; j += kernel.nr) {
                        const float* b_panel = panels.cols.get() + k0 * panels.padded_cols + (j0 + j) * kc;
                        for (int64_t p = 0; p < row_panels; ++p) {
                            if (!panel_alive[p]) continue;
                            const float* a_panel = panels.rows.get() + k0 * panels.padded_rows + (i0 + p * kernel.mr) * kc;
                            kernel.fn(kc, a_panel, b_panel, scores.get() + p * kernel.mr * col_tile + j, col_tile, k0 > 0);
                        }
                    }
                }
                float column_min[kMaxColTile];
                std::fill(column_min, column_min + cols, kNan);
                for (int64_t r = 0; r < rows; ++r) {
                    if (!panel_alive[r / kernel.mr]) continue;
                    const int64_t i = i0 + r;
                    const float* g = scores.get() + r * col_tile;
                    float m = partial[static_cast<size_t>(r)];
                    for (int64_t j = 0; j < cols; ++j) {
                        if (j0 + j == i) continue;
                        const float d = distance_of(i, j0 + j, g[j]);
                        m = min_ignoring_nan(m, d);
                        column_min[j] = min_ignoring_nan(column_min[j], d);
                    }
                    partial[static_cast<size_t>(r)] = m;
                }
                for (int64_t j = 0; j < cols; ++j)
                    if (!is_nan(column_min[j])) atomic_min(known[static_cast<size_t>(j0 + j)], monotone_bits(column_min[j]));
            }
            for (int64_t r = 0; r < rows; ++r) {
                if (!alive[static_cast<size_t>(r)]) continue;
                const int64_t i = i0 + r;
                nearest[static_cast<size_t>(i)] = partial[static_cast<size_t>(r)];
                finished[static_cast<size_t>(i)] = 1;
                if (!is_nan(partial[static_cast<size_t>(r)])) atomic_max(best_key, rank_key(partial[static_cast<size_t>(r)], i));
            }
        }
    });

    int64_t best = -1;
    for (int64_t i = 0; i < count; ++i) {
        if (!finished[static_cast<size_t>(i)]) continue;
        if (best < 0 || ranks_above(nearest[static_cast<size_t>(i)], i, nearest[static_cast<size_t>(best)], best)) best = i;
    }
    return best;
}

// ---- Greedy selection ---------------------------------------------------------------------------------

// Tokens per block of the eager update: each block's winner is kept, and the winners are combined in
// block order, so the result does not depend on which thread ran which block.
constexpr int64_t kTokenBlock = 256;

struct Winner {
    float score;
    int64_t token;  // -1: none in the block
};

bool beats(const Winner& a, const Winner& b) {
    if (b.token < 0) return a.token >= 0;
    if (a.token < 0) return false;
    return ranks_above(a.score, a.token, b.score, b.token);
}

// Max-sum: every step adds each token's distance to the newest center, then takes the argmax of the
// tokens not yet chosen.
void greedy_max_sum(const PackedTokens& tokens, DistancesFn distances, int64_t count, bool parallel,
                    std::vector<int32_t>& order) {
    const int64_t n = tokens.count;
    std::vector<float> score(static_cast<size_t>(n), 0.0f);
    std::vector<uint8_t> chosen(static_cast<size_t>(n), 0);
    std::vector<float> d(static_cast<size_t>(n));
    const int64_t blocks = (n + kTokenBlock - 1) / kTokenBlock;
    std::vector<Winner> winners(static_cast<size_t>(blocks));
    chosen[static_cast<size_t>(order[0])] = 1;
    for (int64_t step = 1; step < count; ++step) {
        const float* center = tokens.row(order[static_cast<size_t>(step - 1)]);
        for_range(parallel, blocks, min_tasks_per_chunk(kTokenBlock * tokens.channels), [&](int64_t begin, int64_t end) {
            for (int64_t block = begin; block < end; ++block) {
                const int64_t j0 = block * kTokenBlock;
                const int64_t j1 = std::min(n, j0 + kTokenBlock);
                distances(tokens.rows.get(), tokens.stride, j0, j1, center, tokens.channels, d.data());
                Winner w{0.0f, -1};
                for (int64_t j = j0; j < j1; ++j) {
                    float& s = score[static_cast<size_t>(j)];
                    s += d[static_cast<size_t>(j)];
                    if (chosen[static_cast<size_t>(j)]) continue;
                    if (beats(Winner{s, j}, w)) w = Winner{s, j};
                }
                winners[static_cast<size_t>(block)] = w;
            }
        });
        Winner best{0.0f, -1};
        for (const Winner& w : winners)
            if (beats(w, best)) best = w;
        order[static_cast<size_t>(step)] = static_cast<int32_t>(best.token);
        chosen[static_cast<size_t>(best.token)] = 1;
    }
}

// Stale entries refreshed together (their rows stay in L2 while the centers stream past once).
constexpr int64_t kRefreshBatch = 32;

// Max-min, lazily. Every unchosen token with a number for a score sits in a max-heap under the score
// it had when last refreshed (`seen` centers ago), an upper bound of its current score. The top entry,
// if fresh, is the argmax: every other token's current score ranks at most as high as its stale one,
// which ranks below the top. If stale, it is refreshed against the centers it has not seen and pushed
// back. Tokens whose score is NaN (every distance so far NaN: a NaN row, or NaN centers) wait outside
// the heap and are refreshed every step, since a later center may give them a number.
void greedy_max_min(const PackedTokens& tokens, DistancesFn distances, int64_t count, bool parallel,
                    std::vector<int32_t>& order) {
    const int64_t n = tokens.count;
    struct Entry {
        float score;
        int32_t token;
        int32_t seen;  // centers included in score
    };
    const auto below = [](const Entry& a, const Entry& b) { return ranks_above(b.score, b.token, a.score, a.token); };
    std::vector<Entry> heap;
    std::vector<int32_t> nan_tokens;
    {
        std::vector<float> first_distance(static_cast<size_t>(n));
        const float* center = tokens.row(order[0]);
        for_range(parallel, n, min_tasks_per_chunk(tokens.channels), [&](int64_t begin, int64_t end) {
            distances(tokens.rows.get(), tokens.stride, begin, end, center, tokens.channels, first_distance.data());
        });
        heap.reserve(static_cast<size_t>(n));
        for (int64_t j = 0; j < n; ++j) {
            if (j == order[0]) continue;
            const float s = first_distance[static_cast<size_t>(j)];
            if (is_nan(s)) {
                nan_tokens.push_back(static_cast<int32_t>(j));
            } else {
                heap.push_back(Entry{s, static_cast<int32_t>(j), 1});
            }
        }
        std::make_heap(heap.begin(), heap.end(), below);
    }
    // The chosen rows in order, contiguous, so a refresh streams through the centers it has not seen.
    // d(c, j) is d(j, c) bit for bit (the same products, summed in the same order).
    AlignedFloats center_rows = allocate_floats(count * tokens.stride);
    const auto add_center = [&](int64_t step) {
        std::memcpy(center_rows.get() + step * tokens.stride, tokens.row(order[static_cast<size_t>(step)]),
                    static_cast<size_t>(tokens.stride) * sizeof(float));
    };
    add_center(0);
    std::vector<float> d(static_cast<size_t>(count));
    const auto refresh = [&](float score, int32_t token, int32_t seen, int32_t centers) {
        distances(center_rows.get(), tokens.stride, seen, centers, tokens.row(token), tokens.channels, d.data());
        for (int32_t c = seen; c < centers; ++c) score = min_ignoring_nan(score, d[static_cast<size_t>(c)]);
        return score;
    };
    // Refreshes a batch of entries against the centers each has not seen, center by center, so a
    // center row is read once for the whole batch while the batch's rows stay in cache. One thread:
    // splitting the batch would have each thread stream every center again.
    std::vector<Entry> batch;
    const auto refresh_batch = [&](int32_t centers) {
        int32_t first_center = centers;
        for (const Entry& e : batch) first_center = std::min(first_center, e.seen);
        for (int32_t c = first_center; c < centers; ++c) {
            const float* center = center_rows.get() + c * tokens.stride;
            for (Entry& entry : batch) {
                if (c < entry.seen) continue;
                float distance;
                distances(tokens.row(entry.token), 0, 0, 1, center, tokens.channels, &distance);
                entry.score = min_ignoring_nan(entry.score, distance);
            }
        }
        for (Entry& entry : batch) entry.seen = centers;
    };
    std::vector<int32_t> still_nan;
    for (int64_t step = 1; step < count; ++step) {
        const int32_t centers = static_cast<int32_t>(step);
        // The NaN tokens have seen every center but the newest (at step 1, all of them).
        if (step > 1) {
            still_nan.clear();
            for (int32_t token : nan_tokens) {
                const float s = refresh(kNan, token, centers - 1, centers);
                if (is_nan(s)) {
                    still_nan.push_back(token);
                } else {
                    heap.push_back(Entry{s, token, centers});
                    std::push_heap(heap.begin(), heap.end(), below);
                }
            }
            nan_tokens.swap(still_nan);
        }
        int32_t next = -1;
        while (!heap.empty()) {
            std::pop_heap(heap.begin(), heap.end(), below);
            Entry top = heap.back();
            heap.pop_back();
            if (top.seen == centers) {
                next = top.token;
                break;
            }
            // Stale: refresh it with the stale entries right below it, which are likely next.
            batch.assign(1, top);
            while (static_cast<int64_t>(batch.size()) < kRefreshBatch && !heap.empty() && heap.front().seen != centers) {
                std::pop_heap(heap.begin(), heap.end(), below);
                batch.push_back(heap.back());
                heap.pop_back();
            }
            refresh_batch(centers);
            for (const Entry& e : batch) {
                heap.push_back(e);
                std::push_heap(heap.begin(), heap.end(), below);
            }
        }
        if (next < 0) {  // only NaN scores are left: the lowest token
            const auto lowest = std::min_element(nan_tokens.begin(), nan_tokens.end());
            next = *lowest;
            nan_tokens.erase(lowest);
        }
        order[static_cast<size_t>(step)] = next;
        add_center(step);
    }
}

// ---- One item -----------------------------------------------------------------------------------------

template <class S>
int64_t score_argmax(const StridedTensor& scores, int64_t b, int64_t length) {
    int64_t best = 0;
    float best_score = to_float(*(static_cast<const S*>(scores.data) + b * scores.strides[0]));
    for (int64_t i = 1; i < length; ++i) {
        const float s = to_float(*(static_cast<const S*>(scores.data) + b * scores.strides[0] + i * scores.strides[1]));
        if (ranks_above(s, i, best_score, best)) {
            best = i;
            best_score = s;
        }
    }
    return best;
}

template <class T>
void select_item(const DiversityPlan& plan, int64_t b, bool parallel) {
    const int64_t length = plan.lengths.data ? *(static_cast<const int32_t*>(plan.lengths.data) + b * plan.lengths.strides[0])
                                             : plan.tokens;
    const int64_t item_k = plan.item_k.data ? *(static_cast<const int32_t*>(plan.item_k.data) + b * plan.item_k.strides[0])
                                            : plan.k;
    const int64_t count = std::min(item_k, length);
    std::vector<int32_t> order(static_cast<size_t>(count));
    if (count > 0) {
        const bool l2 = plan.distance == TK_DISTANCE_L2;
        PackedTokens tokens;
        pack_tokens<T>(plan, b, length, parallel, tokens);
        int64_t first = 0;
        switch (plan.first) {
            case TK_FIRST_INDEX:
                first = *(static_cast<const int32_t*>(plan.first_index.data) + b * plan.first_index.strides[0]);
                break;
            case TK_FIRST_SCORE:
                first = dispatch_float(plan.first_score.dtype, [&](auto tag) {
                    return score_argmax<storage_t<decltype(tag)>>(plan.first_score, b, length);
                });
                break;
            default:
                first = most_isolated(tokens, l2, parallel);
                break;
        }
        order[0] = static_cast<int32_t>(first);
        const DistancesFn distances = best_distances(l2);
        if (plan.objective == TK_DIVERSITY_MAX_MIN) {
            greedy_max_min(tokens, distances, count, parallel, order);
        } else {
            greedy_max_sum(tokens, distances, count, parallel, order);
        }
    }
    for (int64_t i = 0; i < plan.k; ++i) *index_at(plan.order, b, i) = i < count ? order[static_cast<size_t>(i)] : -1;
    if (plan.sorted.data != nullptr) {
        std::sort(order.begin(), order.end());
        for (int64_t i = 0; i < plan.k; ++i) *index_at(plan.sorted, b, i) = i < count ? order[static_cast<size_t>(i)] : -1;
    }
}

}  // namespace

void diversity_select(const DiversityPlan& plan) {
    dispatch_float(plan.x.dtype, [&](auto tag) {
        using T = storage_t<decltype(tag)>;
        // Several items: one per thread at a time, each on its own; one item: its work is split.
        if (plan.batch > 1 && num_threads() > 1) {
            parallel_for(plan.batch, 1, [&](int64_t begin, int64_t end) {
                for (int64_t b = begin; b < end; ++b) select_item<T>(plan, b, false);
            });
        } else {
            for (int64_t b = 0; b < plan.batch; ++b) select_item<T>(plan, b, true);
        }
    });
}

}  // namespace tk::cpu
