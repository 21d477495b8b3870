// ABI boundary of temporal redundancy (SPEC section 5): every argument is validated here, once, into
// a TemporalSimilarityPlan or a VideoSelectionPlan (EVS, DyCoke, VidCom2); the backends trust the plan.
#include <cmath>
#include <algorithm>
#include <cstdio>
#include <limits>
#include <string>

#include "api/arguments.hpp"
#include "core/error.hpp"
#include "core/tensor.hpp"
#include "cuda/runtime.hpp"
#include "ops/temporal.hpp"
#include "tokenkernels/tokenkernels.h"

using tk::null_text;
using tk::number;
using tk::require;

namespace {

const tk_tensor& require_video(const tk_tensor* x_ptr) {
    const tk_tensor& x = tk::require_features(x_ptr, "x", 4, "[B, T, P, C]");
    tk::require_token_count(x.shape[1] * x.shape[2], "x.shape[1] * x.shape[2] (T * P)");
    return x;
}

tk::TemporalSimilarityPlan make_similarity_plan(const tk_tensor& x, const tk_tensor* reference_ptr) {
    tk::TemporalSimilarityPlan plan{};
    plan.batch = x.shape[0];
    plan.frames = x.shape[1];
    plan.positions = x.shape[2];
    plan.channels = x.shape[3];
    plan.device_ordinal = x.device_ordinal;
    plan.x = tk::strided(x);
    plan.reference_rule = tk::TemporalReference::kPrevious;
    plan.score = tk::TemporalScore::kCosine;
    if (reference_ptr == nullptr) return plan;
    const tk_tensor& reference = tk::require_tensor(reference_ptr, "reference");
    tk::require_shape(reference, "reference", 1, &plan.frames, "[T]");
    require(reference.dtype == TK_DTYPE_I32, "reference.dtype", "i32", [&] { return tk::dtype_name(reference.dtype); });
    tk::require_same_device(reference, "reference", x, "x");
    tk::require_positive_strides(reference, "reference");
    // Host values can be checked before anything is written; device ones cannot without a sync.
    if (reference.device_kind == TK_DEVICE_CPU)
        for (int64_t t = 0; t < plan.frames; ++t) {
            const int64_t r = tk::host_index(reference, t);
            require(r >= -1 && r < plan.frames, [&] { return "reference[" + std::to_string(t) + "]"; },
                    [&] { return "a frame in [0, " + std::to_string(plan.frames) + ") (T of x), or -1 (none)"; }, number(r));
        }
    plan.reference = tk::strided(reference);
    plan.reference_rule = tk::TemporalReference::kTensor;
    return plan;
}

std::string double_text(double value) {
    char text[32];
    std::snprintf(text, sizeof text, "%.17g", value);
    return text;
}

// What the video methods' params have in common: a rate (EVS's pruning_rate q, DyCoke's
// merging_ratio, VidCom2's retention_ratio) and the frame grid; VidCom2's channel ratio and temperature.
struct VideoParams {
    tk::VideoMethod method;
    double rate;
    int32_t height;
    int32_t width;
    double channel_ratio = 0.0;
    double temperature = 0.0;
};

VideoParams require_params(const tk_evs_params* params) {
    require(params != nullptr, "params", "a tk_evs_params", null_text);
    const double q = params->pruning_rate;
    require(q >= 0.0 && q < 1.0, "params->pruning_rate", "q in [0, 1) (the fraction of tokens pruned)",
            [&] { return double_text(q); });
    return {tk::VideoMethod::kEvs, q, params->height, params->width};
}

VideoParams require_params(const tk_dycoke_params* params) {
    require(params != nullptr, "params", "a tk_dycoke_params", null_text);
    const double ratio = params->merging_ratio;
    require(ratio >= 0.0 && ratio <= 1.0, "params->merging_ratio",
            "a ratio in [0, 1] (the fraction of a compared frame's tokens dropped)", [&] { return double_text(ratio); });
    return {tk::VideoMethod::kDyCoke, ratio, params->height, params->width};
}

VideoParams require_params(const tk_vidcom2_params* params) {
    require(params != nullptr, "params", "a tk_vidcom2_params", null_text);
    const double r = params->retention_ratio, channels = params->channel_ratio, temperature = params->temperature;
    require(r > 0.0 && r <= 1.0, "params->retention_ratio", "a ratio in (0, 1] (the fraction of tokens kept)",
            [&] { return double_text(r); });
    require(channels > 0.0 && channels <= 1.0, "params->channel_ratio",
            "a ratio in (0, 1] (the fraction of channels scored)", [&] { return double_text(channels); });
    // The op divides by temperature as a float32: it must stay positive and finite there too (1e-50
    // would round to 0, 1e39 to +inf). The cast is range-checked first.
    require(temperature > 0.0 && temperature <= std::numeric_limits<float>::max() && static_cast<float>(temperature) > 0.0f,
            "params->temperature", "a positive, finite float32 softmax temperature", [&] { return double_text(temperature); });
    return {tk::VideoMethod::kVidCom2, r, params->height, params->width, channels, temperature};
}

int64_t require_grid(const VideoParams& p) {
    require(p.height >= 1, "params->height", "a frame grid height of at least 1", number(p.height));
    require(p.width >= 1, "params->width", "a frame grid width of at least 1", number(p.width));
    return int64_t{p.height} * p.width;
}

int64_t retained_tokens(const VideoParams& p, int64_t frames, int64_t positions) {
    switch (p.method) {
        case tk::VideoMethod::kEvs: return tk::evs_retained_tokens(frames, positions, p.rate);
        case tk::VideoMethod::kDyCoke: return tk::dycoke_retained_tokens(frames, positions, p.rate);
        default: return tk::vidcom2_retained_tokens(frames, positions, p.rate);
    }
}

tk::VideoSelectionPlan make_selection_plan(const VideoParams& params, const tk_tensor* x_ptr) {
    const int64_t grid = require_grid(params);
    const tk_tensor& x = require_video(x_ptr);
    require(x.shape[2] == grid, "x.shape[2]",
            [&] { return std::to_string(grid) + " (P = params->height * params->width = " + std::to_string(params.height) +
                         " * " + std::to_string(params.width) + ")"; },
            number(x.shape[2]));
    require(x.shape[1] >= 1, "x.shape[1]", "at least 1 frame (T)", number(x.shape[1]));
    tk::VideoSelectionPlan plan{};
    plan.method = params.method;
    plan.similarity = make_similarity_plan(x, nullptr);
    if (params.method == tk::VideoMethod::kEvs) {
        plan.similarity.score = tk::TemporalScore::kOneMinusCosine;
    } else if (params.method == tk::VideoMethod::kDyCoke) {
        plan.similarity.reference_rule = tk::TemporalReference::kDyCokeWindows;
        plan.similarity.score = tk::TemporalScore::kNegativeCosine;
        plan.frame_keeps = tk::dycoke_frame_keeps_of(grid, params.rate);
    } else {
        require(x.shape[3] >= 1 && x.shape[3] <= std::numeric_limits<int32_t>::max(), "x.shape[3]",
                "1 to 2147483647 channels (C; the scored ones are i32 indices)", number(x.shape[3]));
        plan.scored_channels = tk::vidcom2_scored_channels(x.shape[3], params.channel_ratio);
        plan.retention_ratio = static_cast<float>(params.rate);
        plan.temperature = static_cast<float>(params.temperature);
    }
    plan.retained = retained_tokens(params, x.shape[1], grid);
    plan.height = params.height;
    plan.width = params.width;
    return plan;
}

// Outputs of the video methods, each optional; none overlaps x or another output.
void attach_outputs(tk::VideoSelectionPlan& plan, const tk_tensor& x, const tk_tensor* out, const tk_tensor* indices,
                    const tk_tensor* positions, const tk_tensor* mask) {
    const int64_t batch = plan.similarity.batch;
    const int64_t tokens = plan.similarity.frames * plan.similarity.positions;
    tk::NamedTensors written{{&x, "x"}};
    if (out != nullptr) {
        const int64_t shape[3] = {batch, plan.retained, plan.similarity.channels};
        tk::require_channels_contiguous(
            tk::require_output(out, "out", 3, shape, "[B, K, C]", x.dtype, x, "x", written), "out");
        // The kept rows are gathered as tokens of a [B, T * P, C] view of x. (An empty x may have any
        // strides, and has no rows to gather.)
        const bool frames_follow = tk::numel(x) == 0 || x.shape[1] == 1 || x.shape[2] == 1 ||
                                   x.strides[1] == x.shape[2] * x.strides[2];
        require(frames_follow, "x.strides[1]",
                [&] { return "P * x.strides[2] = " + std::to_string(x.shape[2] * x.strides[2]) +
                             " (frames one after another, as a [B, T * P, C] view has them) when out is given"; },
                number(x.strides[1]));
        plan.out = tk::strided(*out);
        const tk::StridedTensor video = tk::strided(x);  // the backend's view: non-null even when empty
        plan.tokens = tk::StridedTensor{video.data, video.dtype, {video.strides[0], video.strides[x.shape[2] == 1 ? 1 : 2], 1, 0}};
        written.emplace_back(out, "out");
    }
    if (indices != nullptr) {
        const int64_t shape[2] = {batch, plan.retained};
        plan.indices = tk::strided(tk::require_output(indices, "indices", 2, shape, "[B, K]", TK_DTYPE_I32, x, "x", written));
        written.emplace_back(indices, "indices");
    }
    if (positions != nullptr) {
        const int64_t shape[3] = {batch, plan.retained, 3};
        plan.positions =
            tk::strided(tk::require_output(positions, "positions", 3, shape, "[B, K, 3]", TK_DTYPE_I32, x, "x", written));
        written.emplace_back(positions, "positions");
    }
    if (mask != nullptr) {
        const int64_t shape[2] = {batch, tokens};
        plan.mask = tk::strided(tk::require_output(mask, "mask", 2, shape, "[B, T * P]", TK_DTYPE_I32, x, "x", written));
    }
}

void query_retained_tokens(const VideoParams& params, int64_t frames, int64_t* retained) {
    const int64_t grid = require_grid(params);
    require(retained != nullptr, "retained", "a pointer to receive K", null_text);
    require(frames >= 1, "frames", "at least 1 frame (T)", number(frames));
    require(frames <= std::numeric_limits<int32_t>::max() / grid, "frames",
            [&] { return "T * P (P = " + std::to_string(grid) + ") of at most 2147483647 tokens (i32 indices)"; },
            number(frames));
    *retained = retained_tokens(params, frames, grid);
}

void query_workspace(const VideoParams& params, const tk_tensor* x, uint64_t* bytes) {
    require(bytes != nullptr, "bytes", "a pointer to receive the workspace size", null_text);
    *bytes = tk::video_selection_layout(make_selection_plan(params, x)).total;
}

struct VideoOutputs {
    const tk_tensor* out;
    const tk_tensor* indices;
    const tk_tensor* positions;
    const tk_tensor* mask;
};

void select_video_tokens(const VideoParams& params, const char* query, const tk_tensor* x, const VideoOutputs& o,
                         void* workspace, uint64_t workspace_bytes, tk_stream stream) {
    tk::VideoSelectionPlan plan = make_selection_plan(params, x);
    attach_outputs(plan, *x, o.out, o.indices, o.positions, o.mask);
    tk::require_workspace(workspace, workspace_bytes, tk::video_selection_layout(plan).total, *x, query,
                          {{x, "x"}, {o.out, "out"}, {o.indices, "indices"}, {o.positions, "positions"}, {o.mask, "mask"}});
    if (plan.similarity.batch * plan.similarity.positions == 0) return;
    if (x->device_kind == TK_DEVICE_CPU) {
        tk::cpu::select_video_tokens(plan, workspace);
    } else {
        tk::cuda::require_stream_of_device(stream, plan.similarity.device_ordinal);
        tk::cuda::select_video_tokens(plan, workspace, stream);
    }
}

// ---- FrameFusion ----------------------------------------------------------------------------------

tk::FrameFusionPlan make_framefusion_plan(const tk_framefusion_params* params, const tk_tensor* x_ptr) {
    require(params != nullptr, "params", "a tk_framefusion_params", null_text);
    require(!std::isnan(params->similarity_threshold), "params->similarity_threshold", "a number",
            [] { return std::string("NaN"); });
    require(params->max_merges >= -1, "params->max_merges", "-1 (no cap) or a merge count of 0 or more",
            number(params->max_merges));
    const tk_tensor& x = require_video(x_ptr);
    tk::FrameFusionPlan plan{};
    plan.similarity = make_similarity_plan(x, nullptr);
    plan.threshold = params->similarity_threshold;
    // A cap at or above an item's tokens caps nothing, but still ranks them.
    const int64_t tokens = x.shape[1] * x.shape[2];
    plan.max_merges = params->max_merges < 0 ? -1 : std::min<int64_t>(params->max_merges, tokens);
    return plan;
}

// out [B, T * P, C], merge_count [B] (both required), out_size and source_map [B, T * P] (optional);
// none overlaps x or another output.
void attach_framefusion_outputs(tk::FrameFusionPlan& plan, const tk_tensor& x, const tk_tensor* out, const tk_tensor* out_size,
                                const tk_tensor* source_map, const tk_tensor* merge_count) {
    const int64_t batch = plan.similarity.batch;
    const int64_t tokens = plan.similarity.frames * plan.similarity.positions;
    tk::NamedTensors written{{&x, "x"}};
    const int64_t out_shape[3] = {batch, tokens, plan.similarity.channels};
    const tk_tensor& out_tensor = tk::require_output(out, "out", 3, out_shape, "[B, T * P, C]", x.dtype, x, "x", written);
    tk::require_channels_contiguous(out_tensor, "out");
    plan.out = tk::strided(out_tensor);
    written.emplace_back(out, "out");
    require(merge_count != nullptr, "merge_count", "a [B] i32 tensor to receive the per-item merge counts", null_text);
    plan.merge_count = tk::strided(tk::require_output(merge_count, "merge_count", 1, &batch, "[B]", TK_DTYPE_I32, x, "x", written));
    written.emplace_back(merge_count, "merge_count");
    const int64_t map_shape[2] = {batch, tokens};
    if (out_size != nullptr) {
        plan.out_size = tk::strided(tk::require_output(out_size, "out_size", 2, map_shape, "[B, T * P]", TK_DTYPE_F32, x, "x", written));
        written.emplace_back(out_size, "out_size");
    }
    if (source_map != nullptr)
        plan.source_map =
            tk::strided(tk::require_output(source_map, "source_map", 2, map_shape, "[B, T * P]", TK_DTYPE_I32, x, "x", written));
}

}  // namespace

extern "C" {

TK_API tk_status tk_temporal_similarity(const tk_tensor* x, const tk_tensor* reference, const tk_tensor* out,
                                        tk_stream stream) {
    return tk::api_call([&] {
        const tk_tensor& video = require_video(x);
        tk::TemporalSimilarityPlan plan = make_similarity_plan(video, reference);
        const int64_t shape[3] = {plan.batch, plan.frames, plan.positions};
        plan.out = tk::strided(tk::require_output(out, "out", 3, shape, "[B, T, P]", TK_DTYPE_F32, video, "x",
                                                  {{x, "x"}, {reference, "reference"}}));
        if (plan.batch * plan.frames * plan.positions == 0) return;
        if (video.device_kind == TK_DEVICE_CPU) {
            tk::cpu::temporal_similarity(plan);
        } else {
            tk::cuda::require_stream_of_device(stream, plan.device_ordinal);
            tk::cuda::temporal_similarity(plan, stream);
        }
    });
}

TK_API tk_status tk_evs_retained_tokens(const tk_evs_params* params, int64_t frames, int64_t* retained) {
    return tk::api_call([&] { query_retained_tokens(require_params(params), frames, retained); });
}

TK_API tk_status tk_evs_workspace_size(const tk_evs_params* params, const tk_tensor* x, uint64_t* bytes) {
    return tk::api_call([&] { query_workspace(require_params(params), x, bytes); });
}

TK_API tk_status tk_evs(const tk_evs_params* params, const tk_tensor* x, const tk_tensor* out, const tk_tensor* indices,
                        const tk_tensor* positions, const tk_tensor* mask, void* workspace, uint64_t workspace_bytes,
                        tk_stream stream) {
    return tk::api_call([&] {
        select_video_tokens(require_params(params), "tk_evs_workspace_size", x, {out, indices, positions, mask},
                            workspace, workspace_bytes, stream);
    });
}

TK_API tk_status tk_dycoke_retained_tokens(const tk_dycoke_params* params, int64_t frames, int64_t* retained) {
    return tk::api_call([&] { query_retained_tokens(require_params(params), frames, retained); });
}

TK_API tk_status tk_dycoke_workspace_size(const tk_dycoke_params* params, const tk_tensor* x, uint64_t* bytes) {
    return tk::api_call([&] { query_workspace(require_params(params), x, bytes); });
}

TK_API tk_status tk_dycoke_ttm(const tk_dycoke_params* params, const tk_tensor* x, const tk_tensor* out,
                               const tk_tensor* indices, const tk_tensor* positions, const tk_tensor* mask, void* workspace,
                               uint64_t workspace_bytes, tk_stream stream) {
    return tk::api_call([&] {
        select_video_tokens(require_params(params), "tk_dycoke_workspace_size", x, {out, indices, positions, mask},
                            workspace, workspace_bytes, stream);
    });
}

TK_API tk_status tk_vidcom2_retained_tokens(const tk_vidcom2_params* params, int64_t frames, int64_t* retained) {
    return tk::api_call([&] { query_retained_tokens(require_params(params), frames, retained); });
}

TK_API tk_status tk_vidcom2_workspace_size(const tk_vidcom2_params* params, const tk_tensor* x, uint64_t* bytes) {
    return tk::api_call([&] { query_workspace(require_params(params), x, bytes); });
}

TK_API tk_status tk_vidcom2(const tk_vidcom2_params* params, const tk_tensor* x, const tk_tensor* out, const tk_tensor* indices,
                            const tk_tensor* positions, const tk_tensor* mask, void* workspace, uint64_t workspace_bytes,
                            tk_stream stream) {
    return tk::api_call([&] {
        select_video_tokens(require_params(params), "tk_vidcom2_workspace_size", x, {out, indices, positions, mask},
                            workspace, workspace_bytes, stream);
    });
}

TK_API tk_status tk_framefusion_workspace_size(const tk_framefusion_params* params, const tk_tensor* x, uint64_t* bytes) {
    return tk::api_call([&] {
        require(bytes != nullptr, "bytes", "a pointer to receive the workspace size", null_text);
        *bytes = tk::framefusion_layout(make_framefusion_plan(params, x)).total;
    });
}

TK_API tk_status tk_framefusion_merge(const tk_framefusion_params* params, const tk_tensor* x, const tk_tensor* out,
                                      const tk_tensor* out_size, const tk_tensor* source_map, const tk_tensor* merge_count,
                                      void* workspace, uint64_t workspace_bytes, tk_stream stream) {
    return tk::api_call([&] {
        tk::FrameFusionPlan plan = make_framefusion_plan(params, x);
        attach_framefusion_outputs(plan, *x, out, out_size, source_map, merge_count);
        tk::require_workspace(workspace, workspace_bytes, tk::framefusion_layout(plan).total, *x, "tk_framefusion_workspace_size",
                              {{x, "x"}, {out, "out"}, {out_size, "out_size"}, {source_map, "source_map"}, {merge_count, "merge_count"}});
        if (plan.similarity.batch == 0) return;
        if (x->device_kind == TK_DEVICE_CPU) {
            tk::cpu::framefusion_merge(plan, workspace);
        } else {
            tk::cuda::require_stream_of_device(stream, plan.similarity.device_ordinal);
            tk::cuda::framefusion_merge(plan, workspace, stream);
        }
    });
}

}  // extern "C"
