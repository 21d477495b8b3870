// Distances between rows of diversity selection's packed float32 copy (rows zero-padded to a multiple
// of 16 floats), computed a block of rows x centers at a time with the same bits for every pair
// whatever the block: 16 partial sums, lane l summing the terms of channels c = l (mod 16) in
// increasing c, then halved (partial[l] += partial[l + width], width 8 down to 1). Cosine rows are
// unit vectors, d = 1 - dot; L2 sums squared differences. The padding adds exact zeros.
//
// The AVX-512 variant holds a tile of up to 24 pairs (6 rows x 4 centers, 3 x 8, ...) in as many
// accumulators, one vector per pair, so a 16-channel step of a full tile loads 10 or 11 vectors for
// 24 FMAs; the portable variant (also compiled for AVX2) multiplies and adds. One variant is chosen
// per process, so every distance of a run has the same bits.
#pragma once

#include <cstdint>

#include "cpu/isa.hpp"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define TK_DIVERSITY_X86_KERNELS 1
#include <immintrin.h>
#endif

namespace tk::cpu {

// out[r * ldo + q] = d(rows[r], centers[q]) for r < row_count, q < center_count; rows `stride` floats.
using DistanceBlockFn = void (*)(const float* const* rows, int64_t row_count, const float* const* centers,
                                 int64_t center_count, int64_t stride, float* out, int64_t ldo);

namespace detail {

constexpr int kDistanceLanes = 16;

template <bool kL2>
inline float pair_distance_portable(const float* a, const float* b, int64_t stride) {
    float partial[kDistanceLanes] = {};
    for (int64_t c = 0; c < stride; c += kDistanceLanes)
        for (int l = 0; l < kDistanceLanes; ++l) {
            if constexpr (kL2) {
                const float diff = a[c + l] - b[c + l];
                partial[l] += diff * diff;
            } else {
                partial[l] += a[c + l] * b[c + l];
            }
        }
    for (int width = kDistanceLanes / 2; width >= 1; width /= 2)
        for (int l = 0; l < width; ++l) partial[l] += partial[l + width];
    return kL2 ? partial[0] : 1.0f - partial[0];
}

template <bool kL2>
inline void distance_block_portable(const float* const* rows, int64_t row_count, const float* const* centers,
                                    int64_t center_count, int64_t stride, float* out, int64_t ldo) {
    for (int64_t r = 0; r < row_count; ++r)
        for (int64_t q = 0; q < center_count; ++q) out[r * ldo + q] = pair_distance_portable<kL2>(rows[r], centers[q], stride);
}

#if defined(TK_DIVERSITY_X86_KERNELS)

template <bool kL2>
__attribute__((target("avx2"), flatten)) void distance_block_avx2(const float* const* rows, int64_t row_count,
                                                                  const float* const* centers, int64_t center_count,
                                                                  int64_t stride, float* out, int64_t ldo) {
    distance_block_portable<kL2>(rows, row_count, centers, center_count, stride, out, ldo);
}

template <int R, int Q, bool kL2>
__attribute__((target("avx512f"))) void distance_tile_avx512(const float* const* rows, const float* const* centers,
                                                             int64_t stride, float* out, int64_t ldo) {
    // Fully unrolled, so the accumulators and the tile's row vectors stay in registers (R + 1 + R x Q
    // of the 32).
    const float* row_ptr[R];
    const float* center_ptr[Q];
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) row_ptr[r] = rows[r];
#pragma GCC unroll 8
    for (int q = 0; q < Q; ++q) center_ptr[q] = centers[q];
    __m512 acc[R][Q];
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int q = 0; q < Q; ++q) acc[r][q] = _mm512_setzero_ps();
    for (int64_t c = 0; c < stride; c += kDistanceLanes) {
        __m512 row[R];
#pragma GCC unroll 6
        for (int r = 0; r < R; ++r) row[r] = _mm512_load_ps(row_ptr[r] + c);
#pragma GCC unroll 8
        for (int q = 0; q < Q; ++q) {
            const __m512 center = _mm512_load_ps(center_ptr[q] + c);
#pragma GCC unroll 6
            for (int r = 0; r < R; ++r) {
                if constexpr (kL2) {
                    const __m512 diff = _mm512_sub_ps(row[r], center);
                    acc[r][q] = _mm512_fmadd_ps(diff, diff, acc[r][q]);
                } else {
                    acc[r][q] = _mm512_fmadd_ps(row[r], center, acc[r][q]);
                }
            }
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int q = 0; q < Q; ++q) {
            alignas(64) float partial[kDistanceLanes];
            _mm512_store_ps(partial, acc[r][q]);
            for (int width = kDistanceLanes / 2; width >= 1; width /= 2)
                for (int l = 0; l < width; ++l) partial[l] += partial[l + width];
            out[r * ldo + q] = kL2 ? partial[0] : 1.0f - partial[0];
        }
}

// R rows against every center: tiles of up to 24 pairs (4 centers for 4 to 6 rows, 8 for fewer),
// then the centers left in halving tiles.
template <int R, bool kL2>
void distance_tile_rows_avx512(const float* const* rows, const float* const* centers, int64_t center_count,
                               int64_t stride, float* out, int64_t ldo) {
    constexpr int kWide = R >= 4 ? 4 : 8;
    int64_t q = 0;
    for (; q + kWide <= center_count; q += kWide) distance_tile_avx512<R, kWide, kL2>(rows, centers + q, stride, out + q, ldo);
    if constexpr (kWide == 8) {
        if (center_count - q >= 4) {
            distance_tile_avx512<R, 4, kL2>(rows, centers + q, stride, out + q, ldo);
            q += 4;
        }
    }
    if (center_count - q >= 2) {
        distance_tile_avx512<R, 2, kL2>(rows, centers + q, stride, out + q, ldo);
        q += 2;
    }
    if (q < center_count) distance_tile_avx512<R, 1, kL2>(rows, centers + q, stride, out + q, ldo);
}

template <bool kL2>
void distance_block_avx512(const float* const* rows, int64_t row_count, const float* const* centers, int64_t center_count,
                           int64_t stride, float* out, int64_t ldo) {
    int64_t r = 0;
    for (; r + 6 <= row_count; r += 6)
        distance_tile_rows_avx512<6, kL2>(rows + r, centers, center_count, stride, out + r * ldo, ldo);
    const float* const* left = rows + r;
    float* left_out = out + r * ldo;
    switch (row_count - r) {
        case 5: distance_tile_rows_avx512<5, kL2>(left, centers, center_count, stride, left_out, ldo); break;
        case 4: distance_tile_rows_avx512<4, kL2>(left, centers, center_count, stride, left_out, ldo); break;
        case 3: distance_tile_rows_avx512<3, kL2>(left, centers, center_count, stride, left_out, ldo); break;
        case 2: distance_tile_rows_avx512<2, kL2>(left, centers, center_count, stride, left_out, ldo); break;
        case 1: distance_tile_rows_avx512<1, kL2>(left, centers, center_count, stride, left_out, ldo); break;
        default: break;
    }
}

#endif

}  // namespace detail

// The widest variant this CPU runs (cpu/isa.hpp), chosen once.
inline DistanceBlockFn best_distance_block(bool l2) {
    struct Pair {
        DistanceBlockFn cosine;
        DistanceBlockFn l2;
    };
    static const Pair best = [] {
#if defined(TK_DIVERSITY_X86_KERNELS)
        if (cpu_isa() == CpuIsa::kAvx512)
            return Pair{detail::distance_block_avx512<false>, detail::distance_block_avx512<true>};
        if (cpu_isa() == CpuIsa::kAvx2)
            return Pair{detail::distance_block_avx2<false>, detail::distance_block_avx2<true>};
#endif
        return Pair{detail::distance_block_portable<false>, detail::distance_block_portable<true>};
    }();
    return l2 ? best.l2 : best.cosine;
}

}  // namespace tk::cpu
