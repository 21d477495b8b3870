// The most-isolated first center on CUDA: every token's nearest-neighbour distance, as a GEMM with a
// row-min epilogue (cuVS fusedCosineNN), so the N x N distance matrix is never stored.
//
// The tiles, their staging and the dot-product cores are merge_match.cuh's: tensor cores (WMMA
// 16x16x16, fp32 accumulation) on the raw f16/bf16 features, whose products are exact in fp32, so
// the dots are as accurate as the CPU's float32 loop; fp32 FMA for f32 (no TF32). A per-row statistic
// written by a pre-pass turns a dot into a distance:
//   cosine: 1 - dot * inv_i * inv_j, inv = 1 / max(|x|, eps), the normalised rows never materialised
//           (merge_detail::cosine_of: a row whose squared norm overflows is the zero vector);
//   l2:     |x_i|^2 + |x_j|^2 - 2 dot, clamped at 0. The expansion is what makes the pass a GEMM (the
//           direct form (x_i - x_j)^2 has no tensor-core mapping); its cancellation costs absolute
//           accuracy of about eps * |x|^2 on small distances, and the argmax that follows picks the
//           largest nearest-neighbour distance, where the relative error is smallest. The greedy loop,
//           which is memory-bound, uses the direct form.
// Both forms are the CPU backend's. For cosine a row holding NaN or Inf has statistic NaN: all its
// distances are NaN, so it is nobody's nearest neighbour and its own nearest-neighbour distance is
// NaN (chosen last). For l2 Inf and NaN flow through the sums as they do on the CPU.
//
// A CTA owns kSourceTile rows and one split of the column tiles, walked in increasing order. The
// minimum over the non-NaN distances is exact and order-free, so splits combine by atomicMin on
// merge_detail::order_key (monotone in the distance) into nearest_key, which starts at kNoNeighbour:
// deterministic whatever the order in which CTAs finish.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/diversity_common.cuh"
#include "cuda/merge_common.cuh"
#include "cuda/merge_match.cuh"

namespace tk::cuda::diversity_detail {

using merge_detail::kChunk;
using merge_detail::kDestTile;
using merge_detail::kLoadVector;
using merge_detail::kMatchThreads;
using merge_detail::kSourceTile;
using merge_detail::kStagePitch;

constexpr uint32_t kNoNeighbour = 0xffffffffu;  // above every order_key: no numeric distance seen

struct NearestArgs {
    const void* x;
    int64_t batch_stride;
    int64_t token_stride;
    int64_t tokens;
    int64_t channels;
    int32_t vector_loads;     // rows can be staged with 16-byte loads
    int32_t l2;
    const int32_t* lengths;   // [B] or NULL
    int64_t lengths_stride;
    const float* row_stat;    // [B, N]: inverse norm (cosine, NaN for NaN/Inf rows) or squared norm (l2)
    int64_t row_tiles;
    int64_t splits;           // column splits per row tile
    int64_t tiles_per_split;  // column tiles per split
    uint32_t* nearest_key;    // [B, N]
};

// Stages channels [k0, k0 + kChunk) of rows [i0, i0 + kSourceTile) and [j0, j0 + kDestTile),
// zero-filled past the channels and past the last token (those rows and columns are masked in the
// epilogue). With vector_loads, C is a multiple of the vector, so a word is wholly inside or outside.
template <class T>
__device__ __forceinline__ void stage_nearest_chunk(merge_detail::MatchShared<T>& shared, const NearestArgs& a,
                                                    const T* item, int64_t i0, int64_t j0, int64_t k0) {
    const int64_t token_stride = a.token_stride;
    if (a.vector_loads) {
        constexpr int kWordsPerRow = kChunk / kLoadVector<T>;
        for (int e = threadIdx.x; e < kSourceTile * kWordsPerRow; e += kMatchThreads) {
            const int row = e / kWordsPerRow;
            const int c = (e % kWordsPerRow) * kLoadVector<T>;
            const int64_t channel = k0 + c;
            const int64_t i = i0 + row;
            const int64_t j = j0 + row;
            const bool inside = channel < a.channels;
            merge_detail::stage_word(&shared.source_tile[row][c],
                                     i < a.tokens && inside ? item + i * token_stride + channel : nullptr);
            merge_detail::stage_word(&shared.dest_tile[row][c],
                                     j < a.tokens && inside ? item + j * token_stride + channel : nullptr);
        }
        return;
    }
    for (int e = threadIdx.x; e < kSourceTile * kChunk; e += kMatchThreads) {
        const int row = e / kChunk;
        const int c = e % kChunk;
        const int64_t channel = k0 + c;
        const int64_t i = i0 + row;
        const int64_t j = j0 + row;
        shared.source_tile[row][c] =
            i < a.tokens && channel < a.channels ? item[i * token_stride + channel] : from_float<T>(0.0f);
        shared.dest_tile[row][c] =
            j < a.tokens && channel < a.channels ? item[j * token_stride + channel] : from_float<T>(0.0f);
    }
}

// grid B * row_tiles * splits (item, row tile, split), kMatchThreads threads, static shared memory
// (MatchShared: 28,160 bytes for f16/bf16, 34,816 for f32, plus 512 bytes of statistics). Warp w owns
// rows [16w, 16w + 16) of the tile in the epilogue; lane l keeps, for each, the least key of columns
// l and l + 32 of every column tile (a NaN distance, the diagonal and columns past L_b never count);
// one warp reduction per row at the end, then one atomicMin per row that saw a number.
template <class T>
__global__ void __launch_bounds__(kMatchThreads) nearest_kernel(const NearestArgs a) {
    __shared__ __align__(32) merge_detail::MatchShared<T> shared;
    __shared__ float row_stat[kSourceTile];
    __shared__ float column_stat[kDestTile];
    const int64_t per_item = a.row_tiles * a.splits;
    const int64_t b = blockIdx.x / per_item;
    const int64_t tile = blockIdx.x % per_item;
    const int64_t i0 = tile / a.splits * kSourceTile;
    const int64_t first_column_tile = tile % a.splits * a.tiles_per_split;
    const int64_t length = item_length(a.lengths, a.lengths_stride, b, a.tokens);
    const int64_t j_begin = first_column_tile * kDestTile;
    const int64_t j_limit = (first_column_tile + a.tiles_per_split) * kDestTile;
    const int64_t j_end = j_limit < length ? j_limit : length;
    // The whole CTA leaves together, before any barrier: nothing of this item in its rows or columns.
    if (i0 >= length || j_begin >= j_end) return;

    const T* item = static_cast<const T*>(a.x) + b * a.batch_stride;
    const float* item_stat = a.row_stat + b * a.tokens;
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    if (threadIdx.x < kSourceTile) {
        const int64_t i = i0 + threadIdx.x;
        row_stat[threadIdx.x] = i < length ? item_stat[i] : NAN;
    }
    uint32_t lane_key[16];
#pragma unroll
    for (int r = 0; r < 16; ++r) lane_key[r] = kNoNeighbour;

    merge_detail::DotTile<T> dots;
    for (int64_t j0 = j_begin; j0 < j_end; j0 += kDestTile) {
        __syncthreads();  // the previous epilogue is done with shared.dots and column_stat
        if (threadIdx.x < kDestTile) {
            const int64_t j = j0 + threadIdx.x;
            column_stat[threadIdx.x] = j < j_end ? item_stat[j] : NAN;
        }
        dots.clear();
        for (int64_t k0 = 0; k0 < a.channels; k0 += kChunk) {
            stage_nearest_chunk(shared, a, item, i0, j0, k0);
            __syncthreads();
            dots.accumulate(shared);
            __syncthreads();  // before the next chunk overwrites the stage
        }
        dots.store(shared);
        __syncthreads();

#pragma unroll
        for (int r = 0; r < 16; ++r) {
            const int row = 16 * warp + r;
            const int64_t i = i0 + row;
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                const int column = lane + 32 * half;
                const int64_t j = j0 + column;
                if (j >= j_end || j == i) continue;
                const float dot = shared.dots[row][column];
                float distance;
                if (a.l2) {
                    distance = (row_stat[row] + column_stat[column]) - 2.0f * dot;
                    distance = distance < 0.0f ? 0.0f : distance;  // keeps NaN, unlike fmaxf
                } else {
                    distance = 1.0f - merge_detail::cosine_of(dot, row_stat[row], column_stat[column]);
                }
                if (distance == distance) {
                    const uint32_t key = merge_detail::order_key(distance);
                    lane_key[r] = key < lane_key[r] ? key : lane_key[r];
                }
            }
        }
    }
    uint32_t* item_key = a.nearest_key + b * a.tokens;
#pragma unroll
    for (int r = 0; r < 16; ++r) {
        uint32_t key = lane_key[r];
#pragma unroll
        for (int offset = 16; offset > 0; offset /= 2) {
            const uint32_t other = __shfl_xor_sync(0xffffffffu, key, offset);
            key = other < key ? other : key;
        }
        const int64_t i = i0 + 16 * warp + r;
        if (lane == 0 && i < length && key != kNoNeighbour) atomicMin(item_key + i, key);
    }
}

}  // namespace tk::cuda::diversity_detail
