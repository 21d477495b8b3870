// ABI boundary of clustering and aggregation: every argument is validated here, once, into a plan;
// the backends trust it.
#include <cmath>
#include <string>

#include "api/arguments.hpp"
#include "core/error.hpp"
#include "core/parallel.hpp"
#include "core/tensor.hpp"
#include "cuda/runtime.hpp"
#include "ops/cluster.hpp"
#include "tokenkernels/tokenkernels.h"

using tk::null_text;
using tk::number;
using tk::require;

namespace {

tk::DpcKnnPlan make_dpc_plan(const tk_dpc_knn_params* params, const tk_tensor* x_ptr) {
    require(params != nullptr, "params", "a tk_dpc_knn_params", null_text);
    const tk_dpc_knn_params& p = *params;
    const tk_tensor& x = tk::require_features(x_ptr, "x", 3, "[B, N, C]");
    const int64_t tokens = x.shape[1];
    tk::require_token_count(tokens, "x.shape[1]");
    require(p.clusters >= 0 && p.clusters <= tokens, "params->clusters",
            [&] { return "0 <= clusters <= " + std::to_string(tokens) + " (N of x)"; }, number(p.clusters));
    require(p.neighbours >= 1, "params->neighbours", "at least 1 (the token itself counts)", number(p.neighbours));
    tk::DpcKnnPlan plan{};
    plan.batch = x.shape[0];
    plan.tokens = tokens;
    plan.channels = x.shape[2];
    plan.clusters = p.clusters;
    plan.neighbours = p.neighbours;
    plan.device_ordinal = x.device_ordinal;
    plan.x = tk::strided(x);
    return plan;
}

// An optional [B, N] input of dtype `dtype` on x's device.
const tk_tensor* optional_input(const tk_tensor* ptr, const char* name, const int64_t* shape, const char* layout,
                                tk_dtype dtype, const char* dtype_text, const tk_tensor& x) {
    if (ptr == nullptr) return nullptr;
    const tk_tensor& t = tk::require_tensor(ptr, name);
    tk::require_shape(t, name, 2, shape, layout);
    require(t.dtype == dtype, std::string(name) + ".dtype", dtype_text, [&] { return tk::dtype_name(t.dtype); });
    tk::require_same_device(t, name, x, "x");
    tk::require_positive_strides(t, name);
    return ptr;
}

// Host centres [B, K] (i32) are tokens in [-1, limit(b)), checked before anything is written; device ones
// cannot be without a host synchronisation.
template <class Limit, class LimitText>
void require_host_centres(const tk_tensor& centres, int64_t batch, int64_t clusters, Limit limit, LimitText limit_text) {
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t j = 0; j < clusters; ++j) {
            const int64_t v = tk::host_index(centres, b, j);
            require(v >= -1 && v < limit(b), [&] { return "centres[" + std::to_string(b) + ", " + std::to_string(j) + "]"; },
                    [&] { return limit_text(b); }, number(v));
        }
}

}  // namespace

extern "C" {

TK_API tk_status tk_dpc_knn_workspace_size(const tk_dpc_knn_params* params, const tk_tensor* x, uint64_t* bytes) {
    return tk::api_call([&] {
        require(bytes != nullptr, "bytes", "a pointer to receive the workspace size", null_text);
        const tk::DpcKnnPlan plan = make_dpc_plan(params, x);
        *bytes = x->device_kind == TK_DEVICE_CUDA ? tk::cuda::dpc_knn_workspace_bytes(plan)
                                                  : tk::cpu::dpc_knn_workspace_bytes(plan, tk::num_threads());
    });
}

TK_API tk_status tk_dpc_knn(const tk_dpc_knn_params* params, const tk_tensor* x, const tk_tensor* lengths,
                            const tk_tensor* item_clusters, const tk_tensor* centres, const tk_tensor* assignment,
                            const tk_tensor* density, const tk_tensor* delta, void* workspace, uint64_t workspace_bytes,
                            tk_stream stream) {
    return tk::api_call([&] {
        tk::DpcKnnPlan plan = make_dpc_plan(params, x);
        tk::require_per_item(lengths, "lengths", *x, "x", plan.tokens, "N of x");
        tk::require_per_item(item_clusters, "item_clusters", *x, "x", plan.clusters, "params->clusters");
        const int64_t centres_shape[2] = {plan.batch, plan.clusters};
        const int64_t token_shape[2] = {plan.batch, plan.tokens};
        tk::NamedTensors written = {{x, "x"}, {lengths, "lengths"}, {item_clusters, "item_clusters"}};
        plan.centres = tk::strided(
            tk::require_output(centres, "centres", 2, centres_shape, "[B, clusters]", TK_DTYPE_I32, *x, "x", written));
        written.emplace_back(centres, "centres");
        plan.assignment =
            tk::strided(tk::require_output(assignment, "assignment", 2, token_shape, "[B, N]", TK_DTYPE_I32, *x, "x", written));
        written.emplace_back(assignment, "assignment");
        if (density != nullptr)
            plan.density =
                tk::strided(tk::require_output(density, "density", 2, token_shape, "[B, N]", TK_DTYPE_F32, *x, "x", written));
        written.emplace_back(density, "density");
        if (delta != nullptr)
            plan.delta = tk::strided(tk::require_output(delta, "delta", 2, token_shape, "[B, N]", TK_DTYPE_F32, *x, "x", written));
        written.emplace_back(delta, "delta");
        if (lengths != nullptr) plan.lengths = tk::strided(*lengths);
        if (item_clusters != nullptr) plan.item_clusters = tk::strided(*item_clusters);
        const bool on_cpu = x->device_kind == TK_DEVICE_CPU;
        tk::require_workspace(workspace, workspace_bytes,
                              on_cpu ? tk::cpu::dpc_knn_workspace_bytes(plan, 1) : tk::cuda::dpc_knn_workspace_bytes(plan), *x,
                              on_cpu ? "tk_dpc_knn_workspace_size with one thread" : "tk_dpc_knn_workspace_size", written);
        if (plan.batch * plan.tokens == 0) return;
        if (on_cpu) {
            tk::cpu::dpc_knn(plan, workspace, workspace_bytes);
        } else {
            tk::cuda::require_stream_of_device(stream, plan.device_ordinal);
            tk::cuda::dpc_knn(plan, workspace, stream);
        }
    });
}

TK_API tk_status tk_cluster_merge(const tk_cluster_merge_params* params, const tk_tensor* x_ptr, const tk_tensor* assignment,
                                  const tk_tensor* sizes, const tk_tensor* centres, const tk_tensor* out,
                                  const tk_tensor* out_size, tk_stream stream) {
    return tk::api_call([&] {
        require(params != nullptr, "params", "a tk_cluster_merge_params", null_text);
        const tk_cluster_merge_params& p = *params;
        require(p.clusters >= 0, "params->clusters", "at least 0", number(p.clusters));
        require(p.mode >= TK_CLUSTER_MERGE_MEAN && p.mode <= TK_CLUSTER_MERGE_CENTRE_COUNT_BLEND, "params->mode",
                "TK_CLUSTER_MERGE_MEAN (0), TK_CLUSTER_MERGE_SIZE_WEIGHTED (1), TK_CLUSTER_MERGE_CENTRE_BLEND (2) or "
                "TK_CLUSTER_MERGE_CENTRE_COUNT_BLEND (3)",
                number(p.mode));
        const bool centre_mode = p.mode == TK_CLUSTER_MERGE_CENTRE_BLEND || p.mode == TK_CLUSTER_MERGE_CENTRE_COUNT_BLEND;
        require(std::isfinite(p.beta), "params->beta", "a finite number", [&] { return std::to_string(p.beta); });
        const tk_tensor& x = tk::require_features(x_ptr, "x", 3, "[B, N, C]");
        tk::ClusterMergePlan plan{};
        plan.batch = x.shape[0];
        plan.tokens = x.shape[1];
        plan.channels = x.shape[2];
        plan.clusters = p.clusters;
        plan.mode = static_cast<tk_cluster_merge_mode>(p.mode);
        plan.beta = p.beta;
        plan.device_ordinal = x.device_ordinal;
        plan.x = tk::strided(x);
        const int64_t token_shape[2] = {plan.batch, plan.tokens};
        const int64_t cluster_shape[2] = {plan.batch, plan.clusters};
        require(assignment != nullptr, "assignment", "a [B, N] i32 tensor", null_text);
        optional_input(assignment, "assignment", token_shape, "[B, N]", TK_DTYPE_I32, "i32", x);
        require(sizes != nullptr || p.mode != TK_CLUSTER_MERGE_SIZE_WEIGHTED, "sizes",
                "a [B, N] f32 tensor (params->mode is TK_CLUSTER_MERGE_SIZE_WEIGHTED)", null_text);
        optional_input(sizes, "sizes", token_shape, "[B, N]", TK_DTYPE_F32, "f32", x);
        require(centres != nullptr || !centre_mode, "centres",
                "a [B, clusters] i32 tensor (params->mode blends with the centre)", null_text);
        optional_input(centres, "centres", cluster_shape, "[B, clusters]", TK_DTYPE_I32, "i32", x);
        // Host indices are checked before anything is written; device ones cannot be without a sync.
        if (x.device_kind == TK_DEVICE_CPU) {
            for (int64_t b = 0; b < plan.batch; ++b)
                for (int64_t i = 0; i < plan.tokens; ++i) {
                    const int64_t v = tk::host_index(*assignment, b, i);
                    require(v >= -1 && v < p.clusters,
                            [&] { return "assignment[" + std::to_string(b) + ", " + std::to_string(i) + "]"; },
                            [&] { return "a cluster in [-1, " + std::to_string(p.clusters) + ") (-1: in none)"; }, number(v));
                }
            if (centres != nullptr)
                require_host_centres(*centres, plan.batch, plan.clusters, [&](int64_t) { return plan.tokens; }, [&](int64_t) {
                    return "a token in [-1, " + std::to_string(plan.tokens) + ") (-1: no centre)";
                });
        }
        tk::NamedTensors written = {{x_ptr, "x"}, {assignment, "assignment"}, {sizes, "sizes"}, {centres, "centres"}};
        const int64_t out_shape[3] = {plan.batch, plan.clusters, plan.channels};
        plan.out = tk::strided(tk::require_output(out, "out", 3, out_shape, "[B, clusters, C]", x.dtype, x, "x", written));
        tk::require_channels_contiguous(*out, "out");
        written.emplace_back(out, "out");
        if (out_size != nullptr)
            plan.out_size = tk::strided(
                tk::require_output(out_size, "out_size", 2, cluster_shape, "[B, clusters]", TK_DTYPE_F32, x, "x", written));
        plan.assignment = tk::strided(*assignment);
        if (sizes != nullptr) plan.sizes = tk::strided(*sizes);
        if (centres != nullptr) plan.centres = tk::strided(*centres);
        if (plan.batch * plan.clusters == 0) return;
        if (x.device_kind == TK_DEVICE_CPU) {
            tk::cpu::cluster_merge(plan);
        } else {
            tk::cuda::require_stream_of_device(stream, plan.device_ordinal);
            tk::cuda::cluster_merge(plan, stream);
        }
    });
}

TK_API tk_status tk_cluster_assign(const tk_cluster_assign_params* params, const tk_tensor* x_ptr, const tk_tensor* lengths,
                                   const tk_tensor* centres, const tk_tensor* assignment, tk_stream stream) {
    return tk::api_call([&] {
        require(params != nullptr, "params", "a tk_cluster_assign_params", null_text);
        const tk_cluster_assign_params& p = *params;
        require(p.clusters >= 0, "params->clusters", "at least 0", number(p.clusters));
        const tk_tensor& x = tk::require_features(x_ptr, "x", 3, "[B, N, C]");
        tk::ClusterAssignPlan plan{};
        plan.batch = x.shape[0];
        plan.tokens = x.shape[1];
        plan.channels = x.shape[2];
        plan.clusters = p.clusters;
        plan.device_ordinal = x.device_ordinal;
        plan.x = tk::strided(x);
        tk::require_token_count(plan.tokens, "x.shape[1]");
        tk::require_per_item(lengths, "lengths", x, "x", plan.tokens, "N of x");
        const int64_t cluster_shape[2] = {plan.batch, plan.clusters};
        const int64_t token_shape[2] = {plan.batch, plan.tokens};
        require(centres != nullptr, "centres", "a [B, clusters] i32 tensor", null_text);
        optional_input(centres, "centres", cluster_shape, "[B, clusters]", TK_DTYPE_I32, "i32", x);
        if (x.device_kind == TK_DEVICE_CPU) {
            const auto length = [&](int64_t b) { return lengths != nullptr ? tk::host_index(*lengths, b) : plan.tokens; };
            require_host_centres(*centres, plan.batch, plan.clusters, length, [&](int64_t b) {
                return "a token in [-1, " + std::to_string(length(b)) + ") (item " + std::to_string(b) + "'s length; -1: no centre)";
            });
        }
        const tk::NamedTensors inputs = {{x_ptr, "x"}, {lengths, "lengths"}, {centres, "centres"}};
        plan.assignment =
            tk::strided(tk::require_output(assignment, "assignment", 2, token_shape, "[B, N]", TK_DTYPE_I32, x, "x", inputs));
        if (lengths != nullptr) plan.lengths = tk::strided(*lengths);
        plan.centres = tk::strided(*centres);
        if (plan.batch * plan.tokens == 0) return;
        if (x.device_kind == TK_DEVICE_CPU) {
            tk::cpu::cluster_assign(plan);
        } else {
            tk::cuda::require_stream_of_device(stream, plan.device_ordinal);
            tk::cuda::cluster_assign(plan, stream);
        }
    });
}

}  // extern "C"
