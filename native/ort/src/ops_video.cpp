// The video methods, one C ABI call each (VideoPruning): EVS, DyCoke's TTM and VidCom2 select tokens,
// FrameFusion merges them into the previous frame. A video is x [B, T, H, W, C], so the frame grid
// comes from the shape; the C ABI reads it as [B, T, H * W, C].
#include <cmath>
#include <limits>
#include <optional>

#include "node.hpp"
#include "ops.hpp"

namespace tk_ort {

namespace {

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

// The C ABI's video view [B, T, P, C] of x [B, T, H, W, C] (contiguous, so P = H * W merges).
struct Video {
    tk_tensor x;
    int64_t batch, frames, height, width, channels;
};

Video read_video(NodeKernel::Run& run) {
    const std::vector<int64_t> shape = run.input_shape(0, 5, "[B, T, H, W, C]");
    if (shape[2] > kInt32Max || shape[3] > kInt32Max)
        run.fail_input(0, "a frame grid H x W of at most 2147483647 each, got shape " + shape_text(shape));
    const tk_tensor x = run.input(0);
    return {reshaped(x, {shape[0], shape[1], shape[2] * shape[3], shape[4]}), shape[0], shape[1], shape[2], shape[3], shape[4]};
}

// The C functions of a video selection method, for messages.
struct VideoFunctions {
    const char* retained;
    const char* workspace_size;
    const char* select;
};

// EVS, DyCoke's TTM and VidCom2: a fixed count K of kept tokens per item (the *_retained_tokens
// query), the same four outputs. The kernel keeps the rates; each run sets the grid in its own copy,
// as runs of one kernel may overlap on several threads.
template <class Params, tk_status (*Retained)(const Params*, int64_t, int64_t*),
          tk_status (*WorkspaceSize)(const Params*, const tk_tensor*, uint64_t*),
          tk_status (*Select)(const Params*, const tk_tensor*, const tk_tensor*, const tk_tensor*, const tk_tensor*,
                              const tk_tensor*, void*, uint64_t, tk_stream)>
class VideoSelectionKernel final : public NodeKernel {
public:
    VideoSelectionKernel(const KernelSetup& setup, const Params& params, VideoFunctions functions)
        : NodeKernel(setup), params_(params), functions_(functions) {
        // The rates, checked by the C ABI's count query on a one-token grid.
        Params probe = params_;
        probe.height = 1;
        probe.width = 1;
        int64_t count = 0;
        name().check_attributes(Retained(&probe, 1, &count), functions_.retained);
    }

protected:
    void compute(Run& run) override {
        const Video video = read_video(run);
        Params params = params_;
        params.height = static_cast<int32_t>(video.height);
        params.width = static_cast<int32_t>(video.width);
        int64_t kept = 0;
        run.check(Retained(&params, video.frames, &kept), functions_.retained);
        const int64_t tokens = video.frames * video.height * video.width;
        const tk_tensor out = run.output(0, {video.batch, kept, video.channels}, video.x.dtype);
        const Int64Indices indices = run.int64_output(1, {video.batch, kept});
        const Int64Indices positions = run.int64_output(2, {video.batch, kept, 3});
        tk_tensor mask_storage;
        const tk_tensor* mask = run.optional_output(3, {video.batch, tokens}, TK_DTYPE_I32, mask_storage);
        uint64_t bytes = 0;
        run.check(WorkspaceSize(&params, &video.x, &bytes), functions_.workspace_size);
        void* workspace = run.scratch(bytes);
        run.check(Select(&params, &video.x, &out, indices.present ? &indices.as_i32 : nullptr,
                         positions.present ? &positions.as_i32 : nullptr, mask, workspace, bytes, run.stream()),
                  functions_.select);
    }

private:
    Params params_;
    VideoFunctions functions_;
};

std::unique_ptr<NodeKernel> make_evs(const KernelSetup& setup) {
    const Attributes a(setup);
    tk_evs_params params{};
    params.pruning_rate = a.real("video_pruning_rate", 0.75f);
    return std::make_unique<VideoSelectionKernel<tk_evs_params, tk_evs_retained_tokens, tk_evs_workspace_size, tk_evs>>(
        setup, params, VideoFunctions{"tk_evs_retained_tokens", "tk_evs_workspace_size", "tk_evs"});
}

std::unique_ptr<NodeKernel> make_dycoke(const KernelSetup& setup) {
    const Attributes a(setup);
    tk_dycoke_params params{};
    params.merging_ratio = a.real("merging_ratio", 0.7f);
    return std::make_unique<VideoSelectionKernel<tk_dycoke_params, tk_dycoke_retained_tokens, tk_dycoke_workspace_size, tk_dycoke_ttm>>(
        setup, params, VideoFunctions{"tk_dycoke_retained_tokens", "tk_dycoke_workspace_size", "tk_dycoke_ttm"});
}

std::unique_ptr<NodeKernel> make_vidcom2(const KernelSetup& setup) {
    const Attributes a(setup);
    tk_vidcom2_params params{};
    params.retention_ratio = a.real("retention_ratio", 0.25f);
    params.channel_ratio = a.real("channel_ratio", 0.5f);
    params.temperature = a.real("temperature", 0.01f);
    return std::make_unique<VideoSelectionKernel<tk_vidcom2_params, tk_vidcom2_retained_tokens, tk_vidcom2_workspace_size, tk_vidcom2>>(
        setup, params, VideoFunctions{"tk_vidcom2_retained_tokens", "tk_vidcom2_workspace_size", "tk_vidcom2"});
}

// ---- FrameFusion ---------------------------------------------------------------------------------

// FrameFusion (thu-nics/FrameFusion): a token merges into the same position of the previous frame
// when their cosine is at least similarity_lower_bound. The count varies per item: tokens keeps a
// fixed capacity of T * H * W rows, merge_count (required, so it comes before the optional outputs)
// says how many of them item b lacks.
class FrameFusionKernel final : public NodeKernel {
public:
    explicit FrameFusionKernel(const KernelSetup& setup) : NodeKernel(setup) {
        const Attributes a(setup);
        params_.similarity_threshold = a.real("similarity_lower_bound", 0.6f);
        if (std::isnan(params_.similarity_threshold)) a.refuse("similarity_lower_bound", "a number", "NaN");
        params_.max_merges = a.integer_in("max_merges", -1, -1, kInt32Max);
    }

protected:
    void compute(Run& run) override {
        const Video video = read_video(run);
        const int64_t tokens = video.frames * video.height * video.width;
        const tk_tensor out = run.output(0, {video.batch, tokens, video.channels}, video.x.dtype);
        const tk_tensor merge_count = run.output(1, {video.batch}, TK_DTYPE_I32);
        tk_tensor out_size_storage;
        const tk_tensor* out_size = run.optional_output(2, {video.batch, tokens}, TK_DTYPE_F32, out_size_storage);
        const Int64Indices source_map = run.int64_output(3, {video.batch, tokens});
        uint64_t bytes = 0;
        run.check(tk_framefusion_workspace_size(&params_, &video.x, &bytes), "tk_framefusion_workspace_size");
        void* workspace = run.scratch(bytes);
        run.check(tk_framefusion_merge(&params_, &video.x, &out, out_size, source_map.present ? &source_map.as_i32 : nullptr,
                                       &merge_count, workspace, bytes, run.stream()),
                  "tk_framefusion_merge");
    }

private:
    tk_framefusion_params params_{};
};

std::unique_ptr<NodeKernel> make_framefusion(const KernelSetup& setup) { return std::make_unique<FrameFusionKernel>(setup); }

}  // namespace

void add_video_ops(std::vector<OpSpec>& ops) {
    using K = ValueKind;
    const std::vector<IoSpec> selection_outputs = {
        {"tokens", K::kFeatures}, {"kept_positions", K::kInt64, true}, {"grid_positions", K::kInt64, true}, {"mask", K::kInt32, true}};
    ops.push_back({"EVS", {{"x", K::kFeatures}}, selection_outputs, make_evs});
    ops.push_back({"DyCoke", {{"x", K::kFeatures}}, selection_outputs, make_dycoke});
    ops.push_back({"VidCom2", {{"x", K::kFeatures}}, selection_outputs, make_vidcom2});
    ops.push_back({"FrameFusion",
                   {{"x", K::kFeatures}},
                   {{"tokens", K::kFeatures}, {"merge_count", K::kInt32}, {"sizes", K::kFloat32, true}, {"source_map", K::kInt64, true}},
                   make_framefusion});
}

}  // namespace tk_ort
