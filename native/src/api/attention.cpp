// ABI boundary of attention-based pruning: every argument is validated here, once, into an
// ImportancePlan / TopkPlan / GatherPlan / ContextualPlan; the backends trust the plans.
#include <cmath>
#include <string>
#include <vector>

#include "api/arguments.hpp"
#include "core/error.hpp"
#include "core/tensor.hpp"
#include "cuda/runtime.hpp"
#include "ops/attention.hpp"
#include "tokenkernels/tokenkernels.h"

using tk::null_text;
using tk::number;
using tk::require;

namespace {

// ---- Importance ---------------------------------------------------------------------------------

const tk_importance_params& require_importance_params(const tk_importance_params* params) {
    require(params != nullptr, "params", "a tk_importance_params", null_text);
    const tk_importance_params& p = *params;
    for (const auto& [value, name] : {std::pair{p.head_reduce, "params->head_reduce"}, std::pair{p.query_reduce, "params->query_reduce"}})
        require(value == TK_REDUCE_MEAN || value == TK_REDUCE_SUM, name, "TK_REDUCE_MEAN (0) or TK_REDUCE_SUM (1)", number(value));
    return p;
}

// The query and key ranges of p against Nq and Nk, and everything of the plan they determine.
tk::ImportancePlan importance_plan(const tk_importance_params& p, int64_t batch, int64_t heads, int64_t queries,
                                   int64_t keys, const char* shape_name) {
    require(heads >= 1, std::string(shape_name) + ".shape[1]", "at least one head", number(heads));
    tk::require_token_count(queries, "queries (Nq)");
    tk::require_token_count(keys, "keys (Nk)");
    require(p.query_begin >= 0 && p.query_begin < p.query_end && p.query_end <= queries, "params->query_begin, query_end",
            [&] { return "0 <= query_begin < query_end <= " + std::to_string(queries) + " (Nq)"; },
            [&] { return "[" + std::to_string(p.query_begin) + ", " + std::to_string(p.query_end) + ")"; });
    require(p.key_begin >= 0 && p.key_begin <= p.key_end && p.key_end <= keys, "params->key_begin, key_end",
            [&] { return "0 <= key_begin <= key_end <= " + std::to_string(keys) + " (Nk)"; },
            [&] { return "[" + std::to_string(p.key_begin) + ", " + std::to_string(p.key_end) + ")"; });
    tk::ImportancePlan plan{};
    plan.batch = batch;
    plan.heads = heads;
    plan.key_heads = heads;
    plan.queries = queries;
    plan.keys = keys;
    plan.query_begin = p.query_begin;
    plan.query_end = p.query_end;
    plan.key_begin = p.key_begin;
    plan.key_end = p.key_end;
    const double divisor = (p.head_reduce == TK_REDUCE_MEAN ? static_cast<double>(heads) : 1.0) *
                           (p.query_reduce == TK_REDUCE_MEAN ? static_cast<double>(p.query_end - p.query_begin) : 1.0);
    plan.divisor = static_cast<float>(divisor);
    return plan;
}

const tk_tensor& require_importance_out(const tk_tensor* out, const tk::ImportancePlan& plan, const tk_tensor& device_of,
                                        const char* device_of_name, const tk::NamedTensors& inputs) {
    const int64_t shape[2] = {plan.batch, plan.key_end - plan.key_begin};
    return tk::require_output(out, "out", 2, shape, "[B, key_end - key_begin]", TK_DTYPE_F32, device_of, device_of_name,
                              inputs);
}

tk::ImportancePlan make_attention_plan(const tk_importance_params* params, const tk_tensor* attn_ptr, const tk_tensor* out) {
    const tk_importance_params& p = require_importance_params(params);
    const tk_tensor& attn = tk::require_features(attn_ptr, "attn", 4, "[B, H, Nq, Nk]");
    tk::ImportancePlan plan = importance_plan(p, attn.shape[0], attn.shape[1], attn.shape[2], attn.shape[3], "attn");
    plan.device_ordinal = attn.device_ordinal;
    plan.attn = tk::strided(attn);
    plan.out = tk::strided(require_importance_out(out, plan, attn, "attn", {{attn_ptr, "attn"}}));
    return plan;
}

bool is_cuda_head_dim(int64_t d) { return d == 64 || d == 80 || d == 96 || d == 128; }

tk::ImportancePlan make_qk_plan(const tk_importance_params* params, const tk_tensor* q_ptr, const tk_tensor* k_ptr,
                                const tk_tensor* lse_ptr) {
    const tk_importance_params& p = require_importance_params(params);
    require(std::isfinite(p.scale) && p.scale > 0.0f, "params->scale", "a finite softmax scale > 0 (1/sqrt(d) for SDPA)",
            [&] { return std::to_string(p.scale); });
    require(p.causal == 0 || p.causal == 1, "params->causal", "0 or 1", number(p.causal));
    const tk_tensor& q = tk::require_features(q_ptr, "q", 4, "[B, H, Nq, d]");
    const tk_tensor& k = tk::require_features(k_ptr, "k", 4, "[B, Hk, Nk, d]");
    tk::require_same_dtype(k, "k", q, "q");
    tk::require_same_device(k, "k", q, "q");
    tk::require_batch(k, "k", q.shape[0], "q");
    tk::require_dim(k, "k", 3, q.shape[3], "d of q");
    const int64_t heads = q.shape[1], key_heads = k.shape[1];
    require(key_heads >= 1 && heads % key_heads == 0, "k.shape[1]",
            [&] { return "a divisor of " + std::to_string(heads) + " (H of q; grouped-query attention)"; }, number(key_heads));
    tk::ImportancePlan plan = importance_plan(p, q.shape[0], heads, q.shape[2], k.shape[2], "q");
    const int64_t d = q.shape[3];
    require(d >= 1, "q.shape[3]", "a head dimension d >= 1", number(d));
    if (q.device_kind == TK_DEVICE_CUDA)
        require(is_cuda_head_dim(d), "q.shape[3]", "a head dimension of 64, 80, 96 or 128 on CUDA", number(d));
    plan.key_heads = key_heads;
    plan.head_dim = d;
    plan.scale = p.scale;
    plan.causal = p.causal;
    plan.device_ordinal = q.device_ordinal;
    plan.q = tk::strided(q);
    plan.k = tk::strided(k);
    if (lse_ptr != nullptr) {
        const tk_tensor& lse = tk::require_tensor(lse_ptr, "lse");
        const int64_t shape[3] = {q.shape[0], heads, q.shape[2]};
        tk::require_shape(lse, "lse", 3, shape, "[B, H, Nq]");
        require(lse.dtype == TK_DTYPE_F32, "lse.dtype", "f32", [&] { return tk::dtype_name(lse.dtype); });
        tk::require_same_device(lse, "lse", q, "q");
        tk::require_positive_strides(lse, "lse");
        plan.lse = tk::strided(lse);
    }
    return plan;
}

// ---- Top-k --------------------------------------------------------------------------------------

tk::TopkPlan make_topk_plan(const tk_topk_params* params, const tk_tensor* scores_ptr) {
    require(params != nullptr, "params", "a tk_topk_params", null_text);
    const tk_tensor& scores = tk::require_tensor(scores_ptr, "scores");
    tk::require_rank(scores, "scores", 2, "[B, N]");
    tk::require_float_dtype(scores, "scores");
    tk::require_positive_strides(scores, "scores");
    const int64_t tokens = scores.shape[1];
    tk::require_token_count(tokens, "scores.shape[1]");
    require(params->k >= 0 && params->k <= tokens, "params->k", [&] { return "0 <= k <= " + std::to_string(tokens) + " (N of scores)"; },
            number(params->k));
    tk::TopkPlan plan{};
    plan.batch = scores.shape[0];
    plan.tokens = tokens;
    plan.k = params->k;
    plan.device_ordinal = scores.device_ordinal;
    plan.scores = tk::strided(scores);
    return plan;
}

tk::TopkPlan make_topk_call_plan(const tk_topk_params* params, const tk_tensor* scores_ptr, const tk_tensor* lengths,
                                 const tk_tensor* item_k, const tk_tensor* indices, const tk_tensor* ranked) {
    tk::TopkPlan plan = make_topk_plan(params, scores_ptr);
    const tk_tensor& scores = *scores_ptr;
    tk::require_per_item(lengths, "lengths", scores, "scores", plan.tokens, "N of scores");
    tk::require_per_item(item_k, "item_k", scores, "scores", plan.k, "params->k");
    const int64_t shape[2] = {plan.batch, plan.k};
    tk::NamedTensors written = {{scores_ptr, "scores"}, {lengths, "lengths"}, {item_k, "item_k"}};
    plan.indices = tk::strided(tk::require_output(indices, "indices", 2, shape, "[B, k]", TK_DTYPE_I32, scores, "scores", written));
    written.emplace_back(indices, "indices");
    if (ranked != nullptr)
        plan.ranked = tk::strided(tk::require_output(ranked, "ranked", 2, shape, "[B, k]", TK_DTYPE_I32, scores, "scores", written));
    if (lengths != nullptr) plan.lengths = tk::strided(*lengths);
    if (item_k != nullptr) plan.item_k = tk::strided(*item_k);
    return plan;
}

// ---- Gather -------------------------------------------------------------------------------------

tk::GatherPlan make_gather_plan(const tk_tensor* x_ptr, const tk_tensor* indices_ptr, const tk_tensor* out_ptr) {
    const tk_tensor& x = tk::require_tensor(x_ptr, "x");
    tk::require_rank(x, "x", 3, "[B, N, C]");
    tk::require_channels_contiguous(x, "x");
    const tk_tensor& indices = tk::require_tensor(indices_ptr, "indices");
    tk::require_rank(indices, "indices", 2, "[B, k]");
    tk::require_index_dtype(indices, "indices");
    tk::require_same_device(indices, "indices", x, "x");
    tk::require_positive_strides(indices, "indices");
    tk::require_batch(indices, "indices", x.shape[0], "x");
    const int64_t shape[3] = {x.shape[0], indices.shape[1], x.shape[2]};
    const tk_tensor& out = tk::require_output(out_ptr, "out", 3, shape, "[B, k, C]", x.dtype, x, "x",
                                              {{x_ptr, "x"}, {indices_ptr, "indices"}});
    tk::require_channels_contiguous(out, "out");

    tk::GatherPlan plan{};
    plan.batch = x.shape[0];
    plan.tokens = x.shape[1];
    plan.k = indices.shape[1];
    plan.channels = x.shape[2];
    plan.device_ordinal = x.device_ordinal;
    plan.x = tk::strided(x);
    plan.indices = tk::strided(indices);
    plan.out = tk::strided(out);
    if (indices.device_kind == TK_DEVICE_CPU) {
        for (int64_t b = 0; b < plan.batch; ++b)
            for (int64_t i = 0; i < plan.k; ++i) {
                const int64_t index = tk::host_index(indices, b, i);
                require(index >= -1 && index < plan.tokens,
                        [&] { return "indices[" + std::to_string(b) + ", " + std::to_string(i) + "]"; },
                        [&] { return "a token in [0, " + std::to_string(plan.tokens) + ") (N of x), or -1 (padding)"; },
                        number(index));
            }
    }
    return plan;
}

// ---- VisionZip contextual tokens ----------------------------------------------------------------

tk::ContextualPlan make_contextual_plan(int32_t contextual, const tk_tensor* metric_ptr, const tk_tensor* x_ptr,
                                        const tk_tensor* kept_ptr) {
    const tk_tensor& metric = tk::require_features(metric_ptr, "metric", 3, "[B, N, Cm]");
    const tk_tensor& x = tk::require_features(x_ptr, "x", 3, "[B, N, C]");
    tk::require_same_device(x, "x", metric, "metric");
    tk::require_batch(x, "x", metric.shape[0], "metric");
    tk::require_dim(x, "x", 1, metric.shape[1], "N of metric");
    const tk_tensor& kept = tk::require_tensor(kept_ptr, "kept");
    tk::require_rank(kept, "kept", 2, "[B, K]");
    tk::require_index_dtype(kept, "kept");
    tk::require_same_device(kept, "kept", metric, "metric");
    tk::require_positive_strides(kept, "kept");
    tk::require_batch(kept, "kept", metric.shape[0], "metric");
    const int64_t tokens = metric.shape[1];
    tk::require_token_count(tokens, "metric.shape[1]");
    require(kept.shape[1] <= tokens, "kept.shape[1]", [&] { return "at most " + std::to_string(tokens) + " (N of metric)"; },
            number(kept.shape[1]));
    const int64_t remaining = tokens - kept.shape[1];
    require(contextual >= 0 && contextual <= remaining, "contextual",
            [&] { return "0 <= contextual <= " + std::to_string(remaining) + " (N - K tokens remain)"; }, number(contextual));

    tk::ContextualPlan plan{};
    plan.batch = metric.shape[0];
    plan.tokens = tokens;
    plan.kept = kept.shape[1];
    plan.contextual = contextual;
    plan.metric_channels = metric.shape[2];
    plan.channels = x.shape[2];
    plan.device_ordinal = metric.device_ordinal;
    plan.metric = tk::strided(metric);
    plan.x = tk::strided(x);
    plan.kept_indices = tk::strided(kept);
    return plan;
}

// Host kept positions can be checked before anything is written (device ones cannot without a
// sync). Only the op checks them: the workspace query may come before they are computed.
void require_kept_values(const tk_tensor& kept, const tk::ContextualPlan& plan) {
    if (kept.device_kind != TK_DEVICE_CPU) return;
    std::vector<uint8_t> seen;
    for (int64_t b = 0; b < plan.batch; ++b) {
        seen.assign(static_cast<size_t>(plan.tokens), 0);
        for (int64_t i = 0; i < plan.kept; ++i) {
            const int64_t index = tk::host_index(kept, b, i);
            auto element = [&] { return "kept[" + std::to_string(b) + ", " + std::to_string(i) + "]"; };
            require(index >= 0 && index < plan.tokens, element,
                    [&] { return "a token in [0, " + std::to_string(plan.tokens) + ") (N of metric)"; }, number(index));
            require(!seen[static_cast<size_t>(index)], element, "a token not already kept in the same item",
                    [&] { return std::to_string(index) + " (a duplicate)"; });
            seen[static_cast<size_t>(index)] = 1;
        }
    }
}

const tk_tensor& require_contextual_out(const tk_tensor* out_ptr, const tk::ContextualPlan& plan, const tk_tensor& metric,
                                        const tk::NamedTensors& inputs, tk_dtype dtype) {
    const int64_t shape[3] = {plan.batch, plan.contextual, plan.channels};
    const tk_tensor& out = tk::require_output(out_ptr, "out", 3, shape, "[B, contextual, C]", dtype, metric, "metric", inputs);
    tk::require_channels_contiguous(out, "out");
    return out;
}

}  // namespace

extern "C" {

TK_API tk_status tk_attention_importance(const tk_importance_params* params, const tk_tensor* attn, const tk_tensor* out,
                                         tk_stream stream) {
    return tk::api_call([&] {
        const tk::ImportancePlan plan = make_attention_plan(params, attn, out);
        if (plan.batch * (plan.key_end - plan.key_begin) == 0) return;
        if (attn->device_kind == TK_DEVICE_CPU) {
            tk::cpu::attention_importance(plan);
        } else {
            tk::cuda::require_stream_of_device(stream, plan.device_ordinal);
            tk::cuda::attention_importance(plan, stream);
        }
    });
}

TK_API tk_status tk_qk_importance_workspace_size(const tk_importance_params* params, const tk_tensor* q, const tk_tensor* k,
                                                 const tk_tensor* lse, uint64_t* bytes) {
    return tk::api_call([&] {
        require(bytes != nullptr, "bytes", "a pointer to receive the workspace size", null_text);
        const tk::ImportancePlan plan = make_qk_plan(params, q, k, lse);
        *bytes = q->device_kind == TK_DEVICE_CUDA ? tk::cuda::qk_importance_workspace_bytes(plan) : 0;
    });
}

TK_API tk_status tk_qk_importance(const tk_importance_params* params, const tk_tensor* q, const tk_tensor* k,
                                  const tk_tensor* lse, const tk_tensor* out, void* workspace, uint64_t workspace_bytes,
                                  tk_stream stream) {
    return tk::api_call([&] {
        tk::ImportancePlan plan = make_qk_plan(params, q, k, lse);
        plan.out = tk::strided(require_importance_out(out, plan, *q, "q", {{q, "q"}, {k, "k"}, {lse, "lse"}}));
        const bool on_cpu = q->device_kind == TK_DEVICE_CPU;
        tk::require_workspace(workspace, workspace_bytes, on_cpu ? 0 : tk::cuda::qk_importance_workspace_bytes(plan), *q,
                              "tk_qk_importance_workspace_size", {{q, "q"}, {k, "k"}, {lse, "lse"}, {out, "out"}});
        if (plan.batch * (plan.key_end - plan.key_begin) == 0) return;
        if (on_cpu) {
            tk::cpu::qk_importance(plan);
        } else {
            tk::cuda::require_stream_of_device(stream, plan.device_ordinal);
            tk::cuda::qk_importance(plan, workspace, stream);
        }
    });
}

TK_API tk_status tk_topk_workspace_size(const tk_topk_params* params, const tk_tensor* scores, uint64_t* bytes) {
    return tk::api_call([&] {
        require(bytes != nullptr, "bytes", "a pointer to receive the workspace size", null_text);
        const tk::TopkPlan plan = make_topk_plan(params, scores);
        *bytes = scores->device_kind == TK_DEVICE_CUDA ? tk::cuda::topk_workspace_bytes(plan) : 0;
    });
}

TK_API tk_status tk_topk(const tk_topk_params* params, const tk_tensor* scores, const tk_tensor* lengths,
                         const tk_tensor* item_k, const tk_tensor* indices, const tk_tensor* ranked, void* workspace,
                         uint64_t workspace_bytes, tk_stream stream) {
    return tk::api_call([&] {
        const tk::TopkPlan plan = make_topk_call_plan(params, scores, lengths, item_k, indices, ranked);
        const bool on_cpu = scores->device_kind == TK_DEVICE_CPU;
        tk::require_workspace(workspace, workspace_bytes, on_cpu ? 0 : tk::cuda::topk_workspace_bytes(plan), *scores,
                              "tk_topk_workspace_size",
                              {{scores, "scores"}, {lengths, "lengths"}, {item_k, "item_k"}, {indices, "indices"}, {ranked, "ranked"}});
        if (plan.batch * plan.k == 0) return;
        if (on_cpu) {
            tk::cpu::topk(plan);
        } else {
            tk::cuda::require_stream_of_device(stream, plan.device_ordinal);
            tk::cuda::topk(plan, workspace, stream);
        }
    });
}

TK_API tk_status tk_gather(const tk_tensor* x, const tk_tensor* indices, const tk_tensor* out, tk_stream stream) {
    return tk::api_call([&] {
        const tk::GatherPlan plan = make_gather_plan(x, indices, out);
        if (plan.batch * plan.k * plan.channels == 0) return;
        if (x->device_kind == TK_DEVICE_CPU) {
            tk::cpu::gather(plan);
        } else {
            tk::cuda::require_stream_of_device(stream, plan.device_ordinal);
            tk::cuda::gather(plan, stream);
        }
    });
}

TK_API tk_status tk_visionzip_contextual_workspace_size(int32_t contextual, const tk_tensor* metric, const tk_tensor* x,
                                                        const tk_tensor* kept, uint64_t* bytes) {
    return tk::api_call([&] {
        require(bytes != nullptr, "bytes", "a pointer to receive the workspace size", null_text);
        const tk::ContextualPlan plan = make_contextual_plan(contextual, metric, x, kept);
        *bytes = metric->device_kind == TK_DEVICE_CUDA ? tk::cuda::contextual_workspace_bytes(plan) : 0;
    });
}

TK_API tk_status tk_visionzip_contextual(int32_t contextual, const tk_tensor* metric, const tk_tensor* x, const tk_tensor* kept,
                                         const tk_tensor* out, void* workspace, uint64_t workspace_bytes, tk_stream stream) {
    return tk::api_call([&] {
        tk::ContextualPlan plan = make_contextual_plan(contextual, metric, x, kept);
        require_kept_values(*kept, plan);
        plan.out = tk::strided(require_contextual_out(out, plan, *metric, {{metric, "metric"}, {x, "x"}, {kept, "kept"}}, x->dtype));
        const bool on_cpu = metric->device_kind == TK_DEVICE_CPU;
        tk::require_workspace(workspace, workspace_bytes, on_cpu ? 0 : tk::cuda::contextual_workspace_bytes(plan), *metric,
                              "tk_visionzip_contextual_workspace_size",
                              {{metric, "metric"}, {x, "x"}, {kept, "kept"}, {out, "out"}});
        if (plan.batch * plan.contextual * plan.channels == 0) return;
        if (on_cpu) {
            tk::cpu::visionzip_contextual(plan);
        } else {
            tk::cuda::require_stream_of_device(stream, plan.device_ordinal);
            tk::cuda::visionzip_contextual(plan, workspace, stream);
        }
    });
}

}  // extern "C"
