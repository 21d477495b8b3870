// Spatio-temporal pooling (SPEC section 1): the validated plan handed to a backend, and the
// geometry both backends use, so CPU and CUDA compute the same function by construction.
#pragma once

#include <cstdint>

#include "core/host_device.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tk {

// Filled once at the ABI boundary after validation. Sizes are [B, T, H, W, C]; strides are in
// elements for B, T, H, W (C is contiguous).
struct PoolPlan {
    tk_pool_mode mode;
    tk_dtype dtype;
    int32_t device_ordinal;
    int64_t in_size[5];
    int64_t in_stride[4];
    int64_t out_size[5];
    int64_t out_stride[4];
    int32_t kernel[3];
    int32_t stride[3];
    const void* x;
    void* out;
};

// Half-open input range [start, end) that output index i reduces over along one dimension of
// input size in_size and output size out_size.
struct Range {
    int64_t start;
    int64_t end;
};

TK_HOST_DEVICE Range window_range(int64_t i, int32_t kernel, int32_t stride) {
    return Range{i * stride, i * stride + kernel};
}

// PyTorch's adaptive bins: [floor(i * In / Out), ceil((i + 1) * In / Out)).
TK_HOST_DEVICE Range adaptive_range(int64_t i, int64_t in_size, int64_t out_size) {
    return Range{(i * in_size) / out_size, ((i + 1) * in_size + out_size - 1) / out_size};
}

// The range pooled along dimension d (0 = T, 1 = H, 2 = W) for output index i.
TK_HOST_DEVICE Range pool_range(const PoolPlan& p, int d, int64_t i) {
    if (p.mode == TK_POOL_WINDOW_AVG || p.mode == TK_POOL_WINDOW_MAX) return window_range(i, p.kernel[d], p.stride[d]);
    return adaptive_range(i, p.in_size[1 + d], p.out_size[1 + d]);
}

TK_HOST_DEVICE bool pool_is_max(tk_pool_mode mode) {
    return mode == TK_POOL_WINDOW_MAX || mode == TK_POOL_ADAPTIVE_MAX;
}

// Two taps along one axis of a bilinear resize with align_corners = False, exactly as PyTorch's
// upsample_bilinear2d computes them in float: src = max(0, scale * (i + 0.5) - 0.5) with
// scale = In / Out, lower tap floor(src), upper tap clamped to the edge.
struct LinearTaps {
    int64_t lo;
    int64_t hi;
    float w_lo;
    float w_hi;
};

TK_HOST_DEVICE LinearTaps linear_taps(int64_t i, int64_t in_size, int64_t out_size) {
    const float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
    float src = scale * (static_cast<float>(i) + 0.5f) - 0.5f;
    if (src < 0.0f) src = 0.0f;
    const int64_t lo = static_cast<int64_t>(src);
    const int64_t hi = lo < in_size - 1 ? lo + 1 : lo;
    const float w_hi = src - static_cast<float>(lo);
    return LinearTaps{lo, hi, 1.0f - w_hi, w_hi};
}

// Float NaN test that survives -ffast-math style flags and works on both sides.
TK_HOST_DEVICE bool is_nan(float v) { return v != v; }

// Max that propagates NaN, as PyTorch's max pooling does.
TK_HOST_DEVICE float max_propagate_nan(float acc, float v) { return (v > acc || is_nan(v)) ? v : acc; }

namespace cpu {
void pool(const PoolPlan& plan);
}
namespace cuda {
// Enqueues on stream (a cudaStream_t) and returns; throws tk::Error on a launch error.
void pool(const PoolPlan& plan, void* stream);
}

}  // namespace tk
