// Distances between rows of diversity selection's packed float32 copy (rows zero-padded to a multiple
// of 16 floats), computed a block of rows x centers at a time with the same bits for every pair
// whatever the block: 16 partial sums, lane l summing the terms of channels c = l (mod 16) in
// increasing c, then halved (partial[l] += partial[l + width], width 8 down to 1). Cosine rows are
// unit vectors, d = 1 - dot; L2 sums squared differences. The padding adds exact zeros.
//
// The AVX-512 variant holds a tile of up to 24 pairs (6 rows x 4 centers, 3 x 8, ..., or 16 rows x
// one center) in as many accumulators, one vector per pair, so a 16-channel step of a full tile
// loads 10 or 11 vectors for 24 FMAs, and halves sixteen accumulators at a time with shuffles; the
// portable variant (also compiled for AVX2) multiplies and adds. One variant is chosen per process,
// so every distance of a run has the same bits.
#pragma once

#include <algorithm>
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

// Sixteen accumulators reduced at once, lane p of the result holding accumulator p's sum: the halving
// of pair_distance_portable (width 8, 4, 2, 1) done on shuffled vectors, each addition on the same
// two floats as there, so the same bits. After the width-8 step a vector holds two accumulators, after
// width 4 four (one per 128-bit lane), after width 2 eight; the last step leaves accumulator p at
// 4 (p % 4) + p / 4, put back in order by one permutation.
__attribute__((target("avx512f"))) inline __m512 reduce_lanes16(const __m512 (&a)[16]) {
    // The zero-masking forms with every lane kept: the plain ones pass an undefined source vector,
    // which GCC 12 reports as uninitialised.
    constexpr __mmask16 kAll = 0xffff;
    __m512 half[8], quarter[4], eighth[2];
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k)
        half[k] = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(kAll, a[2 * k], a[2 * k + 1], 0x44),
                                _mm512_maskz_shuffle_f32x4(kAll, a[2 * k], a[2 * k + 1], 0xEE));
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k)
        quarter[k] = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(kAll, half[2 * k], half[2 * k + 1], 0x88),
                                   _mm512_maskz_shuffle_f32x4(kAll, half[2 * k], half[2 * k + 1], 0xDD));
#pragma GCC unroll 2
    for (int k = 0; k < 2; ++k)
        eighth[k] = _mm512_add_ps(_mm512_maskz_shuffle_ps(kAll, quarter[2 * k], quarter[2 * k + 1], 0x44),
                                  _mm512_maskz_shuffle_ps(kAll, quarter[2 * k], quarter[2 * k + 1], 0xEE));
    const __m512 sums = _mm512_add_ps(_mm512_maskz_shuffle_ps(kAll, eighth[0], eighth[1], 0x88),
                                      _mm512_maskz_shuffle_ps(kAll, eighth[0], eighth[1], 0xDD));
    return _mm512_maskz_permutexvar_ps(kAll, _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), sums);
}

// sum + the pair's term for 16 channels: row x center, or (row - center)^2.
template <bool kL2>
__attribute__((target("avx512f"))) inline __m512 accumulate(__m512 row, __m512 center, __m512 sum) {
    if constexpr (kL2) {
        const __m512 diff = _mm512_sub_ps(row, center);
        return _mm512_fmadd_ps(diff, diff, sum);
    } else {
        return _mm512_fmadd_ps(row, center, sum);
    }
}

template <int R, int Q, bool kL2>
__attribute__((target("avx512f"))) void distance_tile_avx512(const float* const* rows, const float* const* centers,
                                                             int64_t stride, float* out, int64_t ldo) {
    // Fully unrolled, so the accumulators and the tile's row vectors stay in registers (R + 1 + R x Q
    // of the 32; with one center each row is read once, straight into its multiply-add).
    const float* row_ptr[R];
    const float* center_ptr[Q];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) row_ptr[r] = rows[r];
#pragma GCC unroll 8
    for (int q = 0; q < Q; ++q) center_ptr[q] = centers[q];
    __m512 acc[R * Q];
#pragma GCC unroll 24
    for (int p = 0; p < R * Q; ++p) acc[p] = _mm512_setzero_ps();
    for (int64_t c = 0; c < stride; c += kDistanceLanes) {
        if constexpr (Q == 1) {
            const __m512 center = _mm512_load_ps(center_ptr[0] + c);
#pragma GCC unroll 16
            for (int r = 0; r < R; ++r) acc[r] = accumulate<kL2>(_mm512_load_ps(row_ptr[r] + c), center, acc[r]);
        } else {
            __m512 row[R];
#pragma GCC unroll 6
            for (int r = 0; r < R; ++r) row[r] = _mm512_load_ps(row_ptr[r] + c);
#pragma GCC unroll 8
            for (int q = 0; q < Q; ++q) {
                const __m512 center = _mm512_load_ps(center_ptr[q] + c);
#pragma GCC unroll 6
                for (int r = 0; r < R; ++r) acc[r * Q + q] = accumulate<kL2>(row[r], center, acc[r * Q + q]);
            }
        }
    }
    // The pairs (r, q) in row-major order, sixteen at a time.
#pragma GCC unroll 2
    for (int p0 = 0; p0 < R * Q; p0 += 16) {
        __m512 group[16];
#pragma GCC unroll 16
        for (int p = 0; p < 16; ++p) group[p] = p0 + p < R * Q ? acc[p0 + p] : _mm512_setzero_ps();
        __m512 sums = reduce_lanes16(group);
        if constexpr (!kL2) sums = _mm512_sub_ps(_mm512_set1_ps(1.0f), sums);
        alignas(64) float distance[16];
        _mm512_store_ps(distance, sums);
        for (int p = p0; p < std::min(R * Q, p0 + 16); ++p) out[(p / Q) * ldo + p % Q] = distance[p - p0];
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
    if (center_count == 1)
        for (; r + 16 <= row_count; r += 16) distance_tile_avx512<16, 1, kL2>(rows + r, centers, stride, out + r * ldo, ldo);
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
