// CPU backend of diversity selection (SPEC section 4). Per item, the tokens are converted once into a
// packed float32 copy (unit rows for the cosine distance, the values for L2); every distance of the
// greedy loop is then one fixed-order float32 reduction over two rows of that copy
// (cpu/diversity_distance.hpp), whichever thread or tile computes it, so the selection does not
// depend on the thread count. The large buffers come from the caller's workspace when given.
//
// The most isolated first center needs each token's nearest other token: an all-pairs problem, run
// on the register-blocked GEMM micro-kernels of token merging (cpu/merge_microkernel.hpp) with
// running row minima, never an N x N matrix. It is exact but lazy: D*, the best nearest-neighbour
// distance of the rows finished so far, is shared, and a row leaves as soon as a distance below D*
// is known for it (it can no longer win); its panel lane is then given to the next row, so the GEMM
// only runs on rows still in play. On random tokens that is about a tenth of the pairs.
//
// The greedy loop keeps a running score per token (the min or the sum of its distances to the
// chosen tokens). Max-min is evaluated lazily: a token's score only falls as centers are added, so a
// stale score is an upper bound, and a max-heap of stale scores refreshes only the tokens that could
// still be the argmax, a batch at a time against the centers they have not seen, each stopping as
// soon as it falls below the best score left in the heap. Max-sum scores grow, so they are
// updated eagerly, each thread over its own range of tokens, the range winners combined each step.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <vector>

#include "core/dispatch.hpp"
#include "core/parallel.hpp"
#include "core/regions.hpp"
#include "cpu/diversity_distance.hpp"
#include "cpu/float16.hpp"
#include "cpu/isa.hpp"
#include "cpu/merge_microkernel.hpp"
#include "ops/diversity.hpp"
#include "ops/lane_sum.hpp"
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
float min_ignoring_nan(float score, float d) { return ((d < score) | is_nan(score)) ? d : score; }

// Float bits made monotone as unsigned integers (for numbers; NaN is kept out of them).
uint32_t monotone_bits(float v) {
    const uint32_t bits = float_to_bits(v);
    return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
}
float from_monotone_bits(uint32_t m) { return bits_to_float((m & 0x80000000u) != 0 ? m & 0x7fffffffu : ~m); }

// Replaces a shared value by `value` while before(value, shared) holds (relaxed): with std::less a
// shared minimum of monotone bits (the most isolated search's and the max-min refresh's), with
// std::greater the best finished row's rank key.
template <class T, class Before>
void atomic_keep(std::atomic<T>& target, T value, Before before) {
    T seen = target.load(std::memory_order_relaxed);
    while (before(value, seen) && !target.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
    }
}

// Floats per packed row: C rounded up to 16.
int64_t packed_stride(int64_t channels) { return round_up(std::max<int64_t>(channels, 1), 16); }

uint64_t float_bytes(int64_t count) { return static_cast<uint64_t>(std::max<int64_t>(count, 1)) * sizeof(float); }

// Channels per block of the first center's GEMM: a kc x nr column panel stays in L1 while row panels
// stream past.
constexpr int64_t kChannelBlock = 256;

// One thread's buffer in the most isolated first center's search (a conveyor, below): the scores of
// its rows, up to kMaxRowPanels row panels of them (no more panels than N tokens fill), against one
// column tile.
constexpr int64_t kMaxRowPanels = 8;
constexpr int64_t kMaxColTile = 64;  // two panels of the widest micro-kernel (nr = 32)
struct ConveyorShape {
    int64_t capacity = 0;  // rows
    int64_t col_tile = 0;  // columns
    uint64_t bytes = 0;    // the whole buffer, a multiple of the workspace alignment
};

ConveyorShape conveyor_shape(int64_t tokens) {
    const MicroKernel& kernel = best_micro_kernel();
    ConveyorShape shape;
    shape.capacity = std::min(kMaxRowPanels * kernel.mr, round_up(std::max<int64_t>(tokens, 1), kernel.mr));
    shape.col_tile = std::min(2 * kernel.nr, kMaxColTile);
    shape.bytes = align_up(float_bytes(shape.capacity * shape.col_tile));
    return shape;
}

// Where one item's large buffers lie in its scratch: the packed rows and the chosen rows (sized for
// N tokens and k centers), and with the most isolated first center its column panels and one
// conveyor buffer per thread of its search, last. The workspace query's size and the carving, in
// one place.
struct ItemLayout {
    uint64_t rows = 0;
    uint64_t centers = 0;
    uint64_t columns = 0;
    ConveyorShape conveyor;        // bytes 0 without the most isolated first center
    int64_t conveyors = 0;         // buffers
    uint64_t conveyor_buffers = 0;
    uint64_t total = 0;
};

ItemLayout item_layout(const DiversityPlan& plan, int64_t conveyors) {
    const int64_t stride = packed_stride(plan.channels);
    RegionCursor cursor;
    ItemLayout layout;
    layout.rows = cursor.take(float_bytes(plan.tokens * stride));
    if (plan.objective == TK_DIVERSITY_MAX_MIN) layout.centers = cursor.take(float_bytes(plan.k * stride));
    if (plan.first == TK_FIRST_MOST_ISOLATED) {
        layout.columns = cursor.take(float_bytes(round_up(plan.tokens, best_micro_kernel().nr) * plan.channels));
        layout.conveyor = conveyor_shape(plan.tokens);
        // A conveyor starts on one micro-panel of rows: past one per panel of tokens, more would idle.
        const int64_t mr = best_micro_kernel().mr;
        const int64_t panels = (plan.tokens + mr - 1) / mr;
        layout.conveyors = std::clamp<int64_t>(conveyors, 1, std::max<int64_t>(panels, 1));
        layout.conveyor_buffers = cursor.take(static_cast<uint64_t>(layout.conveyors) * layout.conveyor.bytes);
    }
    layout.total = cursor.total();
    return layout;
}

// The layout with as many conveyor buffers as `bytes` of workspace hold (at least one: the API has
// checked that it holds one).
ItemLayout layout_fitting(const DiversityPlan& plan, uint64_t bytes) {
    const ItemLayout one = item_layout(plan, 1);
    if (one.conveyor.bytes == 0) return one;
    return item_layout(plan, 1 + static_cast<int64_t>((bytes - one.total) / one.conveyor.bytes));
}

// One item's scratch: the caller's workspace (at least layout.total bytes), else allocated for the item.
class ItemScratch {
public:
    ItemScratch(const ItemLayout& layout, void* workspace) {
        if (workspace == nullptr) {
            owned_.reset(new char[layout.total]);
            workspace = owned_.get();
        }
        base_ = aligned_start(workspace);
    }
    float* floats(uint64_t offset) const { return at_offset<float>(base_, offset); }
    char* region(uint64_t offset) const { return at_offset<char>(base_, offset); }

private:
    std::unique_ptr<char[]> owned_;
    void* base_ = nullptr;
};

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

// The squared length of a row, in the lane order of ops/lane_sum.hpp.
float sum_of_squares(const float* row, int64_t channels) {
    return lane_sum(channels, [&](int64_t c) { return row[c] * row[c]; });
}

// ---- Packed tokens ----------------------------------------------------------------------------------

// The packed rows as the micro-kernel's column panels, for the most isolated first center: block after
// block of kChannelBlock channels, each [padded / nr][kc][nr], zero past L.
struct ColumnPanels {
    int64_t padded = 0;
    float* data = nullptr;  // in the item's scratch
};

// One item's tokens [0, L) as float32 rows of `stride` floats (C rounded up to 16 floats): unit
// vectors u = x / max(|x|, eps) for the cosine distance, the values themselves for L2.
struct PackedTokens {
    int64_t count = 0;
    int64_t channels = 0;
    int64_t stride = 0;
    float* rows = nullptr;  // in the item's scratch
    std::vector<float> squared_norm;  // L2: sum of squares of each row, for the all-pairs GEMM
    ColumnPanels columns;  // the same floats again, when the first center is the most isolated
    const float* row(int64_t i) const { return rows + i * stride; }
};

#if defined(TK_DIVERSITY_X86_KERNELS)
// even = the 128-bit quarters 0 and 2 of x, then of y; odd = their quarters 1 and 3. The zero-masking
// forms with every lane kept, here and in transpose16: the plain ones pass an undefined source
// vector, which GCC 12 reports as uninitialised.
__attribute__((target("avx512f"))) inline void split_quarters(__m512 x, __m512 y, __m512& even, __m512& odd) {
    constexpr __mmask16 kAll = 0xffff;
    even = _mm512_maskz_shuffle_f32x4(kAll, x, y, 0x88);
    odd = _mm512_maskz_shuffle_f32x4(kAll, x, y, 0xDD);
}

// Transposes 16 rows of 16 floats in registers: v[c] lane r becomes the old v[r] lane c. Pairs of rows
// are interleaved by float, then by float pair, then by 128-bit quarter twice.
__attribute__((target("avx512f"))) inline void transpose16(__m512 (&v)[16]) {
    constexpr __mmask16 kAll = 0xffff;
    constexpr __mmask8 kAllPairs = 0xff;
    __m512 t[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_maskz_unpacklo_ps(kAll, v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm512_maskz_unpackhi_ps(kAll, v[2 * i], v[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
        const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        v[4 * i] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(kAllPairs, a, c));
        v[4 * i + 1] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(kAllPairs, a, c));
        v[4 * i + 2] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(kAllPairs, b, d));
        v[4 * i + 3] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(kAllPairs, b, d));
    }
#pragma GCC unroll 4
    for (int e = 0; e < 4; ++e) {
        split_quarters(v[e], v[4 + e], t[e], t[4 + e]);
        split_quarters(v[8 + e], v[12 + e], t[8 + e], t[12 + e]);
    }
#pragma GCC unroll 4
    for (int e = 0; e < 4; ++e) {
        split_quarters(t[e], t[8 + e], v[e], v[8 + e]);
        split_quarters(t[4 + e], t[12 + e], v[4 + e], v[12 + e]);
    }
}

// 16 lanes of a column panel's channel block: out[c * nr + lane] = rows[lane][k0 + c] for c < kc, 0
// where rows[lane] is null (past L), 16 channels at a time. A packed row is zero-padded to a multiple
// of 16 floats and k0 is one too, so each 16-float load stays within its row.
__attribute__((target("avx512f"))) void write_column_lanes_avx512(const float* const (&rows)[16], int64_t k0, int64_t kc,
                                                                  int64_t nr, float* out) {
    for (int64_t c0 = 0; c0 < kc; c0 += 16) {
        __m512 v[16];
#pragma GCC unroll 16
        for (int lane = 0; lane < 16; ++lane)
            v[lane] = rows[lane] != nullptr ? _mm512_loadu_ps(rows[lane] + k0 + c0) : _mm512_setzero_ps();
        transpose16(v);
        const int64_t channels = std::min<int64_t>(16, kc - c0);
        for (int64_t c = 0; c < channels; ++c) _mm512_storeu_ps(out + (c0 + c) * nr, v[c]);
    }
}
#endif

// Writes the column panel of rows [first, first + nr) from their packed rows.
void write_column_panel(const PackedTokens& tokens, int64_t nr, int64_t first) {
    const int64_t valid = std::min(nr, tokens.count - first);
#if defined(TK_DIVERSITY_X86_KERNELS)
    const bool transpose_in_registers = nr % 16 == 0 && cpu_isa() == CpuIsa::kAvx512;
#endif
    for (int64_t k0 = 0; k0 < tokens.channels; k0 += kChannelBlock) {
        const int64_t kc = std::min(kChannelBlock, tokens.channels - k0);
        float* block = tokens.columns.data + k0 * tokens.columns.padded + first * kc;
#if defined(TK_DIVERSITY_X86_KERNELS)
        if (transpose_in_registers) {
            for (int64_t lane0 = 0; lane0 < nr; lane0 += 16) {
                const float* rows[16];
                for (int64_t lane = 0; lane < 16; ++lane)
                    rows[lane] = lane0 + lane < valid ? tokens.row(first + lane0 + lane) : nullptr;
                write_column_lanes_avx512(rows, k0, kc, nr, block + lane0);
            }
            continue;
        }
#endif
        // Channel-major, so the block is written in order while `valid` rows are read in step.
        for (int64_t c = 0; c < kc; ++c) {
            float* out = block + c * nr;
            for (int64_t lane = 0; lane < valid; ++lane) out[lane] = tokens.row(first + lane)[k0 + c];
            for (int64_t lane = valid; lane < nr; ++lane) out[lane] = 0.0f;
        }
    }
}

// Packs the rows, and with column_storage the column panels a panel of nr rows at a time, so a
// panel's rows are transposed while they are still in this core's cache.
template <class T>
void pack_tokens(const DiversityPlan& plan, int64_t b, int64_t count, bool parallel, float* rows, float* column_storage,
                 PackedTokens& packed) {
    const int64_t channels = plan.channels;
    packed.count = count;
    packed.channels = channels;
    packed.stride = packed_stride(channels);
    packed.rows = rows;
    const int64_t nr = best_micro_kernel().nr;
    if (column_storage != nullptr) packed.columns = ColumnPanels{round_up(count, nr), column_storage};
    const bool l2 = plan.distance == TK_DISTANCE_L2;
    packed.squared_norm.assign(static_cast<size_t>(l2 ? count : 0), 0.0f);
    const int64_t group = column_storage != nullptr ? nr : 1;  // rows of one task
    const int64_t groups = (count + group - 1) / group;
    for_range(parallel, groups, min_tasks_per_chunk(group * channels), [&](int64_t begin, int64_t end) {
        for (int64_t g = begin; g < end; ++g) {
            for (int64_t i = g * group; i < std::min(count, (g + 1) * group); ++i) {
                const T* x = token_row<T>(plan.x, b, i);
                float* out = packed.rows + i * packed.stride;
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
            if (column_storage != nullptr) write_column_panel(packed, nr, g * nr);
        }
    });
}

// ---- Most isolated first center ---------------------------------------------------------------------

// A row's (nearest-neighbour distance, token) as one integer that orders as the contract ranks
// them, so the best finished row is an atomic maximum: the distance's monotone bits, then the
// complement of the token (the lower token ranks higher on ties). NaN distances are never keyed.
uint64_t rank_key(float distance, int64_t token) {
    return (uint64_t{monotone_bits(distance)} << 32) | (0xffffffffu - static_cast<uint32_t>(token));
}

// No distance seen yet: above the monotone bits of every number, +inf included.
constexpr uint32_t kNoDistance = 0xffffffffu;

constexpr int64_t kFoldLanes = 16;

// Folds one row of a tile's dot products, as distances, into the row's running minimum and the
// tile's column minima, in 16 lanes so that it vectorises (a minimum is exact in any order). NaN
// products (left-out columns) never lower a minimum. For L2, d = |a|^2 + |b|^2 - 2 a.b, clamped at 0
// against cancellation; the same bits for (i, j) and (j, i).
template <bool kL2>
float fold_tile_row(const float* g, int64_t columns, float row_norm, const float* column_norm, float partial,
                    float* column_min) {
    float lane_min[kFoldLanes];
    std::fill(lane_min, lane_min + kFoldLanes, partial);
    for (int64_t j = 0; j < columns; j += kFoldLanes)
        for (int64_t l = 0; l < kFoldLanes; ++l) {
            float d;
            if constexpr (kL2) {
                d = row_norm + column_norm[j + l] - 2.0f * g[j + l];
                d = d < 0.0f ? 0.0f : d;
            } else {
                d = 1.0f - g[j + l];
            }
            lane_min[l] = min_ignoring_nan(lane_min[l], d);
            column_min[j + l] = min_ignoring_nan(column_min[j + l], d);
        }
    float m = partial;
    for (float v : lane_min) m = min_ignoring_nan(m, v);
    return m;
}

// One conveyor per thread (as many threads as there are conveyor buffers, each in its own) scans
// column tiles of two column panels in a cycle, holding up to eight row panels of rows. A row
// enters at the tile the conveyor is at, and leaves when it is out or when it has met every tile
// (finished: its exact nearest-neighbour distance). A row is out once the smallest distance known
// for it ranks below D*, the best finished row: its own running minimum, or any distance to it that
// a conveyor computed as a column (d is symmetric, and the micro-kernel gives d(i, j) and d(j, i)
// the same bits), kept per token as an atomic minimum. Rows out are replaced at once, so the panels
// stay full of rows still in play (on random tokens a row needs on average about N / 10 columns to
// meet a distance below D*, with a long tail, so fixed row blocks would wait on their slowest row).
// Until some row has finished nothing can be out, so a conveyor starts with one panel. Every bound
// is a distance that the row's own scan would also see, so a finished row holds its exact minimum
// and the winner always finishes, whatever the timing between threads.
int64_t most_isolated(const PackedTokens& tokens, bool l2, const ConveyorShape& shape, int64_t conveyors, char* buffers) {
    const int64_t count = tokens.count;
    if (count == 1) return 0;
    const MicroKernel& kernel = best_micro_kernel();
    const ColumnPanels& columns = tokens.columns;
    const int64_t channels = tokens.channels;
    const int64_t capacity = shape.capacity;
    const int64_t col_tile = shape.col_tile;
    const int64_t col_tiles = (count + col_tile - 1) / col_tile;

    std::atomic<uint64_t> best_key{0};
    std::atomic<int64_t> next_row{0};
    std::vector<std::atomic<uint32_t>> known(static_cast<size_t>(count));
    for (std::atomic<uint32_t>& k : known) k.store(kNoDistance, std::memory_order_relaxed);
    std::vector<float> nearest(static_cast<size_t>(count), kNan);
    std::vector<uint8_t> finished(static_cast<size_t>(count), 0);
    const float* norm = l2 ? tokens.squared_norm.data() : nullptr;
    auto is_out = [&](int64_t token, float partial) {
        const uint32_t other = known[static_cast<size_t>(token)].load(std::memory_order_relaxed);
        const float m = other != kNoDistance ? min_ignoring_nan(partial, from_monotone_bits(other)) : partial;
        return !is_nan(m) && rank_key(m, token) < best_key.load(std::memory_order_relaxed);
    };

    const auto conveyor = [&](char* buffer) {
        struct Slot {
            int64_t token;  // -1: a hole, its lane's stale scores never read
            float partial;
            int64_t tiles_left;
        };
        std::vector<Slot> slots;  // the lanes in use, holes included
        slots.reserve(static_cast<size_t>(capacity));
        // Each slot's row, where it lies in the packed copy: a slot is a lane of the micro-kernel's A,
        // read in place. A lane not in use points at a row whose scores are computed and never read.
        const float* lanes[kMaxRowPanels * kMaxMr];
        std::fill(lanes, lanes + capacity, tokens.row(0));
        float* const scores = reinterpret_cast<float*>(buffer);
        int64_t in_play = 0;
        bool queue_done = false;
        int64_t tile = -1;
        for (;;) {
            // New rows fill the holes first. Once the queue is done, the last rows move into the holes
            // instead, so the panels shrink as the rows run out.
            const int64_t limit = best_key.load(std::memory_order_relaxed) == 0 ? kernel.mr : capacity;
            size_t hole = 0;
            while (!queue_done && in_play < limit) {
                const int64_t i = next_row.fetch_add(1, std::memory_order_relaxed);
                if (i >= count) {
                    queue_done = true;
                    break;
                }
                if (is_out(i, kNan)) continue;
                if (tile < 0) tile = i / col_tile;  // start where the first rows are: neighbours are often nearest
                while (hole < slots.size() && slots[hole].token >= 0) ++hole;
                if (hole == slots.size()) slots.emplace_back();
                lanes[hole] = tokens.row(i);
                slots[hole] = Slot{i, kNan, col_tiles};
                ++in_play;
            }
            for (;;) {
                while (!slots.empty() && slots.back().token < 0) slots.pop_back();
                if (!queue_done) break;
                while (hole < slots.size() && slots[hole].token >= 0) ++hole;
                if (hole >= slots.size()) break;
                slots[hole] = slots.back();
                slots.pop_back();
                lanes[hole] = tokens.row(slots[hole].token);
            }
            if (slots.empty()) break;
            const int64_t row_panels = (static_cast<int64_t>(slots.size()) + kernel.mr - 1) / kernel.mr;
            const int64_t j0 = tile * col_tile;
            const int64_t cols = std::min(col_tile, count - j0);
            const int64_t padded_cols = round_up(cols, kernel.nr);
            // k0 == 0 runs even with C = 0, so the tile is always written (zeros then).
            for (int64_t k0 = 0; k0 == 0 || k0 < channels; k0 += kChannelBlock) {
                const int64_t kc = std::min(kChannelBlock, channels - k0);
                const float* block_rows[kMaxRowPanels * kMaxMr];  // each lane's row at channel k0
                for (int64_t lane = 0; lane < row_panels * kernel.mr; ++lane)
                    block_rows[lane] = lanes[lane] + k0;
                // The next channel block of this tile's columns (or the next tile's first), fetched into L2 a
                // slice per micro-kernel call while this block is multiplied.
                const int64_t next_k0 = k0 + kChannelBlock < channels ? k0 + kChannelBlock : 0;
                const int64_t next_j0 = next_k0 > 0 ? j0 : ((tile + 1) % col_tiles) * col_tile;
                const int64_t next_kc = std::min(kChannelBlock, channels - next_k0);
                const int64_t next_cols = round_up(std::min(col_tile, count - next_j0), kernel.nr);
                const char* next = reinterpret_cast<const char*>(columns.data + next_k0 * columns.padded + next_j0 * next_kc);
                const int64_t next_bytes = next_cols * next_kc * static_cast<int64_t>(sizeof(float));
                const int64_t kernel_calls = (padded_cols / kernel.nr) * row_panels;
                const int64_t slice = round_up((next_bytes + kernel_calls - 1) / kernel_calls, 64);
                int64_t fetched = 0;
                for (int64_t j = 0; j < padded_cols; j += kernel.nr) {
                    const float* b_panel = columns.data + k0 * columns.padded + (j0 + j) * kc;
                    for (int64_t p = 0; p < row_panels; ++p) {
                        kernel.rows_fn(kc, block_rows + p * kernel.mr, b_panel, scores + p * kernel.mr * col_tile + j,
                                       col_tile, k0 > 0);
                        for (const int64_t end = std::min(next_bytes, fetched + slice); fetched < end; fetched += 64)
                            __builtin_prefetch(next + fetched, 0, 2);
                    }
                }
            }
            // Columns past the tile and each row's own column are set to NaN, which never lowers a
            // minimum, so every row folds the same whole groups of 16.
            const int64_t folded = round_up(cols, kFoldLanes);
            float column_min[kMaxColTile];
            float column_norm[kMaxColTile] = {};
            std::fill(column_min, column_min + folded, kNan);
            if (l2) std::copy(norm + j0, norm + j0 + cols, column_norm);
            for (size_t s = 0; s < slots.size(); ++s) {
                const int64_t i = slots[s].token;
                if (i < 0) continue;
                float* g = scores + static_cast<int64_t>(s) * col_tile;
                std::fill(g + cols, g + folded, kNan);
                if (i >= j0 && i < j0 + cols) g[i - j0] = kNan;
                slots[s].partial = l2 ? fold_tile_row<true>(g, folded, norm[i], column_norm, slots[s].partial, column_min)
                                      : fold_tile_row<false>(g, folded, 0.0f, column_norm, slots[s].partial, column_min);
                --slots[s].tiles_left;
            }
            for (int64_t j = 0; j < cols; ++j)
                if (!is_nan(column_min[j]))
                    atomic_keep(known[static_cast<size_t>(j0 + j)], monotone_bits(column_min[j]), std::less<>());
            for (Slot& slot : slots) {
                if (slot.token < 0 || slot.tiles_left > 0) continue;
                nearest[static_cast<size_t>(slot.token)] = slot.partial;
                finished[static_cast<size_t>(slot.token)] = 1;
                if (!is_nan(slot.partial)) atomic_keep(best_key, rank_key(slot.partial, slot.token), std::greater<>());
                slot.token = -1;
                --in_play;
            }
            for (Slot& slot : slots) {
                if (slot.token < 0 || !is_out(slot.token, slot.partial)) continue;
                slot.token = -1;
                --in_play;
            }
            tile = (tile + 1) % col_tiles;
        }
    };
    parallel_team(conveyors, [&](const Team& team) { conveyor(buffers + team.thread * shape.bytes); });

    int64_t best = -1;
    for (int64_t i = 0; i < count; ++i) {
        if (!finished[static_cast<size_t>(i)]) continue;
        if (best < 0 || ranks_above(nearest[static_cast<size_t>(i)], i, nearest[static_cast<size_t>(best)], best)) best = i;
    }
    return best;
}

// ---- Greedy selection ---------------------------------------------------------------------------------

// out[j - begin] = d(token j, center) for j in [begin, end), a block of rows at a time.
void distances_to_center(const PackedTokens& tokens, DistanceBlockFn distance_block, int64_t begin, int64_t end,
                         const float* center, float* out) {
    constexpr int64_t kRows = 48;
    const float* rows[kRows];
    for (int64_t j0 = begin; j0 < end; j0 += kRows) {
        const int64_t n = std::min(kRows, end - j0);
        for (int64_t r = 0; r < n; ++r) rows[r] = tokens.row(j0 + r);
        distance_block(rows, n, &center, 1, tokens.stride, out + (j0 - begin), 1);
    }
}

struct Winner {
    float score;
    int64_t token;  // -1: none
};

bool beats(const Winner& a, const Winner& b) {
    if (b.token < 0) return a.token >= 0;
    if (a.token < 0) return false;
    return ranks_above(a.score, a.token, b.score, b.token);
}

// Max-sum: every step adds each token's distance to the newest center, then takes the argmax of the
// tokens not yet chosen. Each thread of a team owns a fixed range of tokens for the whole selection,
// so its rows stay in its core's cache from step to step when they fit (N = 729, C = 1152: 1.7 MB a
// core), and only the range winners are exchanged, once a step. The ranks are a total order, so the
// winner does not depend on the ranges.
void greedy_max_sum(const PackedTokens& tokens, DistanceBlockFn distance_block, int64_t count, bool parallel,
                    std::vector<int32_t>& order) {
    const int64_t n = tokens.count;
    std::vector<float> score(static_cast<size_t>(n), 0.0f);
    std::vector<uint8_t> chosen(static_cast<size_t>(n), 0);
    std::vector<float> d(static_cast<size_t>(n));
    const int64_t threads = parallel ? std::clamp<int64_t>(n / min_tasks_per_chunk(tokens.channels), 1, num_threads()) : 1;
    RoundBoard<Winner> winners(threads, 1);
    chosen[static_cast<size_t>(order[0])] = 1;
    parallel_team(threads, [&](const Team& team) {
        const int64_t begin = n * team.thread / team.size;
        const int64_t end = n * (team.thread + 1) / team.size;
        int64_t newest = order[0];
        for (int64_t step = 1; step < count; ++step) {
            distances_to_center(tokens, distance_block, begin, end, tokens.row(newest), d.data() + begin);
            Winner w{0.0f, -1};
            for (int64_t j = begin; j < end; ++j) {
                float& s = score[static_cast<size_t>(j)];
                s += d[static_cast<size_t>(j)];
                if (chosen[static_cast<size_t>(j)]) continue;
                if (beats(Winner{s, j}, w)) w = Winner{s, j};
            }
            *winners.posted(step, team.thread) = w;
            team.barrier();
            Winner best{0.0f, -1};
            for (int64_t t = 0; t < team.size; ++t)
                if (beats(*winners.posted(step, t), best)) best = *winners.posted(step, t);
            newest = best.token;
            if (newest >= begin && newest < end) chosen[static_cast<size_t>(newest)] = 1;
            if (team.thread == 0) order[static_cast<size_t>(step)] = static_cast<int32_t>(newest);
        }
    });
}

// Stale entries refreshed together, and the centers of one pass over them: the batch's rows stay in
// L1 and L2 while each chunk of center rows is read once for the whole batch.
constexpr int64_t kRefreshBatch = 24;
constexpr int64_t kCenterChunk = 32;
// Multiply-adds of a batch refresh worth waking the other threads for.
constexpr int64_t kMinParallelRefresh = int64_t{1} << 20;

// Max-min, lazily. Every unchosen token with a number for a score sits in a max-heap under the score
// it had when last refreshed: its minimum distance over chosen tokens that include the first `seen`,
// an upper bound of its current score, and the score itself once `seen` is every center (fresh). The
// top entry, if fresh, is the argmax: every other token's current score ranks at most as high as its
// stale one, which ranks below the top. If stale, it is refreshed against the centers it has not seen
// and pushed back. Tokens whose score is NaN (every distance so far NaN: a NaN row, or NaN centers)
// wait outside the heap and are refreshed every step, since a later center may give them a number.
void greedy_max_min(const PackedTokens& tokens, DistanceBlockFn distance_block, int64_t count, bool parallel,
                    float* center_storage, std::vector<int32_t>& order) {
    const int64_t n = tokens.count;
    struct Entry {
        float score;
        int32_t token;
        int32_t seen;  // the first `seen` centers are in score (later ones may be too)
    };
    const auto below = [](const Entry& a, const Entry& b) { return ranks_above(b.score, b.token, a.score, a.token); };
    std::vector<Entry> heap;
    std::vector<int32_t> nan_tokens;
    {
        std::vector<float> first_distance(static_cast<size_t>(n));
        const float* center = tokens.row(order[0]);
        for_range(parallel, n, min_tasks_per_chunk(tokens.channels), [&](int64_t begin, int64_t end) {
            distances_to_center(tokens, distance_block, begin, end, center, first_distance.data() + begin);
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
    float* const center_rows = center_storage;
    std::vector<const float*> center_row(static_cast<size_t>(count));
    const auto add_center = [&](int64_t step) {
        float* row = center_rows + step * tokens.stride;
        std::memcpy(row, tokens.row(order[static_cast<size_t>(step)]), static_cast<size_t>(tokens.stride) * sizeof(float));
        center_row[static_cast<size_t>(step)] = row;
    };
    add_center(0);
    // Refreshes a batch of entries against the centers each has not seen, chunk by chunk of centers
    // (chunks aligned to kCenterChunk), in blocks of six entries (the kernel's tile) sorted by
    // `seen` so a block's entries need about the same centers. An entry stops as soon as its score
    // no longer ranks above `bar` (the best score left in the heap): it cannot be the next center
    // yet. Threads split each chunk's centers, not the entries, so each reads its share of the
    // center rows (most of a refresh's memory traffic: an entry mostly has old centers to see, long
    // out of cache). They do not wait for each other between chunks: each posts its distances to a
    // shared minimum per entry (`batch_min`, which lets the other threads stop the entry after
    // their next chunk) and meets the others once, at the end. An entry's score is then the minimum
    // over every distance computed for it and its `seen` the least chunk end that every thread
    // reached, so the score may include centers past `seen`: still a minimum over centers that hold
    // the first `seen`, so an upper bound of its current score, and exact once `seen` is every
    // center (a later refresh sees again the centers past `seen`, which leaves a minimum as it is).
    std::vector<Entry> batch;
    constexpr int64_t kEntryBlock = 6;
    // Each chunk of kCenterChunk centers is split over the team: members past that would have none.
    const int64_t max_team = std::clamp<int64_t>(num_threads(), 1, kCenterChunk);
    std::atomic<uint32_t> batch_min[kRefreshBatch];  // monotone bits; every score in the heap is a number
    std::vector<int32_t> reached(static_cast<size_t>(max_team * kRefreshBatch));  // [thread][entry]: chunk end
    const auto refresh_batch = [&](int32_t centers) {
        std::sort(batch.begin(), batch.end(), [](const Entry& a, const Entry& b) { return a.seen < b.seen; });
        const bool has_bar = !heap.empty();
        const Entry bar = has_bar ? heap.front() : Entry{};
        const int64_t entries = static_cast<int64_t>(batch.size());
        int64_t pairs = 0;
        for (int64_t e = 0; e < entries; ++e) {
            const Entry& entry = batch[static_cast<size_t>(e)];
            pairs += centers - entry.seen;
            batch_min[e].store(monotone_bits(entry.score), std::memory_order_relaxed);
        }
        const int64_t threads = parallel && pairs * tokens.stride >= kMinParallelRefresh ? max_team : 1;
        parallel_team(threads, [&](const Team& team) {
            int32_t reach[kRefreshBatch];  // chunk end per entry, copied to `reached` at the end
            int64_t active[kRefreshBatch];  // indices into batch, by `seen`
            int64_t active_count = entries;
            for (int64_t e = 0; e < entries; ++e) {
                active[e] = e;
                reach[e] = batch[static_cast<size_t>(e)].seen;
            }
            float minima[kRefreshBatch];
            alignas(64) float d[kEntryBlock * kCenterChunk];
            const int64_t first_chunk = batch[0].seen / kCenterChunk * kCenterChunk;
            for (int64_t c0 = first_chunk; active_count > 0 && c0 < centers; c0 += kCenterChunk) {
                const int64_t c1 = std::min<int64_t>(centers, c0 + kCenterChunk);
                int64_t needing = 0;  // a prefix of active
                while (needing < active_count && reach[active[needing]] < c1) ++needing;
                const int64_t share = (c1 - c0 + team.size - 1) / team.size;
                const int64_t share_begin = std::min(c1, c0 + team.thread * share), share_end = std::min(c1, share_begin + share);
                for (int64_t i = 0; i < needing; ++i) minima[active[i]] = kNan;
                for (int64_t i0 = 0; i0 < needing; i0 += kEntryBlock) {
                    const int64_t rows = std::min(kEntryBlock, needing - i0);
                    const int64_t first = std::max<int64_t>(share_begin, reach[active[i0]]);
                    if (first >= share_end) continue;
                    const float* row[kEntryBlock];
                    for (int64_t r = 0; r < rows; ++r)
                        row[r] = tokens.row(batch[static_cast<size_t>(active[i0 + r])].token);
                    distance_block(row, rows, center_row.data() + first, share_end - first, tokens.stride, d, kCenterChunk);
                    for (int64_t r = 0; r < rows; ++r) {
                        const int64_t e = active[i0 + r];
                        for (int64_t c = std::max<int64_t>(first, reach[e]); c < share_end; ++c)
                            minima[e] = min_ignoring_nan(minima[e], d[r * kCenterChunk + (c - first)]);
                    }
                }
                int64_t kept = 0;
                for (int64_t i = 0; i < active_count; ++i) {
                    const int64_t e = active[i];
                    if (i < needing) {
                        if (!is_nan(minima[e])) atomic_keep(batch_min[e], monotone_bits(minima[e]), std::less<>());
                        reach[e] = static_cast<int32_t>(c1);
                        const float score = from_monotone_bits(batch_min[e].load(std::memory_order_relaxed));
                        const int32_t token = batch[static_cast<size_t>(e)].token;
                        if (c1 == centers || (has_bar && !ranks_above(score, token, bar.score, bar.token))) continue;
                    }
                    active[kept++] = e;
                }
                active_count = kept;
            }
            std::copy(reach, reach + entries, reached.data() + team.thread * kRefreshBatch);
            team.barrier();  // every thread has posted its minima and reach, and read `batch`
            if (team.thread == 0)
                for (int64_t e = 0; e < entries; ++e) {
                    Entry& entry = batch[static_cast<size_t>(e)];
                    entry.score = from_monotone_bits(batch_min[e].load(std::memory_order_relaxed));
                    int32_t seen = centers;
                    for (int64_t t = 0; t < team.size; ++t) seen = std::min(seen, reached[t * kRefreshBatch + e]);
                    entry.seen = seen;
                }
        });
    };
    std::vector<int32_t> still_nan;
    for (int64_t step = 1; step < count; ++step) {
        const int32_t centers = static_cast<int32_t>(step);
        // The NaN tokens have seen every center but the newest (at step 1, all of them).
        if (step > 1) {
            still_nan.clear();
            const float* newest = center_row[static_cast<size_t>(centers - 1)];
            for (int32_t token : nan_tokens) {
                const float* row = tokens.row(token);
                float s;
                distance_block(&row, 1, &newest, 1, tokens.stride, &s, 1);
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
void select_item(const DiversityPlan& plan, const ItemLayout& layout, int64_t b, bool parallel, void* workspace) {
    const int64_t length = plan.lengths.data ? *(static_cast<const int32_t*>(plan.lengths.data) + b * plan.lengths.strides[0])
                                             : plan.tokens;
    const int64_t item_k = plan.item_k.data ? *(static_cast<const int32_t*>(plan.item_k.data) + b * plan.item_k.strides[0])
                                            : plan.k;
    const int64_t count = std::min(item_k, length);
    std::vector<int32_t> order(static_cast<size_t>(count));
    if (count > 0) {
        const bool l2 = plan.distance == TK_DISTANCE_L2;
        PackedTokens tokens;
        const ItemScratch scratch(layout, workspace);
        const bool most_isolated_first = plan.first == TK_FIRST_MOST_ISOLATED;
        pack_tokens<T>(plan, b, length, parallel, scratch.floats(layout.rows),
                       most_isolated_first ? scratch.floats(layout.columns) : nullptr, tokens);
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
                first = most_isolated(tokens, l2, layout.conveyor, layout.conveyors, scratch.region(layout.conveyor_buffers));
                break;
        }
        order[0] = static_cast<int32_t>(first);
        const DistanceBlockFn distance_block = best_distance_block(l2);
        if (plan.objective == TK_DIVERSITY_MAX_MIN) {
            greedy_max_min(tokens, distance_block, count, parallel, scratch.floats(layout.centers), order);
        } else {
            greedy_max_sum(tokens, distance_block, count, parallel, order);
        }
    }
    for (int64_t i = 0; i < plan.k; ++i) *index_at(plan.order, b, i) = i < count ? order[static_cast<size_t>(i)] : -1;
    if (plan.sorted.data != nullptr) {
        std::sort(order.begin(), order.end());
        for (int64_t i = 0; i < plan.k; ++i) *index_at(plan.sorted, b, i) = i < count ? order[static_cast<size_t>(i)] : -1;
    }
}

}  // namespace

uint64_t diversity_workspace_bytes(const DiversityPlan& plan, int64_t threads) { return item_layout(plan, threads).total; }

void diversity_select(const DiversityPlan& plan, void* workspace, uint64_t workspace_bytes) {
    dispatch_float(plan.x.dtype, [&](auto tag) {
        using T = storage_t<decltype(tag)>;
        // Several items and no workspace: one item per thread at a time, each with its own scratch.
        // Otherwise one item at a time (in the workspace, which holds one item's scratch), its work split.
        if (workspace == nullptr && plan.batch > 1 && num_threads() > 1) {
            const ItemLayout layout = item_layout(plan, 1);
            parallel_for(plan.batch, 1, [&](int64_t begin, int64_t end) {
                for (int64_t b = begin; b < end; ++b) select_item<T>(plan, layout, b, false, nullptr);
            });
        } else {
            const ItemLayout layout = workspace != nullptr ? layout_fitting(plan, workspace_bytes) : item_layout(plan, num_threads());
            for (int64_t b = 0; b < plan.batch; ++b) select_item<T>(plan, layout, b, true, workspace);
        }
    });
}

}  // namespace tk::cpu
