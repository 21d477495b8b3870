// Kernels of tk_qk_importance: importance of keys from Q and K without the Nq x Nk matrix.
//
// Tiled path (more than kFewRows query rows): 64 x 64 score tiles S = Q K^T in shared memory, by
// tensor cores (WMMA, fp32 accumulate) for f16/bf16 and by fp32 FMA for f32.
//   tiled_lse_kernel      one CTA per (item, head, query tile): each row's lse over the keys it
//                         sees, a running max and a rescaled running sum
//   tiled_column_kernel   one CTA per (item, key tile, split): walks a contiguous range of the
//                         (head, query tile) units in increasing order and sums exp(s - lse) per key
// Few-rows path (at most kFewRows query rows, e.g. the CLS row or the last token): one thread per
// key, the rows' queries broadcast from shared memory, no tensor-core padding.
//   few_lse_partial_kernel  per (key tile, warp, head, row): the warp's max and sum of exp(s - max)
//   few_lse_combine_kernel  per (item, head, row): the partials merged in increasing slot order
//   few_column_kernel       one CTA per (item, key tile, head split): heads, then rows, in order
// Both paths write per-split partial column sums; reduce_columns_kernel adds the splits in
// increasing order and divides once. No float atomics anywhere, so results repeat run to run.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math_constants.h>
#include <mma.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cuda/dtype.cuh"

namespace tk::cuda::attention_detail {

// ---- Shared arguments ----------------------------------------------------------------------------

struct QkArgs {
    const void* q;            // [B, H, Nq, d]
    int64_t q_batch_stride, q_head_stride, q_row_stride;
    const void* k;            // [B, Hk, Nk, d]
    int64_t k_batch_stride, k_head_stride, k_row_stride;
    int64_t heads;
    int64_t group;            // H / Hk: query head h reads key head h / group
    int64_t queries;          // Nq
    int64_t keys;             // Nk
    int64_t query_begin, query_end;
    int64_t key_begin, key_end;
    float scale;
    int32_t causal;
    bool vector_loads;        // 16-byte loads of q and k rows are aligned
    // The lse of row i of head h of item b: lse[b * lse_batch_stride + h * lse_head_stride +
    // (i - lse_row_base) * lse_row_stride] (the caller's tensor, or the first pass's output).
    const float* lse;
    int64_t lse_batch_stride, lse_head_stride, lse_row_stride, lse_row_base;
    float* lse_out;           // the first pass writes [B, H, R] here, R = query_end - query_begin
    float2* lse_partial;      // few-rows first pass: [B, H, R, slots] (max, sum of exp(s - max))
    int64_t lse_slots;
    float* partial;           // [B, splits, partial_width] column sums of one split
    int64_t splits;
    int64_t partial_width;
};

__device__ __forceinline__ int64_t min64(int64_t x, int64_t y) { return x < y ? x : y; }

// Keys [0, visible_keys(i)) are visible to query i (queries right-aligned to the keys when causal).
__device__ __forceinline__ int64_t visible_keys(const QkArgs& a, int64_t i) {
    if (!a.causal) return a.keys;
    const int64_t v = i + a.keys - a.queries + 1;
    return v < 0 ? 0 : (v > a.keys ? a.keys : v);
}

__device__ __forceinline__ float row_lse(const QkArgs& a, int64_t b, int64_t h, int64_t i) {
    return a.lse[b * a.lse_batch_stride + h * a.lse_head_stride + (i - a.lse_row_base) * a.lse_row_stride];
}

template <class T>
__device__ __forceinline__ const T* q_row(const QkArgs& a, int64_t b, int64_t h, int64_t i) {
    return static_cast<const T*>(a.q) + b * a.q_batch_stride + h * a.q_head_stride + i * a.q_row_stride;
}

template <class T>
__device__ __forceinline__ const T* k_row(const QkArgs& a, int64_t b, int64_t hk, int64_t j) {
    return static_cast<const T*>(a.k) + b * a.k_batch_stride + hk * a.k_head_stride + j * a.k_row_stride;
}

// ---- Tiled path ----------------------------------------------------------------------------------

constexpr int kQueryTile = 64;
constexpr int kKeyTile = 64;
constexpr int kTileThreads = 128;       // four warps, each 16 query rows of a tile
constexpr int kScorePitch = kKeyTile + 4;  // floats; WMMA stores need a multiple of 4

// Shared-memory layout of one tiled CTA (dynamic; over 48 KiB for some d, opted in at launch).
// Rows of Q and K are padded: for 16-bit types by 8 elements (WMMA needs a pitch that is a multiple
// of 8 and 32-byte aligned fragments; 16 bytes of padding also spreads ldmatrix rows over the
// banks), for f32 by one (an odd pitch in words: the FMA loop's K reads hit distinct banks).
template <class T, int D>
struct TileLayout {
    static constexpr int kPitch = std::is_same_v<T, float> ? D + 1 : D + 8;
    static constexpr size_t kTileBytes = (static_cast<size_t>(kQueryTile) * kPitch * sizeof(T) + 127) / 128 * 128;
    static constexpr size_t kQueries = 0;
    static constexpr size_t kKeys = kTileBytes;
    static constexpr size_t kScores = 2 * kTileBytes;
    static constexpr size_t kRowLse = kScores + static_cast<size_t>(kQueryTile) * kScorePitch * sizeof(float);
    static constexpr size_t kBytes = kRowLse + kQueryTile * sizeof(float);
};
static_assert(kQueryTile == kKeyTile, "TileLayout sizes both tiles alike");

// Rows [0, rows) of a 64 x D tile from global memory (row r at src + r * row_stride), zeros after.
template <class T, int D>
__device__ void load_tile(T* dst, const T* src, int64_t row_stride, int rows, bool vector_loads) {
    constexpr int kPitch = TileLayout<T, D>::kPitch;
    if (vector_loads) {
        constexpr int V = kMaxVector<T>;
        constexpr int kVectors = D / V;
        static_assert(D % V == 0, "head dim must be whole 16-byte vectors");
        for (int e = threadIdx.x; e < kQueryTile * kVectors; e += blockDim.x) {
            const int r = e / kVectors;
            const int c = e % kVectors * V;
            uint4 word = make_uint4(0u, 0u, 0u, 0u);
            if (r < rows) word = __ldg(reinterpret_cast<const uint4*>(src + r * row_stride + c));
            if constexpr (sizeof(T) == 2) {
                // 16-byte aligned: the pitch (D + 8 elements) and c are multiples of 8 elements.
                *reinterpret_cast<uint4*>(dst + r * kPitch + c) = word;
            } else {
                T lanes[V];
                memcpy(lanes, &word, sizeof(word));
#pragma unroll
                for (int v = 0; v < V; ++v) dst[r * kPitch + c + v] = lanes[v];
            }
        }
    } else {
        const T zero = from_float<T>(0.0f);
        for (int e = threadIdx.x; e < kQueryTile * D; e += blockDim.x) {
            const int r = e / D;
            const int c = e % D;
            dst[r * kPitch + c] = r < rows ? src[r * row_stride + c] : zero;
        }
    }
}

// scores[r][c] = q_r . k_c (unscaled) for the 64 x 64 tile; kTileThreads threads.
template <class T, int D>
__device__ void score_tile(const T* queries, const T* keys, float* scores) {
    constexpr int kPitch = TileLayout<T, D>::kPitch;
    if constexpr (std::is_same_v<T, float>) {
        // Thread (tr, tc) owns rows tr + 8a and columns tc + 16c.
        const int tr = threadIdx.x / 16;
        const int tc = threadIdx.x % 16;
        float acc[8][4];
#pragma unroll
        for (int a = 0; a < 8; ++a)
#pragma unroll
            for (int c = 0; c < 4; ++c) acc[a][c] = 0.0f;
#pragma unroll 4
        for (int e = 0; e < D; ++e) {
            float qv[8];
            float kv[4];
#pragma unroll
            for (int a = 0; a < 8; ++a) qv[a] = queries[(tr + 8 * a) * kPitch + e];
#pragma unroll
            for (int c = 0; c < 4; ++c) kv[c] = keys[(tc + 16 * c) * kPitch + e];
#pragma unroll
            for (int a = 0; a < 8; ++a)
#pragma unroll
                for (int c = 0; c < 4; ++c) acc[a][c] = fmaf(qv[a], kv[c], acc[a][c]);
        }
#pragma unroll
        for (int a = 0; a < 8; ++a)
#pragma unroll
            for (int c = 0; c < 4; ++c) scores[(tr + 8 * a) * kScorePitch + tc + 16 * c] = acc[a][c];
    } else {
        namespace wmma = nvcuda::wmma;
        const int warp = threadIdx.x / 32;
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kKeyTile / 16];
#pragma unroll
        for (int c = 0; c < kKeyTile / 16; ++c) wmma::fill_fragment(acc[c], 0.0f);
#pragma unroll
        for (int e = 0; e < D; e += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
            wmma::load_matrix_sync(a, queries + 16 * warp * kPitch + e, kPitch);
#pragma unroll
            for (int c = 0; c < kKeyTile / 16; ++c) {
                // K stored [key][channel] is K^T in column-major order.
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> kt;
                wmma::load_matrix_sync(kt, keys + 16 * c * kPitch + e, kPitch);
                wmma::mma_sync(acc[c], a, kt, acc[c]);
            }
        }
#pragma unroll
        for (int c = 0; c < kKeyTile / 16; ++c)
            wmma::store_matrix_sync(scores + 16 * warp * kScorePitch + 16 * c, acc[c], kScorePitch, wmma::mem_row_major);
    }
}

// Two threads per query row (t / 2), each over every other column of the tile (t % 2 + 2c).
template <class T, int D>
__global__ void __launch_bounds__(kTileThreads) tiled_lse_kernel(const QkArgs a, int64_t query_tiles) {
    extern __shared__ __align__(128) unsigned char smem[];
    using Layout = TileLayout<T, D>;
    T* queries = reinterpret_cast<T*>(smem + Layout::kQueries);
    T* keys = reinterpret_cast<T*>(smem + Layout::kKeys);
    float* scores = reinterpret_cast<float*>(smem + Layout::kScores);

    const int64_t task = blockIdx.x;
    const int64_t b = task / (a.heads * query_tiles);
    const int64_t h = task / query_tiles % a.heads;
    const int64_t i0 = a.query_begin + task % query_tiles * kQueryTile;
    const int rows = static_cast<int>(min64(kQueryTile, a.query_end - i0));
    const int64_t key_head = h / a.group;
    load_tile<T, D>(queries, q_row<T>(a, b, h, i0), a.q_row_stride, rows, a.vector_loads);

    const int row = threadIdx.x / 2;
    const int half = threadIdx.x % 2;
    const int64_t row_limit = row < rows ? visible_keys(a, i0 + row) : 0;
    const int64_t key_limit = visible_keys(a, i0 + rows - 1);  // the most any row of the tile sees
    float running_max = -CUDART_INF_F;
    float running_sum = 0.0f;
    for (int64_t j0 = 0; j0 < key_limit; j0 += kKeyTile) {
        __syncthreads();  // the previous tile's scores and keys are no longer read
        load_tile<T, D>(keys, k_row<T>(a, b, key_head, j0), a.k_row_stride,
                        static_cast<int>(min64(kKeyTile, key_limit - j0)), a.vector_loads);
        __syncthreads();
        score_tile<T, D>(queries, keys, scores);
        __syncthreads();
        const float* s = scores + row * kScorePitch;
        const int64_t visible = row_limit - j0;  // columns [0, visible) of this tile are seen
        float tile_max = -CUDART_INF_F;
        for (int c = half; c < kKeyTile; c += 2)
            if (c < visible) tile_max = fmaxf(tile_max, __fmul_rn(a.scale, s[c]));
        const float new_max = fmaxf(running_max, tile_max);
        if (new_max == -CUDART_INF_F) continue;  // nothing finite yet: the sum stays 0
        float sum = running_sum * expf(running_max - new_max);
        for (int c = half; c < kKeyTile; c += 2)
            if (c < visible) sum += expf(__fmul_rn(a.scale, s[c]) - new_max);
        running_max = new_max;
        running_sum = sum;
    }
    // Merge the two halves of the row (partners are adjacent lanes); the even lane writes.
    const float other_max = __shfl_xor_sync(0xffffffffu, running_max, 1);
    const float other_sum = __shfl_xor_sync(0xffffffffu, running_sum, 1);
    const float row_max = fmaxf(running_max, other_max);
    if (half == 0 && row < rows) {
        float total = 0.0f;
        if (running_max != -CUDART_INF_F) total += running_sum * expf(running_max - row_max);
        if (other_max != -CUDART_INF_F) total += other_sum * expf(other_max - row_max);
        // A row that sees no key gets -inf (log 0); the column pass never reads it.
        const int64_t R = a.query_end - a.query_begin;
        a.lse_out[(b * a.heads + h) * R + (i0 - a.query_begin) + row] = row_max + logf(total);
    }
}

// Thread t sums column t % 64 over rows [32 (t / 64), 32 (t / 64) + 32) of every unit it walks.
template <class T, int D>
__global__ void __launch_bounds__(kTileThreads) tiled_column_kernel(const QkArgs a, int64_t key_tiles, int64_t query_tiles) {
    extern __shared__ __align__(128) unsigned char smem[];
    using Layout = TileLayout<T, D>;
    T* queries = reinterpret_cast<T*>(smem + Layout::kQueries);
    T* keys = reinterpret_cast<T*>(smem + Layout::kKeys);
    float* scores = reinterpret_cast<float*>(smem + Layout::kScores);
    float* tile_lse = reinterpret_cast<float*>(smem + Layout::kRowLse);

    const int64_t task = blockIdx.x;
    const int64_t split = task % a.splits;
    const int64_t key_tile = task / a.splits % key_tiles;
    const int64_t b = task / (a.splits * key_tiles);
    const int64_t j0 = a.key_begin + key_tile * kKeyTile;
    const int cols = static_cast<int>(min64(kKeyTile, a.key_end - j0));
    const int64_t units = a.heads * query_tiles;
    const int64_t per_split = (units + a.splits - 1) / a.splits;
    const int64_t unit_begin = split * per_split;
    const int64_t unit_end = min64(units, unit_begin + per_split);

    const int col = threadIdx.x % kKeyTile;
    const int first_row = threadIdx.x / kKeyTile * (kQueryTile / 2);
    const int64_t j = j0 + col;
    float acc = 0.0f;
    int64_t loaded_key_head = -1;
    for (int64_t unit = unit_begin; unit < unit_end; ++unit) {
        const int64_t h = unit / query_tiles;
        const int64_t i0 = a.query_begin + unit % query_tiles * kQueryTile;
        const int rows = static_cast<int>(min64(kQueryTile, a.query_end - i0));
        if (visible_keys(a, i0 + rows - 1) <= j0) continue;  // the whole tile is masked (uniform)
        __syncthreads();  // the previous unit's tiles are no longer read
        if (h / a.group != loaded_key_head) {
            loaded_key_head = h / a.group;
            load_tile<T, D>(keys, k_row<T>(a, b, loaded_key_head, j0), a.k_row_stride, cols, a.vector_loads);
        }
        load_tile<T, D>(queries, q_row<T>(a, b, h, i0), a.q_row_stride, rows, a.vector_loads);
        if (threadIdx.x < rows) tile_lse[threadIdx.x] = row_lse(a, b, h, i0 + threadIdx.x);
        __syncthreads();
        score_tile<T, D>(queries, keys, scores);
        __syncthreads();
        if (col < cols) {
            for (int r = first_row; r < first_row + kQueryTile / 2 && r < rows; ++r) {
                if (j < visible_keys(a, i0 + r))
                    acc += expf(__fmul_rn(a.scale, scores[r * kScorePitch + col]) - tile_lse[r]);
            }
        }
    }
    // The two row halves of a column, added in a fixed order.
    __syncthreads();
    scores[threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.x < kKeyTile)
        a.partial[(b * a.splits + split) * a.partial_width + key_tile * kKeyTile + threadIdx.x] =
            scores[threadIdx.x] + scores[threadIdx.x + kKeyTile];
}

// ---- Few-rows path -------------------------------------------------------------------------------

constexpr int kFewRows = 16;
constexpr int kFewKeys = 64;  // keys per CTA, one per thread

template <class T, int D>
struct FewShared {
    // Odd pitch in 4-byte words (D + 2 halves, D + 1 floats): thread t's reads of row t are spread
    // over the banks.
    static constexpr int kPitch = sizeof(T) == 2 ? D + 2 : D + 1;
    T keys[kFewKeys * kPitch];
    float queries[kFewRows * D];
};

// Stages the key tile (when the key head changed) and the rows' queries of head h, then returns in
// dots[r] the unscaled q_r . k_(j0 + threadIdx.x). Starts and ends with a barrier-ordered handover,
// so it is called from uniform control flow only.
template <class T, int D, int Rows>
__device__ void few_dots(const QkArgs& a, FewShared<T, D>& shared, int64_t b, int64_t h, int64_t j0, int64_t key_end,
                         int64_t& loaded_key_head, float (&dots)[Rows]) {
    constexpr int kPitch = FewShared<T, D>::kPitch;
    const int rows = static_cast<int>(a.query_end - a.query_begin);
    __syncthreads();  // the previous head's tiles are no longer read
    if (h / a.group != loaded_key_head) {
        loaded_key_head = h / a.group;
        const T zero = from_float<T>(0.0f);
        for (int e = threadIdx.x; e < kFewKeys * D; e += blockDim.x) {
            const int r = e / D;
            const int c = e % D;
            shared.keys[r * kPitch + c] = j0 + r < key_end ? k_row<T>(a, b, loaded_key_head, j0 + r)[c] : zero;
        }
    }
    for (int e = threadIdx.x; e < Rows * D; e += blockDim.x) {
        const int r = e / D;
        const int c = e % D;
        shared.queries[r * D + c] = r < rows ? to_float(q_row<T>(a, b, h, a.query_begin + r)[c]) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < Rows; ++r) dots[r] = 0.0f;
    const T* key = shared.keys + threadIdx.x * kPitch;
#pragma unroll 8
    for (int c = 0; c < D; ++c) {
        const float kc = to_float(key[c]);
#pragma unroll
        for (int r = 0; r < Rows; ++r) dots[r] = fmaf(shared.queries[r * D + c], kc, dots[r]);
    }
}

// grid.x = B * key_tiles(over all Nk keys) * head_splits; partial slot of a warp = tile * 2 + warp.
template <class T, int D, int Rows>
__global__ void __launch_bounds__(kFewKeys) few_lse_partial_kernel(const QkArgs a, int64_t key_tiles, int64_t head_splits) {
    __shared__ FewShared<T, D> shared;
    const int64_t task = blockIdx.x;
    const int64_t split = task % head_splits;
    const int64_t tile = task / head_splits % key_tiles;
    const int64_t b = task / (head_splits * key_tiles);
    const int64_t heads_per_split = (a.heads + head_splits - 1) / head_splits;
    const int64_t h_begin = split * heads_per_split;
    const int64_t h_end = min64(a.heads, h_begin + heads_per_split);
    const int64_t j0 = tile * kFewKeys;
    const int64_t j = j0 + threadIdx.x;
    const int rows = static_cast<int>(a.query_end - a.query_begin);
    const int lane = threadIdx.x % 32;
    const int64_t slot = tile * (kFewKeys / 32) + threadIdx.x / 32;
    int64_t loaded_key_head = -1;
    for (int64_t h = h_begin; h < h_end; ++h) {
        float dots[Rows];
        few_dots<T, D, Rows>(a, shared, b, h, j0, a.keys, loaded_key_head, dots);
#pragma unroll
        for (int r = 0; r < Rows; ++r) {
            if (r >= rows) break;  // uniform: every thread has the same rows
            const bool seen = j < visible_keys(a, a.query_begin + r);
            const float x = seen ? __fmul_rn(a.scale, dots[r]) : -CUDART_INF_F;
            float warp_max = x;
#pragma unroll
            for (int offset = 16; offset > 0; offset /= 2)
                warp_max = fmaxf(warp_max, __shfl_xor_sync(0xffffffffu, warp_max, offset));
            float e = seen && warp_max != -CUDART_INF_F ? expf(x - warp_max) : 0.0f;
#pragma unroll
            for (int offset = 16; offset > 0; offset /= 2) e += __shfl_xor_sync(0xffffffffu, e, offset);
            if (lane == 0)
                a.lse_partial[((b * a.heads + h) * rows + r) * a.lse_slots + slot] = make_float2(warp_max, e);
        }
    }
}

// One thread per (item, head, row): the slots merged in increasing order.
__global__ void few_lse_combine_kernel(const QkArgs a, int64_t count) {
    const int64_t rows = a.query_end - a.query_begin;
    for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < count;
         t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const float2* partial = a.lse_partial + t * a.lse_slots;
        float row_max = -CUDART_INF_F;
        for (int64_t s = 0; s < a.lse_slots; ++s) row_max = fmaxf(row_max, partial[s].x);
        float total = 0.0f;
        if (row_max != -CUDART_INF_F) {
            for (int64_t s = 0; s < a.lse_slots; ++s)
                if (partial[s].x != -CUDART_INF_F) total += partial[s].y * expf(partial[s].x - row_max);
        }
        const int64_t b = t / (a.heads * rows);
        const int64_t h = t / rows % a.heads;
        a.lse_out[(b * a.heads + h) * rows + t % rows] = row_max + logf(total);
    }
}

// grid.x = B * key_tiles(over [key_begin, key_end)) * head_splits: heads of the split in increasing
// order, then rows, one accumulator per key.
template <class T, int D, int Rows>
__global__ void __launch_bounds__(kFewKeys) few_column_kernel(const QkArgs a, int64_t key_tiles, int64_t head_splits) {
    __shared__ FewShared<T, D> shared;
    const int64_t task = blockIdx.x;
    const int64_t split = task % head_splits;
    const int64_t tile = task / head_splits % key_tiles;
    const int64_t b = task / (head_splits * key_tiles);
    const int64_t heads_per_split = (a.heads + head_splits - 1) / head_splits;
    const int64_t h_begin = split * heads_per_split;
    const int64_t h_end = min64(a.heads, h_begin + heads_per_split);
    const int64_t j0 = a.key_begin + tile * kFewKeys;
    const int64_t j = j0 + threadIdx.x;
    const int rows = static_cast<int>(a.query_end - a.query_begin);
    float acc = 0.0f;
    int64_t loaded_key_head = -1;
    for (int64_t h = h_begin; h < h_end; ++h) {
        float dots[Rows];
        few_dots<T, D, Rows>(a, shared, b, h, j0, a.key_end, loaded_key_head, dots);
        if (j >= a.key_end) continue;
#pragma unroll
        for (int r = 0; r < Rows; ++r) {
            if (r >= rows) break;
            const int64_t i = a.query_begin + r;
            if (j < visible_keys(a, i)) acc += expf(__fmul_rn(a.scale, dots[r]) - row_lse(a, b, h, i));
        }
    }
    if (j < a.key_end) a.partial[(b * head_splits + split) * a.partial_width + tile * kFewKeys + threadIdx.x] = acc;
}

// out[b, c] = (sum over splits in increasing order of partial[b, split, c]) / divisor.
__global__ void reduce_columns_kernel(const float* partial, int64_t splits, int64_t width, int64_t batch, int64_t columns,
                                      float divisor, float* out, int64_t out_batch_stride, int64_t out_stride) {
    const int64_t count = batch * columns;
    for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < count;
         t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t b = t / columns;
        const int64_t c = t % columns;
        float sum = 0.0f;
        for (int64_t s = 0; s < splits; ++s) sum = __fadd_rn(sum, partial[(b * splits + s) * width + c]);
        out[b * out_batch_stride + c * out_stride] = __fdiv_rn(sum, divisor);
    }
}

}  // namespace tk::cuda::attention_detail
