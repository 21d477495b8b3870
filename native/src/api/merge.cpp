// ABI boundary of bipartite token merging: every argument is validated here, once, into a
// MergePlan / UnmergePlan; the backends trust the plans.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "api/arguments.hpp"
#include "core/error.hpp"
#include "core/tensor.hpp"
#include "cuda/runtime.hpp"
#include "ops/merge.hpp"
#include "tokenkernels/tokenkernels.h"

using tk::null_text;
using tk::number;
using tk::require;
using tk::require_token_count;

namespace {

const tk_merge_params& require_merge_params(const tk_merge_params* params) {
    require(params != nullptr, "params", "a tk_merge_params", null_text);
    const tk_merge_params& p = *params;
    require(p.r >= 0, "params->r", "a non-negative number of merges", number(p.r));
    require(p.use_threshold == 0 || p.use_threshold == 1, "params->use_threshold", "0 (fixed r) or 1 (threshold)",
            number(p.use_threshold));
    require(!std::isnan(p.threshold), "params->threshold", "a number", [] { return std::string("NaN"); });
    require(p.protect_first == 0 || p.protect_first == 1, "params->protect_first", "0 or 1", number(p.protect_first));
    require(p.protect_second == 0 || p.protect_second == 1, "params->protect_second", "0 or 1", number(p.protect_second));
    require(p.mode >= TK_MERGE_WEIGHTED_MEAN && p.mode <= TK_MERGE_DROP, "params->mode",
            "one of TK_MERGE_WEIGHTED_MEAN (0), _MEAN, _SUM, _AMAX, _DROP (4)", number(p.mode));
    require(p.order == TK_MERGE_ORDER_POSITIONAL || p.order == TK_MERGE_ORDER_TOME, "params->order",
            "TK_MERGE_ORDER_POSITIONAL (0) or TK_MERGE_ORDER_TOME (1)", number(p.order));
    return p;
}

void output_tokens(const tk_merge_params& p, int64_t tokens, int64_t* effective_r, int64_t* rows) {
    *effective_r = tk::merge_effective_r(p.r, tokens, p.protect_first, p.protect_second);
    *rows = p.use_threshold ? tokens : tokens - *effective_r;
}

tk::TokenRows rows_of(const tk_tensor& tensor) {
    const tk_tensor t = tk::backend_view(tensor);
    return tk::TokenRows{t.data, t.dtype, t.strides[0], t.rank > 1 ? t.strides[1] : 0};
}

const tk_tensor& require_metric(const tk_tensor* metric_ptr) {
    const tk_tensor& metric = tk::require_tensor(metric_ptr, "metric");
    tk::require_rank(metric, "metric", 3, "[B, N, Cm]");
    tk::require_float_dtype(metric, "metric");
    tk::require_channels_contiguous(metric, "metric");
    require_token_count(metric.shape[1], "metric.shape[1]");
    return metric;
}

const tk_tensor& require_output(const tk_tensor* ptr, const char* name, int32_t rank, const int64_t* shape,
                                const char* layout, tk_dtype dtype, const tk_tensor& metric, const tk::NamedTensors& inputs) {
    return tk::require_output(ptr, name, rank, shape, layout, dtype, metric, "metric", inputs);
}

void require_workspace(const void* workspace, uint64_t workspace_bytes, uint64_t needed, const tk_tensor& metric,
                       const tk::NamedTensors& tensors) {
    tk::require_workspace(workspace, workspace_bytes, needed, metric, "tk_merge_workspace_size", tensors);
}

tk::MergePlan base_plan(const tk_merge_params& p, const tk_tensor& metric) {
    tk::MergePlan plan{};
    plan.batch = metric.shape[0];
    plan.tokens = metric.shape[1];
    plan.metric_channels = metric.shape[2];
    output_tokens(p, plan.tokens, &plan.r, &plan.output_tokens);
    plan.use_threshold = p.use_threshold;
    plan.threshold = p.threshold;
    plan.protect_first = p.protect_first;
    plan.protect_second = p.protect_second;
    plan.mode = p.mode;
    // ToMe returns x untouched when its r is 0: its order is then the original, positional one.
    plan.order = (p.order == TK_MERGE_ORDER_TOME && !p.use_threshold && plan.r == 0) ? TK_MERGE_ORDER_POSITIONAL : p.order;
    plan.device_ordinal = metric.device_ordinal;
    plan.metric = rows_of(metric);
    return plan;
}

tk::MergePlan make_match_plan(const tk_merge_params* params_ptr, const tk_tensor* metric_ptr, const tk_tensor* dst_ptr,
                              const tk_tensor* best_ptr) {
    const tk_merge_params& p = require_merge_params(params_ptr);
    const tk_tensor& metric = require_metric(metric_ptr);
    const int64_t shape[2] = {metric.shape[0], tk::merge_source_count(metric.shape[1])};
    const tk_tensor& dst = require_output(dst_ptr, "dst", 2, shape, "[B, ceil(N / 2)]", TK_DTYPE_I32, metric,
                                          {{metric_ptr, "metric"}});
    const tk_tensor& best = require_output(best_ptr, "best", 2, shape, "[B, ceil(N / 2)]", TK_DTYPE_F32, metric,
                                           {{metric_ptr, "metric"}, {dst_ptr, "dst"}});
    tk::MergePlan plan = base_plan(p, metric);
    plan.match_dst = rows_of(dst);
    plan.match_best = rows_of(best);
    return plan;
}

// A token's size is how many original tokens it stands for (ToMe's proportional attention): a
// positive finite weight, as the weighted mean divides by a sum of them. Host values are checked
// before anything is written; device ones cannot be without a sync.
void require_host_sizes(const tk_tensor& size) {
    if (size.device_kind != TK_DEVICE_CPU) return;
    for (int64_t b = 0; b < size.shape[0]; ++b)
        for (int64_t i = 0; i < size.shape[1]; ++i) {
            const float value = static_cast<const float*>(size.data)[b * size.strides[0] + i * size.strides[1]];
            require(std::isfinite(value) && value > 0.0f,
                    [&] { return "size[" + std::to_string(b) + ", " + std::to_string(i) + "]"; },
                    "a positive finite token size", [&] { return std::to_string(value); });
        }
}

struct MergeArguments {
    const tk_tensor* metric;
    const tk_tensor* x;
    const tk_tensor* size;
    const tk_tensor* out;
    const tk_tensor* out_size;
    const tk_tensor* source_map;
    const tk_tensor* merge_count;
};

tk::MergePlan make_merge_plan(const tk_merge_params* params_ptr, const MergeArguments& a) {
    const tk_merge_params& p = require_merge_params(params_ptr);
    const tk_tensor& metric = require_metric(a.metric);
    const tk_tensor& x = tk::require_tensor(a.x, "x");
    tk::require_rank(x, "x", 3, "[B, N, C]");
    tk::require_float_dtype(x, "x");
    tk::require_channels_contiguous(x, "x");
    tk::require_same_device(x, "x", metric, "metric");
    const int64_t batch = metric.shape[0];
    const int64_t tokens = metric.shape[1];
    for (int d = 0; d < 2; ++d)
        require(x.shape[d] == metric.shape[d], [d] { return "x.shape[" + std::to_string(d) + "]"; },
                [&] { return std::to_string(metric.shape[d]) + (d == 0 ? " (B of metric)" : " (N of metric)"); },
                number(x.shape[d]));

    const int64_t item_tokens[2] = {batch, tokens};
    if (a.size != nullptr) {
        const tk_tensor& size = tk::require_tensor(a.size, "size");
        tk::require_shape(size, "size", 2, item_tokens, "[B, N]");
        require(size.dtype == TK_DTYPE_F32, "size.dtype", "f32", [&] { return tk::dtype_name(size.dtype); });
        tk::require_same_device(size, "size", metric, "metric");
        tk::require_positive_strides(size, "size");
        require_host_sizes(size);
    }
    tk::MergePlan plan = base_plan(p, metric);
    plan.channels = x.shape[2];

    const tk::NamedTensors inputs = {{a.metric, "metric"}, {a.x, "x"}, {a.size, "size"}};
    const int64_t out_shape[3] = {batch, plan.output_tokens, plan.channels};
    const tk_tensor& out = require_output(a.out, "out", 3, out_shape, "[B, N', C]", x.dtype, metric, inputs);
    require(out.shape[2] <= 1 || out.strides[2] == 1, "out.strides[2]", "1 (channels must be contiguous)",
            number(out.strides[2]));
    tk::NamedTensors written = inputs;
    written.emplace_back(a.out, "out");
    const int64_t out_rows[2] = {batch, plan.output_tokens};
    if (a.out_size != nullptr) {
        plan.out_size = rows_of(require_output(a.out_size, "out_size", 2, out_rows, "[B, N']", TK_DTYPE_F32, metric, written));
        written.emplace_back(a.out_size, "out_size");
    }
    if (a.source_map != nullptr) {
        plan.source_map = rows_of(require_output(a.source_map, "source_map", 2, item_tokens, "[B, N]", TK_DTYPE_I32, metric, written));
        written.emplace_back(a.source_map, "source_map");
    }
    require(a.merge_count != nullptr || !p.use_threshold, "merge_count",
            "a [B] i32 tensor to receive the per-item merge counts (threshold mode)", null_text);
    if (a.merge_count != nullptr)
        plan.merge_count = rows_of(require_output(a.merge_count, "merge_count", 1, &batch, "[B]", TK_DTYPE_I32, metric, written));

    if (a.size != nullptr) plan.size = rows_of(*a.size);
    plan.x = rows_of(x);
    plan.out = rows_of(out);
    return plan;
}

tk::UnmergePlan make_unmerge_plan(const tk_tensor* y_ptr, const tk_tensor* map_ptr, const tk_tensor* out_ptr) {
    const tk_tensor& y = tk::require_tensor(y_ptr, "y");
    tk::require_rank(y, "y", 3, "[B, N', C]");
    tk::require_float_dtype(y, "y");
    tk::require_channels_contiguous(y, "y");
    const tk_tensor& map = tk::require_tensor(map_ptr, "source_map");
    tk::require_rank(map, "source_map", 2, "[B, N]");
    require(map.dtype == TK_DTYPE_I32 || map.dtype == TK_DTYPE_I64, "source_map.dtype", "i32 or i64",
            [&] { return tk::dtype_name(map.dtype); });
    tk::require_same_device(map, "source_map", y, "y");
    tk::require_positive_strides(map, "source_map");
    require(map.shape[0] == y.shape[0], "source_map.shape[0]", [&] { return std::to_string(y.shape[0]) + " (B of y)"; },
            number(map.shape[0]));
    const int64_t out_shape[3] = {y.shape[0], map.shape[1], y.shape[2]};
    const tk_tensor& out = require_output(out_ptr, "out", 3, out_shape, "[B, N, C]", y.dtype, y,
                                          {{y_ptr, "y"}, {map_ptr, "source_map"}});
    require(out.shape[2] <= 1 || out.strides[2] == 1, "out.strides[2]", "1 (channels must be contiguous)",
            number(out.strides[2]));

    tk::UnmergePlan plan{};
    plan.batch = y.shape[0];
    plan.merged_tokens = y.shape[1];
    plan.tokens = map.shape[1];
    plan.channels = y.shape[2];
    plan.device_ordinal = y.device_ordinal;
    plan.y = rows_of(y);
    plan.source_map = rows_of(map);
    plan.out = rows_of(out);

    // Host indices can be checked before anything is written; device ones cannot without a sync.
    if (map.device_kind == TK_DEVICE_CPU) {
        for (int64_t b = 0; b < plan.batch; ++b)
            for (int64_t i = 0; i < plan.tokens; ++i) {
                const int64_t row = tk::host_index(map, b, i);
                require(row >= 0 && row < plan.merged_tokens,
                        [&] { return "source_map[" + std::to_string(b) + ", " + std::to_string(i) + "]"; },
                        [&] { return "an output row in [0, " + std::to_string(plan.merged_tokens) + ") (N' of y)"; },
                        number(row));
            }
    }
    return plan;
}

}  // namespace

extern "C" {

TK_API tk_status tk_merge_output_tokens(const tk_merge_params* params, int64_t tokens, int64_t* effective_r,
                                        int64_t* output_rows) {
    return tk::api_call([&] {
        const tk_merge_params& p = require_merge_params(params);
        require(tokens >= 0, "tokens", "a non-negative token count", number(tokens));
        require_token_count(tokens, "tokens");
        require(effective_r != nullptr, "effective_r", "a pointer to receive the effective r", null_text);
        require(output_rows != nullptr, "output_tokens", "a pointer to receive the output token count", null_text);
        output_tokens(p, tokens, effective_r, output_rows);
    });
}

TK_API tk_status tk_merge_workspace_size(const tk_merge_params* params, const tk_tensor* metric, const tk_tensor* x,
                                         uint64_t* bytes) {
    return tk::api_call([&] {
        require(bytes != nullptr, "bytes", "a pointer to receive the workspace size", null_text);
        const tk_merge_params& p = require_merge_params(params);
        const tk_tensor& m = require_metric(metric);
        tk::MergePlan plan = base_plan(p, m);
        if (x != nullptr) {
            const tk_tensor& xt = tk::require_tensor(x, "x");
            tk::require_rank(xt, "x", 3, "[B, N, C]");
            plan.channels = xt.shape[2];
        }
        *bytes = m.device_kind == TK_DEVICE_CUDA ? tk::cuda::merge_workspace_bytes(plan) : 0;
    });
}

TK_API tk_status tk_merge_match(const tk_merge_params* params, const tk_tensor* metric, const tk_tensor* dst,
                                const tk_tensor* best, void* workspace, uint64_t workspace_bytes, tk_stream stream) {
    return tk::api_call([&] {
        const tk::MergePlan plan = make_match_plan(params, metric, dst, best);
        const bool on_cpu = metric->device_kind == TK_DEVICE_CPU;
        require_workspace(workspace, workspace_bytes, on_cpu ? 0 : tk::cuda::merge_workspace_bytes(plan), *metric,
                          {{metric, "metric"}, {dst, "dst"}, {best, "best"}});
        if (on_cpu) {
            if (plan.batch * plan.tokens > 0) tk::cpu::merge_match(plan);
        } else {
            tk::cuda::require_stream_of_device(stream, plan.device_ordinal);
            if (plan.batch * plan.tokens > 0) tk::cuda::merge_match(plan, workspace, stream);
        }
    });
}

TK_API tk_status tk_merge(const tk_merge_params* params, const tk_tensor* metric, const tk_tensor* x,
                          const tk_tensor* size, const tk_tensor* out, const tk_tensor* out_size,
                          const tk_tensor* source_map, const tk_tensor* merge_count, void* workspace,
                          uint64_t workspace_bytes, tk_stream stream) {
    return tk::api_call([&] {
        const tk::MergePlan plan = make_merge_plan(params, MergeArguments{metric, x, size, out, out_size, source_map, merge_count});
        const bool on_cpu = metric->device_kind == TK_DEVICE_CPU;
        require_workspace(workspace, workspace_bytes, on_cpu ? 0 : tk::cuda::merge_workspace_bytes(plan), *metric,
                          {{metric, "metric"}, {x, "x"}, {size, "size"}, {out, "out"}, {out_size, "out_size"},
                           {source_map, "source_map"}, {merge_count, "merge_count"}});
        if (on_cpu) {
            if (plan.batch > 0) tk::cpu::merge(plan);
        } else {
            tk::cuda::require_stream_of_device(stream, plan.device_ordinal);
            if (plan.batch > 0) tk::cuda::merge(plan, workspace, stream);
        }
    });
}

TK_API tk_status tk_unmerge(const tk_tensor* y, const tk_tensor* source_map, const tk_tensor* out, tk_stream stream) {
    return tk::api_call([&] {
        const tk::UnmergePlan plan = make_unmerge_plan(y, source_map, out);
        if (plan.batch * plan.tokens * plan.channels == 0) return;
        if (y->device_kind == TK_DEVICE_CPU) {
            tk::cpu::unmerge(plan);
        } else {
            tk::cuda::require_stream_of_device(stream, plan.device_ordinal);
            tk::cuda::unmerge(plan, stream);
        }
    });
}

}  // extern "C"
