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
#include <vector>

#include "core/dispatch.hpp"
#include "core/parallel.hpp"
#include "core/regions.hpp"
#include "cpu/float16.hpp"
#include "cpu/isa.hpp"
#include "ops/lane_sum.hpp"
#include "ops/merge.hpp"
#include "ops/pool.hpp"
#include "ops/relevance.hpp"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define TK_RELEVANCE_X86_KERNELS 1
#include <immintrin.h>
#endif

namespace tk::cpu {

namespace {

constexpr int64_t kLanes = 16;

int64_t packed_stride(int64_t channels) { return round_up(std::max<int64_t>(channels, 1), kLanes); }

// out[r] = dot(a, rows[r]) for r < count; rows `stride` floats apart, stride a multiple of 16.
using DotRowsFn = void (*)(const float* a, const float* rows, int64_t count, int64_t stride, float* out);

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
            for (int l = 0; l < kLanes; ++l) partial[l] += a[c + l] * b[c + l];
        out[r] = add_lanes(partial);
    }
}

#if defined(TK_RELEVANCE_X86_KERNELS)
// Four rows at a time share each load of a; two 8-float halves of the 16 lanes.
__attribute__((target("avx2"))) void dot_rows_avx2(const float* a, const float* rows, int64_t count, int64_t stride,
                                                   float* out) {
    int64_t r = 0;
    alignas(32) float partial[kLanes];
    for (; r + 4 <= count; r += 4) {
        __m256 lo[4], hi[4];
        for (int q = 0; q < 4; ++q) lo[q] = hi[q] = _mm256_setzero_ps();
        for (int64_t c = 0; c < stride; c += kLanes) {
            const __m256 a_lo = _mm256_loadu_ps(a + c), a_hi = _mm256_loadu_ps(a + c + 8);
            for (int q = 0; q < 4; ++q) {
                const float* b = rows + (r + q) * stride + c;
                lo[q] = _mm256_add_ps(lo[q], _mm256_mul_ps(a_lo, _mm256_loadu_ps(b)));
                hi[q] = _mm256_add_ps(hi[q], _mm256_mul_ps(a_hi, _mm256_loadu_ps(b + 8)));
            }
        }
        for (int q = 0; q < 4; ++q) {
            _mm256_store_ps(partial, lo[q]);
            _mm256_store_ps(partial + 8, hi[q]);
            out[r + q] = add_lanes(partial);
        }
    }
    dot_rows_portable(a, rows + r * stride, count - r, stride, out + r);
}

__attribute__((target("avx512f"))) void dot_rows_avx512(const float* a, const float* rows, int64_t count, int64_t stride,
                                                         float* out) {
    int64_t r = 0;
    alignas(64) float partial[kLanes];
    for (; r + 4 <= count; r += 4) {
        __m512 acc[4];
        for (int q = 0; q < 4; ++q) acc[q] = _mm512_setzero_ps();
        for (int64_t c = 0; c < stride; c += kLanes) {
            const __m512 av = _mm512_loadu_ps(a + c);
            for (int q = 0; q < 4; ++q)
                acc[q] = _mm512_add_ps(acc[q], _mm512_mul_ps(av, _mm512_loadu_ps(rows + (r + q) * stride + c)));
        }
        for (int q = 0; q < 4; ++q) {
            _mm512_store_ps(partial, acc[q]);
            out[r + q] = add_lanes(partial);
        }
    }
    dot_rows_portable(a, rows + r * stride, count - r, stride, out + r);
}
#endif

DotRowsFn best_dot_rows() {
#if defined(TK_RELEVANCE_X86_KERNELS)
    switch (cpu_isa()) {
        case CpuIsa::kAvx512: return dot_rows_avx512;
        case CpuIsa::kAvx2: return dot_rows_avx2;
        default: break;
    }
#endif
    return dot_rows_portable;
}

template <class T>
const T* row_at(const StridedTensor& x, int64_t b, int64_t i) {
    return static_cast<const T*>(x.data) + b * x.strides[0] + i * x.strides[1];
}

int64_t per_item(const StridedTensor& t, int64_t b, int64_t fallback) {
    return t.data != nullptr ? *(static_cast<const int32_t*>(t.data) + b * t.strides[0]) : fallback;
}

// u = x / max(|x|, 1e-12) into `out` (stride floats, zero past C); the norm's sum in lane_sum order.
template <class T>
void pack_unit_row(const T* x, int64_t channels, int64_t stride, float* out) {
    for (int64_t c = 0; c < channels; ++c) out[c] = to_float(x[c]);
    std::fill(out + channels, out + stride, 0.0f);
    const float norm = std::max(std::sqrt(lane_sum(channels, [&](int64_t c) { return out[c] * out[c]; })), kCosineEps);
    for (int64_t c = 0; c < channels; ++c) out[c] /= norm;
}

template <class T>
void pack_rows(const StridedTensor& x, int64_t b, int64_t count, int64_t channels, int64_t stride, float* rows) {
    parallel_for(count, min_tasks_per_chunk(channels), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) pack_unit_row(row_at<T>(x, b, i), channels, stride, rows + i * stride);
    });
}

// ---- Query relevance ----------------------------------------------------------------------------

template <class T>
void relevance_item(const RelevancePlan& plan, int64_t b, DotRowsFn dot_rows, std::vector<float>& text_rows,
                    std::vector<float>& score) {
    const int64_t length = per_item(plan.lengths, b, plan.tokens);
    const int64_t text_length = per_item(plan.text_lengths, b, plan.text_tokens);
    const int64_t stride = packed_stride(plan.channels);
    text_rows.resize(static_cast<size_t>(std::max<int64_t>(text_length, 1) * stride));
    pack_rows<T>(plan.text, b, text_length, plan.channels, stride, text_rows.data());
    score.assign(static_cast<size_t>(length), 0.0f);
    parallel_for(length, min_tasks_per_chunk(plan.channels * std::max<int64_t>(text_length, 1)),
                 [&](int64_t begin, int64_t end) {
                     std::vector<float> unit(static_cast<size_t>(stride));
                     std::vector<float> cosines(static_cast<size_t>(std::max<int64_t>(text_length, 1)));
                     for (int64_t i = begin; i < end; ++i) {
                         pack_unit_row(row_at<T>(plan.visual, b, i), plan.channels, stride, unit.data());
                         dot_rows(unit.data(), text_rows.data(), text_length, stride, cosines.data());
                         const float mean =
                             lane_sum(text_length, [&](int64_t t) { return cosines[static_cast<size_t>(t)]; }) /
                             static_cast<float>(text_length);
                         score[static_cast<size_t>(i)] = plan.negate ? -mean : mean;
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

// Where one item's buffers lie in its scratch, for N tokens and k selections.
struct DppLayout {
    uint64_t rows, cholesky, residual, weight, chosen;
    uint64_t total = 0;
};

DppLayout dpp_layout(const DppPlan& plan) {
    const int64_t n = std::max<int64_t>(plan.tokens, 1);
    DppLayout layout;
    RegionCursor carver;
    layout.rows = carver.take(static_cast<uint64_t>(n * packed_stride(plan.channels)) * sizeof(float));
    layout.cholesky = carver.take(static_cast<uint64_t>(std::max<int64_t>(plan.k - 1, 1) * n) * sizeof(float));
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

// s_ii: 1 for a nonzero row (a unit vector, whose computed |u|^2 misses 1 by rounding only, which would
// otherwise decide between equally weighted tokens), 0 for a zero row, NaN for a row holding NaN.
float self_similarity(const float* row, int64_t stride, DotRowsFn dot_rows) {
    float self = 0.0f;
    dot_rows(row, row, 1, stride, &self);
    return self > 0.0f ? 1.0f : self;
}

template <class T>
void dpp_item(const DppPlan& plan, int64_t b, const DppLayout& layout, char* scratch, DotRowsFn dot_rows) {
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
        pack_rows<T>(plan.x, b, length, plan.channels, stride, rows);
        for (int64_t n = 0; n < length; ++n) {
            float w = 1.0f;
            if (plan.relevance.data != nullptr) {
                const float r = *(static_cast<const float*>(plan.relevance.data) + b * plan.relevance.strides[0] +
                                  n * plan.relevance.strides[1]);
                w = plan.weighting == TK_DPP_WEIGHT_EXP ? std::exp(plan.alpha * r) : r;
            }
            weight[n] = w;
            residual[n] = (w * self_similarity(rows + n * stride, stride, dot_rows)) * w;
            chosen[n] = 0;
        }
        for (int64_t t = 0; t < count; ++t) {
            int64_t j = -1;
            for (int64_t n = 0; n < length; ++n)
                if (chosen[n] == 0 && (j < 0 || ranks_above(residual[n], residual[j]))) j = n;
            chosen[j] = 1;
            order[static_cast<size_t>(t)] = static_cast<int32_t>(j);
            if (t + 1 == count) break;
            // c_t = e: the new Cholesky row, from row j of L computed on the fly.
            const float d_j = residual[j];
            const bool exhausted = !(d_j > 0.0f);
            const float root = exhausted ? 0.0f : std::sqrt(d_j);
            const float w_j = weight[j];
            const float* u_j = rows + j * stride;
            float* e = cholesky + t * length;
            parallel_for(length, min_tasks_per_chunk(stride), [&](int64_t begin, int64_t end) {
                constexpr int64_t kBlock = 64;
                float similarity[kBlock];
                for (int64_t n0 = begin; n0 < end; n0 += kBlock) {
                    const int64_t n1 = std::min(end, n0 + kBlock);
                    if (!exhausted) dot_rows(u_j, rows + n0 * stride, n1 - n0, stride, similarity);
                    for (int64_t n = n0; n < n1; ++n) {
                        if (chosen[n] != 0 || exhausted) {
                            e[n] = 0.0f;
                            continue;
                        }
                        const float kernel = (w_j * similarity[n - n0]) * weight[n];
                        float projection = 0.0f;
                        for (int64_t s = 0; s < t; ++s) projection += cholesky[s * length + j] * cholesky[s * length + n];
                        const float value = (kernel - projection) / root;
                        e[n] = value;
                        residual[n] = residual[n] - value * value;
                    }
                }
            });
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
    const DotRowsFn dot_rows = best_dot_rows();
    dispatch_float(plan.visual.dtype, [&](auto visual_tag) {
        using T = storage_t<decltype(visual_tag)>;
        std::vector<float> text_rows, score;
        for (int64_t b = 0; b < plan.batch; ++b) relevance_item<T>(plan, b, dot_rows, text_rows, score);
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
    const DotRowsFn dot_rows = best_dot_rows();
    dispatch_float(plan.x.dtype, [&](auto tag) {
        using T = storage_t<decltype(tag)>;
        for (int64_t b = 0; b < plan.batch; ++b) dpp_item<T>(plan, b, layout, scratch, dot_rows);
    });
}

}  // namespace tk::cpu
