// ABI boundary of spatio-temporal pooling: every argument is validated here, once, into a PoolPlan;
// the backends trust the plan.
#include <string>

#include "api/arguments.hpp"
#include "core/error.hpp"
#include "core/tensor.hpp"
#include "cuda/runtime.hpp"
#include "ops/pool.hpp"
#include "tokenkernels/tokenkernels.h"

using tk::require;

namespace {

const char* const kDimNames[5] = {"B", "T", "H", "W", "C"};

bool is_window(tk_pool_mode mode) { return mode == TK_POOL_WINDOW_AVG || mode == TK_POOL_WINDOW_MAX; }

auto params_field(const char* member, int d) {
    return [=] { return std::string("params->") + member + "[" + std::to_string(d) + "]"; };
}

// Output shape [B, T', H', W', C] of params applied to an input of shape `in`; `input` names the
// input shape in messages ("x.shape" or "input_shape").
void pool_output_shape(const tk_pool_params& params, const int64_t* in, const char* input, int64_t* out) {
    const tk_pool_mode mode = params.mode;
    require(mode >= TK_POOL_WINDOW_AVG && mode <= TK_POOL_BILINEAR, "params->mode",
            "one of TK_POOL_WINDOW_AVG (0), _WINDOW_MAX, _ADAPTIVE_AVG, _ADAPTIVE_MAX, _BILINEAR (4)",
            [&] { return std::to_string(mode); });
    for (int d = 0; d < 5; ++d)
        require(in[d] >= 0, [&] { return std::string(input) + "[" + std::to_string(d) + "]"; },
                [&] { return std::string("a non-negative size (") + kDimNames[d] + ")"; },
                [&] { return std::to_string(in[d]); });
    out[0] = in[0];
    out[4] = in[4];
    for (int d = 0; d < 3; ++d) {
        const int64_t size = in[1 + d];
        const auto input_dim = [&] { return std::string(kDimNames[1 + d]) + " = " + std::to_string(size) + " (" + input + "[" + std::to_string(1 + d) + "])"; };
        if (is_window(mode)) {
            const int32_t k = params.kernel[d];
            const int32_t s = params.stride[d];
            require(k >= 1, params_field("kernel", d), "a window size of at least 1", [&] { return std::to_string(k); });
            require(s >= 1, params_field("stride", d), "a stride of at least 1", [&] { return std::to_string(s); });
            require(k <= size, params_field("kernel", d), [&] { return "a window no larger than the input, " + input_dim(); },
                    [&] { return std::to_string(k); });
            out[1 + d] = (size - k) / s + 1;
        } else {
            const int32_t o = params.output_size[d];
            require(o >= 1, params_field("output_size", d), "an output size of at least 1", [&] { return std::to_string(o); });
            require(size >= 1, [&] { return std::string(input) + "[" + std::to_string(1 + d) + "]"; },
                    "at least 1 to pool from", [&] { return std::to_string(size); });
            if (mode == TK_POOL_BILINEAR && d == 0)
                require(o == size, params_field("output_size", 0),
                        [&] { return "T' equal to the input's T = " + std::to_string(size) + " (bilinear resizes each frame)"; },
                        [&] { return std::to_string(o); });
            out[1 + d] = o;
        }
    }
}

const tk_pool_params& require_params(const tk_pool_params* params) {
    require(params != nullptr, "params", "a tk_pool_params", [] { return std::string("NULL"); });
    return *params;
}

const tk_tensor& require_pool_tensor(const tk_tensor* tensor, const char* name) {
    const tk_tensor& t = tk::require_tensor(tensor, name);
    tk::require_rank(t, name, 5, "[B, T, H, W, C]");
    tk::require_float_dtype(t, name);
    tk::require_channels_contiguous(t, name);
    return t;
}

tk::PoolPlan make_pool_plan(const tk_pool_params* params_ptr, const tk_tensor* x_ptr, const tk_tensor* out_ptr) {
    const tk_pool_params& params = require_params(params_ptr);
    const tk_tensor& x = require_pool_tensor(x_ptr, "x");
    const tk_tensor& out = require_pool_tensor(out_ptr, "out");
    tk::require_same_dtype(out, "out", x, "x");
    tk::require_same_device(out, "out", x, "x");

    int64_t expected[5];
    pool_output_shape(params, x.shape, "x.shape", expected);
    for (int d = 0; d < 5; ++d)
        require(out.shape[d] == expected[d], [&] { return "out.shape[" + std::to_string(d) + "]"; },
                [&] { return std::to_string(expected[d]) + " (" + kDimNames[d] + "' for x of shape " + tk::shape_string(x) + ")"; },
                [&] { return std::to_string(out.shape[d]); });
    tk::require_non_self_overlapping(out, "out");
    tk::require_disjoint(out, "out", x, "x");

    tk::PoolPlan plan{};
    plan.mode = params.mode;
    plan.dtype = x.dtype;
    plan.device_ordinal = x.device_ordinal;
    for (int d = 0; d < 5; ++d) {
        plan.in_size[d] = x.shape[d];
        plan.out_size[d] = out.shape[d];
    }
    for (int d = 0; d < 4; ++d) {
        plan.in_stride[d] = x.strides[d];
        plan.out_stride[d] = out.strides[d];
    }
    for (int d = 0; d < 3; ++d) {
        plan.kernel[d] = params.kernel[d];
        plan.stride[d] = params.stride[d];
    }
    plan.x = x.data;
    plan.out = out.data;
    return plan;
}

}  // namespace

extern "C" {

TK_API tk_status tk_pool_output_shape(const tk_pool_params* params, const int64_t* input_shape, int64_t* output_shape) {
    return tk::api_call([&] {
        const tk_pool_params& p = require_params(params);
        require(input_shape != nullptr, "input_shape", "5 sizes [B, T, H, W, C]", [] { return std::string("NULL"); });
        require(output_shape != nullptr, "output_shape", "room for 5 sizes", [] { return std::string("NULL"); });
        int64_t shape[5];
        pool_output_shape(p, input_shape, "input_shape", shape);
        for (int d = 0; d < 5; ++d) output_shape[d] = shape[d];
    });
}

TK_API tk_status tk_pool_workspace_size(const tk_pool_params* params, const tk_tensor* x, const tk_tensor* out,
                                        uint64_t* bytes) {
    return tk::api_call([&] {
        require(bytes != nullptr, "bytes", "a pointer to receive the workspace size", [] { return std::string("NULL"); });
        make_pool_plan(params, x, out);
        *bytes = 0;
    });
}

TK_API tk_status tk_pool(const tk_pool_params* params, const tk_tensor* x, const tk_tensor* out, void* workspace,
                         uint64_t workspace_bytes, tk_stream stream) {
    return tk::api_call([&] {
        const tk::PoolPlan plan = make_pool_plan(params, x, out);
        tk::require_workspace(workspace, workspace_bytes, 0, *x, "tk_pool_workspace_size", {{x, "x"}, {out, "out"}});
        if (tk::numel(*out) == 0) return;
        if (out->device_kind == TK_DEVICE_CPU) {
            tk::cpu::pool(plan);
        } else {
            tk::cuda::require_stream_of_device(stream, plan.device_ordinal);
            tk::cuda::pool(plan, stream);
        }
    });
}

}  // extern "C"
