// CPU backend of query relevance and conditional DPP selection (SPEC section 7, CDPruner). Tokens are
// converted once per item into packed float32 unit rows (C rounded up to 16 floats, zero-padded), and
// every cosine is one dot product of two such rows in the 16-lane order of ops/lane_sum.hpp (lane l
// sums the channels c = l (mod 16) in increasing c, then the lanes are added in order; products and
// sums rounded separately, as nvcc -fmad=false does), so the bits do not depend on the thread count
// or the vector width. The DPP computes the selected token's row of L from the packed rows each step
// (O(N C)), never the N x N matrix.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/dispatch.hpp"
#include "core/parallel.hpp"
#include "core/regions.hpp"
#include "cpu/float16.hpp"
#include "cpu/isa.hpp"
#include "ops/lane_sum.hpp"
#include "ops/merge.hpp"
#include "ops/pool.hpp"
#include "ops/portable_math.hpp"
#include "ops/relevance.hpp"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define TK_RELEVANCE_X86_KERNELS 1
#include <immintrin.h>
#endif

namespace tk::cpu {

namespace {

constexpr int64_t kLanes = 16;

int64_t packed_stride(int64_t channels) { return round_up(std::max<int64_t>(channels, 1), kLanes); }

// The ISA variants of the two row kernels; one variant is chosen per process.
struct RowKernels {
    // out[r] = dot(a, rows[r]) for r < count; rows `stride` floats apart, stride a multiple of 16.
    void (*dot_rows)(const float* a, const float* rows, int64_t count, int64_t stride, float* out);
    // out[c] = in[c] / divisor for c < count (in may be out).
    void (*divide)(const float* in, float* out, int64_t count, float divisor);
    // out[q][r] = dot(a[q], rows[r]) for q < a_count, r < count: each pair's bits as dot_rows gives them.
    void (*dot_tile)(const float* const* a, int64_t a_count, const float* rows, int64_t count, int64_t stride, float* const* out);
};

float add_lanes(const float* partial) {
    float sum = 0.0f;
    for (int l = 0; l < kLanes; ++l) sum += partial[l];
    return sum;
}

void dot_rows_portable(const float* a, const float* rows, int64_t count, int64_t stride, float* out) {
    for (int64_t r = 0; r < count; ++r) {
        const float* b = rows + r * stride;
        float partial[kLanes] = {};
        for (int64_t c = 0; c < stride; c += kLanes)
            for (int l = 0; l < kLanes; ++l) partial[l] = std::fma(a[c + l], b[c + l], partial[l]);
        out[r] = add_lanes(partial);
    }
}

void dot_tile_portable(const float* const* a, int64_t a_count, const float* rows, int64_t count, int64_t stride,
                       float* const* out) {
    for (int64_t q = 0; q < a_count; ++q) dot_rows_portable(a[q], rows, count, stride, out[q]);
}

void divide_portable(const float* in, float* out, int64_t count, float divisor) {
    for (int64_t c = 0; c < count; ++c) out[c] = in[c] / divisor;
}

#if defined(TK_RELEVANCE_X86_KERNELS)
// Four rows at a time share each load of a; the 16 lanes as two 8-float halves.
__attribute__((target("avx2,fma"))) void dot_rows_avx2(const float* a, const float* rows, int64_t count, int64_t stride,
                                                       float* out) {
    alignas(32) float partial[kLanes];
    int64_t r = 0;
    for (; r + 4 <= count; r += 4) {
        __m256 lo[4], hi[4];
        for (int q = 0; q < 4; ++q) lo[q] = hi[q] = _mm256_setzero_ps();
        for (int64_t c = 0; c < stride; c += kLanes) {
            const __m256 a_lo = _mm256_loadu_ps(a + c), a_hi = _mm256_loadu_ps(a + c + 8);
            for (int q = 0; q < 4; ++q) {
                const float* b = rows + (r + q) * stride + c;
                lo[q] = _mm256_fmadd_ps(a_lo, _mm256_loadu_ps(b), lo[q]);
                hi[q] = _mm256_fmadd_ps(a_hi, _mm256_loadu_ps(b + 8), hi[q]);
            }
        }
        for (int q = 0; q < 4; ++q) {
            _mm256_store_ps(partial, lo[q]);
            _mm256_store_ps(partial + 8, hi[q]);
            out[r + q] = add_lanes(partial);
        }
    }
    for (; r < count; ++r) {
        __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
        const float* b = rows + r * stride;
        for (int64_t c = 0; c < stride; c += kLanes) {
            lo = _mm256_fmadd_ps(_mm256_loadu_ps(a + c), _mm256_loadu_ps(b + c), lo);
            hi = _mm256_fmadd_ps(_mm256_loadu_ps(a + c + 8), _mm256_loadu_ps(b + c + 8), hi);
        }
        _mm256_store_ps(partial, lo);
        _mm256_store_ps(partial + 8, hi);
        out[r] = add_lanes(partial);
    }
}

__attribute__((target("avx2,fma"))) void dot_tile_avx2(const float* const* a, int64_t a_count, const float* rows, int64_t count,
                                                       int64_t stride, float* const* out) {
    for (int64_t q = 0; q < a_count; ++q) dot_rows_avx2(a[q], rows, count, stride, out[q]);
}

__attribute__((target("avx2"))) void divide_avx2(const float* in, float* out, int64_t count, float divisor) {
    const __m256 d = _mm256_set1_ps(divisor);
    int64_t c = 0;
    for (; c + 8 <= count; c += 8) _mm256_storeu_ps(out + c, _mm256_div_ps(_mm256_loadu_ps(in + c), d));
    for (; c < count; ++c) out[c] = in[c] / divisor;
}

__attribute__((target("avx512f"))) void dot_rows_avx512(const float* a, const float* rows, int64_t count, int64_t stride,
                                                         float* out) {
    alignas(64) float partial[kLanes];
    int64_t r = 0;
    for (; r + 4 <= count; r += 4) {
        __m512 acc[4];
        for (int q = 0; q < 4; ++q) acc[q] = _mm512_setzero_ps();
        for (int64_t c = 0; c < stride; c += kLanes) {
            const __m512 av = _mm512_loadu_ps(a + c);
            for (int q = 0; q < 4; ++q) acc[q] = _mm512_fmadd_ps(av, _mm512_loadu_ps(rows + (r + q) * stride + c), acc[q]);
        }
        for (int q = 0; q < 4; ++q) {
            _mm512_store_ps(partial, acc[q]);
            out[r + q] = add_lanes(partial);
        }
    }
    for (; r < count; ++r) {
        __m512 acc = _mm512_setzero_ps();
        const float* b = rows + r * stride;
        for (int64_t c = 0; c < stride; c += kLanes) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + c), _mm512_loadu_ps(b + c), acc);
        _mm512_store_ps(partial, acc);
        out[r] = add_lanes(partial);
    }
}

// Four queries by four rows at a time: eight loads for sixteen multiply-adds (dot_rows_avx512 takes five
// for four), each pair in its own accumulator, so its bits are dot_rows_avx512's.
__attribute__((target("avx512f"))) void dot_tile_avx512(const float* const* a, int64_t a_count, const float* rows, int64_t count,
                                                         int64_t stride, float* const* out) {
    constexpr int kQueries = 4, kRows = 4;
    alignas(64) float partial[kLanes];
    int64_t q = 0;
    for (; q + kQueries <= a_count; q += kQueries) {
        int64_t r = 0;
        for (; r + kRows <= count; r += kRows) {
            __m512 acc[kQueries][kRows];
            for (int i = 0; i < kQueries; ++i)
                for (int h = 0; h < kRows; ++h) acc[i][h] = _mm512_setzero_ps();
            const float* first = rows + r * stride;
            for (int64_t c = 0; c < stride; c += kLanes) {
                __m512 v[kRows];
                for (int h = 0; h < kRows; ++h) v[h] = _mm512_loadu_ps(first + h * stride + c);
                for (int i = 0; i < kQueries; ++i) {
                    const __m512 av = _mm512_loadu_ps(a[q + i] + c);
                    for (int h = 0; h < kRows; ++h) acc[i][h] = _mm512_fmadd_ps(av, v[h], acc[i][h]);
                }
            }
            for (int i = 0; i < kQueries; ++i)
                for (int h = 0; h < kRows; ++h) {
                    _mm512_store_ps(partial, acc[i][h]);
                    out[q + i][r + h] = add_lanes(partial);
                }
        }
        for (int i = 0; i < kQueries; ++i) dot_rows_avx512(a[q + i], rows + r * stride, count - r, stride, out[q + i] + r);
    }
    for (; q < a_count; ++q) dot_rows_avx512(a[q], rows, count, stride, out[q]);
}

__attribute__((target("avx512f"))) void divide_avx512(const float* in, float* out, int64_t count, float divisor) {
    const __m512 d = _mm512_set1_ps(divisor);
    int64_t c = 0;
    for (; c + 16 <= count; c += 16) _mm512_storeu_ps(out + c, _mm512_div_ps(_mm512_loadu_ps(in + c), d));
    for (; c < count; ++c) out[c] = in[c] / divisor;
}
#endif

RowKernels best_row_kernels() {
#if defined(TK_RELEVANCE_X86_KERNELS)
    switch (cpu_isa()) {
        case CpuIsa::kAvx512: return {dot_rows_avx512, divide_avx512, dot_tile_avx512};
        case CpuIsa::kAvx2: return {dot_rows_avx2, divide_avx2, dot_tile_avx2};
        default: break;
    }
#endif
    return {dot_rows_portable, divide_portable, dot_tile_portable};
}

template <class T>
const T* row_at(const StridedTensor& x, int64_t b, int64_t i) {
    return static_cast<const T*>(x.data) + b * x.strides[0] + i * x.strides[1];
}

int64_t per_item(const StridedTensor& t, int64_t b, int64_t fallback) {
    return t.data != nullptr ? *(static_cast<const int32_t*>(t.data) + b * t.strides[0]) : fallback;
}

// u = x / max(sqrt(dot(x, x)), 1e-12) into `out` (stride floats, zero past C); returns dot(x, x).
// Float32 rows as long as the stride are read in place (the padding's zeros add nothing to the sum).
template <class T>
float pack_unit_row(const T* x, int64_t channels, int64_t stride, float* out, const RowKernels& kernels) {
    const float* source = out;
    if constexpr (std::is_same_v<T, float>) {
        if (channels == stride)
            source = x;
        else
            std::memcpy(out, x, static_cast<size_t>(channels) * sizeof(float));
    } else {
        for (int64_t c = 0; c < channels; ++c) out[c] = to_float(x[c]);
    }
    std::fill(out + channels, out + stride, 0.0f);
    float squares = 0.0f;
    kernels.dot_rows(source, source, 1, stride, &squares);
    kernels.divide(source, out, channels, std::max(std::sqrt(squares), kCosineEps));
    return squares;
}

// Packs rows [0, count) of item b; squares (may be NULL) receives each row's dot(x, x).
template <class T>
void pack_rows(const StridedTensor& x, int64_t b, int64_t count, int64_t channels, int64_t stride, float* rows,
               float* squares, const RowKernels& kernels) {
    parallel_for(count, min_tasks_per_chunk(channels), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
            const float sq = pack_unit_row(row_at<T>(x, b, i), channels, stride, rows + i * stride, kernels);
            if (squares != nullptr) squares[i] = sq;
        }
    });
}

// ---- Query relevance ----------------------------------------------------------------------------

template <class T>
void relevance_item(const RelevancePlan& plan, int64_t b, const RowKernels& kernels, std::vector<float>& text_rows,
                    std::vector<float>& score) {
    const int64_t length = per_item(plan.lengths, b, plan.tokens);
    const int64_t text_length = per_item(plan.text_lengths, b, plan.text_tokens);
    const int64_t stride = packed_stride(plan.channels);
    text_rows.resize(static_cast<size_t>(std::max<int64_t>(text_length, 1) * stride));
    pack_rows<T>(plan.text, b, text_length, plan.channels, stride, text_rows.data(), nullptr, kernels);
    score.assign(static_cast<size_t>(length), 0.0f);
    parallel_for(length, min_tasks_per_chunk(plan.channels * std::max<int64_t>(text_length, 1)),
                 [&](int64_t begin, int64_t end) {
                     // A few visual tokens at a time share each load of the text rows (dot_tile).
                     constexpr int64_t kGroup = 4;
                     const int64_t cosine_count = std::max<int64_t>(text_length, 1);
                     std::vector<float> unit(static_cast<size_t>(kGroup * stride));
                     std::vector<float> cosines(static_cast<size_t>(kGroup * cosine_count));
                     const float* queries[kGroup];
                     float* outs[kGroup];
                     for (int64_t g = 0; g < kGroup; ++g) {
                         queries[g] = unit.data() + g * stride;
                         outs[g] = cosines.data() + g * cosine_count;
                     }
                     for (int64_t i0 = begin; i0 < end; i0 += kGroup) {
                         const int64_t group = std::min(kGroup, end - i0);
                         for (int64_t g = 0; g < group; ++g)
                             pack_unit_row(row_at<T>(plan.visual, b, i0 + g), plan.channels, stride, unit.data() + g * stride, kernels);
                         kernels.dot_tile(queries, group, text_rows.data(), text_length, stride, outs);
                         for (int64_t g = 0; g < group; ++g) {
                             const float mean = lane_sum(text_length, [&](int64_t t) { return outs[g][t]; }) /
                                                static_cast<float>(text_length);
                             score[static_cast<size_t>(i0 + g)] = plan.negate ? -mean : mean;
                         }
                     }
                 });
    // fmin / fmax: NaN scores are ignored, and stay NaN below.
    float lo = std::numeric_limits<float>::quiet_NaN(), hi = lo;
    for (const float s : score) {
        if (is_nan(s)) continue;
        lo = is_nan(lo) || s < lo ? s : lo;
        hi = is_nan(hi) || s > hi ? s : hi;
    }
    auto out = [&](int64_t i) {
        return static_cast<float*>(plan.relevance.data) + b * plan.relevance.strides[0] + i * plan.relevance.strides[1];
    };
    for (int64_t i = 0; i < length; ++i) *out(i) = min_max_relevance(score[static_cast<size_t>(i)], lo, hi);
    for (int64_t i = length; i < plan.tokens; ++i) *out(i) = 0.0f;
}

// ---- Conditional DPP ------------------------------------------------------------------------------

// Rows of s computed per pass over the packed tokens: the chosen token's and, speculatively, those of
// the tokens with the next largest residuals, which the greedy steps that follow mostly choose (at
// CDPruner's N = 576, k = 64 on random tokens every row computed was used: four passes). A pass streams
// the N packed rows once for all of them instead of once per step; each dot product has the same bits
// either way.
constexpr int64_t kRowsPerPass = 16;
// Similarity rows kept for later steps; a pass that finds too few free slots drops those of the smallest
// residuals.
constexpr int64_t kCachedRows = 2 * kRowsPerPass;
// Tokens per block of a pass: a block's packed rows stay in the core's cache while every row of the
// pass is dotted with them.
constexpr int64_t kPassBlockBytes = 128 * 1024;

// Where one item's buffers lie in its scratch, for N tokens and k selections.
struct DppLayout {
    uint64_t rows, cholesky, cached, slot_of, residual, weight, chosen;
    uint64_t total = 0;
};

DppLayout dpp_layout(const DppPlan& plan) {
    const int64_t n = std::max<int64_t>(plan.tokens, 1);
    DppLayout layout;
    RegionCursor carver;
    layout.rows = carver.take(static_cast<uint64_t>(n * packed_stride(plan.channels)) * sizeof(float));
    layout.cholesky = carver.take(static_cast<uint64_t>(std::max<int64_t>(plan.k - 1, 1) * n) * sizeof(float));
    layout.cached = carver.take(static_cast<uint64_t>(kCachedRows * n) * sizeof(float));
    layout.slot_of = carver.take(static_cast<uint64_t>(n) * sizeof(int32_t));
    layout.residual = carver.take(static_cast<uint64_t>(n) * sizeof(float));
    layout.weight = carver.take(static_cast<uint64_t>(n) * sizeof(float));
    layout.chosen = carver.take(static_cast<uint64_t>(n));
    layout.total = carver.total();
    return layout;
}

// The contract's order: a number above NaN, a larger above a smaller, the lower token on ties.
bool ranks_above(float a, float b) {
    if (is_nan(a) != is_nan(b)) return is_nan(b);
    return a > b;
}

// s_ii = dot(u_i, u_i) made exactly 1 for a nonzero row (a unit vector, whose computed square misses 1 by
// rounding only, which would otherwise decide between equally weighted tokens); 0 for a zero row, NaN
// for a row holding NaN. dot(x, x) finite and positive means a nonzero u without computing it.
float self_similarity(const float* row, float squares, int64_t stride, const RowKernels& kernels) {
    if (squares > 0.0f && squares <= std::numeric_limits<float>::max()) return 1.0f;
    float self = 0.0f;
    kernels.dot_rows(row, row, 1, stride, &self);
    return self > 0.0f ? 1.0f : self;
}

// The similarity rows s_q. of the packed tokens, kept in slots between steps.
class SimilarityRows {
public:
    SimilarityRows(const float* rows, int64_t count, int64_t stride, float* storage, int32_t* slot_of, const RowKernels& kernels)
        : rows_(rows), count_(count), stride_(stride), storage_(storage), slot_of_(slot_of), dot_tile_(kernels.dot_tile) {
        std::fill(slot_of_, slot_of_ + count_, -1);
        for (int64_t s = 0; s < kCachedRows; ++s) free_.push_back(static_cast<int32_t>(kCachedRows - 1 - s));
    }

    // Row j, computed (with the rows of up to kRowsPerPass - 1 more candidates, the unchosen tokens of
    // the largest residuals without a row) when not kept.
    const float* row(int64_t j, const float* residual, const unsigned char* chosen) {
        if (slot_of_[j] < 0) compute_pass(j, residual, chosen);
        return storage_ + slot_of_[j] * count_;
    }

    // Frees row j's slot (j has been chosen: its row is needed no more).
    void release(int64_t j) {
        if (slot_of_[j] < 0) return;
        free_.push_back(slot_of_[j]);
        slot_of_[j] = -1;
    }

private:
    void compute_pass(int64_t j, const float* residual, const unsigned char* chosen) {
        // Too few free slots: drop the kept rows of the smallest residuals (the least likely to be chosen).
        while (static_cast<int64_t>(free_.size()) < kRowsPerPass) {
            int64_t worst = -1;
            for (int64_t n = 0; n < count_; ++n)
                if (slot_of_[n] >= 0 && (worst < 0 || ranks_above(residual[worst], residual[n]))) worst = n;
            release(worst);
        }
        pass_.assign(1, j);
        // The candidates: a partial selection of the best residuals, a few at a time.
        while (static_cast<int64_t>(pass_.size()) < kRowsPerPass) {
            int64_t best = -1;
            for (int64_t n = 0; n < count_; ++n) {
                if (chosen[n] != 0 || slot_of_[n] >= 0 || is_nan(residual[n]) ||
                    std::find(pass_.begin(), pass_.end(), n) != pass_.end())
                    continue;
                if (best < 0 || ranks_above(residual[n], residual[best])) best = n;
            }
            if (best < 0) break;
            pass_.push_back(best);
        }
        for (const int64_t q : pass_) {
            slot_of_[q] = free_.back();
            free_.pop_back();
        }
        const int64_t block = std::max<int64_t>(1, kPassBlockBytes / (stride_ * static_cast<int64_t>(sizeof(float))));
        const int64_t blocks = (count_ + block - 1) / block;
        const float* queries[kRowsPerPass];
        const int64_t query_count = static_cast<int64_t>(pass_.size());
        for (int64_t i = 0; i < query_count; ++i) queries[i] = rows_ + pass_[static_cast<size_t>(i)] * stride_;
        parallel_for(blocks, 1, [&](int64_t begin, int64_t end) {
            float* out[kRowsPerPass];
            for (int64_t g = begin; g < end; ++g) {
                const int64_t n0 = g * block, n1 = std::min(count_, n0 + block);
                for (int64_t i = 0; i < query_count; ++i) out[i] = storage_ + slot_of_[pass_[static_cast<size_t>(i)]] * count_ + n0;
                dot_tile_(queries, query_count, rows_ + n0 * stride_, n1 - n0, stride_, out);
            }
        });
    }

    const float* rows_;
    int64_t count_, stride_;
    float* storage_;
    int32_t* slot_of_;
    void (*dot_tile_)(const float* const*, int64_t, const float*, int64_t, int64_t, float* const*);
    std::vector<int32_t> free_;
    std::vector<int64_t> pass_;
};

template <class T>
void dpp_item(const DppPlan& plan, int64_t b, const DppLayout& layout, char* scratch, const RowKernels& kernels) {
    const int64_t length = per_item(plan.lengths, b, plan.tokens);
    const int64_t count = std::min(per_item(plan.item_k, b, plan.k), length);
    const int64_t stride = packed_stride(plan.channels);
    float* rows = reinterpret_cast<float*>(scratch + layout.rows);
    float* cholesky = reinterpret_cast<float*>(scratch + layout.cholesky);
    float* residual = reinterpret_cast<float*>(scratch + layout.residual);
    float* weight = reinterpret_cast<float*>(scratch + layout.weight);
    auto* chosen = reinterpret_cast<unsigned char*>(scratch + layout.chosen);
    std::vector<int32_t> order(static_cast<size_t>(count));
    if (count > 0) {
        // The squares go to the residuals first, then each becomes L_nn.
        pack_rows<T>(plan.x, b, length, plan.channels, stride, rows, residual, kernels);
        for (int64_t n = 0; n < length; ++n) {
            float w = 1.0f;
            if (plan.relevance.data != nullptr) {
                const float r = *(static_cast<const float*>(plan.relevance.data) + b * plan.relevance.strides[0] +
                                  n * plan.relevance.strides[1]);
                w = plan.weighting == TK_DPP_WEIGHT_EXP ? portable_exp(plan.alpha * r) : r;
            }
            weight[n] = w;
            residual[n] = (w * self_similarity(rows + n * stride, residual[n], stride, kernels)) * w;
            chosen[n] = 0;
        }
        SimilarityRows similarity(rows, length, stride, reinterpret_cast<float*>(scratch + layout.cached),
                                  reinterpret_cast<int32_t*>(scratch + layout.slot_of), kernels);
        for (int64_t t = 0; t < count; ++t) {
            int64_t j = -1;
            for (int64_t n = 0; n < length; ++n)
                if (chosen[n] == 0 && (j < 0 || ranks_above(residual[n], residual[j]))) j = n;
            chosen[j] = 1;
            order[static_cast<size_t>(t)] = static_cast<int32_t>(j);
            if (t + 1 == count) break;
            // c_t = e: the new Cholesky row, from row j of L = (w_j s_jn) w_n.
            const float d_j = residual[j];
            float* e = cholesky + t * length;
            if (!(d_j > 0.0f)) {  // the residual is exhausted: the step adds no direction
                std::fill(e, e + length, 0.0f);
                similarity.release(j);
                continue;
            }
            const float root = std::sqrt(d_j);
            const float w_j = weight[j];
            const float* s_j = similarity.row(j, residual, chosen);
            parallel_for(length, min_tasks_per_chunk(t + 8), [&](int64_t begin, int64_t end) {
                for (int64_t n = begin; n < end; ++n) {
                    if (chosen[n] != 0) {
                        e[n] = 0.0f;
                        continue;
                    }
                    const float kernel = (w_j * s_j[n]) * weight[n];
                    float projection = 0.0f;
                    for (int64_t s = 0; s < t; ++s) projection += cholesky[s * length + j] * cholesky[s * length + n];
                    const float value = (kernel - projection) / root;
                    e[n] = value;
                    residual[n] = residual[n] - value * value;
                }
            });
            similarity.release(j);
        }
    }
    auto write = [&](const StridedTensor& out) {
        for (int64_t i = 0; i < plan.k; ++i)
            *(static_cast<int32_t*>(out.data) + b * out.strides[0] + i * out.strides[1]) =
                i < count ? order[static_cast<size_t>(i)] : -1;
    };
    write(plan.order);
    if (plan.sorted.data != nullptr) {
        std::sort(order.begin(), order.end());
        write(plan.sorted);
    }
}

}  // namespace

void query_relevance(const RelevancePlan& plan) {
    const RowKernels kernels = best_row_kernels();
    dispatch_float(plan.visual.dtype, [&](auto visual_tag) {
        using T = storage_t<decltype(visual_tag)>;
        std::vector<float> text_rows, score;
        for (int64_t b = 0; b < plan.batch; ++b) relevance_item<T>(plan, b, kernels, text_rows, score);
    });
}

uint64_t conditional_dpp_workspace_bytes(const DppPlan& plan) { return dpp_layout(plan).total; }

void conditional_dpp_select(const DppPlan& plan, void* workspace) {
    const DppLayout layout = dpp_layout(plan);
    std::vector<char> owned;
    if (workspace == nullptr) {
        owned.resize(layout.total);
        workspace = owned.data();
    }
    char* scratch = static_cast<char*>(aligned_start(workspace));
    const RowKernels kernels = best_row_kernels();
    dispatch_float(plan.x.dtype, [&](auto tag) {
        using T = storage_t<decltype(tag)>;
        for (int64_t b = 0; b < plan.batch; ++b) dpp_item<T>(plan, b, layout, scratch, kernels);
    });
}

}  // namespace tk::cpu
