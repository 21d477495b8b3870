// Register-blocked float32 micro-kernels for the fused similarity of token merging (an MR x NR tile
// of C = A B^T over kc channels, from operands packed so that each channel step reads MR contiguous
// A values and NR contiguous B values), and the running row argmax over the scores they produce. A
// row-pointer variant reads each A lane from its own row, wherever it lies (diversity selection's
// rows, multiplied without a packed copy).
// The library targets baseline x86-64, so the AVX2 and AVX-512 variants are compiled with target
// attributes and chosen at run time by CPU feature; the portable variant is plain C++ that the
// compiler vectorises for whatever it targets.
#pragma once

#include <cstdint>

#include "cpu/isa.hpp"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define TK_MERGE_X86_KERNELS 1
#include <immintrin.h>
#endif

namespace tk::cpu {

// c[i * ldc + j] (=|+=) sum over k < kc of a[k * mr + i] * b[k * nr + j], for i < mr, j < nr. With
// accumulate false the tile is overwritten (so kc == 0 writes zeros).
using MicroKernelFn = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate);

// The same with lane i of A read from its own row: a_rows[i][k] (mr pointers, each to kc floats), the
// same sums in the same order.
using RowsMicroKernelFn = void (*)(int64_t kc, const float* const* a_rows, const float* b, float* c, int64_t ldc,
                                   bool accumulate);

// Running argmax of one row of scores over columns [begin, end): whenever scores[j] > *best (strict,
// in increasing j, so the lower column wins ties and NaN never wins) sets *best = scores[j] and
// *arg = j + arg_offset.
using RowArgmaxFn = void (*)(const float* scores, int64_t begin, int64_t end, int64_t arg_offset, float* best,
                             int32_t* arg);

// The most A lanes of any micro-kernel (the AVX-512 one's), for a caller's array of row pointers.
constexpr int64_t kMaxMr = 12;

struct MicroKernel {
    int64_t mr;
    int64_t nr;
    MicroKernelFn fn;
    RowsMicroKernelFn rows_fn;
    RowArgmaxFn row_argmax;
};

namespace detail {

constexpr int64_t kPortableMr = 4;
constexpr int64_t kPortableNr = 8;
static_assert(kPortableMr <= kMaxMr, "kMaxMr bounds every micro-kernel's lanes");

// A's value for lane i at channel k: in a packed panel (k-major), or in the lane's own row. A is
// `const float*` or `const float* const*` in the kernels below, one template for both forms.
template <int64_t kMr>
inline float a_at(const float* a, int64_t i, int64_t k) {
    return a[k * kMr + i];
}
template <int64_t kMr>
inline float a_at(const float* const* a_rows, int64_t i, int64_t k) {
    return a_rows[i][k];
}

template <class A>
inline void micro_kernel_portable(int64_t kc, A a, const float* b, float* c, int64_t ldc, bool accumulate) {
    float acc[kPortableMr][kPortableNr] = {};
    for (int64_t k = 0; k < kc; ++k)
        for (int64_t i = 0; i < kPortableMr; ++i)
            for (int64_t j = 0; j < kPortableNr; ++j)
                acc[i][j] += a_at<kPortableMr>(a, i, k) * b[k * kPortableNr + j];
    for (int64_t i = 0; i < kPortableMr; ++i)
        for (int64_t j = 0; j < kPortableNr; ++j) c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
}

inline void row_argmax_portable(const float* scores, int64_t begin, int64_t end, int64_t arg_offset, float* best,
                                int32_t* arg) {
    for (int64_t j = begin; j < end; ++j) {
        if (scores[j] > *best) {
            *best = scores[j];
            *arg = static_cast<int32_t>(j + arg_offset);
        }
    }
}

#if defined(TK_MERGE_X86_KERNELS)

// Most 16-column chunks hold nothing above the running best: one vector compare skips them.
__attribute__((target("avx512f"))) inline void row_argmax_avx512(const float* scores, int64_t begin, int64_t end,
                                                                 int64_t arg_offset, float* best, int32_t* arg) {
    int64_t j = begin;
    for (; j + 16 <= end; j += 16) {
        const __mmask16 above = _mm512_cmp_ps_mask(_mm512_loadu_ps(scores + j), _mm512_set1_ps(*best), _CMP_GT_OQ);
        if (above != 0) row_argmax_portable(scores, j, j + 16, arg_offset, best, arg);
    }
    row_argmax_portable(scores, j, end, arg_offset, best, arg);
}

__attribute__((target("avx2,fma"))) inline void row_argmax_avx2(const float* scores, int64_t begin, int64_t end,
                                                               int64_t arg_offset, float* best, int32_t* arg) {
    int64_t j = begin;
    for (; j + 8 <= end; j += 8) {
        const __m256 above = _mm256_cmp_ps(_mm256_loadu_ps(scores + j), _mm256_set1_ps(*best), _CMP_GT_OQ);
        if (_mm256_movemask_ps(above) != 0) row_argmax_portable(scores, j, j + 8, arg_offset, best, arg);
    }
    row_argmax_portable(scores, j, end, arg_offset, best, arg);
}

// 6 x 16: 12 ymm accumulators, 2 for the B row, 1 broadcast (Haswell and later).
constexpr int64_t kAvx2Mr = 6;
constexpr int64_t kAvx2Nr = 16;

template <class A>
__attribute__((target("avx2,fma"))) inline void micro_kernel_avx2(int64_t kc, A a, const float* b, float* c, int64_t ldc,
                                                                  bool accumulate) {
    __m256 acc[kAvx2Mr][2];
#pragma GCC unroll 6
    for (int i = 0; i < kAvx2Mr; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
        const __m256 b0 = _mm256_loadu_ps(b + k * kAvx2Nr);
        const __m256 b1 = _mm256_loadu_ps(b + k * kAvx2Nr + 8);
#pragma GCC unroll 6
        for (int i = 0; i < kAvx2Mr; ++i) {
            const __m256 av = _mm256_set1_ps(a_at<kAvx2Mr>(a, i, k));
            acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < kAvx2Mr; ++i) {
        float* row = c + i * ldc;
        if (accumulate) {
            acc[i][0] = _mm256_add_ps(acc[i][0], _mm256_loadu_ps(row));
            acc[i][1] = _mm256_add_ps(acc[i][1], _mm256_loadu_ps(row + 8));
        }
        _mm256_storeu_ps(row, acc[i][0]);
        _mm256_storeu_ps(row + 8, acc[i][1]);
    }
}

// 12 x 32: 24 zmm accumulators, 2 for the B row, 1 broadcast (Skylake-SP and later).
constexpr int64_t kAvx512Mr = 12;
constexpr int64_t kAvx512Nr = 32;
static_assert(kAvx512Mr <= kMaxMr && kAvx2Mr <= kMaxMr, "kMaxMr bounds every micro-kernel's lanes");

template <class A>
__attribute__((target("avx512f"))) inline void micro_kernel_avx512(int64_t kc, A a, const float* b, float* c,
                                                                   int64_t ldc, bool accumulate) {
    __m512 acc[kAvx512Mr][2];
#pragma GCC unroll 12
    for (int i = 0; i < kAvx512Mr; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
        const __m512 b0 = _mm512_loadu_ps(b + k * kAvx512Nr);
        const __m512 b1 = _mm512_loadu_ps(b + k * kAvx512Nr + 16);
#pragma GCC unroll 12
        for (int i = 0; i < kAvx512Mr; ++i) {
            const __m512 av = _mm512_set1_ps(a_at<kAvx512Mr>(a, i, k));
            acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
        }
    }
#pragma GCC unroll 12
    for (int i = 0; i < kAvx512Mr; ++i) {
        float* row = c + i * ldc;
        if (accumulate) {
            acc[i][0] = _mm512_add_ps(acc[i][0], _mm512_loadu_ps(row));
            acc[i][1] = _mm512_add_ps(acc[i][1], _mm512_loadu_ps(row + 16));
        }
        _mm512_storeu_ps(row, acc[i][0]);
        _mm512_storeu_ps(row + 16, acc[i][1]);
    }
}

#endif  // TK_MERGE_X86_KERNELS

}  // namespace detail

// The widest micro-kernel this CPU runs (cpu/isa.hpp), chosen once.
inline const MicroKernel& best_micro_kernel() {
    static const MicroKernel kernel = [] {
#if defined(TK_MERGE_X86_KERNELS)
        if (cpu_isa() == CpuIsa::kAvx512)
            return MicroKernel{detail::kAvx512Mr, detail::kAvx512Nr, detail::micro_kernel_avx512<const float*>,
                               detail::micro_kernel_avx512<const float* const*>, detail::row_argmax_avx512};
        if (cpu_isa() == CpuIsa::kAvx2)
            return MicroKernel{detail::kAvx2Mr, detail::kAvx2Nr, detail::micro_kernel_avx2<const float*>,
                               detail::micro_kernel_avx2<const float* const*>, detail::row_argmax_avx2};
#endif
        return MicroKernel{detail::kPortableMr, detail::kPortableNr, detail::micro_kernel_portable<const float*>,
                           detail::micro_kernel_portable<const float* const*>, detail::row_argmax_portable};
    }();
    return kernel;
}

}  // namespace tk::cpu
