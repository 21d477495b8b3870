// Bipartite matching on CUDA: every source's best destination and score, as a GEMM with a row-argmax
// epilogue (cuVS fusedCosineNN), so the (N/2) x (N/2) score matrix is never stored.
//
// One CTA owns a tile of kSourceTile sources and walks ALL destination tiles in increasing order,
// keeping each source's running best in registers. No other CTA touches those sources, so the
// reduction order is fixed and ties resolve to the lower destination without any cross-block step.
// Dot products: tensor cores (WMMA 16x16x16, fp32 accumulation) for f16/bf16 metrics, fp32 FMA for
// f32 (no TF32). Cosine scaling uses the inverse norms a pre-pass wrote to the workspace.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cuda/merge_common.cuh"
#include "ops/merge.hpp"

namespace tk::cuda::merge_detail {

constexpr int kSourceTile = 64;
constexpr int kDestTile = 64;
constexpr int kChunk = 32;  // channels staged in shared memory at a time
constexpr int kMatchThreads = 128;
constexpr int kMatchWarps = kMatchThreads / 32;
constexpr int kScorePitch = kDestTile + 4;  // floats; a multiple of 4 as WMMA stores require
constexpr int kNoDest = 0x7fffffff;         // no score above -inf yet: loses every tie

static_assert(kSourceTile == 16 * kMatchWarps, "each warp owns 16 source rows of a tile");
static_assert(kDestTile == 64, "the epilogue gives each lane two destination columns");

// Staging pitch in elements: WMMA needs a multiple of 16 bytes; the f32 path pads by one word so
// that the 16 column threads of a warp read different banks.
template <class T>
constexpr int kStagePitch = std::is_same<T, float>::value ? kChunk + 1 : kChunk + 8;

struct MatchArgs {
    TokenRows metric;
    int64_t tokens;
    int64_t sources;
    int64_t destinations;
    int64_t channels;
    int32_t vector_loads;       // metric rows can be staged with 16-byte loads
    const float* inverse_norm;  // [B, N]
    int32_t protect_first;
    int32_t protect_second;
    float* best;                // best[b * best_batch_stride + s * best_stride]
    int64_t best_batch_stride;
    int64_t best_stride;
    int32_t* best_position;     // token position of the best destination, -1 when none
    int64_t position_batch_stride;
    int64_t position_stride;
};

// 1 / max(|v|, eps) for every metric row; one warp per row. NaN for a row holding a NaN or an Inf
// (whose normalised row holds a NaN): every score it takes part in is NaN.
template <class T>
__global__ void inverse_norms_kernel(const TokenRows metric, int64_t tokens, int64_t channels, int64_t rows,
                                     float* inverse_norm) {
    const int lane = threadIdx.x % 32;
    const int64_t warp_step = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
    for (int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32; row < rows;
         row += warp_step) {
        const int64_t b = row / tokens;
        const int64_t i = row % tokens;
        const T* v = static_cast<const T*>(metric.data) + b * metric.batch_stride + i * metric.token_stride;
        float sum = 0.0f;
        int non_finite = 0;
        for (int64_t c = lane; c < channels; c += 32) {
            const float f = to_float(v[c]);
            sum = fmaf(f, f, sum);
            non_finite |= isfinite(f) ? 0 : 1;
        }
#pragma unroll
        for (int offset = 16; offset > 0; offset /= 2) {
            sum += __shfl_xor_sync(0xffffffffu, sum, offset);
            non_finite |= __shfl_xor_sync(0xffffffffu, non_finite, offset);
        }
        if (lane == 0) inverse_norm[row] = non_finite ? NAN : 1.0f / fmaxf(sqrtf(sum), kCosineEps);
    }
}

template <class T>
struct MatchShared {
    T source_tile[kSourceTile][kStagePitch<T>];
    T dest_tile[kDestTile][kStagePitch<T>];
    float dots[kSourceTile][kScorePitch];
    float source_inverse_norm[kSourceTile];
    float dest_inverse_norm[kDestTile];
};

// Channels per 16-byte load when staging with vectors.
template <class T>
constexpr int kLoadVector = 16 / static_cast<int>(sizeof(T));

// Stages one 16-byte word of channels, or zeros when src is NULL. Shared memory is written element
// by element: the f32 stage pitch is not a multiple of 16 bytes.
template <class T>
__device__ __forceinline__ void stage_word(T* dst, const T* src) {
    constexpr int V = kLoadVector<T>;
    T lanes[V];
    if (src != nullptr) {
        const uint4 word = __ldg(reinterpret_cast<const uint4*>(src));
        memcpy(lanes, &word, sizeof(word));
    } else {
#pragma unroll
        for (int k = 0; k < V; ++k) lanes[k] = from_float<T>(0.0f);
    }
#pragma unroll
    for (int k = 0; k < V; ++k) dst[k] = lanes[k];
}

// Stages channels [k0, k0 + kChunk) of the source and destination tiles, zero-filled past the
// channels and past the last source / destination, so padded rows and columns contribute 0. With
// vector_loads, Cm is a multiple of the vector, so a word is wholly inside or outside the channels.
template <class T>
__device__ __forceinline__ void stage_chunk(MatchShared<T>& shared, const MatchArgs& args, const T* item, int64_t s0,
                                            int64_t d0, int64_t k0) {
    const int64_t token_stride = args.metric.token_stride;
    if (args.vector_loads) {
        constexpr int kWordsPerRow = kChunk / kLoadVector<T>;
        for (int e = threadIdx.x; e < kSourceTile * kWordsPerRow; e += kMatchThreads) {
            const int row = e / kWordsPerRow;
            const int k = (e % kWordsPerRow) * kLoadVector<T>;
            const int64_t channel = k0 + k;
            const int64_t source = s0 + row;
            const int64_t dest = d0 + row;
            stage_word(&shared.source_tile[row][k], source < args.sources && channel < args.channels
                                                        ? item + 2 * source * token_stride + channel
                                                        : nullptr);
            stage_word(&shared.dest_tile[row][k], dest < args.destinations && channel < args.channels
                                                      ? item + (2 * dest + 1) * token_stride + channel
                                                      : nullptr);
        }
        return;
    }
    for (int e = threadIdx.x; e < kSourceTile * kChunk; e += kMatchThreads) {
        const int row = e / kChunk;
        const int k = e % kChunk;
        const int64_t channel = k0 + k;
        const int64_t source = s0 + row;
        const int64_t dest = d0 + row;
        shared.source_tile[row][k] = source < args.sources && channel < args.channels
                                         ? item[2 * source * token_stride + channel]
                                         : from_float<T>(0.0f);
        shared.dest_tile[row][k] = dest < args.destinations && channel < args.channels
                                       ? item[(2 * dest + 1) * token_stride + channel]
                                       : from_float<T>(0.0f);
    }
}

// Tensor-core dot products of one tile: warp w owns source rows [16w, 16w + 16) and all kDestTile
// columns (four 16x16 accumulators).
template <class T>
struct TensorCoreTile {
    using Accumulator = nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float>;
    Accumulator acc[kDestTile / 16];

    __device__ void clear() {
#pragma unroll
        for (int j = 0; j < kDestTile / 16; ++j) nvcuda::wmma::fill_fragment(acc[j], 0.0f);
    }
    __device__ void accumulate(const MatchShared<T>& shared) {
        using namespace nvcuda;
        const int warp = threadIdx.x / 32;
#pragma unroll
        for (int k = 0; k < kChunk; k += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
            wmma::load_matrix_sync(a, &shared.source_tile[16 * warp][k], kStagePitch<T>);
#pragma unroll
            for (int j = 0; j < kDestTile / 16; ++j) {
                // The destination tile is row-major [dest][channel], i.e. the K x N operand column-major.
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> bt;
                wmma::load_matrix_sync(bt, &shared.dest_tile[16 * j][k], kStagePitch<T>);
                wmma::mma_sync(acc[j], a, bt, acc[j]);
            }
        }
    }
    __device__ void store(MatchShared<T>& shared) const {
        const int warp = threadIdx.x / 32;
#pragma unroll
        for (int j = 0; j < kDestTile / 16; ++j)
            nvcuda::wmma::store_matrix_sync(&shared.dots[16 * warp][16 * j], acc[j], kScorePitch,
                                            nvcuda::wmma::mem_row_major);
    }
};

// fp32 FMA dot products of one tile: thread (ty, tx) of an 8 x 16 grid owns rows ty + 8i and
// columns tx + 16j.
struct FmaTile {
    static constexpr int kRows = kSourceTile / 8;
    static constexpr int kCols = kDestTile / 16;
    float acc[kRows][kCols];

    __device__ void clear() {
#pragma unroll
        for (int i = 0; i < kRows; ++i)
#pragma unroll
            for (int j = 0; j < kCols; ++j) acc[i][j] = 0.0f;
    }
    __device__ void accumulate(const MatchShared<float>& shared) {
        const int tx = threadIdx.x % 16;
        const int ty = threadIdx.x / 16;
#pragma unroll 4
        for (int k = 0; k < kChunk; ++k) {
            float a[kRows];
            float b[kCols];
#pragma unroll
            for (int i = 0; i < kRows; ++i) a[i] = shared.source_tile[ty + 8 * i][k];
#pragma unroll
            for (int j = 0; j < kCols; ++j) b[j] = shared.dest_tile[tx + 16 * j][k];
#pragma unroll
            for (int i = 0; i < kRows; ++i)
#pragma unroll
                for (int j = 0; j < kCols; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
    }
    __device__ void store(MatchShared<float>& shared) const {
        const int tx = threadIdx.x % 16;
        const int ty = threadIdx.x / 16;
#pragma unroll
        for (int i = 0; i < kRows; ++i)
#pragma unroll
            for (int j = 0; j < kCols; ++j) shared.dots[ty + 8 * i][tx + 16 * j] = acc[i][j];
    }
};

template <class T>
using DotTile = std::conditional_t<std::is_same<T, float>::value, FmaTile, TensorCoreTile<T>>;

// grid (source tiles, B), kMatchThreads threads. The argmax is the CPU backend's: a running best
// from -inf in increasing destination order, replaced only by a strictly greater score, so ties keep
// the lower destination and neither NaN nor -inf ever wins. Warp w owns source rows [16w, 16w + 16)
// in the epilogue; lane l keeps, for each, the best of columns l and l + 32 of every destination
// tile; one warp reduction per row at the end takes the best lane, ties to the lower destination.
// Then, as on the CPU, with the first candidate as destination: the protected source scores -inf, a
// source holding NaN/Inf scores NaN, a source without a winner -inf. With no candidate at all: -inf
// and position 1.
template <class T>
__global__ void __launch_bounds__(kMatchThreads) match_kernel(const MatchArgs args) {
    __shared__ __align__(32) MatchShared<T> shared;
    const int64_t b = blockIdx.y;
    const int64_t s0 = static_cast<int64_t>(blockIdx.x) * kSourceTile;
    const T* item = static_cast<const T*>(args.metric.data) + b * args.metric.batch_stride;
    const float* item_inverse_norm = args.inverse_norm + b * args.tokens;
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    const int64_t first_candidate = args.protect_second ? 1 : 0;

    if (threadIdx.x < kSourceTile) {
        const int64_t source = s0 + threadIdx.x;
        shared.source_inverse_norm[threadIdx.x] = source < args.sources ? item_inverse_norm[2 * source] : 0.0f;
    }
    float lane_best[16];
    int lane_dest[16];
#pragma unroll
    for (int i = 0; i < 16; ++i) {
        lane_best[i] = -INFINITY;
        lane_dest[i] = kNoDest;
    }
    DotTile<T> tile;
    for (int64_t d0 = 0; d0 < args.destinations; d0 += kDestTile) {
        __syncthreads();  // the previous epilogue is done with dots and dest_inverse_norm
        if (threadIdx.x < kDestTile) {
            const int64_t dest = d0 + threadIdx.x;
            shared.dest_inverse_norm[threadIdx.x] =
                dest < args.destinations ? item_inverse_norm[2 * dest + 1] : 0.0f;
        }
        tile.clear();
        for (int64_t k0 = 0; k0 < args.channels; k0 += kChunk) {
            stage_chunk(shared, args, item, s0, d0, k0);
            __syncthreads();
            tile.accumulate(shared);
            __syncthreads();  // before the next chunk overwrites the stage
        }
        tile.store(shared);
        __syncthreads();

#pragma unroll
        for (int i = 0; i < 16; ++i) {
            const int row = 16 * warp + i;
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                const int column = lane + 32 * half;
                const int64_t candidate = d0 + column;
                if (candidate < args.destinations && candidate >= first_candidate) {
                    const float score = cosine_of(shared.dots[row][column], shared.source_inverse_norm[row],
                                                  shared.dest_inverse_norm[column]);
                    if (score > lane_best[i]) {
                        lane_best[i] = score;
                        lane_dest[i] = static_cast<int>(candidate);
                    }
                }
            }
        }
    }
    const bool any_candidate = args.destinations > first_candidate;
#pragma unroll
    for (int i = 0; i < 16; ++i) {
        float best = lane_best[i];
        int dest = lane_dest[i];
#pragma unroll
        for (int offset = 16; offset > 0; offset /= 2) {
            const float other_best = __shfl_xor_sync(0xffffffffu, best, offset);
            const int other_dest = __shfl_xor_sync(0xffffffffu, dest, offset);
            if (other_best > best || (other_best == best && other_dest < dest)) {
                best = other_best;
                dest = other_dest;
            }
        }
        const int row = 16 * warp + i;
        const int64_t source = s0 + row;
        if (lane == 0 && source < args.sources) {
            if (!any_candidate) {
                best = -INFINITY;
                dest = 0;
            } else if (args.protect_first && source == 0) {
                best = -INFINITY;
                dest = static_cast<int>(first_candidate);
            } else if (isnan(shared.source_inverse_norm[row])) {
                best = NAN;
                dest = static_cast<int>(first_candidate);
            } else if (dest == kNoDest) {
                best = -INFINITY;
                dest = static_cast<int>(first_candidate);
            }
            args.best[b * args.best_batch_stride + source * args.best_stride] = best;
            args.best_position[b * args.position_batch_stride + source * args.position_stride] = 2 * dest + 1;
        }
    }
}

}  // namespace tk::cuda::merge_detail
