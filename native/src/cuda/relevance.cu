// CUDA backend of query relevance and conditional DPP selection (SPEC section 7, CDPruner), with the
// CPU backend's bits: every dot product is one thread's 16 lanes of fmaf in increasing channel order,
// the lanes added in order (cpu/relevance.cpp's dot_rows), -fmad=false for every other product and
// sum. Per-item lengths and k are clamped on the device (checking them would need a host
// synchronisation). Nothing waits on the host.
//
// Relevance: one thread per visual token computes its mean cosine into the output, normalising both
// rows on the fly, then one block per item min-max normalises in place. The DPP is shaped like
// PyTorch3D's farthest point sampling: the tokens are packed once as unit rows, then one block per
// item runs the greedy loop, each step a block-wide argmax and, per token, the dot product with the
// chosen row, the Cholesky projection and the residual update.
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <cstdint>

#include "core/dispatch.hpp"
#include "core/regions.hpp"
#include "cuda/check.cuh"
#include "cuda/dtype.cuh"
#include "cuda/scratch.cuh"
#include "ops/lane_sum.hpp"
#include "ops/merge.hpp"
#include "ops/portable_math.hpp"
#include "ops/relevance.hpp"

namespace tk::cuda {
namespace {

constexpr int kLanes = 16;
constexpr int kThreads = 256;
constexpr int64_t kMaxGridBlocks = 65535;

dim3 grid_of(int64_t blocks) { return dim3(static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(1, blocks), kMaxGridBlocks))); }

__device__ __forceinline__ bool nan_of(float v) { return v != v; }

__device__ __forceinline__ int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

__device__ __forceinline__ int64_t per_item(const StridedTensor& t, int64_t b, int64_t fallback) {
    return t.data != nullptr ? clamp64(*(static_cast<const int32_t*>(t.data) + b * t.strides[0]), 0, fallback) : fallback;
}

template <class T>
__device__ __forceinline__ const T* row_at(const StridedTensor& x, int64_t b, int64_t i) {
    return static_cast<const T*>(x.data) + b * x.strides[0] + i * x.strides[1];
}

// The lanes of a dot product, added in order.
__device__ __forceinline__ float add_lanes(const float (&partial)[kLanes]) {
    float sum = 0.0f;
#pragma unroll
    for (int l = 0; l < kLanes; ++l) sum += partial[l];
    return sum;
}

// dot(a', b') where a'[c] = load_a(c) and b'[c] = load_b(c), in the lane order above.
template <class LoadA, class LoadB>
__device__ __forceinline__ float lane_dot(int64_t channels, LoadA load_a, LoadB load_b) {
    float partial[kLanes];
#pragma unroll
    for (int l = 0; l < kLanes; ++l) partial[l] = 0.0f;
    for (int64_t c0 = 0; c0 < channels; c0 += kLanes) {
#pragma unroll
        for (int l = 0; l < kLanes; ++l)
            if (c0 + l < channels) partial[l] = fmaf(load_a(c0 + l), load_b(c0 + l), partial[l]);
    }
    return add_lanes(partial);
}

// max(sqrt(squares), 1e-12) as std::max takes it (a NaN square stays NaN).
__device__ __forceinline__ float norm_of(float squares) {
    const float root = sqrtf(squares);
    return root < kCosineEps ? kCosineEps : root;
}

template <class T>
__device__ __forceinline__ float row_norm(const T* x, int64_t channels) {
    return norm_of(lane_dot(channels, [&](int64_t c) { return to_float(x[c]); }, [&](int64_t c) { return to_float(x[c]); }));
}

// ---- Query relevance ----------------------------------------------------------------------------

template <class T>
__global__ void mean_cosine_kernel(RelevancePlan plan) {
    const int64_t rows = plan.batch * plan.tokens;
    for (int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; row < rows;
         row += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t b = row / plan.tokens, i = row % plan.tokens;
        if (i >= per_item(plan.lengths, b, plan.tokens)) continue;
        const int64_t text_length = per_item(plan.text_lengths, b, plan.text_tokens);
        const T* v = row_at<T>(plan.visual, b, i);
        const float v_norm = row_norm(v, plan.channels);
        const float sum = lane_sum(text_length, [&](int64_t t) {
            const T* q = row_at<T>(plan.text, b, t);
            const float q_norm = row_norm(q, plan.channels);
            return lane_dot(plan.channels, [&](int64_t c) { return to_float(v[c]) / v_norm; },
                            [&](int64_t c) { return to_float(q[c]) / q_norm; });
        });
        const float mean = sum / static_cast<float>(text_length);
        *(static_cast<float*>(plan.relevance.data) + b * plan.relevance.strides[0] + i * plan.relevance.strides[1]) =
            plan.negate ? -mean : mean;
    }
}

// min and max ignoring NaN (exact, so any order of combining gives the same pair).
__device__ __forceinline__ void keep_min_max(float& lo, float& hi, float s) {
    if (nan_of(s)) return;
    lo = nan_of(lo) || s < lo ? s : lo;
    hi = nan_of(hi) || s > hi ? s : hi;
}

__global__ void min_max_kernel(RelevancePlan plan) {
    __shared__ float lows[kThreads], highs[kThreads];
    for (int64_t b = blockIdx.x; b < plan.batch; b += gridDim.x) {
        const int64_t length = per_item(plan.lengths, b, plan.tokens);
        float* out = static_cast<float*>(plan.relevance.data) + b * plan.relevance.strides[0];
        const int64_t stride = plan.relevance.strides[1];
        float lo = __int_as_float(0x7fc00000), hi = lo;
        for (int64_t i = threadIdx.x; i < length; i += blockDim.x) keep_min_max(lo, hi, out[i * stride]);
        lows[threadIdx.x] = lo;
        highs[threadIdx.x] = hi;
        __syncthreads();
        for (int width = kThreads / 2; width > 0; width /= 2) {
            if (threadIdx.x < width) {
                float l = lows[threadIdx.x], h = highs[threadIdx.x];
                keep_min_max(l, h, lows[threadIdx.x + width]);
                keep_min_max(l, h, highs[threadIdx.x + width]);
                lows[threadIdx.x] = l;
                highs[threadIdx.x] = h;
            }
            __syncthreads();
        }
        lo = lows[0];
        hi = highs[0];
        for (int64_t i = threadIdx.x; i < plan.tokens; i += blockDim.x)
            out[i * stride] = i < length ? min_max_relevance(out[i * stride], lo, hi) : 0.0f;
        __syncthreads();
    }
}

// ---- Conditional DPP ------------------------------------------------------------------------------

struct DppLayout {
    uint64_t rows, squares, weight, residual, cholesky, chosen;
    uint64_t total = 0;
};

DppLayout dpp_layout(const DppPlan& plan) {
    const uint64_t items = static_cast<uint64_t>(plan.batch * plan.tokens);
    DppLayout layout;
    RegionCursor cursor;
    layout.rows = cursor.take(items * static_cast<uint64_t>(std::max<int64_t>(plan.channels, 1)) * sizeof(float));
    layout.squares = cursor.take(items * sizeof(float));
    layout.weight = cursor.take(items * sizeof(float));
    layout.residual = cursor.take(items * sizeof(float));
    layout.cholesky = cursor.take(items * static_cast<uint64_t>(std::max<int64_t>(plan.k - 1, 1)) * sizeof(float));
    layout.chosen = cursor.take(items);
    layout.total = cursor.total();
    return layout;
}

struct DppArgs {
    DppPlan plan;
    float* rows;      // [B, N, C] unit rows
    float* squares;   // [B, N] dot(x, x)
    float* weight;    // [B, N]
    float* residual;  // [B, N]
    float* cholesky;  // [B, max(k - 1, 1), N]
    uint8_t* chosen;  // [B, N]
};

template <class T>
__global__ void pack_rows_kernel(DppArgs args) {
    const DppPlan& plan = args.plan;
    const int64_t rows = plan.batch * plan.tokens;
    for (int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; row < rows;
         row += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const T* x = row_at<T>(plan.x, row / plan.tokens, row % plan.tokens);
        const float squares = lane_dot(plan.channels, [&](int64_t c) { return to_float(x[c]); }, [&](int64_t c) { return to_float(x[c]); });
        const float norm = norm_of(squares);
        float* out = args.rows + row * plan.channels;
        for (int64_t c = 0; c < plan.channels; ++c) out[c] = to_float(x[c]) / norm;
        args.squares[row] = squares;
    }
}

// The contract's order: a number above NaN, a larger number above a smaller, the lower token on ties;
// token -1 (no candidate) below everything.
__device__ __forceinline__ bool better(float a, int64_t ia, float b, int64_t ib) {
    if (ib < 0) return ia >= 0;
    if (ia < 0) return false;
    if (nan_of(a) != nan_of(b)) return nan_of(b);
    if (a > b) return true;
    if (b > a) return false;
    return ia < ib;
}

__global__ void dpp_kernel(DppArgs args) {
    __shared__ float best_value[kThreads];
    __shared__ int64_t best_token[kThreads];
    const DppPlan& plan = args.plan;
    const int64_t channels = plan.channels, tokens = plan.tokens;
    const int64_t rows_per_cholesky = plan.k > 1 ? plan.k - 1 : 1;
    for (int64_t b = blockIdx.x; b < plan.batch; b += gridDim.x) {
        const int64_t length = per_item(plan.lengths, b, tokens);
        const int64_t wanted = per_item(plan.item_k, b, plan.k);
        const int64_t count = wanted < length ? wanted : length;
        const float* rows = args.rows + b * tokens * channels;
        float* weight = args.weight + b * tokens;
        float* residual = args.residual + b * tokens;
        float* cholesky = args.cholesky + b * rows_per_cholesky * tokens;
        uint8_t* chosen = args.chosen + b * tokens;
        int32_t* order = static_cast<int32_t*>(plan.order.data) + b * plan.order.strides[0];
        for (int64_t n = threadIdx.x; n < length; n += blockDim.x) {
            float w = 1.0f;
            if (plan.relevance.data != nullptr) {
                const float r = *(static_cast<const float*>(plan.relevance.data) + b * plan.relevance.strides[0] +
                                  n * plan.relevance.strides[1]);
                w = plan.weighting == TK_DPP_WEIGHT_EXP ? portable_exp(plan.alpha * r) : r;
            }
            const float* u = rows + n * channels;
            const float squares = args.squares[b * tokens + n];
            float self = 1.0f;
            if (!(squares > 0.0f && squares <= FLT_MAX)) {
                self = lane_dot(channels, [&](int64_t c) { return u[c]; }, [&](int64_t c) { return u[c]; });
                self = self > 0.0f ? 1.0f : self;
            }
            weight[n] = w;
            residual[n] = (w * self) * w;
            chosen[n] = 0;
        }
        __syncthreads();
        for (int64_t t = 0; t < count; ++t) {
            float value = 0.0f;
            int64_t token = -1;
            for (int64_t n = threadIdx.x; n < length; n += blockDim.x)
                if (chosen[n] == 0 && better(residual[n], n, value, token)) {
                    value = residual[n];
                    token = n;
                }
            best_value[threadIdx.x] = value;
            best_token[threadIdx.x] = token;
            __syncthreads();
            for (int width = kThreads / 2; width > 0; width /= 2) {
                if (threadIdx.x < width &&
                    better(best_value[threadIdx.x + width], best_token[threadIdx.x + width], best_value[threadIdx.x],
                           best_token[threadIdx.x])) {
                    best_value[threadIdx.x] = best_value[threadIdx.x + width];
                    best_token[threadIdx.x] = best_token[threadIdx.x + width];
                }
                __syncthreads();
            }
            const int64_t j = best_token[0];
            const float d_j = best_value[0];
            if (threadIdx.x == 0) {
                order[t * plan.order.strides[1]] = static_cast<int32_t>(j);
                chosen[j] = 1;
            }
            __syncthreads();
            if (t + 1 < count) {
                float* e = cholesky + t * tokens;
                const bool exhausted = !(d_j > 0.0f);
                const float root = exhausted ? 0.0f : sqrtf(d_j);
                const float w_j = weight[j];
                const float* u_j = rows + j * channels;
                for (int64_t n = threadIdx.x; n < length; n += blockDim.x) {
                    if (exhausted || chosen[n] != 0) {
                        e[n] = 0.0f;
                        continue;
                    }
                    const float* u_n = rows + n * channels;
                    const float s = lane_dot(channels, [&](int64_t c) { return u_j[c]; }, [&](int64_t c) { return u_n[c]; });
                    const float kernel = (w_j * s) * weight[n];
                    float projection = 0.0f;
                    for (int64_t p = 0; p < t; ++p) projection += cholesky[p * tokens + j] * cholesky[p * tokens + n];
                    const float update = (kernel - projection) / root;
                    e[n] = update;
                    residual[n] = residual[n] - update * update;
                }
            }
            __syncthreads();
        }
        for (int64_t i = count + threadIdx.x; i < plan.k; i += blockDim.x) order[i * plan.order.strides[1]] = -1;
        if (plan.sorted.data != nullptr && threadIdx.x == 0) {
            int32_t* sorted = static_cast<int32_t*>(plan.sorted.data) + b * plan.sorted.strides[0];
            int64_t at = 0;
            for (int64_t n = 0; n < length; ++n)
                if (chosen[n] != 0) sorted[(at++) * plan.sorted.strides[1]] = static_cast<int32_t>(n);
            for (; at < plan.k; ++at) sorted[at * plan.sorted.strides[1]] = -1;
        }
        __syncthreads();
    }
}

}  // namespace

void query_relevance(const RelevancePlan& plan, int32_t device_ordinal, void* stream_handle) {
    DeviceGuard guard(device_ordinal);
    const auto stream = static_cast<cudaStream_t>(stream_handle);
    dispatch_float(plan.visual.dtype, [&](auto tag) {
        using T = typename StorageOf<decltype(tag)::value>::type;
        mean_cosine_kernel<T><<<grid_of((plan.batch * plan.tokens + kThreads - 1) / kThreads), kThreads, 0, stream>>>(plan);
        check(cudaGetLastError(), "tk_query_relevance mean_cosine_kernel launch");
    });
    min_max_kernel<<<grid_of(plan.batch), kThreads, 0, stream>>>(plan);
    check(cudaGetLastError(), "tk_query_relevance min_max_kernel launch");
}

uint64_t conditional_dpp_workspace_bytes(const DppPlan& plan) { return dpp_layout(plan).total; }

void conditional_dpp_select(const DppPlan& plan, int32_t device_ordinal, void* workspace, void* stream_handle) {
    DeviceGuard guard(device_ordinal);
    const auto stream = static_cast<cudaStream_t>(stream_handle);
    const DppLayout layout = dpp_layout(plan);
    Scratch scratch(workspace, layout.total, stream, "conditional DPP workspace");
    void* base = scratch.data();
    DppArgs args{};
    args.plan = plan;
    args.rows = at_offset<float>(base, layout.rows);
    args.squares = at_offset<float>(base, layout.squares);
    args.weight = at_offset<float>(base, layout.weight);
    args.residual = at_offset<float>(base, layout.residual);
    args.cholesky = at_offset<float>(base, layout.cholesky);
    args.chosen = at_offset<uint8_t>(base, layout.chosen);
    dispatch_float(plan.x.dtype, [&](auto tag) {
        using T = typename StorageOf<decltype(tag)::value>::type;
        pack_rows_kernel<T><<<grid_of((plan.batch * plan.tokens + kThreads - 1) / kThreads), kThreads, 0, stream>>>(args);
        check(cudaGetLastError(), "tk_conditional_dpp_select pack_rows_kernel launch");
    });
    dpp_kernel<<<grid_of(plan.batch), kThreads, 0, stream>>>(args);
    check(cudaGetLastError(), "tk_conditional_dpp_select dpp_kernel launch");
}

}  // namespace tk::cuda
