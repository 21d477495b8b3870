// ABI boundary of query relevance and conditional DPP selection (CDPruner): every argument is
// validated here, once, into a RelevancePlan / DppPlan; the backends trust it.
#include <cmath>
#include <string>

#include "api/arguments.hpp"
#include "core/error.hpp"
#include "core/tensor.hpp"
#include "cuda/runtime.hpp"
#include "ops/relevance.hpp"
#include "tokenkernels/tokenkernels.h"

using tk::null_text;
using tk::number;
using tk::require;

namespace {

tk::DppPlan make_dpp_plan(const tk_dpp_params* params, const tk_tensor* x_ptr) {
    require(params != nullptr, "params", "a tk_dpp_params", null_text);
    const tk_dpp_params& p = *params;
    require(p.weighting == TK_DPP_WEIGHT_RELEVANCE || p.weighting == TK_DPP_WEIGHT_EXP, "params->weighting",
            "TK_DPP_WEIGHT_RELEVANCE (0) or TK_DPP_WEIGHT_EXP (1)", number(p.weighting));
    if (p.weighting == TK_DPP_WEIGHT_EXP)
        require(p.theta >= 0.0f && p.theta < 1.0f, "params->theta", "0 <= theta < 1 (TK_DPP_WEIGHT_EXP)",
                [&] { return std::to_string(p.theta); });
    const tk_tensor& x = tk::require_features(x_ptr, "x", 3, "[B, N, C]");
    const int64_t tokens = x.shape[1];
    tk::require_token_count(tokens, "x.shape[1]");
    require(p.k >= 0 && p.k <= tokens, "params->k", [&] { return "0 <= k <= " + std::to_string(tokens) + " (N of x)"; },
            number(p.k));
    tk::DppPlan plan{};
    plan.batch = x.shape[0];
    plan.tokens = tokens;
    plan.channels = x.shape[2];
    plan.k = p.k;
    plan.weighting = p.weighting;
    plan.alpha = p.weighting == TK_DPP_WEIGHT_EXP ? p.theta / (2.0f * (1.0f - p.theta)) : 0.0f;
    plan.x = tk::strided(x);
    return plan;
}

}  // namespace

extern "C" {

TK_API tk_status tk_query_relevance(const tk_relevance_params* params, const tk_tensor* visual, const tk_tensor* text,
                                    const tk_tensor* lengths, const tk_tensor* text_lengths, const tk_tensor* relevance,
                                    tk_stream stream) {
    return tk::api_call([&] {
        require(params != nullptr, "params", "a tk_relevance_params", null_text);
        require(params->negate == 0 || params->negate == 1, "params->negate", "0 or 1", number(params->negate));
        const tk_tensor& v = tk::require_features(visual, "visual", 3, "[B, N, C]");
        tk::require_token_count(v.shape[1], "visual.shape[1]");
        const tk_tensor& t = tk::require_features(text, "text", 3, "[B, T, C]");
        tk::require_same_device(t, "text", v, "visual");
        tk::require_same_dtype(t, "text", v, "visual");
        tk::require_batch(t, "text", v.shape[0], "visual");
        tk::require_dim(t, "text", 2, v.shape[2], "C of visual");
        tk::require_per_item(lengths, "lengths", v, "visual", v.shape[1], "N of visual");
        tk::require_per_item(text_lengths, "text_lengths", v, "visual", t.shape[1], "T of text");
        const int64_t shape[2] = {v.shape[0], v.shape[1]};
        const tk::NamedTensors inputs = {{visual, "visual"}, {text, "text"}, {lengths, "lengths"}, {text_lengths, "text_lengths"}};
        const tk_tensor& out = tk::require_output(relevance, "relevance", 2, shape, "[B, N]", TK_DTYPE_F32, v, "visual", inputs);
        tk::RelevancePlan plan{};
        plan.batch = v.shape[0];
        plan.tokens = v.shape[1];
        plan.text_tokens = t.shape[1];
        plan.channels = v.shape[2];
        plan.negate = params->negate != 0;
        plan.visual = tk::strided(v);
        plan.text = tk::strided(t);
        if (lengths != nullptr) plan.lengths = tk::strided(*lengths);
        if (text_lengths != nullptr) plan.text_lengths = tk::strided(*text_lengths);
        plan.relevance = tk::strided(out);
        if (plan.batch * plan.tokens == 0) return;
        if (v.device_kind == TK_DEVICE_CPU) {
            tk::cpu::query_relevance(plan);
        } else {
            tk::cuda::require_stream_of_device(stream, v.device_ordinal);
            tk::cuda::query_relevance(plan, v.device_ordinal, stream);
        }
    });
}

TK_API tk_status tk_conditional_dpp_workspace_size(const tk_dpp_params* params, const tk_tensor* x, uint64_t* bytes) {
    return tk::api_call([&] {
        require(bytes != nullptr, "bytes", "a pointer to receive the workspace size", null_text);
        const tk::DppPlan plan = make_dpp_plan(params, x);
        *bytes = x->device_kind == TK_DEVICE_CUDA ? tk::cuda::conditional_dpp_workspace_bytes(plan)
                                                  : tk::cpu::conditional_dpp_workspace_bytes(plan);
    });
}

TK_API tk_status tk_conditional_dpp_select(const tk_dpp_params* params, const tk_tensor* x, const tk_tensor* relevance,
                                           const tk_tensor* lengths, const tk_tensor* item_k, const tk_tensor* order,
                                           const tk_tensor* sorted, void* workspace, uint64_t workspace_bytes,
                                           tk_stream stream) {
    return tk::api_call([&] {
        tk::DppPlan plan = make_dpp_plan(params, x);
        if (relevance != nullptr) {
            const tk_tensor& r = tk::require_tensor(relevance, "relevance");
            const int64_t shape[2] = {plan.batch, plan.tokens};
            tk::require_shape(r, "relevance", 2, shape, "[B, N]");
            require(r.dtype == TK_DTYPE_F32, "relevance.dtype", "f32", [&] { return tk::dtype_name(r.dtype); });
            tk::require_same_device(r, "relevance", *x, "x");
            tk::require_positive_strides(r, "relevance");
            plan.relevance = tk::strided(r);
        }
        tk::require_per_item(lengths, "lengths", *x, "x", plan.tokens, "N of x");
        tk::require_per_item(item_k, "item_k", *x, "x", plan.k, "params->k");
        const int64_t shape[2] = {plan.batch, plan.k};
        tk::NamedTensors written = {{x, "x"}, {relevance, "relevance"}, {lengths, "lengths"}, {item_k, "item_k"}};
        plan.order = tk::strided(tk::require_output(order, "order", 2, shape, "[B, k]", TK_DTYPE_I32, *x, "x", written));
        written.emplace_back(order, "order");
        if (sorted != nullptr)
            plan.sorted = tk::strided(tk::require_output(sorted, "sorted", 2, shape, "[B, k]", TK_DTYPE_I32, *x, "x", written));
        written.emplace_back(sorted, "sorted");
        if (lengths != nullptr) plan.lengths = tk::strided(*lengths);
        if (item_k != nullptr) plan.item_k = tk::strided(*item_k);
        const bool on_cpu = x->device_kind == TK_DEVICE_CPU;
        tk::require_workspace(workspace, workspace_bytes,
                              on_cpu ? tk::cpu::conditional_dpp_workspace_bytes(plan) : tk::cuda::conditional_dpp_workspace_bytes(plan),
                              *x, "tk_conditional_dpp_workspace_size", written);
        if (plan.batch * plan.k == 0) return;
        if (on_cpu) {
            tk::cpu::conditional_dpp_select(plan, workspace);
        } else {
            tk::cuda::require_stream_of_device(stream, x->device_ordinal);
            tk::cuda::conditional_dpp_select(plan, x->device_ordinal, workspace, stream);
        }
    });
}

}  // extern "C"
