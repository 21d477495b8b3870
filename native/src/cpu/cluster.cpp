// CPU backend of clustering and aggregation (SPEC section 6). DPC-kNN runs one item per thread (the
// workloads are thousands of items of 196 to 1,000 tokens): the item's tokens are packed once into
// float32 column panels (f16 and bf16 also into float32 rows), the upper triangle of its Gram matrix
// is computed block by block on token merging's register-blocked GEMM micro-kernels
// (cpu/merge_microkernel.hpp), turned into squared distances |a|^2 + |b|^2 - 2 a.b with the norms
// read off its diagonal (so d(i, i) is exactly 0 for finite norms and d(a, b) == d(b, a) bit for bit)
// and mirrored, and density, delta, the centres and the assignment are read off the matrix.
// Aggregation runs one task per (item, cluster), adding members in token order.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#include "core/dispatch.hpp"
#include "core/parallel.hpp"
#include "core/regions.hpp"
#include "cpu/float16.hpp"
#include "cpu/isa.hpp"
#include "cpu/merge_microkernel.hpp"
#include "ops/cluster.hpp"
#include "ops/lane_sum.hpp"
#include "ops/portable_math.hpp"

namespace tk::cpu {
namespace {

// Channels of one GEMM pass (ops/cluster.hpp's kDpcChannelBlock): a block of every column panel stays in
// this core's L2 while the row panels run over it.
constexpr int64_t kChannelBlock = kDpcChannelBlock;
constexpr int64_t kMirrorBlock = 64;          // rows and columns of one block of the mirroring
constexpr int64_t kInsertionNeighbours = 32;  // the largest k kept by insertion
constexpr int64_t kDeltaLanes = 16;

int64_t padded_channels(int64_t channels) { return round_up(std::max<int64_t>(channels, 1), 16); }

int32_t item_value(const StridedTensor& t, int64_t b, int64_t fallback) {
    if (t.data == nullptr) return static_cast<int32_t>(fallback);
    return *(static_cast<const int32_t*>(t.data) + b * t.strides[0]);
}

int32_t& at2(const StridedTensor& t, int64_t b, int64_t i) {
    return *(static_cast<int32_t*>(t.data) + b * t.strides[0] + i * t.strides[1]);
}

float& at2f(const StridedTensor& t, int64_t b, int64_t i) {
    return *(static_cast<float*>(t.data) + b * t.strides[0] + i * t.strides[1]);
}

// panel[c * nr + j] = rows[j * row_stride + c] for c < kc, j < nr: one channel block of a column panel.
void pack_panel_portable(const float* rows, int64_t row_stride, int64_t kc, int64_t nr, float* panel) {
    for (int64_t c = 0; c < kc; ++c)
        for (int64_t j = 0; j < nr; ++j) panel[c * nr + j] = rows[j * row_stride + c];
}

#if defined(TK_MERGE_X86_KERNELS)
// The same by 8 x 8 transposes in AVX registers (nr is a multiple of 8 for every micro-kernel), the
// channels left over one by one.
__attribute__((target("avx2"))) void pack_panel_avx2(const float* rows, int64_t row_stride, int64_t kc, int64_t nr,
                                                   float* panel) {
    int64_t c = 0;
    for (; c + 8 <= kc; c += 8)
        for (int64_t j = 0; j < nr; j += 8) {
            __m256 r[8], t[8];
            for (int q = 0; q < 8; ++q) r[q] = _mm256_loadu_ps(rows + (j + q) * row_stride + c);
            for (int q = 0; q < 8; q += 2) {
                t[q] = _mm256_unpacklo_ps(r[q], r[q + 1]);
                t[q + 1] = _mm256_unpackhi_ps(r[q], r[q + 1]);
            }
            for (int q = 0; q < 8; q += 4) {
                r[q] = _mm256_shuffle_ps(t[q], t[q + 2], 0x44);
                r[q + 1] = _mm256_shuffle_ps(t[q], t[q + 2], 0xEE);
                r[q + 2] = _mm256_shuffle_ps(t[q + 1], t[q + 3], 0x44);
                r[q + 3] = _mm256_shuffle_ps(t[q + 1], t[q + 3], 0xEE);
            }
            // r[0..3]: channels (0, 1, 2, 3) of rows 0-3 in the low lane and (4, 5, 6, 7) in the high.
            for (int q = 0; q < 4; ++q) {
                _mm256_storeu_ps(panel + (c + q) * nr + j, _mm256_permute2f128_ps(r[q], r[q + 4], 0x20));
                _mm256_storeu_ps(panel + (c + q + 4) * nr + j, _mm256_permute2f128_ps(r[q], r[q + 4], 0x31));
            }
        }
    pack_panel_portable(rows + c, row_stride, kc - c, nr, panel + c * nr);
}
#endif

using PackPanelFn = void (*)(const float*, int64_t, int64_t, int64_t, float*);

PackPanelFn best_pack_panel() {
#if defined(TK_MERGE_X86_KERNELS)
    if (cpu_isa() != CpuIsa::kPortable) return pack_panel_avx2;
#endif
    return pack_panel_portable;
}

// The passes over the distance matrix's rows. Every step is exact or rounded once (sqrt, division,
// compares, minima and maxima), so the AVX-512 variants give the portable loops' results bit for bit.

// row[j] for j in [begin, end): the distance from the dot product row[j] and the norms; the largest in
// lane (j - begin) % 16 (NaN ignored).
void distances_portable(float* row, const float* norm, int64_t begin, int64_t end, float norm_i, float root_channels,
                        float* lane_largest) {
    for (int64_t j = begin; j < end; ++j) row[j] = dpc_distance(dpc_squared_distance(norm_i, norm[j], row[j]), root_channels);
    int64_t j = begin;
    for (; j + kDeltaLanes <= end; j += kDeltaLanes)
        for (int64_t l = 0; l < kDeltaLanes; ++l) lane_largest[l] = row[j + l] > lane_largest[l] ? row[j + l] : lane_largest[l];
    for (; j < end; ++j) lane_largest[0] = row[j] > lane_largest[0] ? row[j] : lane_largest[0];
}

void keep_if_nearer(float v, int64_t k, float* smallest) {
    if (!nearer(v, smallest[k - 1])) return;
    int64_t p = k - 1;
    for (; p > 0 && nearer(v, smallest[p - 1]); --p) smallest[p] = smallest[p - 1];
    smallest[p] = v;
}

// smallest[0, k): the k nearest of row[0, length) in ascending order (NaN after every number), kept by
// insertion; k <= kInsertionNeighbours.
void nearest_portable(const float* row, int64_t length, int64_t k, float* smallest) {
    std::fill(smallest, smallest + k, std::numeric_limits<float>::quiet_NaN());  // after every number
    for (int64_t j0 = 0; j0 < length; j0 += kDeltaLanes) {
        // Most chunks hold nothing nearer than the k-th kept: one vectorised test skips them.
        const int64_t end = std::min(j0 + kDeltaLanes, length);
        const float kth = smallest[k - 1];
        if (end - j0 == kDeltaLanes && kth == kth) {  // with kth NaN every number is nearer
            int32_t nearer_count = 0;
            for (int64_t l = 0; l < kDeltaLanes; ++l) nearer_count += row[j0 + l] < kth ? 1 : 0;
            if (nearer_count == 0) continue;
        }
        for (int64_t j = j0; j < end; ++j) keep_if_nearer(row[j], k, smallest);
    }
}

// The nearest of row[0, length) among the tokens placed before `own`, or `largest` when none is (the
// minimum in 16 lanes, then the tail; NaN never passes the strict compare).
float delta_portable(const float* row, const int32_t* place, int32_t own, int64_t length, float largest) {
    float lane[kDeltaLanes];
    std::fill(lane, lane + kDeltaLanes, largest);
    int64_t j = 0;
    for (; j + kDeltaLanes <= length; j += kDeltaLanes)
        for (int64_t l = 0; l < kDeltaLanes; ++l) {
            const float v = row[j + l];
            lane[l] = place[j + l] < own && v < lane[l] ? v : lane[l];
        }
    float best = largest;
    for (; j < length; ++j)
        if (place[j] < own && row[j] < best) best = row[j];
    for (const float v : lane) best = v < best ? v : best;
    return best;
}

// similarity[j] = the lane sum (ops/lane_sum.hpp) of unit[c] * centres[j][c] for the valid centres j
// (valid[j]), each product and sum rounded on its own.
void similarities_portable(const float* unit, const float* centres, const bool* valid, int64_t clusters,
                           int64_t channels, float* similarity) {
    for (int64_t j = 0; j < clusters; ++j) {
        if (!valid[j]) continue;
        const float* u = centres + j * channels;
        similarity[j] = lane_sum(channels, [&](int64_t c) { return unit[c] * u[c]; });
    }
}

// The lower triangle of d[0, length)^2 (row stride ld) copied from the upper, in square blocks so the
// column writes stay in cache.
void mirror_portable(float* d, int64_t length, int64_t ld) {
    for (int64_t i0 = 0; i0 < length; i0 += kMirrorBlock)
        for (int64_t j0 = i0; j0 < length; j0 += kMirrorBlock)
            for (int64_t i = i0; i < std::min(i0 + kMirrorBlock, length); ++i)
                for (int64_t j = std::max(j0, i + 1); j < std::min(j0 + kMirrorBlock, length); ++j) d[j * ld + i] = d[i * ld + j];
}

#if defined(TK_MERGE_X86_KERNELS)
// The k-th nearest of the 16 lane minima of a row (k <= 16), which is no nearer than the row's k-th
// nearest (NaN when fewer than k are numbers); smallest[0, k) is left NaN for the second pass.
float kth_of_lane_minima(const float* minima, int64_t k, float* smallest) {
    std::fill(smallest, smallest + k, std::numeric_limits<float>::quiet_NaN());
    for (int64_t l = 0; l < kDeltaLanes; ++l) keep_if_nearer(minima[l], k, smallest);
    const float bound = smallest[k - 1];
    std::fill(smallest, smallest + k, std::numeric_limits<float>::quiet_NaN());
    return bound;
}

// Every lane (the unmasked intrinsics' undefined pass-through trips GCC 12's uninitialised warning).
constexpr __mmask16 kAll = 0xFFFF;

__attribute__((target("avx512f"))) void distances_avx512(float* row, const float* norm, int64_t begin, int64_t end,
                                                         float norm_i, float root_channels, float* lane_largest) {
    const __m512 ni = _mm512_set1_ps(norm_i), two = _mm512_set1_ps(2.0f), zero = _mm512_setzero_ps();
    const __m512 root = _mm512_set1_ps(root_channels);
    __m512 largest = _mm512_loadu_ps(lane_largest);
    int64_t j = begin;
    for (; j + kDeltaLanes <= end; j += kDeltaLanes) {
        __m512 s = _mm512_sub_ps(_mm512_add_ps(ni, _mm512_loadu_ps(norm + j)), _mm512_mul_ps(two, _mm512_loadu_ps(row + j)));
        s = _mm512_maskz_max_ps(kAll, zero, s);  // zero > s ? zero : s, so NaN stays NaN
        const __m512 distance = _mm512_div_ps(_mm512_maskz_sqrt_ps(kAll, s), root);
        _mm512_storeu_ps(row + j, distance);
        largest = _mm512_maskz_max_ps(kAll, distance, largest);  // distance > largest ? distance : largest
    }
    _mm512_storeu_ps(lane_largest, largest);
    for (; j < end; ++j) {
        row[j] = dpc_distance(dpc_squared_distance(norm_i, norm[j], row[j]), root_channels);
        lane_largest[0] = row[j] > lane_largest[0] ? row[j] : lane_largest[0];
    }
}

// Two passes. The first takes the minimum of each of 16 lanes: 16 distinct entries, so the k-th
// smallest of them (`bound`) is no nearer than the row's k-th nearest. The second tries, in order, only
// the entries no farther than `bound`, which include the k nearest: the same k values as the portable
// loop's, in the same order. k above 16, or fewer than k lanes with a number, go the portable way.
__attribute__((target("avx512f,bmi"))) void nearest_avx512(const float* row, int64_t length, int64_t k,
                                                           float* smallest) {
    const int64_t full = length / kDeltaLanes * kDeltaLanes;
    if (k > kDeltaLanes || full == 0) return nearest_portable(row, length, k, smallest);
    __m512 lane_min = _mm512_loadu_ps(row);
    for (int64_t j = kDeltaLanes; j < full; j += kDeltaLanes)
        lane_min = _mm512_maskz_min_ps(kAll, _mm512_loadu_ps(row + j), lane_min);  // v < min ? v : min; NaN never
    alignas(64) float minima[kDeltaLanes];
    _mm512_store_ps(minima, lane_min);
    const float bound = kth_of_lane_minima(minima, k, smallest);
    if (bound != bound) return nearest_portable(row, length, k, smallest);
    const __m512 limit = _mm512_set1_ps(bound);
    for (int64_t j0 = 0; j0 < length; j0 += kDeltaLanes) {
        const int64_t count = std::min<int64_t>(kDeltaLanes, length - j0);
        const __mmask16 lanes = static_cast<__mmask16>((1u << count) - 1u);
        unsigned hits = _mm512_mask_cmp_ps_mask(lanes, _mm512_maskz_loadu_ps(lanes, row + j0), limit, _CMP_LE_OQ);
        for (; hits != 0; hits &= hits - 1) keep_if_nearer(row[j0 + static_cast<int64_t>(_tzcnt_u32(hits))], k, smallest);
    }
}

__attribute__((target("avx512f"))) float delta_avx512(const float* row, const int32_t* place, int32_t own, int64_t length,
                                                      float largest) {
    __m512 lane = _mm512_set1_ps(largest);
    const __m512i own_place = _mm512_set1_epi32(own);
    int64_t j = 0;
    for (; j + kDeltaLanes <= length; j += kDeltaLanes) {
        const __m512 v = _mm512_loadu_ps(row + j);
        const __mmask16 before = _mm512_cmplt_epi32_mask(_mm512_loadu_si512(place + j), own_place);
        lane = _mm512_mask_mov_ps(lane, _mm512_mask_cmp_ps_mask(before, v, lane, _CMP_LT_OQ), v);
    }
    float best = largest;
    for (; j < length; ++j)
        if (place[j] < own && row[j] < best) best = row[j];
    alignas(64) float lanes[kDeltaLanes];
    _mm512_store_ps(lanes, lane);
    for (const float v : lanes) best = v < best ? v : best;
    return best;
}
// The same in 16 x 16 tiles transposed in registers: four rounds, each swapping the off-diagonal
// sub-blocks of size h (8, 4, 2, 1) between rows r and r + h. A diagonal tile writes only below the
// diagonal; the columns past the last whole tile are copied one by one.
__attribute__((target("avx512f"))) void mirror_avx512(float* d, int64_t length, int64_t ld) {
    __m512i low[4], high[4];
    for (int round = 0; round < 4; ++round) {
        const int h = 8 >> round;
        alignas(64) int32_t lo[kDeltaLanes], hi[kDeltaLanes];
        for (int l = 0; l < kDeltaLanes; ++l) {
            lo[l] = (l & h) == 0 ? l : 16 + l - h;
            hi[l] = (l & h) == 0 ? l + h : 16 + l;
        }
        low[round] = _mm512_load_si512(lo);
        high[round] = _mm512_load_si512(hi);
    }
    const int64_t whole = length / kDeltaLanes * kDeltaLanes;
    for (int64_t i0 = 0; i0 < whole; i0 += kDeltaLanes)
        for (int64_t j0 = i0; j0 < whole; j0 += kDeltaLanes) {
            __m512 t[kDeltaLanes];
            for (int r = 0; r < kDeltaLanes; ++r) t[r] = _mm512_loadu_ps(d + (i0 + r) * ld + j0);
            for (int round = 0; round < 4; ++round) {
                const int h = 8 >> round;
                for (int r = 0; r < kDeltaLanes; ++r) {
                    if ((r & h) != 0) continue;
                    const __m512 a = t[r], b = t[r + h];
                    t[r] = _mm512_permutex2var_ps(a, low[round], b);
                    t[r + h] = _mm512_permutex2var_ps(a, high[round], b);
                }
            }
            for (int c = 0; c < kDeltaLanes; ++c) {
                const __mmask16 lanes = i0 == j0 ? static_cast<__mmask16>((1u << c) - 1u) : kAll;
                _mm512_mask_storeu_ps(d + (j0 + c) * ld + i0, lanes, t[c]);
            }
        }
    for (int64_t i = 0; i < length; ++i)
        for (int64_t j = std::max(whole, i + 1); j < length; ++j) d[j * ld + i] = d[i * ld + j];
}
// The AVX2 variants: a chunk of 16 entries as two 8-float halves.
__attribute__((target("avx2"))) void distances_avx2(float* row, const float* norm, int64_t begin, int64_t end, float norm_i,
                                                    float root_channels, float* lane_largest) {
    const __m256 ni = _mm256_set1_ps(norm_i), two = _mm256_set1_ps(2.0f), zero = _mm256_setzero_ps();
    const __m256 root = _mm256_set1_ps(root_channels);
    __m256 largest[2] = {_mm256_loadu_ps(lane_largest), _mm256_loadu_ps(lane_largest + 8)};
    int64_t j = begin;
    for (; j + kDeltaLanes <= end; j += kDeltaLanes)
        for (int h = 0; h < 2; ++h) {
            const int64_t at = j + 8 * h;
            __m256 s = _mm256_sub_ps(_mm256_add_ps(ni, _mm256_loadu_ps(norm + at)), _mm256_mul_ps(two, _mm256_loadu_ps(row + at)));
            s = _mm256_max_ps(zero, s);  // zero > s ? zero : s, so NaN stays NaN
            const __m256 distance = _mm256_div_ps(_mm256_sqrt_ps(s), root);
            _mm256_storeu_ps(row + at, distance);
            largest[h] = _mm256_max_ps(distance, largest[h]);  // distance > largest ? distance : largest
        }
    _mm256_storeu_ps(lane_largest, largest[0]);
    _mm256_storeu_ps(lane_largest + 8, largest[1]);
    for (; j < end; ++j) {
        row[j] = dpc_distance(dpc_squared_distance(norm_i, norm[j], row[j]), root_channels);
        lane_largest[0] = row[j] > lane_largest[0] ? row[j] : lane_largest[0];
    }
}

// As nearest_avx512 (the bound from 16 lane minima), the entries no farther than it found eight at a time.
__attribute__((target("avx2,bmi"))) void nearest_avx2(const float* row, int64_t length, int64_t k, float* smallest) {
    const int64_t full = length / kDeltaLanes * kDeltaLanes;
    if (k > kDeltaLanes || full == 0) return nearest_portable(row, length, k, smallest);
    __m256 lane_min[2] = {_mm256_loadu_ps(row), _mm256_loadu_ps(row + 8)};
    for (int64_t j = kDeltaLanes; j < full; j += kDeltaLanes)
        for (int h = 0; h < 2; ++h) lane_min[h] = _mm256_min_ps(_mm256_loadu_ps(row + j + 8 * h), lane_min[h]);  // NaN never
    alignas(32) float minima[kDeltaLanes];
    _mm256_store_ps(minima, lane_min[0]);
    _mm256_store_ps(minima + 8, lane_min[1]);
    const float bound = kth_of_lane_minima(minima, k, smallest);
    if (bound != bound) return nearest_portable(row, length, k, smallest);
    const __m256 limit = _mm256_set1_ps(bound);
    int64_t j0 = 0;
    for (; j0 + 8 <= length; j0 += 8) {
        unsigned hits = static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(row + j0), limit, _CMP_LE_OQ)));
        for (; hits != 0; hits &= hits - 1) keep_if_nearer(row[j0 + static_cast<int64_t>(_tzcnt_u32(hits))], k, smallest);
    }
    for (; j0 < length; ++j0)
        if (row[j0] <= bound) keep_if_nearer(row[j0], k, smallest);
}

__attribute__((target("avx2"))) float delta_avx2(const float* row, const int32_t* place, int32_t own, int64_t length, float largest) {
    __m256 lane[2] = {_mm256_set1_ps(largest), _mm256_set1_ps(largest)};
    const __m256i own_place = _mm256_set1_epi32(own);
    int64_t j = 0;
    for (; j + kDeltaLanes <= length; j += kDeltaLanes)
        for (int h = 0; h < 2; ++h) {
            const __m256 v = _mm256_loadu_ps(row + j + 8 * h);
            const __m256i placed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(place + j + 8 * h));
            const __m256 before = _mm256_castsi256_ps(_mm256_cmpgt_epi32(own_place, placed));
            lane[h] = _mm256_blendv_ps(lane[h], v, _mm256_and_ps(before, _mm256_cmp_ps(v, lane[h], _CMP_LT_OQ)));
        }
    float best = largest;
    for (; j < length; ++j)
        if (place[j] < own && row[j] < best) best = row[j];
    alignas(32) float lanes[kDeltaLanes];
    _mm256_store_ps(lanes, lane[0]);
    _mm256_store_ps(lanes + 8, lane[1]);
    for (const float v : lanes) best = v < best ? v : best;
    return best;
}
// Four centres at a time share each load of the token's row; the 16 lanes are lane_sum's (a masked
// tail adds +0, which leaves a partial sum unchanged: one that starts at +0 never becomes -0).
__attribute__((target("avx512f"))) void similarities_avx512(const float* unit, const float* centres, const bool* valid,
                                                            int64_t clusters, int64_t channels, float* similarity) {
    int64_t picked[4];
    int64_t j = 0;
    while (j < clusters) {
        int count = 0;
        for (; j < clusters && count < 4; ++j)
            if (valid[j]) picked[count++] = j;
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (int64_t c = 0; c < channels; c += kDeltaLanes) {
            const __mmask16 lanes = channels - c >= kDeltaLanes ? kAll : static_cast<__mmask16>((1u << (channels - c)) - 1u);
            const __m512 a = _mm512_maskz_loadu_ps(lanes, unit + c);
            for (int q = 0; q < count; ++q)
                acc[q] = _mm512_add_ps(acc[q], _mm512_mul_ps(a, _mm512_maskz_loadu_ps(lanes, centres + picked[q] * channels + c)));
        }
        for (int q = 0; q < count; ++q) {
            alignas(64) float partial[kDeltaLanes];
            _mm512_store_ps(partial, acc[q]);
            float sum = 0.0f;
            for (const float v : partial) sum += v;
            similarity[picked[q]] = sum;
        }
    }
}
#endif

struct RowPasses {
    decltype(&distances_portable) distances;
    decltype(&nearest_portable) nearest;
    decltype(&delta_portable) delta;
    decltype(&mirror_portable) mirror;
    decltype(&similarities_portable) similarities;
};

RowPasses best_row_passes() {
#if defined(TK_MERGE_X86_KERNELS)
    if (cpu_isa() == CpuIsa::kAvx512) return {distances_avx512, nearest_avx512, delta_avx512, mirror_avx512, similarities_avx512};
    if (cpu_isa() == CpuIsa::kAvx2) return {distances_avx2, nearest_avx2, delta_avx2, mirror_portable, similarities_portable};
#endif
    return {distances_portable, nearest_portable, delta_portable, mirror_portable, similarities_portable};
}

// One item's scratch, carved from a slot of the workspace.
struct ItemScratch {
    float* rows;            // [N, stride], f16 and bf16 tokens converted
    float* columns;         // channel blocks of column panels: [C / kc][ceil(N / nr)][kc][nr]
    float* distance;        // [round_up(N, mr), round_up(N, nr)]
    float* norm;            // [N], the squared norms (the Gram matrix's diagonal)
    float* nearest;         // [N], one row's distances being partially sorted
    float* density;         // [N]
    float* delta;           // [N]
    int32_t* order;         // [N]
    int32_t* cluster_of;    // [N], -1 unless the token is a centre
};

struct ItemLayout {
    uint64_t rows, columns, distance, norm, nearest, density, delta, order, cluster_of, total;
};

ItemLayout item_layout(const DpcKnnPlan& plan) {
    const uint64_t n = static_cast<uint64_t>(plan.tokens);
    RegionCursor cursor;
    ItemLayout l{};
    const uint64_t converted = plan.x.dtype == TK_DTYPE_F32 ? 0 : n;  // float32 tokens are read in place
    l.rows = cursor.take(converted * static_cast<uint64_t>(padded_channels(plan.channels)) * sizeof(float));
    const MicroKernel& kernel = best_micro_kernel();
    const uint64_t columns = static_cast<uint64_t>(round_up(plan.tokens, kernel.nr));
    l.columns = cursor.take(columns * static_cast<uint64_t>(plan.channels) * sizeof(float));
    l.distance = cursor.take(static_cast<uint64_t>(round_up(plan.tokens, kernel.mr)) * columns * sizeof(float));
    l.norm = cursor.take(n * sizeof(float));
    l.nearest = cursor.take(n * sizeof(float));
    l.density = cursor.take(n * sizeof(float));
    l.delta = cursor.take(n * sizeof(float));
    l.order = cursor.take(n * sizeof(int32_t));
    l.cluster_of = cursor.take(n * sizeof(int32_t));
    l.total = cursor.used();
    return l;
}

ItemScratch carve(void* slot, const ItemLayout& l) {
    return ItemScratch{at_offset<float>(slot, l.rows),       at_offset<float>(slot, l.columns),
                       at_offset<float>(slot, l.distance),   at_offset<float>(slot, l.norm),
                       at_offset<float>(slot, l.nearest),
                       at_offset<float>(slot, l.density),    at_offset<float>(slot, l.delta),
                       at_offset<int32_t>(slot, l.order),    at_offset<int32_t>(slot, l.cluster_of)};
}

template <class T>
void dpc_item(const DpcKnnPlan& plan, int64_t b, const ItemScratch& s, const MicroKernel& kernel) {
    const int64_t n = plan.tokens;
    const int64_t channels = plan.channels;
    const int64_t length = item_value(plan.lengths, b, n);
    const int64_t clusters = std::min<int64_t>(item_value(plan.item_clusters, b, plan.clusters), length);
    const int64_t stride = padded_channels(channels);
    const int64_t mr = kernel.mr, nr = kernel.nr;
    const int64_t ld = round_up(length, nr);  // the matrix's row stride: whole column panels
    static const PackPanelFn pack_panel = best_pack_panel();
    static const RowPasses passes = best_row_passes();

    // Rows in float32 (float32 tokens are read in place: channels are contiguous), and the same values
    // in column panels (block k0 of panel p at columns + k0 * ld + p * nr * kc, [kc][nr]); columns past
    // the length are zeros.
    const float* rows = s.rows;
    int64_t row_stride = stride;
    const T* item = static_cast<const T*>(plan.x.data) + b * plan.x.strides[0];
    if constexpr (std::is_same_v<T, float>) {
        rows = item;
        row_stride = plan.x.strides[1];
    } else {
        for (int64_t i = 0; i < length; ++i)
            for (int64_t c = 0; c < channels; ++c) s.rows[i * stride + c] = to_float(item[i * plan.x.strides[1] + c]);
    }
    for (int64_t k0 = 0; k0 < channels; k0 += kChannelBlock) {
        const int64_t kc = std::min(kChannelBlock, channels - k0);
        for (int64_t j0 = 0; j0 < ld; j0 += nr) {
            // Channel by channel, so the writes are contiguous and the nr rows read stay in L1.
            float* panel = s.columns + k0 * ld + j0 * kc;
            const int64_t real = std::min(nr, length - j0);
            const float* first = rows + j0 * row_stride + k0;
            if (real == nr) {
                pack_panel(first, row_stride, kc, nr, panel);
                continue;
            }
            for (int64_t c = 0; c < kc; ++c) {
                for (int64_t j = 0; j < real; ++j) panel[c * nr + j] = first[j * row_stride + c];
                for (int64_t j = real; j < nr; ++j) panel[c * nr + j] = 0.0f;
            }
        }
    }
    // The Gram matrix's upper triangle (and the few entries below it that share a tile), channel block
    // by channel block; k0 == 0 runs even with C = 0, so every tile is written (zeros then). Lanes past
    // the length read row 0; their rows of the matrix are never read.
    float* d = s.distance;
    for (int64_t k0 = 0; length > 0 && (k0 == 0 || k0 < channels); k0 += kChannelBlock) {
        const int64_t kc = std::min(kChannelBlock, channels - k0);
        for (int64_t r = 0; r < length; r += mr) {
            const float* lanes[kMaxMr];
            for (int64_t l = 0; l < mr; ++l) lanes[l] = rows + (r + l < length ? r + l : 0) * row_stride + k0;
            for (int64_t j0 = r / nr * nr; j0 < ld; j0 += nr)
                kernel.rows_fn(kc, lanes, s.columns + k0 * ld + j0 * kc, d + r * ld + j0, ld, k0 > 0);
        }
    }
    // Squared distances from the dot products and the diagonal's norms, then the distance; then the
    // upper triangle mirrored.
    for (int64_t i = 0; i < length; ++i) s.norm[i] = d[i * ld + i];
    const float root_channels = static_cast<float>(std::sqrt(static_cast<double>(channels)));
    float lane_largest[kDeltaLanes] = {};  // the largest distance in 16 lanes (exact in any order); NaN ignored
    for (int64_t i = 0; i < length; ++i)
        passes.distances(d + i * ld, s.norm, i, length, s.norm[i], root_channels, lane_largest);
    float largest = 0.0f;
    for (const float v : lane_largest) largest = v > largest ? v : largest;
    passes.mirror(d, length, ld);
    // Density: exp(-mean of the k smallest squared distances), added in ascending order. A small k keeps
    // the k smallest by insertion (one well-predicted compare per distance); a large one selects.
    const int64_t k = std::min(plan.neighbours, length);
    for (int64_t i = 0; i < length; ++i) {
        const float* row = d + i * ld;
        if (k <= kInsertionNeighbours) {
            passes.nearest(row, length, k, s.nearest);
        } else {
            std::copy(row, row + length, s.nearest);
            std::nth_element(s.nearest, s.nearest + (k - 1), s.nearest + length, nearer);
            std::sort(s.nearest, s.nearest + k, nearer);
        }
        float sum = 0.0f;
        for (int64_t t = 0; t < k; ++t) sum += s.nearest[t] * s.nearest[t];
        s.density[i] = portable_exp(-(sum / static_cast<float>(k)));
    }
    // Delta: the distance to the nearest token ranked before this one by density; the item's largest
    // distance for the first. Each token's place in the density order (in cluster_of until the centres
    // need it) turns "ranked before" into one integer compare; the minimum runs in 16 lanes (a minimum
    // is exact in any order; NaN never passes the strict compare).
    int32_t* place = s.cluster_of;
    for (int64_t i = 0; i < length; ++i) s.order[i] = static_cast<int32_t>(i);
    std::sort(s.order, s.order + length,
              [&s](int32_t a, int32_t c) { return ranks_before(s.density[a], a, s.density[c], c); });
    for (int64_t r = 0; r < length; ++r) place[s.order[r]] = static_cast<int32_t>(r);
    for (int64_t i = 0; i < length; ++i) s.delta[i] = passes.delta(d + i * ld, place, place[i], length, largest);
    // Centres: the top `clusters` of delta x density (stored in nearest), in rank order.
    float* score = s.nearest;
    for (int64_t i = 0; i < length; ++i) {
        score[i] = s.delta[i] * s.density[i];
        s.order[i] = static_cast<int32_t>(i);
        s.cluster_of[i] = -1;
    }
    std::partial_sort(s.order, s.order + clusters, s.order + length,
                      [score](int32_t a, int32_t c) { return ranks_before(score[a], a, score[c], c); });
    for (int64_t j = 0; j < plan.clusters; ++j) at2(plan.centres, b, j) = j < clusters ? s.order[j] : -1;
    for (int64_t j = 0; j < clusters; ++j) s.cluster_of[s.order[j]] = static_cast<int32_t>(j);
    // Assignment: a centre to its own cluster, any other token to its nearest centre (the lower
    // cluster on ties; cluster 0 when every distance is NaN).
    for (int64_t i = 0; i < n; ++i) {
        int32_t cluster = -1;
        if (i < length && clusters > 0) {
            cluster = s.cluster_of[i];
            if (cluster < 0) {
                const float* row = d + i * ld;
                cluster = 0;
                float best = row[s.order[0]];
                for (int64_t j = 1; j < clusters; ++j)
                    if (nearer(row[s.order[j]], best)) {
                        best = row[s.order[j]];
                        cluster = static_cast<int32_t>(j);
                    }
            }
        }
        at2(plan.assignment, b, i) = cluster;
    }
    if (plan.density.data != nullptr)
        for (int64_t i = 0; i < n; ++i) at2f(plan.density, b, i) = i < length ? s.density[i] : 0.0f;
    if (plan.delta.data != nullptr)
        for (int64_t i = 0; i < n; ++i) at2f(plan.delta, b, i) = i < length ? s.delta[i] : 0.0f;
}

template <class T>
void cluster_merge_typed(const ClusterMergePlan& p) {
    const int64_t channels = p.channels;
    parallel_for(p.batch * p.clusters, min_tasks_per_chunk(p.tokens + channels), [&](int64_t begin, int64_t end) {
        std::vector<float> sum(static_cast<size_t>(channels));
        for (int64_t task = begin; task < end; ++task) {
            const int64_t b = task / p.clusters;
            const int64_t cluster = task % p.clusters;
            const int32_t centre = p.centres.data != nullptr ? at2(p.centres, b, cluster) : -1;
            const bool blend = p.mode == TK_CLUSTER_MERGE_CENTRE_BLEND || p.mode == TK_CLUSTER_MERGE_CENTRE_COUNT_BLEND;
            std::fill(sum.begin(), sum.end(), 0.0f);
            float weight = 0.0f;  // the divisor: count, or the summed sizes
            float size = 0.0f;    // out_size
            for (int64_t i = 0; i < p.tokens; ++i) {
                if (at2(p.assignment, b, i) != cluster) continue;
                const float token_size = p.sizes.data != nullptr ? at2f(p.sizes, b, i) : 1.0f;
                size += token_size;
                if (blend && i == centre) continue;
                const T* x = static_cast<const T*>(p.x.data) + b * p.x.strides[0] + i * p.x.strides[1];
                if (p.mode == TK_CLUSTER_MERGE_SIZE_WEIGHTED) {
                    for (int64_t c = 0; c < channels; ++c) sum[c] += token_size * to_float(x[c]);
                    weight += token_size;
                } else {
                    for (int64_t c = 0; c < channels; ++c) sum[c] += to_float(x[c]);
                    weight += 1.0f;
                }
            }
            T* out = static_cast<T*>(p.out.data) + b * p.out.strides[0] + cluster * p.out.strides[1];
            if (blend && centre >= 0) {
                const T* xc = static_cast<const T*>(p.x.data) + b * p.x.strides[0] + centre * p.x.strides[1];
                const float centre_weight = centre_blend_weight(p.mode, p.beta, weight);
                const float rest = 1.0f - centre_weight;
                for (int64_t c = 0; c < channels; ++c) {
                    const float v = to_float(xc[c]);
                    out[c] = from_float<T>(weight > 0.0f ? centre_weight * v + rest * (sum[c] / weight) : v);
                }
            } else if (blend || weight == 0.0f) {
                for (int64_t c = 0; c < channels; ++c) out[c] = from_float<T>(weight == 0.0f || blend ? 0.0f : sum[c]);
                size = blend ? 0.0f : size;
            } else {
                for (int64_t c = 0; c < channels; ++c) out[c] = from_float<T>(sum[c] / weight);
            }
            if (p.out_size.data != nullptr) at2f(p.out_size, b, cluster) = size;
        }
    });
}

// One task per item: the centres' unit rows once, then each token's unit row against them.
template <class T>
void cluster_assign_typed(const ClusterAssignPlan& p) {
    const int64_t channels = p.channels;
    parallel_for(p.batch, min_tasks_per_chunk(p.tokens * (p.clusters + 1) * channels), [&](int64_t begin, int64_t end) {
        static const RowPasses passes = best_row_passes();
        std::vector<float> centre_units(static_cast<size_t>(p.clusters * channels)), unit(static_cast<size_t>(channels));
        std::vector<float> similarity(static_cast<size_t>(p.clusters));
        std::unique_ptr<bool[]> valid(new bool[static_cast<size_t>(std::max<int64_t>(p.clusters, 1))]);
        const auto unit_row = [&](int64_t b, int64_t i, float* to) {
            const T* x = static_cast<const T*>(p.x.data) + b * p.x.strides[0] + i * p.x.strides[1];
            const float norm = sqrtf(lane_sum(channels, [&](int64_t c) { return to_float(x[c]) * to_float(x[c]); }));
            for (int64_t c = 0; c < channels; ++c) to[c] = unit_component(to_float(x[c]), norm);
        };
        for (int64_t b = begin; b < end; ++b) {
            const int64_t length = item_value(p.lengths, b, p.tokens);
            int64_t first_valid = -1;
            for (int64_t j = 0; j < p.clusters; ++j) {
                const int64_t centre = at2(p.centres, b, j);
                valid[j] = centre >= 0;
                if (centre < 0) continue;
                if (first_valid < 0) first_valid = j;
                unit_row(b, centre, centre_units.data() + j * channels);
            }
            for (int64_t i = 0; i < p.tokens; ++i) {
                int32_t cluster = -1;
                if (i < length && first_valid >= 0) {
                    for (int64_t j = 0; j < p.clusters && cluster < 0; ++j)
                        if (at2(p.centres, b, j) == i) cluster = static_cast<int32_t>(j);
                    if (cluster < 0) {
                        unit_row(b, i, unit.data());
                        passes.similarities(unit.data(), centre_units.data(), valid.get(), p.clusters, channels, similarity.data());
                        float best = NAN;
                        for (int64_t j = 0; j < p.clusters; ++j) {
                            if (!valid[j] || !more_similar(similarity[j], best)) continue;
                            best = similarity[j];
                            cluster = static_cast<int32_t>(j);
                        }
                        if (cluster < 0) cluster = static_cast<int32_t>(first_valid);
                    }
                }
                at2(p.assignment, b, i) = cluster;
            }
        }
    });
}

}  // namespace

uint64_t dpc_knn_workspace_bytes(const DpcKnnPlan& plan, int64_t threads) {
    const uint64_t slot = item_layout(plan).total;
    const int64_t slots = std::max<int64_t>(1, std::min(threads, plan.batch));
    return slot == 0 ? 0 : slot * static_cast<uint64_t>(slots) + kWorkspaceAlignment - 1;
}

void dpc_knn(const DpcKnnPlan& plan, void* workspace, uint64_t workspace_bytes) {
    const ItemLayout layout = item_layout(plan);
    int64_t slots = std::max<int64_t>(1, std::min<int64_t>(num_threads(), plan.batch));
    std::unique_ptr<char[]> owned;
    if (workspace == nullptr) {
        workspace_bytes = dpc_knn_workspace_bytes(plan, slots);
        owned.reset(new char[workspace_bytes]);
        workspace = owned.get();
    } else {
        slots = std::min<int64_t>(slots, static_cast<int64_t>((workspace_bytes - (kWorkspaceAlignment - 1)) / layout.total));
    }
    void* base = aligned_start(workspace);
    const MicroKernel& kernel = best_micro_kernel();
    std::atomic<int64_t> next_item{0};
    dispatch_float(plan.x.dtype, [&](auto tag) {
        using T = storage_t<decltype(tag)>;
        parallel_team(slots, [&](const Team& team) {
            const ItemScratch scratch = carve(at_offset<char>(base, static_cast<uint64_t>(team.thread) * layout.total), layout);
            for (int64_t b = next_item.fetch_add(1); b < plan.batch; b = next_item.fetch_add(1))
                dpc_item<T>(plan, b, scratch, kernel);
        });
    });
}

void cluster_merge(const ClusterMergePlan& plan) {
    dispatch_float(plan.x.dtype, [&](auto tag) { cluster_merge_typed<storage_t<decltype(tag)>>(plan); });
}

void cluster_assign(const ClusterAssignPlan& plan) {
    dispatch_float(plan.x.dtype, [&](auto tag) { cluster_assign_typed<storage_t<decltype(tag)>>(plan); });
}

}  // namespace tk::cpu
