// ABI boundary of batched k-means: every argument is validated here, once, into a KMeansPlan; the
// backend trusts it.
#include <cmath>
#include <string>

#include "api/arguments.hpp"
#include "core/error.hpp"
#include "core/parallel.hpp"
#include "core/tensor.hpp"
#include "cuda/runtime.hpp"
#include "ops/kmeans.hpp"
#include "tokenkernels/tokenkernels.h"

using tk::null_text;
using tk::number;
using tk::require;

namespace {

tk::KMeansPlan make_plan(const tk_kmeans_params* params, const tk_tensor* x_ptr) {
    require(params != nullptr, "params", "a tk_kmeans_params", null_text);
    const tk_kmeans_params& p = *params;
    require(p.init == TK_KMEANS_INIT_PLUS_PLUS || p.init == TK_KMEANS_INIT_GIVEN, "params->init",
            "TK_KMEANS_INIT_PLUS_PLUS (0) or TK_KMEANS_INIT_GIVEN (1)", number(p.init));
    require(std::isfinite(p.tolerance) && p.tolerance >= 0.0, "params->tolerance", "a finite value >= 0",
            [&] { return std::to_string(p.tolerance); });
    require(p.max_iterations >= 1, "params->max_iterations", "at least 1", number(p.max_iterations));
    const tk_tensor& x = tk::require_features(x_ptr, "x", 3, "[B, N, C]");
    const int64_t tokens = x.shape[1];
    tk::require_token_count(tokens, "x.shape[1]");
    require(p.clusters >= 0 && p.clusters <= tokens, "params->clusters",
            [&] { return "0 <= clusters <= " + std::to_string(tokens) + " (N of x)"; }, number(p.clusters));
    tk::KMeansPlan plan{};
    plan.batch = x.shape[0];
    plan.tokens = tokens;
    plan.channels = x.shape[2];
    plan.clusters = p.clusters;
    plan.max_iterations = p.max_iterations;
    plan.tolerance = p.tolerance;
    plan.seed = p.seed;
    plan.init = p.init;
    plan.device_ordinal = x.device_ordinal;
    plan.x = tk::strided(x);
    return plan;
}

}  // namespace

extern "C" {

TK_API tk_status tk_kmeans_workspace_size(const tk_kmeans_params* params, const tk_tensor* x, uint64_t* bytes) {
    return tk::api_call([&] {
        require(bytes != nullptr, "bytes", "a pointer to receive the workspace size", null_text);
        const tk::KMeansPlan plan = make_plan(params, x);
        *bytes = x->device_kind == TK_DEVICE_CUDA ? tk::cuda::kmeans_workspace_bytes(plan)
                                                  : tk::cpu::kmeans_workspace_bytes(plan, tk::num_threads());
    });
}

TK_API tk_status tk_kmeans(const tk_kmeans_params* params, const tk_tensor* x, const tk_tensor* lengths,
                           const tk_tensor* item_clusters, const tk_tensor* initial_centres, const tk_tensor* centres,
                           const tk_tensor* assignment, const tk_tensor* sizes, const tk_tensor* iterations,
                           void* workspace, uint64_t workspace_bytes, tk_stream stream) {
    return tk::api_call([&] {
        tk::KMeansPlan plan = make_plan(params, x);
        tk::require_per_item(lengths, "lengths", *x, "x", plan.tokens, "N of x");
        tk::require_per_item(item_clusters, "item_clusters", *x, "x", plan.clusters, "params->clusters");
        const int64_t centre_shape[3] = {plan.batch, plan.clusters, plan.channels};
        if (plan.init == TK_KMEANS_INIT_GIVEN) {
            require(initial_centres != nullptr, "initial_centres",
                    "a [B, clusters, C] f32 tensor (params->init is TK_KMEANS_INIT_GIVEN)", null_text);
            const tk_tensor& given = tk::require_tensor(initial_centres, "initial_centres");
            tk::require_shape(given, "initial_centres", 3, centre_shape, "[B, clusters, C]");
            require(given.dtype == TK_DTYPE_F32, "initial_centres.dtype", "f32",
                    [&] { return tk::dtype_name(given.dtype); });
            tk::require_same_device(given, "initial_centres", *x, "x");
            tk::require_positive_strides(given, "initial_centres");
            plan.initial_centres = tk::strided(given);
        } else {
            require(initial_centres == nullptr, "initial_centres", "NULL (params->init is not TK_KMEANS_INIT_GIVEN)",
                    [] { return std::string("a tensor"); });
        }
        tk::NamedTensors written = {{x, "x"}, {lengths, "lengths"}, {item_clusters, "item_clusters"},
                                    {initial_centres, "initial_centres"}};
        plan.centres = tk::strided(tk::require_output(centres, "centres", 3, centre_shape, "[B, clusters, C]",
                                                      TK_DTYPE_F32, *x, "x", written));
        written.emplace_back(centres, "centres");
        const int64_t assignment_shape[2] = {plan.batch, plan.tokens};
        plan.assignment = tk::strided(tk::require_output(assignment, "assignment", 2, assignment_shape, "[B, N]",
                                                         TK_DTYPE_I32, *x, "x", written));
        written.emplace_back(assignment, "assignment");
        if (sizes != nullptr) {
            const int64_t sizes_shape[2] = {plan.batch, plan.clusters};
            plan.sizes = tk::strided(
                tk::require_output(sizes, "sizes", 2, sizes_shape, "[B, clusters]", TK_DTYPE_F32, *x, "x", written));
        }
        written.emplace_back(sizes, "sizes");
        if (iterations != nullptr)
            plan.iterations = tk::strided(
                tk::require_output(iterations, "iterations", 1, &plan.batch, "[B]", TK_DTYPE_I32, *x, "x", written));
        written.emplace_back(iterations, "iterations");
        if (lengths != nullptr) plan.lengths = tk::strided(*lengths);
        if (item_clusters != nullptr) plan.item_clusters = tk::strided(*item_clusters);
        const bool on_cpu = x->device_kind == TK_DEVICE_CPU;
        tk::require_workspace(workspace, workspace_bytes,
                              on_cpu ? tk::cpu::kmeans_workspace_bytes(plan, 1) : tk::cuda::kmeans_workspace_bytes(plan), *x,
                              on_cpu ? "tk_kmeans_workspace_size with one thread" : "tk_kmeans_workspace_size", written);
        if (plan.batch == 0) return;
        if (on_cpu) {
            tk::cpu::kmeans(plan, workspace, workspace_bytes);
        } else {
            tk::cuda::require_stream_of_device(stream, plan.device_ordinal);
            tk::cuda::kmeans(plan, workspace, stream);
        }
    });
}

}  // extern "C"
