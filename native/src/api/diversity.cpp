// ABI boundary of diversity selection: every argument is validated here, once, into a DiversityPlan;
// the backends trust it.
#include <string>

#include "api/arguments.hpp"
#include "core/error.hpp"
#include "core/parallel.hpp"
#include "core/tensor.hpp"
#include "cuda/runtime.hpp"
#include "ops/diversity.hpp"
#include "tokenkernels/tokenkernels.h"

using tk::null_text;
using tk::number;
using tk::require;

namespace {

tk::DiversityPlan make_plan(const tk_diversity_params* params, const tk_tensor* x_ptr) {
    require(params != nullptr, "params", "a tk_diversity_params", null_text);
    const tk_diversity_params& p = *params;
    require(p.distance == TK_DISTANCE_COSINE || p.distance == TK_DISTANCE_L2, "params->distance",
            "TK_DISTANCE_COSINE (0) or TK_DISTANCE_L2 (1)", number(p.distance));
    require(p.first >= TK_FIRST_MOST_ISOLATED && p.first <= TK_FIRST_SCORE, "params->first",
            "TK_FIRST_MOST_ISOLATED (0), TK_FIRST_INDEX (1) or TK_FIRST_SCORE (2)", number(p.first));
    require(p.objective == TK_DIVERSITY_MAX_MIN || p.objective == TK_DIVERSITY_MAX_SUM, "params->objective",
            "TK_DIVERSITY_MAX_MIN (0) or TK_DIVERSITY_MAX_SUM (1)", number(p.objective));
    const tk_tensor& x = tk::require_features(x_ptr, "x", 3, "[B, N, C]");
    const int64_t tokens = x.shape[1];
    tk::require_token_count(tokens, "x.shape[1]");
    require(p.k >= 0 && p.k <= tokens, "params->k", [&] { return "0 <= k <= " + std::to_string(tokens) + " (N of x)"; },
            number(p.k));
    tk::DiversityPlan plan{};
    plan.batch = x.shape[0];
    plan.tokens = tokens;
    plan.channels = x.shape[2];
    plan.k = p.k;
    plan.distance = p.distance;
    plan.first = p.first;
    plan.objective = p.objective;
    plan.device_ordinal = x.device_ordinal;
    plan.x = tk::strided(x);
    return plan;
}

// The first center's inputs: first_index [B] i32 with TK_FIRST_INDEX, first_score [B, N] with
// TK_FIRST_SCORE; each must be absent otherwise, so that a wrong policy is not silently ignored.
void require_first_center(tk::DiversityPlan& plan, const tk_tensor& x, const tk_tensor* lengths, const tk_tensor* index_ptr,
                          const tk_tensor* score_ptr) {
    if (plan.first == TK_FIRST_INDEX) {
        require(index_ptr != nullptr, "first_index", "a [B] i32 tensor (params->first is TK_FIRST_INDEX)", null_text);
        const tk_tensor& index = tk::require_tensor(index_ptr, "first_index");
        tk::require_shape(index, "first_index", 1, &plan.batch, "[B]");
        require(index.dtype == TK_DTYPE_I32, "first_index.dtype", "i32", [&] { return tk::dtype_name(index.dtype); });
        tk::require_same_device(index, "first_index", x, "x");
        tk::require_positive_strides(index, "first_index");
        if (index.device_kind == TK_DEVICE_CPU) {
            for (int64_t b = 0; b < plan.batch; ++b) {
                const int64_t length = lengths != nullptr ? tk::host_index(*lengths, b) : plan.tokens;
                const int64_t value = tk::host_index(index, b);
                require(length == 0 || (value >= 0 && value < length), [&] { return "first_index[" + std::to_string(b) + "]"; },
                        [&] { return "a token in [0, " + std::to_string(length) + ") (the item's length)"; }, number(value));
            }
        }
        plan.first_index = tk::strided(index);
    } else {
        require(index_ptr == nullptr, "first_index", "NULL (params->first is not TK_FIRST_INDEX)", [] { return std::string("a tensor"); });
    }
    if (plan.first == TK_FIRST_SCORE) {
        require(score_ptr != nullptr, "first_score", "a [B, N] float tensor (params->first is TK_FIRST_SCORE)", null_text);
        const tk_tensor& score = tk::require_tensor(score_ptr, "first_score");
        const int64_t shape[2] = {plan.batch, plan.tokens};
        tk::require_shape(score, "first_score", 2, shape, "[B, N]");
        tk::require_float_dtype(score, "first_score");
        tk::require_same_device(score, "first_score", x, "x");
        tk::require_positive_strides(score, "first_score");
        plan.first_score = tk::strided(score);
    } else {
        require(score_ptr == nullptr, "first_score", "NULL (params->first is not TK_FIRST_SCORE)", [] { return std::string("a tensor"); });
    }
}

}  // namespace

extern "C" {

TK_API tk_status tk_diversity_workspace_size(const tk_diversity_params* params, const tk_tensor* x, uint64_t* bytes) {
    return tk::api_call([&] {
        require(bytes != nullptr, "bytes", "a pointer to receive the workspace size", null_text);
        const tk::DiversityPlan plan = make_plan(params, x);
        *bytes = x->device_kind == TK_DEVICE_CUDA ? tk::cuda::diversity_workspace_bytes(plan)
                                                  : tk::cpu::diversity_workspace_bytes(plan, tk::num_threads());
    });
}

TK_API tk_status tk_diversity_select(const tk_diversity_params* params, const tk_tensor* x, const tk_tensor* lengths,
                                     const tk_tensor* item_k, const tk_tensor* first_index, const tk_tensor* first_score,
                                     const tk_tensor* order, const tk_tensor* sorted, void* workspace,
                                     uint64_t workspace_bytes, tk_stream stream) {
    return tk::api_call([&] {
        tk::DiversityPlan plan = make_plan(params, x);
        tk::require_per_item(lengths, "lengths", *x, "x", plan.tokens, "N of x");
        tk::require_per_item(item_k, "item_k", *x, "x", plan.k, "params->k");
        require_first_center(plan, *x, lengths, first_index, first_score);
        const int64_t shape[2] = {plan.batch, plan.k};
        tk::NamedTensors written = {{x, "x"}, {lengths, "lengths"}, {item_k, "item_k"}, {first_index, "first_index"},
                                    {first_score, "first_score"}};
        plan.order = tk::strided(tk::require_output(order, "order", 2, shape, "[B, k]", TK_DTYPE_I32, *x, "x", written));
        written.emplace_back(order, "order");
        if (sorted != nullptr)
            plan.sorted = tk::strided(tk::require_output(sorted, "sorted", 2, shape, "[B, k]", TK_DTYPE_I32, *x, "x", written));
        written.emplace_back(sorted, "sorted");
        if (lengths != nullptr) plan.lengths = tk::strided(*lengths);
        if (item_k != nullptr) plan.item_k = tk::strided(*item_k);
        const bool on_cpu = x->device_kind == TK_DEVICE_CPU;
        tk::require_workspace(workspace, workspace_bytes,
                              on_cpu ? tk::cpu::diversity_workspace_bytes(plan, 1) : tk::cuda::diversity_workspace_bytes(plan),
                              *x, on_cpu ? "tk_diversity_workspace_size with one thread" : "tk_diversity_workspace_size", written);
        if (plan.batch * plan.k == 0) return;
        if (on_cpu) {
            tk::cpu::diversity_select(plan, workspace, workspace_bytes);
        } else {
            tk::cuda::require_stream_of_device(stream, plan.device_ordinal);
            tk::cuda::diversity_select(plan, workspace, stream);
        }
    });
}

}  // extern "C"
