// CPU backend of attention-based pruning (SPEC section 3). Every float32 sum runs in an order fixed
// by the contract or by the data's shape, never by the thread that runs a chunk: importance is
// parallel over items and blocks of keys, and each task walks heads, then queries, in increasing
// order; Q K^T row statistics are parallel over rows; top-k, gather and contextual tokens are
// parallel over items or output rows, which own their writes.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "core/dispatch.hpp"
#include "core/parallel.hpp"
#include "cpu/float16.hpp"
#include "cpu/streaming_copy.hpp"
#include "cpu/merge_microkernel.hpp"
#include "ops/attention.hpp"
#include "ops/lane_sum.hpp"
#include "ops/merge.hpp"
#include "ops/pool.hpp"

namespace tk::cpu {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

template <class T>
T* element_at(const StridedTensor& t, int64_t i0, int64_t i1 = 0, int64_t i2 = 0) {
    return static_cast<T*>(t.data) + i0 * t.strides[0] + i1 * t.strides[1] + i2 * t.strides[2];
}

int64_t index_at(const StridedTensor& t, int64_t b, int64_t i) {
    return t.dtype == TK_DTYPE_I64 ? *element_at<const int64_t>(t, b, i) : int64_t{*element_at<const int32_t>(t, b, i)};
}

// ---- Importance from attention probabilities ----------------------------------------------------

// Keys per task: at most 512, so the accumulator row (2 KiB) stays in L1 while heads and queries
// stream past it, and few enough that every thread gets a few tasks. Each key's sum is its own, so
// the width changes no result.
int64_t importance_key_tile(int64_t batch, int64_t key_count) {
    constexpr int64_t kMaxKeyTile = 512;
    constexpr int64_t kMinKeyTile = 64;
    const int64_t per_task = (batch * key_count + 4 * int64_t{num_threads()} - 1) / (4 * int64_t{num_threads()});
    return std::clamp<int64_t>((per_task + kMinKeyTile - 1) / kMinKeyTile * kMinKeyTile, kMinKeyTile, kMaxKeyTile);
}

template <class T>
void attention_importance_typed(const ImportancePlan& plan) {
    const StridedTensor& attn = plan.attn;
    const int64_t key_count = plan.key_end - plan.key_begin;
    const int64_t key_tile = importance_key_tile(plan.batch, key_count);
    const int64_t tiles = (key_count + key_tile - 1) / key_tile;
    const int64_t rows = plan.heads * (plan.query_end - plan.query_begin);
    parallel_for(plan.batch * tiles, min_tasks_per_chunk(rows * key_tile), [&](int64_t begin, int64_t end) {
        std::vector<float> accumulators(static_cast<size_t>(key_tile));
        float* acc = accumulators.data();
        for (int64_t task = begin; task < end; ++task) {
            const int64_t b = task / tiles;
            const int64_t j0 = plan.key_begin + task % tiles * key_tile;
            const int64_t width = std::min(key_tile, plan.key_end - j0);
            std::fill(acc, acc + width, 0.0f);
            // One accumulator per key, heads outer and queries inner, as the contract orders the sum;
            // the loop over keys is independent lanes, so it vectorises without reassociation.
            for (int64_t h = 0; h < plan.heads; ++h) {
                for (int64_t i = plan.query_begin; i < plan.query_end; ++i) {
                    const T* row = static_cast<const T*>(attn.data) + b * attn.strides[0] + h * attn.strides[1] +
                                   i * attn.strides[2] + j0;
                    for (int64_t j = 0; j < width; ++j) acc[j] += to_float(row[j]);
                }
            }
            float* out = element_at<float>(plan.out, b, j0 - plan.key_begin);
            for (int64_t j = 0; j < width; ++j) out[j * plan.out.strides[1]] = acc[j] / plan.divisor;
        }
    });
}

// ---- Importance from Q and K --------------------------------------------------------------------

// Scores come from the register-blocked float32 micro-kernel of token merging
// (cpu/merge_microkernel.hpp): query panels of mr rows packed [d][mr] against key tiles of kKeyTile
// keys packed as kKeyTile / nr panels [d][nr]. Each score is one dot product over the channels in
// increasing order, whatever tile it falls in and whichever thread computes it. Each operand is
// packed once per block and reused across the block's other operand, so packing stays a small
// fraction of the multiply-adds.
constexpr int64_t kKeyTile = 64;           // a multiple of every micro-kernel's nr
constexpr int64_t kPanelsPerBlock = 8;     // query panels per first-pass task
constexpr int64_t kMaxKeyTilesPerBlock = 8;

// take ? a : b by bit masks. Under -ftrapping-math (the default) the compiler will not turn a float
// select that follows float arithmetic into a vector blend, so a loop with one does not vectorise.
inline float select_bits(bool take, float a, float b) {
    const uint32_t mask = 0u - static_cast<uint32_t>(take);
    return bits_to_float((float_to_bits(a) & mask) | (float_to_bits(b) & ~mask));
}

// exp(x) in float32 within a few ulp, without branches or calls, so that loops over a row of
// scores vectorise (the C library's expf is one call per element). Cody-Waite reduction to
// x = n ln2 + r, |r| <= ln2 / 2, and Cephes' degree-7 polynomial for exp(r). Results below the
// smallest normal float (x < -87) are 0, which no sum of probabilities notices; above 88, +inf;
// NaN stays NaN.
inline float exp_approx(float x) {
    constexpr float kLog2e = 1.44269504088896341f;
    constexpr float kLn2High = 0.693359375f;  // ln 2 in two parts: n * kLn2High is exact
    constexpr float kLn2Low = -2.12194440e-4f;
    constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
    const float at_least_min = select_bits(x < -87.0f, -87.0f, x);  // NaN passes both
    const float clamped = select_bits(at_least_min > 88.0f, 88.0f, at_least_min);
    const float shifted = clamped * kLog2e + kRoundMagic;
    const float n = shifted - kRoundMagic;
    const float r = (clamped - n * kLn2High) - n * kLn2Low;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float exp_r = p * r * r + r + 1.0f;
    // 2^n from the integer in shifted's low mantissa bits, n in [-126, 127].
    const uint32_t n_bits = float_to_bits(shifted) - float_to_bits(kRoundMagic);
    const float scaled = exp_r * bits_to_float((n_bits + 127u) << 23);
    const float result = select_bits(x > 88.0f, std::numeric_limits<float>::infinity(), scaled);
    return select_bits(x < -87.0f, 0.0f, result);
}

// Lanes of partial maxima and sums over a score row: independent lanes vectorise, and they are
// combined in a fixed order, so the result depends on the data alone.
constexpr int64_t kLanes = 16;

// sum of a[c] * b[c] in the order of ops/lane_sum.hpp, which the CUDA backend repeats where the
// results must agree (contextual tokens).
template <class A, class B>
float dot_product(const A* a, const B* b, int64_t channels) {
    return lane_sum(channels, [&](int64_t c) { return to_float(a[c]) * to_float(b[c]); });
}

// Keys [0, visible_keys(i)) are visible to query i.
int64_t visible_keys(const ImportancePlan& plan, int64_t i) {
    if (!plan.causal) return plan.keys;
    return std::clamp<int64_t>(i + plan.keys - plan.queries + 1, 0, plan.keys);
}

// Per-thread packed operands and the score tile.
struct ScoreTiles {
    const MicroKernel& kernel;
    int64_t head_dim;
    std::vector<float> queries;  // [panels][d][mr], zero past the last row
    std::vector<float> keys;     // [tiles][kKeyTile / nr][d][nr], zero past the last key
    std::vector<float> scores;   // [mr][kKeyTile]: scale * q . k
    ScoreTiles(const MicroKernel& micro_kernel, int64_t d, int64_t query_panels, int64_t key_tiles)
        : kernel(micro_kernel),
          head_dim(d),
          queries(static_cast<size_t>(query_panels * d * micro_kernel.mr)),
          keys(static_cast<size_t>(key_tiles * kKeyTile * d)),
          scores(static_cast<size_t>(micro_kernel.mr * kKeyTile)) {}
    float* query_panel(int64_t p) { return queries.data() + p * head_dim * kernel.mr; }
    float* key_tile(int64_t t) { return keys.data() + t * kKeyTile * head_dim; }
};

// Rows [i0, i0 + count) of query head h into a panel.
template <class T>
void pack_queries(const ImportancePlan& plan, int64_t b, int64_t h, int64_t i0, int64_t count, int64_t mr, float* panel) {
    const int64_t d = plan.head_dim;
    for (int64_t r = 0; r < mr; ++r) {
        if (r >= count) {
            for (int64_t c = 0; c < d; ++c) panel[c * mr + r] = 0.0f;
            continue;
        }
        const T* q = element_at<const T>(plan.q, b, h, i0 + r);
        for (int64_t c = 0; c < d; ++c) panel[c * mr + r] = to_float(q[c]);
    }
}

// Keys [j0, j0 + count) of key head key_head into a tile.
template <class T>
void pack_keys(const ImportancePlan& plan, int64_t b, int64_t key_head, int64_t j0, int64_t count, int64_t nr, float* tile) {
    const int64_t d = plan.head_dim;
    for (int64_t j = 0; j < kKeyTile; ++j) {
        float* lane = tile + (j / nr) * d * nr + j % nr;
        if (j >= count) {
            for (int64_t c = 0; c < d; ++c) lane[c * nr] = 0.0f;
            continue;
        }
        const T* k = element_at<const T>(plan.k, b, key_head, j0 + j);
        for (int64_t c = 0; c < d; ++c) lane[c * nr] = to_float(k[c]);
    }
}

// tiles.scores[r][j] = scale * (q_r . k_j) for a packed query panel and key tile.
void score_tile(float scale, int64_t rows, const float* query_panel, const float* key_tile, ScoreTiles& tiles) {
    const MicroKernel& kernel = tiles.kernel;
    for (int64_t j = 0; j < kKeyTile; j += kernel.nr)
        kernel.fn(tiles.head_dim, query_panel, key_tile + j * tiles.head_dim, tiles.scores.data() + j, kKeyTile, false);
    for (int64_t r = 0; r < rows; ++r) {
        float* s = tiles.scores.data() + r * kKeyTile;
        for (int64_t j = 0; j < kKeyTile; ++j) s[j] *= scale;
    }
}

// The first pass: lse of every row of the query range, over the keys that row sees, as a running
// maximum and a running sum of exponentials rescaled whenever the maximum grows. One task per item,
// head and block of query panels: each key tile is packed once for the whole block.
template <class T>
std::vector<float> row_log_sum_exp(const ImportancePlan& plan) {
    const MicroKernel& kernel = best_micro_kernel();
    const int64_t mr = kernel.mr;
    const int64_t query_count = plan.query_end - plan.query_begin;
    const int64_t block_rows = kPanelsPerBlock * mr;
    const int64_t blocks = (query_count + block_rows - 1) / block_rows;
    const int64_t group = plan.heads / plan.key_heads;
    std::vector<float> lse(static_cast<size_t>(plan.batch * plan.heads * query_count));
    const int64_t work_per_task = block_rows * plan.keys * plan.head_dim;
    parallel_for(plan.batch * plan.heads * blocks, min_tasks_per_chunk(work_per_task), [&](int64_t begin, int64_t end) {
        ScoreTiles tiles(kernel, plan.head_dim, kPanelsPerBlock, 1);
        std::vector<float> running_max(static_cast<size_t>(block_rows));
        std::vector<float> running_sum(static_cast<size_t>(block_rows));
        for (int64_t task = begin; task < end; ++task) {
            const int64_t bh = task / blocks;
            const int64_t b = bh / plan.heads;
            const int64_t h = bh % plan.heads;
            const int64_t block_begin = plan.query_begin + task % blocks * block_rows;
            const int64_t rows = std::min(block_rows, plan.query_end - block_begin);
            const int64_t panels = (rows + mr - 1) / mr;
            for (int64_t p = 0; p < panels; ++p)
                pack_queries<T>(plan, b, h, block_begin + p * mr, std::min(mr, rows - p * mr), mr, tiles.query_panel(p));
            std::fill(running_max.begin(), running_max.end(), kNegInf);
            std::fill(running_sum.begin(), running_sum.end(), 0.0f);
            const int64_t key_limit = visible_keys(plan, block_begin + rows - 1);
            for (int64_t j0 = 0; j0 < key_limit; j0 += kKeyTile) {
                const int64_t cols = std::min(kKeyTile, key_limit - j0);
                pack_keys<T>(plan, b, h / group, j0, cols, kernel.nr, tiles.key_tile(0));
                for (int64_t p = 0; p < panels; ++p) {
                    const int64_t i0 = block_begin + p * mr;
                    const int64_t panel_rows = std::min(mr, rows - p * mr);
                    if (visible_keys(plan, i0 + panel_rows - 1) <= j0) continue;
                    score_tile(plan.scale, panel_rows, tiles.query_panel(p), tiles.key_tile(0), tiles);
                    for (int64_t r = 0; r < panel_rows; ++r) {
                        const int64_t visible = std::min(cols, visible_keys(plan, i0 + r) - j0);
                        if (visible <= 0) continue;
                        // Keys past `visible` count as -inf: they raise no maximum and add exp(-inf) = 0.
                        float* s = tiles.scores.data() + r * kKeyTile;
                        for (int64_t j = visible; j < kKeyTile; ++j) s[j] = kNegInf;
                        float lane_max[kLanes];
                        std::fill(lane_max, lane_max + kLanes, kNegInf);
                        for (int64_t j = 0; j < kKeyTile; j += kLanes)
                            for (int64_t l = 0; l < kLanes; ++l) lane_max[l] = std::max(lane_max[l], s[j + l]);
                        float& row_max = running_max[static_cast<size_t>(p * mr + r)];
                        float& row_sum = running_sum[static_cast<size_t>(p * mr + r)];
                        const float new_max = std::max(row_max, *std::max_element(lane_max, lane_max + kLanes));
                        // Until a finite score arrives the sum stays 0 (never exp(-inf - -inf) = NaN).
                        if (new_max == kNegInf) continue;
                        float lane_sum[kLanes] = {};
                        for (int64_t j = 0; j < kKeyTile; j += kLanes)
                            for (int64_t l = 0; l < kLanes; ++l) lane_sum[l] += exp_approx(s[j + l] - new_max);
                        float sum = row_sum * exp_approx(row_max - new_max);
                        for (float partial : lane_sum) sum += partial;
                        row_max = new_max;
                        row_sum = sum;
                    }
                }
            }
            float* out = lse.data() + bh * query_count + (block_begin - plan.query_begin);
            for (int64_t r = 0; r < rows; ++r)
                out[r] = running_max[static_cast<size_t>(r)] + std::log(running_sum[static_cast<size_t>(r)]);
        }
    });
    return lse;
}

// Query ranges of at most this many rows (the CLS row, the last token) take the few-rows path.
constexpr int64_t kFewRows = 4;
// Keys per task of the few-rows path.
constexpr int64_t kFewRowsKeyChunk = 256;

// Few query rows: each key meets only a handful of dot products, so packing it for the micro-kernel
// would cost as much as they do. Keys are read in place (d contiguous), one item at a time, and the
// rows' logits are kept (heads x rows x keys floats), so K is read once even when the log-sum-exp
// must be computed first. Sums run over keys in fixed lanes, and over heads then rows in order.
template <class T>
void few_rows_importance(const ImportancePlan& plan) {
    const int64_t rows = plan.query_end - plan.query_begin;
    const int64_t d = plan.head_dim;
    const int64_t group = plan.heads / plan.key_heads;
    const bool lse_given = plan.lse.data != nullptr;
    // Logits of keys [first_key, last_key): the scored range, or every key when the rows' statistics
    // need them all.
    const int64_t first_key = lse_given ? plan.key_begin : 0;
    const int64_t last_key = lse_given ? plan.key_end : plan.keys;
    const int64_t span = last_key - first_key;
    const int64_t key_chunks = (span + kFewRowsKeyChunk - 1) / kFewRowsKeyChunk;
    std::vector<float> queries(static_cast<size_t>(plan.heads * rows * d));
    std::vector<float> logits(static_cast<size_t>(plan.heads * rows * span));
    std::vector<float> lse(static_cast<size_t>(plan.heads * rows));
    auto logit_row = [&](int64_t h, int64_t r) { return logits.data() + (h * rows + r) * span; };
    for (int64_t b = 0; b < plan.batch; ++b) {
        for (int64_t h = 0; h < plan.heads; ++h)
            for (int64_t r = 0; r < rows; ++r) {
                const T* q = element_at<const T>(plan.q, b, h, plan.query_begin + r);
                float* out = queries.data() + (h * rows + r) * d;
                for (int64_t c = 0; c < d; ++c) out[c] = to_float(q[c]);
            }
        parallel_for(plan.heads * key_chunks, min_tasks_per_chunk(kFewRowsKeyChunk * rows * d), [&](int64_t begin, int64_t end) {
            for (int64_t task = begin; task < end; ++task) {
                const int64_t h = task / key_chunks;
                const int64_t j0 = first_key + task % key_chunks * kFewRowsKeyChunk;
                const int64_t j1 = std::min(j0 + kFewRowsKeyChunk, last_key);
                for (int64_t j = j0; j < j1; ++j) {
                    const T* k = element_at<const T>(plan.k, b, h / group, j);
                    for (int64_t r = 0; r < rows; ++r)
                        logit_row(h, r)[j - first_key] = plan.scale * dot_product(queries.data() + (h * rows + r) * d, k, d);
                }
            }
        });
        parallel_for(plan.heads * rows, min_tasks_per_chunk(span), [&](int64_t begin, int64_t end) {
            for (int64_t task = begin; task < end; ++task) {
                const int64_t h = task / rows;
                const int64_t r = task % rows;
                if (lse_given) {
                    lse[static_cast<size_t>(task)] = *element_at<const float>(plan.lse, b, h, plan.query_begin + r);
                    continue;
                }
                const float* s = logit_row(h, r);
                const int64_t visible = visible_keys(plan, plan.query_begin + r);
                float lane_max[kLanes];
                std::fill(lane_max, lane_max + kLanes, kNegInf);
                for (int64_t j = 0; j < visible; ++j) lane_max[j % kLanes] = std::max(lane_max[j % kLanes], s[j]);
                const float row_max = *std::max_element(lane_max, lane_max + kLanes);
                float lane_sum[kLanes] = {};
                // A row that sees no finite score gets lse = -inf; it adds nothing below.
                if (row_max != kNegInf)
                    for (int64_t j = 0; j < visible; ++j) lane_sum[j % kLanes] += exp_approx(s[j] - row_max);
                float sum = 0.0f;
                for (float partial : lane_sum) sum += partial;
                lse[static_cast<size_t>(task)] = row_max + std::log(sum);
            }
        });
        const int64_t key_count = plan.key_end - plan.key_begin;
        const int64_t out_chunks = (key_count + kFewRowsKeyChunk - 1) / kFewRowsKeyChunk;
        parallel_for(out_chunks, min_tasks_per_chunk(kFewRowsKeyChunk * plan.heads * rows), [&](int64_t begin, int64_t end) {
            float acc[kFewRowsKeyChunk];
            for (int64_t chunk = begin; chunk < end; ++chunk) {
                const int64_t j0 = plan.key_begin + chunk * kFewRowsKeyChunk;
                const int64_t width = std::min(kFewRowsKeyChunk, plan.key_end - j0);
                std::fill(acc, acc + width, 0.0f);
                for (int64_t h = 0; h < plan.heads; ++h)
                    for (int64_t r = 0; r < rows; ++r) {
                        const int64_t visible = std::min(width, visible_keys(plan, plan.query_begin + r) - j0);
                        const float row_lse = lse[static_cast<size_t>(h * rows + r)];
                        const float* s = logit_row(h, r) + (j0 - first_key);
                        for (int64_t j = 0; j < visible; ++j) acc[j] += exp_approx(s[j] - row_lse);
                    }
                float* out = element_at<float>(plan.out, b, j0 - plan.key_begin);
                for (int64_t j = 0; j < width; ++j) out[j * plan.out.strides[1]] = acc[j] / plan.divisor;
            }
        });
    }
}

// The second pass: one task per item and block of key tiles, looping heads, then queries, in
// increasing order, so every key's float32 sum runs in an order fixed by the data, not by the
// threads. A block's key tiles are packed once per key head and each query panel once per block.
template <class T>
void qk_importance_typed(const ImportancePlan& plan) {
    const int64_t query_count = plan.query_end - plan.query_begin;
    if (query_count <= kFewRows) {
        few_rows_importance<T>(plan);
        return;
    }
    std::vector<float> computed_lse;
    if (plan.lse.data == nullptr) computed_lse = row_log_sum_exp<T>(plan);
    auto lse_of = [&](int64_t b, int64_t h, int64_t i) {
        if (plan.lse.data != nullptr) return *element_at<const float>(plan.lse, b, h, i);
        return computed_lse[static_cast<size_t>((b * plan.heads + h) * query_count + (i - plan.query_begin))];
    };

    const MicroKernel& kernel = best_micro_kernel();
    const int64_t mr = kernel.mr;
    const int64_t group = plan.heads / plan.key_heads;
    const int64_t key_count = plan.key_end - plan.key_begin;
    const int64_t key_tiles = (key_count + kKeyTile - 1) / kKeyTile;
    // Large blocks save packing; enough of them keep every thread busy.
    const int64_t tiles_per_block =
        std::clamp<int64_t>(plan.batch * key_tiles / (4 * int64_t{num_threads()}), 1, kMaxKeyTilesPerBlock);
    const int64_t blocks = (key_tiles + tiles_per_block - 1) / tiles_per_block;
    const int64_t work_per_task = plan.heads * query_count * tiles_per_block * kKeyTile * plan.head_dim;
    parallel_for(plan.batch * blocks, min_tasks_per_chunk(work_per_task), [&](int64_t begin, int64_t end) {
        ScoreTiles tiles(kernel, plan.head_dim, 1, tiles_per_block);
        std::vector<float> acc(static_cast<size_t>(tiles_per_block * kKeyTile));
        for (int64_t task = begin; task < end; ++task) {
            const int64_t b = task / blocks;
            const int64_t block_begin = plan.key_begin + task % blocks * tiles_per_block * kKeyTile;
            const int64_t block_keys = std::min(tiles_per_block * kKeyTile, plan.key_end - block_begin);
            const int64_t block_tiles = (block_keys + kKeyTile - 1) / kKeyTile;
            std::fill(acc.begin(), acc.end(), 0.0f);
            int64_t packed_key_head = -1;
            for (int64_t h = 0; h < plan.heads; ++h) {
                for (int64_t i0 = plan.query_begin; i0 < plan.query_end; i0 += mr) {
                    const int64_t rows = std::min(mr, plan.query_end - i0);
                    const int64_t panel_keys = visible_keys(plan, i0 + rows - 1);
                    if (panel_keys <= block_begin) continue;
                    if (packed_key_head != h / group) {
                        packed_key_head = h / group;
                        for (int64_t t = 0; t < block_tiles; ++t)
                            pack_keys<T>(plan, b, packed_key_head, block_begin + t * kKeyTile,
                                         std::min(kKeyTile, block_keys - t * kKeyTile), kernel.nr, tiles.key_tile(t));
                    }
                    pack_queries<T>(plan, b, h, i0, rows, mr, tiles.query_panel(0));
                    for (int64_t t = 0; t < block_tiles; ++t) {
                        const int64_t j0 = block_begin + t * kKeyTile;
                        if (panel_keys <= j0) break;
                        const int64_t cols = std::min(kKeyTile, block_keys - t * kKeyTile);
                        score_tile(plan.scale, rows, tiles.query_panel(0), tiles.key_tile(t), tiles);
                        float* tile_acc = acc.data() + t * kKeyTile;
                        for (int64_t r = 0; r < rows; ++r) {
                            const int64_t visible = std::min(cols, visible_keys(plan, i0 + r) - j0);
                            if (visible <= 0) continue;
                            const float lse = lse_of(b, h, i0 + r);
                            const float* s = tiles.scores.data() + r * kKeyTile;
                            for (int64_t j = 0; j < visible; ++j) tile_acc[j] += exp_approx(s[j] - lse);
                        }
                    }
                }
            }
            float* out = element_at<float>(plan.out, b, block_begin - plan.key_begin);
            for (int64_t j = 0; j < block_keys; ++j) out[j * plan.out.strides[1]] = acc[static_cast<size_t>(j)] / plan.divisor;
        }
    });
}

// ---- Top-k --------------------------------------------------------------------------------------

// The contract's total order: higher score first, NaN after every number (-inf included), ties and
// NaN against NaN to the lower position.
struct RanksBefore {
    const float* score;
    bool operator()(int32_t a, int32_t b) const {
        const bool nan_a = is_nan(score[a]);
        const bool nan_b = is_nan(score[b]);
        if (nan_a != nan_b) return nan_b;
        if (!nan_a && score[a] != score[b]) return score[a] > score[b];
        return a < b;
    }
};

}  // namespace

namespace {

// A score as an unsigned key in the contract's order, greater ranking first: -0 and +0 alike, NaN
// below -inf.
uint32_t rank_key(float score) {
    if (is_nan(score)) return 0;
    if (score == 0.0f) score = 0.0f;
    uint32_t bits = 0;
    std::memcpy(&bits, &score, sizeof bits);
    return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
}

}  // namespace

void choose_best_in_position_order(const float* score, int64_t length, int64_t count, int32_t* order, std::vector<uint32_t>& keys) {
    if (count >= length) {
        for (int64_t i = 0; i < length; ++i) order[i] = static_cast<int32_t>(i);
        return;
    }
    if (count <= 0) return;
    keys.resize(static_cast<size_t>(length));
    uint32_t* key = keys.data();
    for (int64_t i = 0; i < length; ++i) key[i] = rank_key(score[i]);
    // The count-th greatest key, digit by digit from the top (11, 11 and 10 bits): a histogram of the
    // keys that share the digits found so far, walked from its greatest digit. Every key above it is
    // chosen, and as many equal to it, lowest positions first, as complete the count.
    constexpr int kDigitBits[3] = {11, 11, 10};
    uint32_t threshold = 0;
    int64_t wanted = count;  // among the keys that share the threshold's digits so far
    int shift = 32;
    for (int digit = 0; digit < 3; ++digit) {
        const uint32_t prefix_mask = shift == 32 ? 0u : ~0u << shift;
        shift -= kDigitBits[digit];
        const uint32_t digit_mask = (1u << kDigitBits[digit]) - 1u;
        uint32_t histogram[1u << 11] = {};
        for (int64_t i = 0; i < length; ++i)
            if ((key[i] & prefix_mask) == threshold) ++histogram[(key[i] >> shift) & digit_mask];
        uint32_t d = digit_mask;
        while (static_cast<int64_t>(histogram[d]) < wanted) wanted -= histogram[d--];
        threshold |= d << shift;
    }
    // Without branches: which scores pass is as random as the scores (order[next] is written ahead
    // of being kept; next <= i).
    int64_t next = 0;
    for (int64_t i = 0; i < length; ++i) {
        const bool tie = key[i] == threshold;
        const bool take = key[i] > threshold || (tie && wanted > 0);
        wanted -= tie & take;
        order[next] = static_cast<int32_t>(i);
        next += take;
    }
}

void sort_best_by_rank(const float* score, int64_t count, int32_t* order) {
    std::sort(order, order + count, RanksBefore{score});
}

namespace {

template <class T>
void topk_typed(const TopkPlan& plan) {
    parallel_for(plan.batch, min_tasks_per_chunk(plan.tokens * 8), [&](int64_t begin, int64_t end) {
        std::vector<float> score(static_cast<size_t>(plan.tokens));
        std::vector<int32_t> order(static_cast<size_t>(plan.tokens));
        std::vector<uint32_t> keys;
        for (int64_t b = begin; b < end; ++b) {
            const int64_t length = plan.lengths.data ? *element_at<const int32_t>(plan.lengths, b) : plan.tokens;
            const int64_t item_k = plan.item_k.data ? *element_at<const int32_t>(plan.item_k, b) : plan.k;
            const int64_t count = std::min(item_k, length);
            for (int64_t i = 0; i < length; ++i) score[static_cast<size_t>(i)] = to_float(*element_at<const T>(plan.scores, b, i));
            choose_best_in_position_order(score.data(), length, count, order.data(), keys);
            for (int64_t r = 0; r < plan.k; ++r)
                *element_at<int32_t>(plan.indices, b, r) = r < count ? order[static_cast<size_t>(r)] : -1;
            if (plan.ranked.data != nullptr) {
                sort_best_by_rank(score.data(), count, order.data());
                for (int64_t r = 0; r < plan.k; ++r)
                    *element_at<int32_t>(plan.ranked, b, r) = r < count ? order[static_cast<size_t>(r)] : -1;
            }
        }
    });
}

// ---- VisionZip contextual tokens ---------------------------------------------------------------

// Per item: the targets and, for every remaining token that is not one, the target it joins.
struct ContextualItem {
    std::vector<int32_t> targets;           // [m] token positions
    std::vector<int32_t> assigned;          // remaining non-target tokens, increasing position
    std::vector<int32_t> assigned_target;   // [assigned.size()] target slot
    std::vector<float> target_metric;       // [m][Cm] normalised
    std::vector<int32_t> members_begin;     // [m + 1] CSR offsets into members
    std::vector<int32_t> members;           // assigned tokens grouped by target, increasing position
};

// The row divided by max(|row|, eps), in float32.
template <class T>
void normalise_row(const T* row, int64_t channels, float* out) {
    const float norm = std::max(std::sqrt(dot_product(row, row, channels)), kCosineEps);
    for (int64_t c = 0; c < channels; ++c) out[c] = to_float(row[c]) / norm;
}

template <class M>
void choose_targets(const ContextualPlan& plan, std::vector<ContextualItem>& items) {
    const int64_t m = plan.contextual;
    const int64_t cm = plan.metric_channels;
    parallel_for(plan.batch, 1, [&](int64_t begin, int64_t end) {
        std::vector<uint8_t> kept(static_cast<size_t>(plan.tokens));
        std::vector<int32_t> remaining;
        for (int64_t b = begin; b < end; ++b) {
            ContextualItem& item = items[static_cast<size_t>(b)];
            std::fill(kept.begin(), kept.end(), 0);
            for (int64_t i = 0; i < plan.kept; ++i) kept[static_cast<size_t>(index_at(plan.kept_indices, b, i))] = 1;
            remaining.clear();
            for (int64_t n = 0; n < plan.tokens; ++n)
                if (!kept[static_cast<size_t>(n)]) remaining.push_back(static_cast<int32_t>(n));
            const int64_t step = std::max<int64_t>(1, static_cast<int64_t>(remaining.size()) / m);
            item.targets.clear();
            item.assigned.clear();
            for (size_t r = 0; r < remaining.size(); ++r) {
                if (static_cast<int64_t>(r) % step == 0 && static_cast<int64_t>(r) / step < m) {
                    item.targets.push_back(remaining[r]);
                } else {
                    item.assigned.push_back(remaining[r]);
                }
            }
            item.target_metric.resize(static_cast<size_t>(m * cm));
            for (int64_t t = 0; t < m; ++t)
                normalise_row(element_at<const M>(plan.metric, b, item.targets[static_cast<size_t>(t)]), cm,
                              item.target_metric.data() + t * cm);
            item.assigned_target.assign(item.assigned.size(), 0);
        }
    });
}

// Each assigned token's best target: strict `>` in increasing target order, so the lower target
// wins ties and a NaN similarity never wins; with no number among them the token joins target 0.
template <class M>
void assign_tokens(const ContextualPlan& plan, std::vector<ContextualItem>& items) {
    const int64_t m = plan.contextual;
    const int64_t cm = plan.metric_channels;
    std::vector<int64_t> first_task(static_cast<size_t>(plan.batch + 1), 0);
    for (size_t b = 0; b < items.size(); ++b) first_task[b + 1] = first_task[b] + static_cast<int64_t>(items[b].assigned.size());
    parallel_for(first_task.back(), min_tasks_per_chunk(m * cm), [&](int64_t begin, int64_t end) {
        std::vector<float> normalised(static_cast<size_t>(cm));
        for (int64_t task = begin; task < end; ++task) {
            const int64_t b = std::upper_bound(first_task.begin(), first_task.end(), task) - first_task.begin() - 1;
            ContextualItem& item = items[static_cast<size_t>(b)];
            const size_t a = static_cast<size_t>(task - first_task[static_cast<size_t>(b)]);
            normalise_row(element_at<const M>(plan.metric, b, item.assigned[a]), cm, normalised.data());
            float best = kNegInf;
            int32_t best_target = 0;
            for (int64_t t = 0; t < m; ++t) {
                const float* target = item.target_metric.data() + t * cm;
                const float dot = dot_product(normalised.data(), target, cm);
                if (dot > best) {
                    best = dot;
                    best_target = static_cast<int32_t>(t);
                }
            }
            item.assigned_target[a] = best_target;
        }
    });
}

template <class T>
void write_contextual(const ContextualPlan& plan, std::vector<ContextualItem>& items) {
    const int64_t m = plan.contextual;
    const int64_t channels = plan.channels;
    for (ContextualItem& item : items) {
        item.members_begin.assign(static_cast<size_t>(m + 1), 0);
        for (int32_t t : item.assigned_target) ++item.members_begin[static_cast<size_t>(t + 1)];
        std::partial_sum(item.members_begin.begin(), item.members_begin.end(), item.members_begin.begin());
        item.members.resize(item.assigned.size());
        std::vector<int32_t> next(item.members_begin.begin(), item.members_begin.end() - 1);
        // Filling in increasing position keeps each target's members in increasing position.
        for (size_t a = 0; a < item.assigned.size(); ++a)
            item.members[static_cast<size_t>(next[static_cast<size_t>(item.assigned_target[a])]++)] = item.assigned[a];
    }
    parallel_for(plan.batch * m, min_tasks_per_chunk(channels * 4), [&](int64_t begin, int64_t end) {
        std::vector<float> sum(static_cast<size_t>(channels));
        float* s = sum.data();
        for (int64_t task = begin; task < end; ++task) {
            const int64_t b = task / m;
            const int64_t t = task % m;
            const ContextualItem& item = items[static_cast<size_t>(b)];
            const T* target = element_at<const T>(plan.x, b, item.targets[static_cast<size_t>(t)]);
            T* out = element_at<T>(plan.out, b, t);
            const int32_t first = item.members_begin[static_cast<size_t>(t)];
            const int32_t last = item.members_begin[static_cast<size_t>(t + 1)];
            if (first == last) {
                std::memcpy(out, target, static_cast<size_t>(channels) * sizeof(T));
                continue;
            }
            std::fill(s, s + channels, 0.0f);
            for (int32_t k = first; k < last; ++k) {
                const T* row = element_at<const T>(plan.x, b, item.members[static_cast<size_t>(k)]);
                for (int64_t c = 0; c < channels; ++c) s[c] += to_float(row[c]);
            }
            const float count = static_cast<float>(last - first);
            for (int64_t c = 0; c < channels; ++c) out[c] = from_float<T>(to_float(target[c]) + s[c] / count);
        }
    });
}

}  // namespace

void attention_importance(const ImportancePlan& plan) {
    dispatch_float(plan.attn.dtype, [&](auto tag) { attention_importance_typed<storage_t<decltype(tag)>>(plan); });
}

void qk_importance(const ImportancePlan& plan) {
    dispatch_float(plan.q.dtype, [&](auto tag) { qk_importance_typed<storage_t<decltype(tag)>>(plan); });
}

void topk(const TopkPlan& plan) {
    dispatch_float(plan.scores.dtype, [&](auto tag) { topk_typed<storage_t<decltype(tag)>>(plan); });
}

void gather(const GatherPlan& plan) {
    const size_t row_bytes = static_cast<size_t>(plan.channels * tk_dtype_size(plan.x.dtype));
    const int64_t element_size = tk_dtype_size(plan.x.dtype);
    const bool streaming = streams_output(plan.batch * plan.k, row_bytes);
    parallel_for(plan.batch * plan.k, min_tasks_per_chunk(plan.channels), [&](int64_t begin, int64_t end) {
        for (int64_t task = begin; task < end; ++task) {
            const int64_t b = task / plan.k;
            const int64_t i = task % plan.k;
            const int64_t token = index_at(plan.indices, b, i);
            char* out = static_cast<char*>(plan.out.data) + (b * plan.out.strides[0] + i * plan.out.strides[1]) * element_size;
            if (token < 0) {  // top-k's padding
                std::memset(out, 0, row_bytes);
                continue;
            }
            const char* x = static_cast<const char*>(plan.x.data) + (b * plan.x.strides[0] + token * plan.x.strides[1]) * element_size;
            copy_bytes(out, x, row_bytes, streaming);
        }
        if (streaming) streaming_fence();
    });
}

void visionzip_contextual(const ContextualPlan& plan) {
    if (plan.contextual == 0) return;
    std::vector<ContextualItem> items(static_cast<size_t>(plan.batch));
    dispatch_float(plan.metric.dtype, [&](auto tag) {
        choose_targets<storage_t<decltype(tag)>>(plan, items);
        assign_tokens<storage_t<decltype(tag)>>(plan, items);
    });
    dispatch_float(plan.x.dtype, [&](auto tag) { write_contextual<storage_t<decltype(tag)>>(plan, items); });
}

}  // namespace tk::cpu
