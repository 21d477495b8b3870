// Every class of invalid temporal-redundancy argument (SPEC section 5, "Errors"): the status, a
// message naming the argument, and no byte written to any tensor, for tk_temporal_similarity, the
// video methods (tk_evs, tk_dycoke_ttm, tk_vidcom2, tk_framefusion_merge) and their queries.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "support.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tkt {
namespace {

// x [B, T, P, C] over a [B, T * P, C] array.
tk_tensor video_of(const HostArray& tokens, int64_t frames) {
    tk_tensor t = tokens.desc();
    const int64_t positions = t.shape[1] / frames;
    t.rank = 4;
    t.shape[3] = t.shape[2];
    t.strides[3] = t.strides[2];
    t.shape[2] = positions;
    t.strides[2] = t.strides[1];
    t.shape[1] = frames;
    t.strides[1] = positions * t.strides[2];
    return t;
}

// x [2, 3, 6, 5] f32 (a 2 x 3 grid), reference {-1, 0, 0}: out [2, 3, 6] f32.
struct SimilarityCall {
    HostArray x_array{TK_DTYPE_F32, {2, 18, 5}};
    HostArray reference_array{TK_DTYPE_I32, {3}};
    HostArray out_array{TK_DTYPE_F32, {2, 3, 6}};
    tk_tensor x{}, reference{}, out{};
    bool null_x = false, null_out = false, pass_reference = true;

    SimilarityCall() {
        fill_values(x_array);
        reference_array.set(0, 0, 0, -1);
        reference_array.set(1, 0, 0, 0);
        reference_array.set(2, 0, 0, 0);
        out_array.fill_bytes(0xA5);
        x = video_of(x_array, 3);
        reference = reference_array.desc();
        out = out_array.desc();
    }
    std::vector<const HostArray*> arrays() const { return {&x_array, &reference_array, &out_array}; }
    tk_status run() const {
        return tk_temporal_similarity(null_x ? nullptr : &x, pass_reference ? &reference : nullptr, null_out ? nullptr : &out,
                                      nullptr);
    }
};

using SimilarityInvalidCase = InvalidCase<SimilarityCall>;

std::vector<SimilarityInvalidCase> similarity_cases() {
    return {
        {"NullX", [](SimilarityCall& c) { c.null_x = true; }, "x"},
        {"NullOut", [](SimilarityCall& c) { c.null_out = true; }, "out"},
        {"XRank3", [](SimilarityCall& c) { c.x = c.x_array.desc(); }, "x"},
        {"XIntegerDtype", [](SimilarityCall& c) { c.x.dtype = TK_DTYPE_I32; }, "x"},
        {"XChannelsStrided", [](SimilarityCall& c) { c.x.strides[3] = 2; c.x.shape[3] = 2; }, "x"},
        {"OutWrongFrames", [](SimilarityCall& c) { c.out.shape[1] = 2; }, "out.shape[1]"},
        {"OutF16", [](SimilarityCall& c) { c.out.dtype = TK_DTYPE_F16; }, "out.dtype"},
        {"OutOverX", [](SimilarityCall& c) { c.out.data = c.x.data; }, "out"},
        {"ReferenceTooLong", [](SimilarityCall& c) { c.reference.shape[0] = 4; }, "reference"},
        {"ReferenceI64", [](SimilarityCall& c) { c.reference.dtype = TK_DTYPE_I64; c.reference.shape[0] = 1; }, "reference"},
        {"ReferencePastTheFrames", [](SimilarityCall& c) { c.reference_array.set(2, 0, 0, 3); }, "reference[2]"},
        {"ReferenceBelowNone", [](SimilarityCall& c) { c.reference_array.set(1, 0, 0, -2); }, "reference[1]"},
    };
}

class TemporalSimilarityInvalid : public ::testing::TestWithParam<SimilarityInvalidCase> {};
TEST_P(TemporalSimilarityInvalid, IsRejectedWithoutWriting) { check_invalid(GetParam()); }
INSTANTIATE_TEST_SUITE_P(Temporal, TemporalSimilarityInvalid, ::testing::ValuesIn(similarity_cases()), case_name<SimilarityCall>);

// x [2, 3, 6, 5] f32 on a 2 x 3 grid, q = 0.5: K = max(6, int(18 * 0.5)) = 9; out [2, 9, 5],
// indices [2, 9], positions [2, 9, 3], mask [2, 18].
struct EvsCall {
    HostArray x_array{TK_DTYPE_F32, {2, 18, 5}};
    HostArray out_array{TK_DTYPE_F32, {2, 9, 5}};
    HostArray indices_array{TK_DTYPE_I32, {2, 9}};
    HostArray positions_array{TK_DTYPE_I32, {2, 9, 3}};
    HostArray mask_array{TK_DTYPE_I32, {2, 18}};
    tk_evs_params params{0.5, 2, 3};
    // DyCoke on the same call: merging_ratio 0.5 keeps 6 + 3 + 3 = 12 tokens of 3 frames of 6.
    bool dycoke = false;
    tk_dycoke_params dycoke_params{0.5, 2, 3};
    // VidCom2 on the same call: retention_ratio 0.5 keeps max(3, int(18 * 0.5)) = 9, EVS's outputs.
    bool vidcom2 = false;
    tk_vidcom2_params vidcom2_params{0.5, 0.5, 0.01, 2, 3};
    tk_tensor x{}, out{}, indices{}, positions{}, mask{};
    bool null_params = false, null_x = false;
    uint64_t workspace_bytes = 0;
    mutable std::vector<uint8_t> workspace;  // passed when not empty

    EvsCall() {
        fill_values(x_array);
        for (HostArray* a : {&out_array, &indices_array, &positions_array, &mask_array}) a->fill_bytes(0xA5);
        x = video_of(x_array, 3);
        out = out_array.desc();
        indices = indices_array.desc();
        positions = positions_array.desc();
        mask = mask_array.desc();
    }
    std::vector<const HostArray*> arrays() const { return {&x_array, &out_array, &indices_array, &positions_array, &mask_array}; }
    // Switches the call to tk_dycoke_ttm, its outputs sized for K = 12.
    void use_dycoke() {
        dycoke = true;
        out.shape[1] = 12;
        indices.shape[1] = 12;
        positions.shape[1] = 12;
        out.strides[0] = 12 * 5;
        indices.strides[0] = 12;
        positions.strides[0] = 12 * 3;
        out_array = HostArray(TK_DTYPE_F32, {2, 12, 5});
        indices_array = HostArray(TK_DTYPE_I32, {2, 12});
        positions_array = HostArray(TK_DTYPE_I32, {2, 12, 3});
        for (HostArray* a : {&out_array, &indices_array, &positions_array}) a->fill_bytes(0xA5);
        out = out_array.desc();
        indices = indices_array.desc();
        positions = positions_array.desc();
    }
    tk_status run() const {
        void* w = workspace.empty() ? nullptr : workspace.data();
        if (vidcom2)
            return tk_vidcom2(null_params ? nullptr : &vidcom2_params, null_x ? nullptr : &x, &out, &indices, &positions, &mask, w,
                              workspace_bytes, nullptr);
        if (dycoke)
            return tk_dycoke_ttm(null_params ? nullptr : &dycoke_params, null_x ? nullptr : &x, &out, &indices, &positions,
                                 &mask, w, workspace_bytes, nullptr);
        return tk_evs(null_params ? nullptr : &params, null_x ? nullptr : &x, &out, &indices, &positions, &mask, w,
                      workspace_bytes, nullptr);
    }
};

using EvsInvalidCase = InvalidCase<EvsCall>;

std::vector<EvsInvalidCase> evs_cases() {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    return {
        {"NullParams", [](EvsCall& c) { c.null_params = true; }, "params"},
        {"NullX", [](EvsCall& c) { c.null_x = true; }, "x"},
        {"RateOne", [](EvsCall& c) { c.params.pruning_rate = 1.0; }, "params->pruning_rate"},
        {"RateNegative", [](EvsCall& c) { c.params.pruning_rate = -0.1; }, "params->pruning_rate"},
        {"RateNan", [nan](EvsCall& c) { c.params.pruning_rate = nan; }, "params->pruning_rate"},
        {"HeightZero", [](EvsCall& c) { c.params.height = 0; }, "params->height"},
        {"WidthNegative", [](EvsCall& c) { c.params.width = -3; }, "params->width"},
        {"GridNotP", [](EvsCall& c) { c.params.width = 4; }, "x.shape[2]"},
        {"NoFrames", [](EvsCall& c) { c.x.shape[1] = 0; }, "x.shape[1]"},
        {"OutTooFewRows", [](EvsCall& c) { c.out.shape[1] = 8; }, "out.shape[1]"},
        {"OutOtherDtype", [](EvsCall& c) { c.out.dtype = TK_DTYPE_F16; }, "out.dtype"},
        {"IndicesI64", [](EvsCall& c) { c.indices.dtype = TK_DTYPE_I64; }, "indices.dtype"},
        {"PositionsTwoColumns", [](EvsCall& c) { c.positions.shape[2] = 2; }, "positions.shape[2]"},
        {"MaskPerFrame", [](EvsCall& c) { c.mask.shape[1] = 6; }, "mask.shape[1]"},
        {"IndicesOverOut", [](EvsCall& c) { c.indices.data = c.out.data; }, "indices"},
        {"MaskOverX", [](EvsCall& c) { c.mask.data = c.x.data; c.mask.dtype = TK_DTYPE_I32; }, "mask"},
        {"FramesApartWithOut",
         [](EvsCall& c) {
             c.x.shape[1] = 2;  // frames 0 and 2 of the three: not one after another
             c.x.strides[1] *= 2;
             c.params.pruning_rate = 0.25;  // K = int(12 * 0.75) = 9 again
         },
         "x.strides[1]"},
        {"WorkspaceTooSmall",
         [](EvsCall& c) {
             c.workspace.assign(64, 0);
             c.workspace_bytes = 64;
         },
         "workspace"},
        {"DyCokeNullParams", [](EvsCall& c) { c.use_dycoke(); c.null_params = true; }, "params"},
        {"DyCokeRatioAboveOne", [](EvsCall& c) { c.use_dycoke(); c.dycoke_params.merging_ratio = 1.5; }, "params->merging_ratio"},
        {"DyCokeRatioNegative", [](EvsCall& c) { c.use_dycoke(); c.dycoke_params.merging_ratio = -0.25; }, "params->merging_ratio"},
        {"DyCokeRatioNan", [nan](EvsCall& c) { c.use_dycoke(); c.dycoke_params.merging_ratio = nan; }, "params->merging_ratio"},
        {"DyCokeGridNotP", [](EvsCall& c) { c.use_dycoke(); c.dycoke_params.height = 3; }, "x.shape[2]"},
        {"DyCokeOutSizedForEvs", [](EvsCall& c) { c.use_dycoke(); c.out.shape[1] = 9; }, "out.shape[1]"},
        {"DyCokeNoFrames", [](EvsCall& c) { c.use_dycoke(); c.x.shape[1] = 0; }, "x.shape[1]"},
        {"DyCokeWorkspaceTooSmall",
         [](EvsCall& c) {
             c.use_dycoke();
             c.workspace.assign(100, 0);
             c.workspace_bytes = 100;
         },
         "workspace"},
        {"VidCom2NullParams", [](EvsCall& c) { c.vidcom2 = true; c.null_params = true; }, "params"},
        {"VidCom2NullX", [](EvsCall& c) { c.vidcom2 = true; c.null_x = true; }, "x"},
        {"VidCom2RetentionZero", [](EvsCall& c) { c.vidcom2 = true; c.vidcom2_params.retention_ratio = 0.0; }, "params->retention_ratio"},
        {"VidCom2RetentionNegative", [](EvsCall& c) { c.vidcom2 = true; c.vidcom2_params.retention_ratio = -0.1; }, "params->retention_ratio"},
        {"VidCom2RetentionAboveOne", [](EvsCall& c) { c.vidcom2 = true; c.vidcom2_params.retention_ratio = 1.5; }, "params->retention_ratio"},
        {"VidCom2RetentionNan", [nan](EvsCall& c) { c.vidcom2 = true; c.vidcom2_params.retention_ratio = nan; }, "params->retention_ratio"},
        {"VidCom2ChannelRatioZero", [](EvsCall& c) { c.vidcom2 = true; c.vidcom2_params.channel_ratio = 0.0; }, "params->channel_ratio"},
        {"VidCom2ChannelRatioAboveOne", [](EvsCall& c) { c.vidcom2 = true; c.vidcom2_params.channel_ratio = 1.01; }, "params->channel_ratio"},
        {"VidCom2ChannelRatioNan", [nan](EvsCall& c) { c.vidcom2 = true; c.vidcom2_params.channel_ratio = nan; }, "params->channel_ratio"},
        {"VidCom2TemperatureZero", [](EvsCall& c) { c.vidcom2 = true; c.vidcom2_params.temperature = 0.0; }, "params->temperature"},
        {"VidCom2TemperatureNegative", [](EvsCall& c) { c.vidcom2 = true; c.vidcom2_params.temperature = -1.0; }, "params->temperature"},
        {"VidCom2TemperatureInfinite",
         [](EvsCall& c) { c.vidcom2 = true; c.vidcom2_params.temperature = std::numeric_limits<double>::infinity(); }, "params->temperature"},
        {"VidCom2TemperatureNan", [nan](EvsCall& c) { c.vidcom2 = true; c.vidcom2_params.temperature = nan; }, "params->temperature"},
        // Finite as a double, +inf as the float32 the op computes in.
        {"VidCom2TemperaturePastFloat", [](EvsCall& c) { c.vidcom2 = true; c.vidcom2_params.temperature = 1e39; }, "params->temperature"},
        // Positive as a double, 0 as the float32 the op divides by.
        {"VidCom2TemperatureBelowFloat", [](EvsCall& c) { c.vidcom2 = true; c.vidcom2_params.temperature = 1e-50; }, "params->temperature"},
        {"VidCom2HeightZero", [](EvsCall& c) { c.vidcom2 = true; c.vidcom2_params.height = 0; }, "params->height"},
        {"VidCom2WidthZero", [](EvsCall& c) { c.vidcom2 = true; c.vidcom2_params.width = 0; }, "params->width"},
        {"VidCom2GridNotP", [](EvsCall& c) { c.vidcom2 = true; c.vidcom2_params.width = 4; }, "x.shape[2]"},
        {"VidCom2NoFrames", [](EvsCall& c) { c.vidcom2 = true; c.x.shape[1] = 0; }, "x.shape[1]"},
        {"VidCom2NoChannels",
         [](EvsCall& c) {
             c.vidcom2 = true;
             c.x.shape[3] = 0;
             c.out.shape[2] = 0;
         },
         "x.shape[3]"},
        {"VidCom2OutSizedForDyCoke", [](EvsCall& c) { c.vidcom2 = true; c.out.shape[1] = 12; }, "out.shape[1]"},
        {"VidCom2MaskPerFrame", [](EvsCall& c) { c.vidcom2 = true; c.mask.shape[1] = 6; }, "mask.shape[1]"},
        {"VidCom2PositionsOverIndices", [](EvsCall& c) { c.vidcom2 = true; c.positions.data = c.indices.data; }, "positions"},
        {"VidCom2WorkspaceTooSmall",
         [](EvsCall& c) {
             c.vidcom2 = true;
             c.workspace.assign(200, 0);
             c.workspace_bytes = 200;
         },
         "workspace"},
    };
}

class EvsInvalid : public ::testing::TestWithParam<EvsInvalidCase> {};
TEST_P(EvsInvalid, IsRejectedWithoutWriting) { check_invalid(GetParam()); }
INSTANTIATE_TEST_SUITE_P(Temporal, EvsInvalid, ::testing::ValuesIn(evs_cases()), case_name<EvsCall>);

// x [2, 3, 6, 5] f32, threshold 0.6, no cap: out [2, 18, 5], out_size and source_map [2, 18], merge_count [2].
struct FrameFusionCall {
    HostArray x_array{TK_DTYPE_F32, {2, 18, 5}};
    HostArray out_array{TK_DTYPE_F32, {2, 18, 5}};
    HostArray out_size_array{TK_DTYPE_F32, {2, 18}};
    HostArray source_map_array{TK_DTYPE_I32, {2, 18}};
    HostArray merge_count_array{TK_DTYPE_I32, {2}};
    tk_framefusion_params params{0.6f, -1};
    tk_tensor x{}, out{}, out_size{}, source_map{}, merge_count{};
    bool null_params = false, null_out = false, null_count = false;
    uint64_t workspace_bytes = 0;
    mutable std::vector<uint8_t> workspace;

    FrameFusionCall() {
        fill_values(x_array);
        for (HostArray* a : {&out_array, &out_size_array, &source_map_array, &merge_count_array}) a->fill_bytes(0xA5);
        x = video_of(x_array, 3);
        out = out_array.desc();
        out_size = out_size_array.desc();
        source_map = source_map_array.desc();
        merge_count = merge_count_array.desc();
    }
    std::vector<const HostArray*> arrays() const {
        return {&x_array, &out_array, &out_size_array, &source_map_array, &merge_count_array};
    }
    tk_status run() const {
        return tk_framefusion_merge(null_params ? nullptr : &params, &x, null_out ? nullptr : &out, &out_size, &source_map,
                                    null_count ? nullptr : &merge_count, workspace.empty() ? nullptr : workspace.data(),
                                    workspace_bytes, nullptr);
    }
};

std::vector<InvalidCase<FrameFusionCall>> framefusion_cases() {
    return {
        {"NullParams", [](FrameFusionCall& c) { c.null_params = true; }, "params"},
        {"ThresholdNan", [](FrameFusionCall& c) { c.params.similarity_threshold = std::nanf(""); }, "params->similarity_threshold"},
        {"CapBelowNone", [](FrameFusionCall& c) { c.params.max_merges = -2; }, "params->max_merges"},
        {"NullOut", [](FrameFusionCall& c) { c.null_out = true; }, "out"},
        {"NullMergeCount", [](FrameFusionCall& c) { c.null_count = true; }, "merge_count"},
        {"OutOneFrameShort", [](FrameFusionCall& c) { c.out.shape[1] = 12; }, "out.shape[1]"},
        {"OutOtherDtype", [](FrameFusionCall& c) { c.out.dtype = TK_DTYPE_BF16; }, "out.dtype"},
        {"OutSizeI32", [](FrameFusionCall& c) { c.out_size.dtype = TK_DTYPE_I32; }, "out_size.dtype"},
        {"SourceMapPerFrame", [](FrameFusionCall& c) { c.source_map.shape[1] = 6; }, "source_map.shape[1]"},
        {"MergeCountTwoColumns", [](FrameFusionCall& c) { c.merge_count.rank = 2; c.merge_count.shape[1] = 1; c.merge_count.strides[1] = 1; }, "merge_count"},
        {"SourceMapOverOut", [](FrameFusionCall& c) { c.source_map.data = c.out.data; }, "source_map"},
        {"OutOverX", [](FrameFusionCall& c) { c.out.data = c.x.data; }, "out"},
        {"WorkspaceTooSmall",
         [](FrameFusionCall& c) {
             c.workspace.assign(64, 0);
             c.workspace_bytes = 64;
         },
         "workspace"},
    };
}

class FrameFusionInvalid : public ::testing::TestWithParam<InvalidCase<FrameFusionCall>> {};
TEST_P(FrameFusionInvalid, IsRejectedWithoutWriting) { check_invalid(GetParam()); }
INSTANTIATE_TEST_SUITE_P(Temporal, FrameFusionInvalid, ::testing::ValuesIn(framefusion_cases()), case_name<FrameFusionCall>);

TEST(EvsInvalidQueries, NameTheirArgument) {
    const tk_evs_params params{0.5, 27, 27};
    int64_t retained = -7;
    expect_rejected(tk_evs_retained_tokens(nullptr, 4, &retained), "params");
    expect_rejected(tk_evs_retained_tokens(&params, 4, nullptr), "retained");
    expect_rejected(tk_evs_retained_tokens(&params, 0, &retained), "frames");
    expect_rejected(tk_evs_retained_tokens(&params, int64_t{1} << 40, &retained), "frames");
    const tk_evs_params bad{1.5, 27, 27};
    expect_rejected(tk_evs_retained_tokens(&bad, 4, &retained), "params->pruning_rate");
    EXPECT_EQ(retained, -7);
    // 64 frames of 27 x 27 at q = 0.75: int(46656 * 0.25) = 11664.
    const tk_evs_params evs{0.75, 27, 27};
    ASSERT_EQ(tk_evs_retained_tokens(&evs, 64, &retained), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(retained, 11664);
    EvsCall call;
    expect_rejected(tk_evs_workspace_size(&call.params, &call.x, nullptr), "bytes");
    uint64_t bytes = 0;
    ASSERT_EQ(tk_evs_workspace_size(&call.params, &call.x, &bytes), TK_STATUS_OK) << tk_last_error();
    EXPECT_GE(bytes, uint64_t{2 * 18 * 4 + 2 * 9 * 4});

    const tk_dycoke_params dycoke{0.7, 14, 14};
    expect_rejected(tk_dycoke_retained_tokens(nullptr, 16, &retained), "params");
    expect_rejected(tk_dycoke_retained_tokens(&dycoke, 0, &retained), "frames");
    expect_rejected(tk_dycoke_retained_tokens(&dycoke, 16, nullptr), "retained");
    const tk_dycoke_params no_width{0.7, 14, 0};
    expect_rejected(tk_dycoke_retained_tokens(&no_width, 16, &retained), "params->width");
    ASSERT_EQ(tk_dycoke_retained_tokens(&dycoke, 16, &retained), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(retained, 4 * 196 + 12 * 58);
    expect_rejected(tk_dycoke_workspace_size(&call.dycoke_params, &call.x, nullptr), "bytes");
    ASSERT_EQ(tk_dycoke_workspace_size(&call.dycoke_params, &call.x, &bytes), TK_STATUS_OK) << tk_last_error();
    EXPECT_GE(bytes, uint64_t{2 * 18 * 4 + 2 * 12 * 4 + 2 * 3 * 4 + 2 * 18 * 4});

    const tk_vidcom2_params vidcom2{0.25, 0.5, 0.01, 14, 14};
    expect_rejected(tk_vidcom2_retained_tokens(nullptr, 16, &retained), "params");
    expect_rejected(tk_vidcom2_retained_tokens(&vidcom2, 0, &retained), "frames");
    expect_rejected(tk_vidcom2_retained_tokens(&vidcom2, -1, &retained), "frames");
    expect_rejected(tk_vidcom2_retained_tokens(&vidcom2, int64_t{1} << 40, &retained), "frames");
    expect_rejected(tk_vidcom2_retained_tokens(&vidcom2, 16, nullptr), "retained");
    const tk_vidcom2_params no_height{0.25, 0.5, 0.01, 0, 14};
    expect_rejected(tk_vidcom2_retained_tokens(&no_height, 16, &retained), "params->height");
    const tk_vidcom2_params cold{0.25, 0.5, 0.0, 14, 14};
    expect_rejected(tk_vidcom2_retained_tokens(&cold, 16, &retained), "params->temperature");
    const tk_vidcom2_params no_channels{0.25, 0.0, 0.01, 14, 14};
    expect_rejected(tk_vidcom2_retained_tokens(&no_channels, 16, &retained), "params->channel_ratio");
    const tk_vidcom2_params none_kept{0.0, 0.5, 0.01, 14, 14};
    expect_rejected(tk_vidcom2_retained_tokens(&none_kept, 16, &retained), "params->retention_ratio");
    EXPECT_EQ(retained, 4 * 196 + 12 * 58) << "a rejected query wrote its result";
    ASSERT_EQ(tk_vidcom2_retained_tokens(&vidcom2, 16, &retained), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(retained, 784);
    EvsCall video;
    expect_rejected(tk_vidcom2_workspace_size(&video.vidcom2_params, &video.x, nullptr), "bytes");
    expect_rejected(tk_vidcom2_workspace_size(nullptr, &video.x, &bytes), "params");
    expect_rejected(tk_vidcom2_workspace_size(&video.vidcom2_params, nullptr, &bytes), "x");
    tk_tensor no_channel_video = video.x;
    no_channel_video.shape[3] = 0;
    expect_rejected(tk_vidcom2_workspace_size(&video.vidcom2_params, &no_channel_video, &bytes), "x.shape[3]");
    ASSERT_EQ(tk_vidcom2_workspace_size(&video.vidcom2_params, &video.x, &bytes), TK_STATUS_OK) << tk_last_error();
    // DyCoke's scratch (scores, kept positions, frame counts, frame ranks) for K = 9, then the normalised
    // C' = 2 scored channels of the 2 x 18 tokens.
    EXPECT_GE(bytes, uint64_t{2 * 18 * 4 + 2 * 9 * 4 + 2 * 3 * 4 + 2 * 18 * 4 + 2 * 18 * 2 * 4});

    const FrameFusionCall fusion;
    expect_rejected(tk_framefusion_workspace_size(&fusion.params, &fusion.x, nullptr), "bytes");
    ASSERT_EQ(tk_framefusion_workspace_size(&fusion.params, &fusion.x, &bytes), TK_STATUS_OK) << tk_last_error();
    EXPECT_GE(bytes, uint64_t{2 * 18 * 4 + 2 * 18 * 4});
}

}  // namespace
}  // namespace tkt
