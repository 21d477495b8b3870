// Attention-based pruning on CUDA (SPEC section 3; the contract is the header's comments on
// tk_importance_params, tk_qk_importance, tk_topk, tk_gather and tk_visionzip_contextual). Every op
// is a stream-ordered launch sequence with no host synchronisation and launch sizes that depend only
// on the plan, so each can be captured in a CUDA graph.
//
//   attention_importance_kernel  one thread per (item, key): heads, then queries, in increasing order
//   qk kernels                   tiled or few-rows Q K^T column sums            (attention_qk.cuh)
//   topk_select_kernel           one CTA per item: 4 x 8-bit radix select of the count-th key, then
//                                the selected positions compacted in increasing order (keys of the
//                                first 8192 positions held in registers across the passes)
//   cub::DeviceSegmentedRadixSort  (ranked only) each item's selection by (score desc, index asc)
//   ranked_write_kernel          ranked[b, r] from the sorted keys, -1 after count_b
//   gather_kernel                rows copied as the widest machine words that fit
//   contextual: mark_kept -> remaining (block scan per item) -> normalise_targets -> assign (one warp
//                per remaining token) -> cub::DeviceRadixSort (stable: groups by target, increasing
//                position) -> cub::DeviceScan (group offsets) -> contextual_rows
//
// Determinism: integer atomics only (histogram and group counts); every float sum has a fixed
// order. tk_attention_importance and the contextual similarities and sums take the CPU's order (the
// similarities in the lane order of ops/lane_sum.hpp) and, like all of this backend, no FMA
// contraction (-fmad=false), so both backends give the same bits.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/dispatch.hpp"
#include "cuda/attention_qk.cuh"
#include "cuda/check.cuh"
#include "cuda/dtype.cuh"
#include "cuda/merge_common.cuh"
#include "cuda/scratch.cuh"
#include "ops/attention.hpp"
#include "ops/lane_sum.hpp"
#include "ops/merge.hpp"

namespace tk::cuda {
namespace {

using namespace attention_detail;

constexpr int kElementThreads = 256;
constexpr int kItemThreads = 512;   // topk_select_kernel and remaining_kernel: one CTA per item
constexpr int kRowThreads = 256;
constexpr int64_t kMaxGridBlocks = 2147483647;
// CTAs the importance column pass aims for before splitting its reduction further (a few waves on
// the largest GPUs); fixed, so that the workspace size does not depend on the device.
constexpr int64_t kTargetBlocks = 1024;

dim3 element_grid(int64_t elements, int64_t threads) {
    return dim3(static_cast<unsigned>(std::max<int64_t>(1, std::min((elements + threads - 1) / threads, kMaxGridBlocks))));
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---- Importance from attention probabilities ---------------------------------------------------

// out[b, j - key_begin] = (sum over h, then i, of attn[b, h, i, j]) / divisor, in the CPU's order.
template <class T>
__global__ void attention_importance_kernel(const ImportancePlan plan) {
    const int64_t columns = plan.key_end - plan.key_begin;
    const int64_t count = plan.batch * columns;
    const StridedTensor& attn = plan.attn;
    for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < count;
         t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t b = t / columns;
        const int64_t c = t % columns;
        const T* column = static_cast<const T*>(attn.data) + b * attn.strides[0] + (plan.key_begin + c) * attn.strides[3];
        float acc = 0.0f;
        for (int64_t h = 0; h < plan.heads; ++h) {
            const T* head = column + h * attn.strides[1];
            // Unrolled so that several independent loads are in flight ahead of the ordered adds.
#pragma unroll 8
            for (int64_t i = plan.query_begin; i < plan.query_end; ++i) acc = __fadd_rn(acc, to_float(head[i * attn.strides[2]]));
        }
        static_cast<float*>(plan.out.data)[b * plan.out.strides[0] + c * plan.out.strides[1]] = __fdiv_rn(acc, plan.divisor);
    }
}

// ---- Importance from Q and K -------------------------------------------------------------------

// How the column pass is cut: the few-rows path or the tiled one, and into how many splits of the
// (head, query) reduction.
struct QkShape {
    bool few_rows;
    int64_t rows;              // R
    int64_t columns;           // key_end - key_begin
    int64_t key_tiles;         // over [key_begin, key_end)
    int64_t query_tiles;       // tiled path
    int64_t lse_tiles;         // few-rows first pass: tiles over all Nk keys
    int64_t lse_head_splits;   // few-rows first pass
    int64_t splits;            // column pass
    int64_t partial_width;     // key_tiles * tile
};

QkShape qk_shape(const ImportancePlan& plan) {
    QkShape s{};
    s.rows = plan.query_end - plan.query_begin;
    s.columns = plan.key_end - plan.key_begin;
    s.few_rows = s.rows <= kFewRows;
    const int64_t tile = s.few_rows ? kFewKeys : kKeyTile;
    s.key_tiles = ceil_div(s.columns, tile);
    s.partial_width = s.key_tiles * tile;
    const int64_t base = std::max<int64_t>(1, plan.batch * s.key_tiles);
    if (s.few_rows) {
        s.splits = std::clamp<int64_t>(ceil_div(kTargetBlocks, base), 1, plan.heads);
        s.lse_tiles = ceil_div(plan.keys, kFewKeys);
        s.lse_head_splits =
            std::clamp<int64_t>(ceil_div(kTargetBlocks, std::max<int64_t>(1, plan.batch * s.lse_tiles)), 1, plan.heads);
    } else {
        s.query_tiles = ceil_div(s.rows, kQueryTile);
        s.splits = std::clamp<int64_t>(ceil_div(kTargetBlocks, base), 1, plan.heads * s.query_tiles);
    }
    // The grids of the launches below are 1-D: every block count must fit gridDim.x.
    const int64_t column_blocks = plan.batch * s.key_tiles * s.splits;
    const int64_t lse_blocks = s.few_rows ? plan.batch * s.lse_tiles * s.lse_head_splits
                                          : plan.batch * plan.heads * s.query_tiles;
    const int64_t blocks = std::max(column_blocks, lse_blocks);
    if (blocks > kMaxGridBlocks)
        throw Error(TK_STATUS_INVALID_ARGUMENT,
                    "q: expected a shape whose CUDA grid fits 2147483647 blocks, got B = " + std::to_string(plan.batch) +
                        ", H = " + std::to_string(plan.heads) + ", " + std::to_string(s.rows) + " query rows and " +
                        std::to_string(plan.keys) + " keys, which need " + std::to_string(blocks));
    return s;
}

struct QkLayout {
    uint64_t lse;          // f32 [B, H, R], when lse is not given
    uint64_t lse_partial;  // float2 [B, H, R, slots], few-rows path without lse
    uint64_t partial;      // f32 [B, splits, partial_width]
    uint64_t total;
};

QkLayout qk_layout(const ImportancePlan& plan, const QkShape& s) {
    RegionCursor cursor;
    QkLayout w{};
    const uint64_t batch = static_cast<uint64_t>(plan.batch);
    if (plan.lse.data == nullptr) {
        w.lse = cursor.take(batch * plan.heads * s.rows * sizeof(float));
        if (s.few_rows)
            w.lse_partial =
                cursor.take(batch * plan.heads * s.rows * s.lse_tiles * (kFewKeys / 32) * sizeof(float2));
    }
    w.partial = cursor.take(batch * s.splits * s.partial_width * sizeof(float));
    w.total = cursor.total();
    return w;
}

template <class T>
bool qk_vector_loads(const ImportancePlan& plan) {
    const int64_t v = kMaxVector<T>;
    auto fits = [v](const StridedTensor& t) {
        return reinterpret_cast<uintptr_t>(t.data) % 16 == 0 && t.strides[0] % v == 0 && t.strides[1] % v == 0 &&
               t.strides[2] % v == 0;
    };
    return fits(plan.q) && fits(plan.k);
}

template <class T, int D>
void launch_tiled(const ImportancePlan& plan, const QkShape& s, QkArgs args, bool compute_lse, cudaStream_t stream) {
    const int bytes = static_cast<int>(TileLayout<T, D>::kBytes);
    if (compute_lse) {
        check(cudaFuncSetAttribute(tiled_lse_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes),
              "cudaFuncSetAttribute (qk_importance lse)");
        const int64_t blocks = plan.batch * plan.heads * s.query_tiles;
        tiled_lse_kernel<T, D><<<static_cast<unsigned>(blocks), kTileThreads, bytes, stream>>>(args, s.query_tiles);
        check(cudaGetLastError(), "qk_importance tiled_lse_kernel launch");
    }
    check(cudaFuncSetAttribute(tiled_column_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes),
          "cudaFuncSetAttribute (qk_importance columns)");
    const int64_t blocks = plan.batch * s.key_tiles * s.splits;
    tiled_column_kernel<T, D><<<static_cast<unsigned>(blocks), kTileThreads, bytes, stream>>>(args, s.key_tiles, s.query_tiles);
    check(cudaGetLastError(), "qk_importance tiled_column_kernel launch");
}

template <class T, int D, int Rows>
void launch_few(const ImportancePlan& plan, const QkShape& s, QkArgs args, bool compute_lse, cudaStream_t stream) {
    if (compute_lse) {
        const int64_t blocks = plan.batch * s.lse_tiles * s.lse_head_splits;
        few_lse_partial_kernel<T, D, Rows><<<static_cast<unsigned>(blocks), kFewKeys, 0, stream>>>(args, s.lse_tiles,
                                                                                                  s.lse_head_splits);
        check(cudaGetLastError(), "qk_importance few_lse_partial_kernel launch");
        const int64_t rows = plan.batch * plan.heads * s.rows;
        few_lse_combine_kernel<<<element_grid(rows, kElementThreads), kElementThreads, 0, stream>>>(args, rows);
        check(cudaGetLastError(), "qk_importance few_lse_combine_kernel launch");
    }
    const int64_t blocks = plan.batch * s.key_tiles * s.splits;
    few_column_kernel<T, D, Rows><<<static_cast<unsigned>(blocks), kFewKeys, 0, stream>>>(args, s.key_tiles, s.splits);
    check(cudaGetLastError(), "qk_importance few_column_kernel launch");
}

template <class T, int D>
void launch_qk(const ImportancePlan& plan, const QkShape& s, const QkArgs& args, bool compute_lse, cudaStream_t stream) {
    if (!s.few_rows)
        launch_tiled<T, D>(plan, s, args, compute_lse, stream);
    else if (s.rows == 1)
        launch_few<T, D, 1>(plan, s, args, compute_lse, stream);
    else
        launch_few<T, D, kFewRows>(plan, s, args, compute_lse, stream);
}

// ---- Top-k -------------------------------------------------------------------------------------

struct TopkArgs {
    const void* scores;
    int64_t score_batch_stride, score_stride;
    const int32_t* lengths;
    int64_t lengths_stride;
    const int32_t* item_k;
    int64_t item_k_stride;
    int32_t* indices;
    int64_t indices_batch_stride, indices_stride;
    int64_t tokens;
    int64_t k;
    // Ranked order only: each selected position's sort key ((~score key) << index_bits | position)
    // at [b * k + rank in position order], and the item's segment [b * k, b * k + count_b).
    uint64_t* sort_keys;
    int32_t* segment_begin;
    int32_t* segment_end;
    int index_bits;
};

__device__ __forceinline__ int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

template <class T>
__device__ __forceinline__ uint32_t score_key(const TopkArgs& a, int64_t b, int64_t j) {
    return merge_detail::order_key(to_float(__ldg(static_cast<const T*>(a.scores) + b * a.score_batch_stride + j * a.score_stride)));
}

// Keys of the first kCachedChunks chunks of kItemThreads positions stay in registers (position
// chunk * blockDim + thread), so items up to 8192 tokens read their scores once; the rest of a
// longer item is read again from global memory by each pass.
constexpr int kCachedChunks = 16;

// The count_b best keys of item b are those above the threshold key plus the first `take` positions
// equal to it. The threshold is found digit by digit from the top: a 256-bin histogram of the keys
// that share the digits chosen so far, and the bin where the running count from above reaches the
// rank still needed.
template <class T>
__global__ void __launch_bounds__(kItemThreads) topk_select_kernel(const TopkArgs a) {
    using Scan = cub::BlockScan<int32_t, kItemThreads>;
    __shared__ typename Scan::TempStorage scan_storage;
    __shared__ int32_t histogram[256];
    __shared__ uint32_t chosen_digit;
    __shared__ int32_t chosen_above;

    const int64_t b = blockIdx.x;
    const int64_t length = a.lengths ? clamp64(a.lengths[b * a.lengths_stride], 0, a.tokens) : a.tokens;
    const int64_t wanted = a.item_k ? clamp64(a.item_k[b * a.item_k_stride], 0, a.k) : a.k;
    const int64_t count = min(wanted, length);
    int32_t* indices = a.indices + b * a.indices_batch_stride;
    const int64_t cached_end = static_cast<int64_t>(kCachedChunks) * blockDim.x;

    uint32_t cached[kCachedChunks];
#pragma unroll
    for (int e = 0; e < kCachedChunks; ++e) {
        const int64_t j = static_cast<int64_t>(e) * blockDim.x + threadIdx.x;
        cached[e] = j < length && count > 0 ? score_key<T>(a, b, j) : 0u;
    }

    uint32_t prefix = 0;
    int32_t take = static_cast<int32_t>(count);  // the rank still needed among keys matching prefix
    for (int shift = 24; shift >= 0 && count > 0; shift -= 8) {
        const uint32_t mask = shift == 24 ? 0u : ~0u << (shift + 8);
        for (int d = threadIdx.x; d < 256; d += blockDim.x) histogram[d] = 0;
        __syncthreads();
#pragma unroll
        for (int e = 0; e < kCachedChunks; ++e) {
            const int64_t j = static_cast<int64_t>(e) * blockDim.x + threadIdx.x;
            if (j < length && (cached[e] & mask) == prefix) atomicAdd(&histogram[(cached[e] >> shift) & 0xffu], 1);
        }
        for (int64_t j = cached_end + threadIdx.x; j < length; j += blockDim.x) {
            const uint32_t key = score_key<T>(a, b, j);
            if ((key & mask) == prefix) atomicAdd(&histogram[(key >> shift) & 0xffu], 1);
        }
        __syncthreads();
        // Thread t holds bin 255 - t: the exclusive sum is the count of keys above that bin.
        const int32_t in_bin = threadIdx.x < 256 ? histogram[255 - threadIdx.x] : 0;
        int32_t above = 0;
        Scan(scan_storage).ExclusiveSum(in_bin, above);
        if (threadIdx.x < 256 && above < take && take <= above + in_bin) {
            chosen_digit = 255u - threadIdx.x;
            chosen_above = above;
        }
        __syncthreads();
        prefix |= chosen_digit << shift;
        take -= chosen_above;
        __syncthreads();  // chosen_* and the scan storage are reused by the next digit
    }

    // Compaction in position order: chunk by chunk, a scan of the ties (which of them are taken)
    // then of the selected positions (where they go). Called from uniform control flow.
    const uint32_t threshold = prefix;
    int64_t selected_before = 0;
    int64_t ties_before = 0;
    auto compact_chunk = [&](int64_t j, uint32_t key) {
        const int32_t tie = j < length && key == threshold;
        int32_t tie_rank = 0;
        int32_t chunk_ties = 0;
        Scan(scan_storage).ExclusiveSum(tie, tie_rank, chunk_ties);
        const int32_t selected = j < length && (key > threshold || (tie && ties_before + tie_rank < take));
        __syncthreads();
        int32_t rank = 0;
        int32_t chunk_selected = 0;
        Scan(scan_storage).ExclusiveSum(selected, rank, chunk_selected);
        if (selected) {
            const int64_t slot = selected_before + rank;
            indices[slot * a.indices_stride] = static_cast<int32_t>(j);
            if (a.sort_keys)
                a.sort_keys[b * a.k + slot] = (static_cast<uint64_t>(~key) << a.index_bits) | static_cast<uint64_t>(j);
        }
        selected_before += chunk_selected;
        ties_before += chunk_ties;
        __syncthreads();
    };
#pragma unroll
    for (int e = 0; e < kCachedChunks; ++e) {
        const int64_t base = static_cast<int64_t>(e) * blockDim.x;
        if (base < length && selected_before < count) compact_chunk(base + threadIdx.x, cached[e]);
    }
    for (int64_t base = cached_end; base < length && selected_before < count; base += blockDim.x) {
        const int64_t j = base + threadIdx.x;
        compact_chunk(j, j < length ? score_key<T>(a, b, j) : 0u);
    }
    for (int64_t slot = count + threadIdx.x; slot < a.k; slot += blockDim.x) indices[slot * a.indices_stride] = -1;
    if (a.sort_keys && threadIdx.x == 0) {
        a.segment_begin[b] = static_cast<int32_t>(b * a.k);
        a.segment_end[b] = static_cast<int32_t>(b * a.k + count);
    }
}

// ranked[b, r]: the r-th position of the item's sorted selection, -1 after count_b.
__global__ void ranked_write_kernel(const uint64_t* sorted_keys, const int32_t* segment_begin, const int32_t* segment_end,
                                    int64_t batch, int64_t k, uint64_t index_mask, int32_t* ranked,
                                    int64_t ranked_batch_stride, int64_t ranked_stride) {
    const int64_t total = batch * k;
    for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
         t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t b = t / k;
        const int64_t r = t % k;
        const int64_t count = segment_end[b] - segment_begin[b];
        ranked[b * ranked_batch_stride + r * ranked_stride] =
            r < count ? static_cast<int32_t>(sorted_keys[t] & index_mask) : -1;
    }
}

int index_bits(int64_t tokens) {
    int bits = 1;
    while (bits < 31 && (int64_t{1} << bits) < tokens) ++bits;
    return bits;
}

struct TopkLayout {
    uint64_t sort_keys;      // u64 [B, k]
    uint64_t sorted_keys;    // u64 [B, k]
    uint64_t segment_begin;  // i32 [B]
    uint64_t segment_end;    // i32 [B]
    uint64_t sort_temp;
    uint64_t sort_temp_bytes;
    uint64_t total;
};

// The same size with or without ranked (the size query does not know whether it will be asked).
TopkLayout topk_layout(const TopkPlan& plan) {
    const int64_t items = plan.batch * plan.k;
    if (items > INT_MAX)
        throw Error(TK_STATUS_INVALID_ARGUMENT,
                    "scores: B * k must be at most 2147483647 on CUDA, got " + std::to_string(items));
    TopkLayout w{};
    RegionCursor cursor;
    w.sort_keys = cursor.take(static_cast<uint64_t>(items) * sizeof(uint64_t));
    w.sorted_keys = cursor.take(static_cast<uint64_t>(items) * sizeof(uint64_t));
    w.segment_begin = cursor.take(static_cast<uint64_t>(plan.batch) * sizeof(int32_t));
    w.segment_end = cursor.take(static_cast<uint64_t>(plan.batch) * sizeof(int32_t));
    if (items > 0) {
        size_t bytes = 0;
        check(cub::DeviceSegmentedRadixSort::SortKeys(nullptr, bytes, static_cast<const uint64_t*>(nullptr),
                                                      static_cast<uint64_t*>(nullptr), static_cast<int>(items),
                                                      static_cast<int>(plan.batch), static_cast<const int32_t*>(nullptr),
                                                      static_cast<const int32_t*>(nullptr), 0,
                                                      32 + index_bits(plan.tokens)),
              "cub::DeviceSegmentedRadixSort::SortKeys (workspace query)");
        w.sort_temp_bytes = bytes;
    }
    w.sort_temp = cursor.take(w.sort_temp_bytes);
    w.total = cursor.total();
    return w;
}

// ---- Gather ------------------------------------------------------------------------------------

struct GatherArgs {
    const char* x;
    int64_t x_batch_stride, x_token_stride;  // bytes
    const void* indices;
    int64_t indices_batch_stride, indices_stride;  // elements
    char* out;
    int64_t out_batch_stride, out_token_stride;  // bytes
    int64_t tokens;
    int64_t k;
    int64_t rows;        // B * k
    int64_t row_words;   // words of one row
};

// block = (lanes, rows per block); each row's words strided over its lanes.
template <class Word, class Index>
__global__ void gather_kernel(const GatherArgs a) {
    for (int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.y) + threadIdx.y; row < a.rows;
         row += static_cast<int64_t>(gridDim.x) * blockDim.y) {
        const int64_t b = row / a.k;
        const int64_t i = row % a.k;
        const int64_t token =
            static_cast<int64_t>(static_cast<const Index*>(a.indices)[b * a.indices_batch_stride + i * a.indices_stride]);
        Word* out = reinterpret_cast<Word*>(a.out + b * a.out_batch_stride + i * a.out_token_stride);
        if (token < 0 || token >= a.tokens) {
            Word zero;
            memset(&zero, 0, sizeof(zero));
            for (int64_t w = threadIdx.x; w < a.row_words; w += blockDim.x) out[w] = zero;
            continue;
        }
        const Word* x = reinterpret_cast<const Word*>(a.x + b * a.x_batch_stride + token * a.x_token_stride);
        for (int64_t w = threadIdx.x; w < a.row_words; w += blockDim.x) out[w] = __ldg(x + w);
    }
}

template <class Word, class Index>
void launch_gather(const GatherArgs& a, cudaStream_t stream) {
    int64_t lanes = 1;
    while (lanes < 32 && lanes < a.row_words) lanes *= 2;
    const int64_t rows_per_block = kRowThreads / lanes;
    const dim3 grid(static_cast<unsigned>(std::min(ceil_div(a.rows, rows_per_block), kMaxGridBlocks)));
    gather_kernel<Word, Index><<<grid, dim3(static_cast<unsigned>(lanes), static_cast<unsigned>(rows_per_block)), 0, stream>>>(a);
    check(cudaGetLastError(), "gather_kernel launch");
}

template <class Index>
void launch_gather_words(const GatherArgs& a, int64_t word_bytes, cudaStream_t stream) {
    switch (word_bytes) {
        case 16: return launch_gather<uint4, Index>(a, stream);
        case 8: return launch_gather<uint2, Index>(a, stream);
        case 4: return launch_gather<unsigned int, Index>(a, stream);
        default: return launch_gather<unsigned short, Index>(a, stream);
    }
}

// ---- VisionZip contextual tokens ---------------------------------------------------------------

struct ContextualArgs {
    StridedTensor metric;     // [B, N, Cm]
    StridedTensor x;          // [B, N, C]
    StridedTensor kept;       // [B, K]
    StridedTensor out;        // [B, m, C]
    int64_t batch, tokens, kept_count, contextual, metric_channels, channels;
    int32_t* kept_mask;       // [B, N] 1 where kept
    int32_t* remaining;       // [B, N] positions of the remaining tokens, increasing (M_b of them)
    int32_t* remaining_count; // [B] M_b
    float* target_metric;     // [B, m, Cm] normalised target rows
    uint32_t* group_key;      // [B, N] b * (m + 1) + target, or + m when not assigned
    int32_t* group_position;  // [B, N] the token of each key
    uint32_t* sorted_key;
    int32_t* sorted_position; // tokens grouped by (item, target), increasing position in a group
    int32_t* group_count;     // [B, m + 1]
    int32_t* group_begin;     // [B, m + 1] exclusive scan of group_count
};

__device__ __forceinline__ int64_t kept_position(const StridedTensor& kept, int64_t b, int64_t i) {
    const int64_t at = b * kept.strides[0] + i * kept.strides[1];
    return kept.dtype == TK_DTYPE_I64 ? static_cast<const int64_t*>(kept.data)[at]
                                      : static_cast<int64_t>(static_cast<const int32_t*>(kept.data)[at]);
}

__global__ void mark_kept_kernel(const ContextualArgs a) {
    const int64_t count = a.batch * a.kept_count;
    for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < count;
         t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t b = t / a.kept_count;
        const int64_t position = kept_position(a.kept, b, t % a.kept_count);
        if (position >= 0 && position < a.tokens) a.kept_mask[b * a.tokens + position] = 1;
    }
}

// One CTA per item: the positions not kept, in increasing order, by a chunked block scan.
__global__ void __launch_bounds__(kItemThreads) remaining_kernel(const ContextualArgs a) {
    using Scan = cub::BlockScan<int32_t, kItemThreads>;
    __shared__ typename Scan::TempStorage scan_storage;
    const int64_t b = blockIdx.x;
    int64_t before = 0;
    for (int64_t base = 0; base < a.tokens; base += blockDim.x) {
        const int64_t n = base + threadIdx.x;
        const int32_t remains = n < a.tokens && a.kept_mask[b * a.tokens + n] == 0;
        int32_t rank = 0;
        int32_t chunk = 0;
        Scan(scan_storage).ExclusiveSum(remains, rank, chunk);
        if (remains) a.remaining[b * a.tokens + before + rank] = static_cast<int32_t>(n);
        before += chunk;
        __syncthreads();
    }
    if (threadIdx.x == 0) a.remaining_count[b] = static_cast<int32_t>(before);
}

__device__ __forceinline__ int64_t target_step(const ContextualArgs& a, int64_t b) {
    const int64_t step = a.remaining_count[b] / a.contextual;
    return step > 1 ? step : 1;
}

// The float32 norm of a metric row as the CPU computes it: squares summed in the lane order of
// ops/lane_sum.hpp.
template <class M>
__device__ float metric_norm(const M* row, int64_t channels) {
    const float sum_squares = lane_sum(channels, [&](int64_t c) {
        const float v = to_float(row[c]);
        return v * v;
    });
    // std::max(norm, eps) of the CPU: a NaN norm stays NaN (fmaxf would return eps).
    const float norm = __fsqrt_rn(sum_squares);
    return norm < kCosineEps ? kCosineEps : norm;
}

template <class M>
__device__ __forceinline__ const M* metric_row(const ContextualArgs& a, int64_t b, int64_t position) {
    return static_cast<const M*>(a.metric.data) + b * a.metric.strides[0] + position * a.metric.strides[1];
}

// One CTA per (item, target): thread 0 takes the norm (a sequential sum), all write the row / norm.
template <class M>
__global__ void normalise_targets_kernel(const ContextualArgs a) {
    __shared__ float norm;
    const int64_t b = blockIdx.x / a.contextual;
    const int64_t t = blockIdx.x % a.contextual;
    const M* row = metric_row<M>(a, b, a.remaining[b * a.tokens + t * target_step(a, b)]);
    if (threadIdx.x == 0) norm = metric_norm(row, a.metric_channels);
    __syncthreads();
    float* out = a.target_metric + (b * a.contextual + t) * a.metric_channels;
    for (int64_t c = threadIdx.x; c < a.metric_channels; c += blockDim.x) out[c] = __fdiv_rn(to_float(row[c]), norm);
}

// One warp per (item, remaining rank r): a target or the end of the list gets the "not assigned"
// key; any other token scores every target (lanes over targets, each dot summed in the CPU's lane
// order) and takes the highest, the lowest target on ties, target 0 when none is a number above
// -inf. Keys count into their group.
template <class M>
__global__ void assign_kernel(const ContextualArgs a) {
    const int lane = threadIdx.x % 32;
    const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
    const int64_t count = a.batch * a.tokens;
    for (int64_t w = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + threadIdx.x / 32; w < count; w += warps) {
        const int64_t b = w / a.tokens;
        const int64_t r = w % a.tokens;
        const int64_t remaining = a.remaining_count[b];
        const int64_t step = target_step(a, b);
        const bool assigned = r < remaining && !(r % step == 0 && r / step < a.contextual);
        int64_t target = a.contextual;  // the group after every target: not assigned
        if (assigned) {
            const M* row = metric_row<M>(a, b, a.remaining[b * a.tokens + r]);
            const float norm = metric_norm(row, a.metric_channels);
            float best = -CUDART_INF_F;
            int64_t best_target = INT64_MAX;
            for (int64_t t = lane; t < a.contextual; t += 32) {
                const float* target_row = a.target_metric + (b * a.contextual + t) * a.metric_channels;
                const float dot = lane_sum(a.metric_channels,
                                           [&](int64_t c) { return (to_float(row[c]) / norm) * target_row[c]; });
                if (dot > best) {  // strict: NaN never wins, the first maximum stays
                    best = dot;
                    best_target = t;
                }
            }
#pragma unroll
            for (int offset = 16; offset > 0; offset /= 2) {
                const float other = __shfl_xor_sync(0xffffffffu, best, offset);
                const int64_t other_target = __shfl_xor_sync(0xffffffffu, best_target, offset);
                if (other > best || (other == best && other_target < best_target)) {
                    best = other;
                    best_target = other_target;
                }
            }
            target = best_target == INT64_MAX ? 0 : best_target;
        }
        if (lane == 0) {
            const int64_t key = b * (a.contextual + 1) + target;
            a.group_key[w] = static_cast<uint32_t>(key);
            a.group_position[w] = r < remaining ? a.remaining[b * a.tokens + r] : INT_MAX;
            atomicAdd(&a.group_count[key], 1);
        }
    }
}

// grid.x = B * m * channel chunks: out[b, t, c] = x[target] + (sum of the group in increasing
// position) / count, or the target row unchanged for an empty group.
template <class T>
__global__ void contextual_rows_kernel(const ContextualArgs a, int64_t chunks) {
    const int64_t chunk = blockIdx.x % chunks;
    const int64_t bt = blockIdx.x / chunks;
    const int64_t b = bt / a.contextual;
    const int64_t t = bt % a.contextual;
    const int64_t c = chunk * blockDim.x + threadIdx.x;
    if (c >= a.channels) return;
    const int64_t target_position = a.remaining[b * a.tokens + t * target_step(a, b)];
    const T* xs = static_cast<const T*>(a.x.data) + b * a.x.strides[0];
    const T target = xs[target_position * a.x.strides[1] + c];
    T* out = static_cast<T*>(a.out.data) + b * a.out.strides[0] + t * a.out.strides[1];
    const int64_t key = b * (a.contextual + 1) + t;
    const int64_t first = a.group_begin[key];
    const int64_t members = a.group_count[key];
    if (members == 0) {
        out[c] = target;
        return;
    }
    float sum = 0.0f;
    for (int64_t member = first; member < first + members; ++member)
        sum = __fadd_rn(sum, to_float(xs[static_cast<int64_t>(a.sorted_position[member]) * a.x.strides[1] + c]));
    out[c] = from_float<T>(__fadd_rn(to_float(target), __fdiv_rn(sum, static_cast<float>(members))));
}

struct ContextualLayout {
    uint64_t kept_mask, remaining, remaining_count, target_metric;
    uint64_t group_key, group_position, sorted_key, sorted_position, group_count, group_begin;
    uint64_t sort_temp, sort_temp_bytes, scan_temp, scan_temp_bytes;
    int end_bit;
    uint64_t total;
};

ContextualLayout contextual_layout(const ContextualPlan& plan) {
    const int64_t tokens = plan.batch * plan.tokens;
    const int64_t groups = plan.batch * (plan.contextual + 1);
    if (tokens > INT_MAX || groups > INT_MAX)
        throw Error(TK_STATUS_INVALID_ARGUMENT,
                    "metric: B * N must be at most 2147483647 on CUDA, got " + std::to_string(tokens));
    // contextual_rows_kernel has one CTA per (item, target, channel chunk).
    const int64_t row_blocks = plan.batch * plan.contextual * ceil_div(plan.channels, kElementThreads);
    if (row_blocks > kMaxGridBlocks)
        throw Error(TK_STATUS_INVALID_ARGUMENT, "x: B * contextual * ceil(C / " + std::to_string(kElementThreads) +
                                                    ") must be at most 2147483647 on CUDA, got " +
                                                    std::to_string(row_blocks));
    ContextualLayout w{};
    RegionCursor cursor;
    const uint64_t n = static_cast<uint64_t>(tokens);
    w.kept_mask = cursor.take(n * sizeof(int32_t));
    w.remaining = cursor.take(n * sizeof(int32_t));
    w.remaining_count = cursor.take(static_cast<uint64_t>(plan.batch) * sizeof(int32_t));
    w.target_metric = cursor.take(static_cast<uint64_t>(plan.batch * plan.contextual * plan.metric_channels) * sizeof(float));
    w.group_key = cursor.take(n * sizeof(uint32_t));
    w.group_position = cursor.take(n * sizeof(int32_t));
    w.sorted_key = cursor.take(n * sizeof(uint32_t));
    w.sorted_position = cursor.take(n * sizeof(int32_t));
    w.group_count = cursor.take(static_cast<uint64_t>(groups) * sizeof(int32_t));
    w.group_begin = cursor.take(static_cast<uint64_t>(groups) * sizeof(int32_t));
    w.end_bit = 1;
    while (w.end_bit < 32 && (int64_t{1} << w.end_bit) < groups) ++w.end_bit;
    if (tokens > 0) {
        size_t bytes = 0;
        check(cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const uint32_t*>(nullptr),
                                              static_cast<uint32_t*>(nullptr), static_cast<const int32_t*>(nullptr),
                                              static_cast<int32_t*>(nullptr), static_cast<int>(tokens), 0, w.end_bit),
              "cub::DeviceRadixSort::SortPairs (workspace query)");
        w.sort_temp_bytes = bytes;
        bytes = 0;
        check(cub::DeviceScan::ExclusiveSum(nullptr, bytes, static_cast<const int32_t*>(nullptr),
                                            static_cast<int32_t*>(nullptr), static_cast<int>(groups)),
              "cub::DeviceScan::ExclusiveSum (workspace query)");
        w.scan_temp_bytes = bytes;
    }
    w.sort_temp = cursor.take(w.sort_temp_bytes);
    w.scan_temp = cursor.take(w.scan_temp_bytes);
    w.total = cursor.total();
    return w;
}

}  // namespace

// ---- Entry points ------------------------------------------------------------------------------

void attention_importance(const ImportancePlan& plan, void* stream_handle) {
    DeviceGuard guard(plan.device_ordinal);
    const auto stream = static_cast<cudaStream_t>(stream_handle);
    const int64_t count = plan.batch * (plan.key_end - plan.key_begin);
    if (count == 0) return;
    dispatch_float(plan.attn.dtype, [&](auto tag) {
        using T = typename StorageOf<decltype(tag)::value>::type;
        attention_importance_kernel<T><<<element_grid(count, kElementThreads), kElementThreads, 0, stream>>>(plan);
        check(cudaGetLastError(), "attention_importance_kernel launch");
    });
}

uint64_t qk_importance_workspace_bytes(const ImportancePlan& plan) {
    DeviceGuard guard(plan.device_ordinal);
    return qk_layout(plan, qk_shape(plan)).total;
}

void qk_importance(const ImportancePlan& plan, void* workspace, void* stream_handle) {
    DeviceGuard guard(plan.device_ordinal);
    const auto stream = static_cast<cudaStream_t>(stream_handle);
    const QkShape shape = qk_shape(plan);
    if (plan.batch * shape.columns == 0) return;
    const QkLayout layout = qk_layout(plan, shape);
    Scratch scratch(workspace, layout.total, stream, "attention workspace");
    void* base = scratch.data();
    const bool compute_lse = plan.lse.data == nullptr;

    QkArgs args{};
    args.q = plan.q.data;
    args.q_batch_stride = plan.q.strides[0];
    args.q_head_stride = plan.q.strides[1];
    args.q_row_stride = plan.q.strides[2];
    args.k = plan.k.data;
    args.k_batch_stride = plan.k.strides[0];
    args.k_head_stride = plan.k.strides[1];
    args.k_row_stride = plan.k.strides[2];
    args.heads = plan.heads;
    args.group = plan.heads / plan.key_heads;
    args.queries = plan.queries;
    args.keys = plan.keys;
    args.query_begin = plan.query_begin;
    args.query_end = plan.query_end;
    args.key_begin = plan.key_begin;
    args.key_end = plan.key_end;
    args.scale = plan.scale;
    args.causal = plan.causal;
    if (compute_lse) {
        args.lse_out = at_offset<float>(base, layout.lse);
        args.lse = args.lse_out;
        args.lse_batch_stride = plan.heads * shape.rows;
        args.lse_head_stride = shape.rows;
        args.lse_row_stride = 1;
        args.lse_row_base = plan.query_begin;
        if (shape.few_rows) {
            args.lse_partial = at_offset<float2>(base, layout.lse_partial);
            args.lse_slots = shape.lse_tiles * (kFewKeys / 32);
        }
    } else {
        args.lse = static_cast<const float*>(plan.lse.data);
        args.lse_batch_stride = plan.lse.strides[0];
        args.lse_head_stride = plan.lse.strides[1];
        args.lse_row_stride = plan.lse.strides[2];
        args.lse_row_base = 0;
    }
    args.partial = at_offset<float>(base, layout.partial);
    args.splits = shape.splits;
    args.partial_width = shape.partial_width;

    dispatch_float(plan.q.dtype, [&](auto tag) {
        using T = typename StorageOf<decltype(tag)::value>::type;
        args.vector_loads = qk_vector_loads<T>(plan);
        switch (plan.head_dim) {
            case 64: return launch_qk<T, 64>(plan, shape, args, compute_lse, stream);
            case 80: return launch_qk<T, 80>(plan, shape, args, compute_lse, stream);
            case 96: return launch_qk<T, 96>(plan, shape, args, compute_lse, stream);
            case 128: return launch_qk<T, 128>(plan, shape, args, compute_lse, stream);
            default:
                throw Error(TK_STATUS_INTERNAL, "qk_importance: head dim " + std::to_string(plan.head_dim) +
                                                    " not validated at the boundary");
        }
    });
    const int64_t count = plan.batch * shape.columns;
    reduce_columns_kernel<<<element_grid(count, kElementThreads), kElementThreads, 0, stream>>>(
        args.partial, shape.splits, shape.partial_width, plan.batch, shape.columns, plan.divisor,
        static_cast<float*>(plan.out.data), plan.out.strides[0], plan.out.strides[1]);
    check(cudaGetLastError(), "qk_importance reduce_columns_kernel launch");
}

uint64_t topk_workspace_bytes(const TopkPlan& plan) {
    DeviceGuard guard(plan.device_ordinal);
    return topk_layout(plan).total;
}

void topk(const TopkPlan& plan, void* workspace, void* stream_handle) {
    DeviceGuard guard(plan.device_ordinal);
    const auto stream = static_cast<cudaStream_t>(stream_handle);
    if (plan.batch * plan.k == 0) return;
    const TopkLayout layout = topk_layout(plan);
    const bool ranked = plan.ranked.data != nullptr;
    // Only the ranked order needs scratch.
    Scratch scratch(workspace, ranked ? layout.total : 0, stream, "attention workspace");
    TopkArgs args{};
    args.scores = plan.scores.data;
    args.score_batch_stride = plan.scores.strides[0];
    args.score_stride = plan.scores.strides[1];
    args.lengths = static_cast<const int32_t*>(plan.lengths.data);
    args.lengths_stride = plan.lengths.strides[0];
    args.item_k = static_cast<const int32_t*>(plan.item_k.data);
    args.item_k_stride = plan.item_k.strides[0];
    args.indices = static_cast<int32_t*>(plan.indices.data);
    args.indices_batch_stride = plan.indices.strides[0];
    args.indices_stride = plan.indices.strides[1];
    args.tokens = plan.tokens;
    args.k = plan.k;
    args.index_bits = index_bits(plan.tokens);
    void* base = ranked ? scratch.data() : nullptr;
    if (ranked) {
        args.sort_keys = at_offset<uint64_t>(base, layout.sort_keys);
        args.segment_begin = at_offset<int32_t>(base, layout.segment_begin);
        args.segment_end = at_offset<int32_t>(base, layout.segment_end);
    }
    dispatch_float(plan.scores.dtype, [&](auto tag) {
        using T = typename StorageOf<decltype(tag)::value>::type;
        topk_select_kernel<T><<<static_cast<unsigned>(plan.batch), kItemThreads, 0, stream>>>(args);
        check(cudaGetLastError(), "topk_select_kernel launch");
    });
    if (!ranked) return;
    uint64_t* sorted_keys = at_offset<uint64_t>(base, layout.sorted_keys);
    size_t temp_bytes = layout.sort_temp_bytes;
    check(cub::DeviceSegmentedRadixSort::SortKeys(at_offset<void>(base, layout.sort_temp), temp_bytes, args.sort_keys,
                                                  sorted_keys, static_cast<int>(plan.batch * plan.k),
                                                  static_cast<int>(plan.batch), args.segment_begin, args.segment_end, 0,
                                                  32 + args.index_bits, stream),
          "cub::DeviceSegmentedRadixSort::SortKeys (ranked)");
    const int64_t total = plan.batch * plan.k;
    ranked_write_kernel<<<element_grid(total, kElementThreads), kElementThreads, 0, stream>>>(
        sorted_keys, args.segment_begin, args.segment_end, plan.batch, plan.k, (uint64_t{1} << args.index_bits) - 1,
        static_cast<int32_t*>(plan.ranked.data), plan.ranked.strides[0], plan.ranked.strides[1]);
    check(cudaGetLastError(), "topk ranked_write_kernel launch");
}

void gather(const GatherPlan& plan, void* stream_handle) {
    DeviceGuard guard(plan.device_ordinal);
    const auto stream = static_cast<cudaStream_t>(stream_handle);
    const int64_t element = tk_dtype_size(plan.x.dtype);
    const int64_t row_bytes = plan.channels * element;
    if (plan.batch * plan.k * row_bytes == 0) return;
    GatherArgs args{};
    args.x = static_cast<const char*>(plan.x.data);
    args.x_batch_stride = plan.x.strides[0] * element;
    args.x_token_stride = plan.x.strides[1] * element;
    args.indices = plan.indices.data;
    args.indices_batch_stride = plan.indices.strides[0];
    args.indices_stride = plan.indices.strides[1];
    args.out = static_cast<char*>(plan.out.data);
    args.out_batch_stride = plan.out.strides[0] * element;
    args.out_token_stride = plan.out.strides[1] * element;
    args.tokens = plan.tokens;
    args.k = plan.k;
    args.rows = plan.batch * plan.k;
    // The widest word that every row start and the row length are multiples of.
    int64_t word = 16;
    auto fits = [&](int64_t w) {
        return reinterpret_cast<uintptr_t>(args.x) % w == 0 && reinterpret_cast<uintptr_t>(args.out) % w == 0 &&
               row_bytes % w == 0 && args.x_batch_stride % w == 0 && args.x_token_stride % w == 0 &&
               args.out_batch_stride % w == 0 && args.out_token_stride % w == 0;
    };
    while (word > element && !fits(word)) word /= 2;
    args.row_words = row_bytes / word;
    if (plan.indices.dtype == TK_DTYPE_I64)
        launch_gather_words<int64_t>(args, word, stream);
    else
        launch_gather_words<int32_t>(args, word, stream);
}

uint64_t contextual_workspace_bytes(const ContextualPlan& plan) {
    DeviceGuard guard(plan.device_ordinal);
    return contextual_layout(plan).total;
}

void visionzip_contextual(const ContextualPlan& plan, void* workspace, void* stream_handle) {
    DeviceGuard guard(plan.device_ordinal);
    const auto stream = static_cast<cudaStream_t>(stream_handle);
    if (plan.batch * plan.contextual * plan.channels == 0) return;
    const ContextualLayout layout = contextual_layout(plan);
    Scratch scratch(workspace, layout.total, stream, "attention workspace");
    void* base = scratch.data();
    ContextualArgs a{};
    a.metric = plan.metric;
    a.x = plan.x;
    a.kept = plan.kept_indices;
    a.out = plan.out;
    a.batch = plan.batch;
    a.tokens = plan.tokens;
    a.kept_count = plan.kept;
    a.contextual = plan.contextual;
    a.metric_channels = plan.metric_channels;
    a.channels = plan.channels;
    a.kept_mask = at_offset<int32_t>(base, layout.kept_mask);
    a.remaining = at_offset<int32_t>(base, layout.remaining);
    a.remaining_count = at_offset<int32_t>(base, layout.remaining_count);
    a.target_metric = at_offset<float>(base, layout.target_metric);
    a.group_key = at_offset<uint32_t>(base, layout.group_key);
    a.group_position = at_offset<int32_t>(base, layout.group_position);
    a.sorted_key = at_offset<uint32_t>(base, layout.sorted_key);
    a.sorted_position = at_offset<int32_t>(base, layout.sorted_position);
    a.group_count = at_offset<int32_t>(base, layout.group_count);
    a.group_begin = at_offset<int32_t>(base, layout.group_begin);
    const int64_t tokens = plan.batch * plan.tokens;
    const int64_t groups = plan.batch * (plan.contextual + 1);

    check(cudaMemsetAsync(a.kept_mask, 0, static_cast<size_t>(tokens) * sizeof(int32_t), stream),
          "cudaMemsetAsync (contextual kept mask)");
    check(cudaMemsetAsync(a.group_count, 0, static_cast<size_t>(groups) * sizeof(int32_t), stream),
          "cudaMemsetAsync (contextual group counts)");
    if (plan.kept > 0) {
        mark_kept_kernel<<<element_grid(plan.batch * plan.kept, kElementThreads), kElementThreads, 0, stream>>>(a);
        check(cudaGetLastError(), "contextual mark_kept_kernel launch");
    }
    remaining_kernel<<<static_cast<unsigned>(plan.batch), kItemThreads, 0, stream>>>(a);
    check(cudaGetLastError(), "contextual remaining_kernel launch");
    dispatch_float(plan.metric.dtype, [&](auto tag) {
        using M = typename StorageOf<decltype(tag)::value>::type;
        normalise_targets_kernel<M><<<static_cast<unsigned>(plan.batch * plan.contextual), kElementThreads, 0, stream>>>(a);
        check(cudaGetLastError(), "contextual normalise_targets_kernel launch");
        assign_kernel<M><<<element_grid(tokens * 32, kElementThreads), kElementThreads, 0, stream>>>(a);
        check(cudaGetLastError(), "contextual assign_kernel launch");
    });
    size_t sort_bytes = layout.sort_temp_bytes;
    check(cub::DeviceRadixSort::SortPairs(at_offset<void>(base, layout.sort_temp), sort_bytes, a.group_key, a.sorted_key,
                                          a.group_position, a.sorted_position, static_cast<int>(tokens), 0, layout.end_bit,
                                          stream),
          "cub::DeviceRadixSort::SortPairs (contextual groups)");
    size_t scan_bytes = layout.scan_temp_bytes;
    check(cub::DeviceScan::ExclusiveSum(at_offset<void>(base, layout.scan_temp), scan_bytes, a.group_count, a.group_begin,
                                        static_cast<int>(groups), stream),
          "cub::DeviceScan::ExclusiveSum (contextual group offsets)");
    const int64_t chunks = ceil_div(plan.channels, kElementThreads);
    dispatch_float(plan.x.dtype, [&](auto tag) {
        using T = typename StorageOf<decltype(tag)::value>::type;
        contextual_rows_kernel<T><<<static_cast<unsigned>(plan.batch * plan.contextual * chunks), kElementThreads, 0, stream>>>(
            a, chunks);
        check(cudaGetLastError(), "contextual_rows_kernel launch");
    });
}

}  // namespace tk::cuda
