// Every class of invalid query-relevance and conditional-DPP argument (SPEC section 7, "Errors"): the
// status, a message naming the argument, and no byte written to any tensor.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "support.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tkt {
namespace {

// visual [2, 6, 4] and text [2, 3, 4] f32, lengths {6, 4}, text_lengths {3, 1}: relevance [2, 6] f32.
struct RelevanceCall {
    HostArray visual_array{TK_DTYPE_F32, {2, 6, 4}};
    HostArray text_array{TK_DTYPE_F32, {2, 3, 4}};
    HostArray lengths_array{TK_DTYPE_I32, {2}};
    HostArray text_lengths_array{TK_DTYPE_I32, {2}};
    HostArray relevance_array{TK_DTYPE_F32, {2, 6}};
    tk_relevance_params params{1};
    tk_tensor visual{}, text{}, lengths{}, text_lengths{}, relevance{};
    bool null_params = false, null_visual = false, null_text = false, null_relevance = false;

    RelevanceCall() {
        fill_values(visual_array);
        fill_values(text_array);
        lengths_array.set(0, 0, 0, 6);
        lengths_array.set(1, 0, 0, 4);
        text_lengths_array.set(0, 0, 0, 3);
        text_lengths_array.set(1, 0, 0, 1);
        relevance_array.fill_bytes(0xA5);
        visual = visual_array.desc();
        text = text_array.desc();
        lengths = lengths_array.desc();
        text_lengths = text_lengths_array.desc();
        relevance = relevance_array.desc();
    }
    std::vector<const HostArray*> arrays() const {
        return {&visual_array, &text_array, &lengths_array, &text_lengths_array, &relevance_array};
    }
    tk_status run() const {
        return tk_query_relevance(null_params ? nullptr : &params, null_visual ? nullptr : &visual, null_text ? nullptr : &text,
                                  &lengths, &text_lengths, null_relevance ? nullptr : &relevance, nullptr);
    }
};

std::vector<InvalidCase<RelevanceCall>> relevance_cases() {
    using C = RelevanceCall;
    return {
        {"NullParams", [](C& c) { c.null_params = true; }, "params"},
        {"NegateTwo", [](C& c) { c.params.negate = 2; }, "params->negate"},
        {"NullVisual", [](C& c) { c.null_visual = true; }, "visual"},
        {"NullText", [](C& c) { c.null_text = true; }, "text"},
        {"NullRelevance", [](C& c) { c.null_relevance = true; }, "relevance"},
        {"VisualRank2", [](C& c) { c.visual.rank = 2; }, "visual.rank"},
        {"VisualI32", [](C& c) { c.visual.dtype = TK_DTYPE_I32; }, "visual.dtype"},
        {"VisualChannelsNotContiguous", [](C& c) { c.visual.strides[2] = 2; }, "visual.strides[2]"},
        {"TextRank2", [](C& c) { c.text.rank = 2; }, "text.rank"},
        {"TextDtypeDiffers", [](C& c) { c.text.dtype = TK_DTYPE_F16; }, "text.dtype"},
        {"TextBatchDiffers", [](C& c) { c.text.shape[0] = 1; }, "text.shape[0]"},
        {"TextChannelsDiffer", [](C& c) { c.text.shape[2] = 3; }, "text.shape[2]"},
        {"LengthsI64", [](C& c) { c.lengths.dtype = TK_DTYPE_I64; }, "lengths.dtype"},
        {"LengthAboveN", [](C& c) { c.lengths_array.set(1, 0, 0, 7); }, "lengths[1]"},
        {"TextLengthAboveT", [](C& c) { c.text_lengths_array.set(0, 0, 0, 4); }, "text_lengths[0]"},
        {"TextLengthNegative", [](C& c) { c.text_lengths_array.set(1, 0, 0, -1); }, "text_lengths[1]"},
        {"RelevanceF16", [](C& c) { c.relevance.dtype = TK_DTYPE_F16; }, "relevance.dtype"},
        {"RelevanceTokensDiffer", [](C& c) { c.relevance.shape[1] = 5; }, "relevance.shape[1]"},
        {"RelevanceOverlapsVisual", [](C& c) { c.relevance.data = c.visual.data; }, "disjoint from visual"},
        {"RelevanceOverlapsText", [](C& c) { c.relevance.data = c.text.data; }, "disjoint from text"},
        {"RelevanceOverlapsItself", [](C& c) { c.relevance.strides[0] = 1; }, "relevance.strides"},
    };
}

class RelevanceInvalid : public ::testing::TestWithParam<InvalidCase<RelevanceCall>> {};
TEST_P(RelevanceInvalid, IsRejectedWithoutWriting) { check_invalid(GetParam()); }
INSTANTIATE_TEST_SUITE_P(Relevance, RelevanceInvalid, ::testing::ValuesIn(relevance_cases()), case_name<RelevanceCall>);

TEST(RelevanceInvalid, TheUnbrokenCallIsAccepted) {
    RelevanceCall call;
    ASSERT_EQ(call.run(), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(call.relevance_array.get(1, 5), 0.0);
}

// x [2, 6, 4] f32, relevance [2, 6] f32, lengths {6, 4}, item_k {3, 2}, k = 3: order and sorted [2, 3].
struct DppCall {
    HostArray x_array{TK_DTYPE_F32, {2, 6, 4}};
    HostArray relevance_array{TK_DTYPE_F32, {2, 6}};
    HostArray lengths_array{TK_DTYPE_I32, {2}};
    HostArray item_k_array{TK_DTYPE_I32, {2}};
    HostArray order_array{TK_DTYPE_I32, {2, 3}};
    HostArray sorted_array{TK_DTYPE_I32, {2, 3}};
    tk_dpp_params params{3, TK_DPP_WEIGHT_EXP, 0.5f};
    tk_tensor x{}, relevance{}, lengths{}, item_k{}, order{}, sorted{};
    bool null_params = false, null_x = false, null_order = false;
    uint64_t workspace_bytes = 0;
    mutable std::vector<uint8_t> workspace;
    void* workspace_at = nullptr;

    DppCall() {
        fill_values(x_array);
        fill_values(relevance_array);
        lengths_array.set(0, 0, 0, 6);
        lengths_array.set(1, 0, 0, 4);
        item_k_array.set(0, 0, 0, 3);
        item_k_array.set(1, 0, 0, 2);
        order_array.fill_bytes(0xA5);
        sorted_array.fill_bytes(0xA5);
        x = x_array.desc();
        relevance = relevance_array.desc();
        lengths = lengths_array.desc();
        item_k = item_k_array.desc();
        order = order_array.desc();
        sorted = sorted_array.desc();
    }
    std::vector<const HostArray*> arrays() const {
        return {&x_array, &relevance_array, &lengths_array, &item_k_array, &order_array, &sorted_array};
    }
    tk_status run() const {
        return tk_conditional_dpp_select(null_params ? nullptr : &params, null_x ? nullptr : &x, &relevance, &lengths, &item_k,
                                         null_order ? nullptr : &order, &sorted,
                                         workspace.empty() ? workspace_at : workspace.data(), workspace_bytes, nullptr);
    }
};

uint64_t queried_workspace(const DppCall& c) {
    uint64_t bytes = 0;
    EXPECT_EQ(tk_conditional_dpp_workspace_size(&c.params, &c.x, &bytes), TK_STATUS_OK) << tk_last_error();
    return bytes;
}

std::vector<InvalidCase<DppCall>> dpp_cases() {
    using C = DppCall;
    return {
        {"NullParams", [](C& c) { c.null_params = true; }, "params"},
        {"NullX", [](C& c) { c.null_x = true; }, "x"},
        {"NullOrder", [](C& c) { c.null_order = true; }, "order"},
        {"KNegative", [](C& c) { c.params.k = -1; }, "params->k"},
        {"KAboveN", [](C& c) { c.params.k = 7; }, "params->k"},
        {"WeightingTwo", [](C& c) { c.params.weighting = 2; }, "params->weighting"},
        {"ThetaOne", [](C& c) { c.params.theta = 1.0f; }, "params->theta"},
        {"ThetaNegative", [](C& c) { c.params.theta = -0.1f; }, "params->theta"},
        {"ThetaNan", [](C& c) { c.params.theta = std::numeric_limits<float>::quiet_NaN(); }, "params->theta"},
        {"XRank2", [](C& c) { c.x.rank = 2; }, "x.rank"},
        {"XI32", [](C& c) { c.x.dtype = TK_DTYPE_I32; }, "x.dtype"},
        {"XChannelsNotContiguous", [](C& c) { c.x.strides[2] = 2; }, "x.strides[2]"},
        {"RelevanceF16", [](C& c) { c.relevance.dtype = TK_DTYPE_F16; }, "relevance.dtype"},
        {"RelevanceTokensDiffer", [](C& c) { c.relevance.shape[1] = 5; }, "relevance.shape[1]"},
        {"RelevanceRank3", [](C& c) { c.relevance.rank = 3; }, "relevance.rank"},
        {"RelevanceZeroStride", [](C& c) { c.relevance.strides[1] = 0; }, "relevance.strides[1]"},
        {"LengthsBatchDiffers", [](C& c) { c.lengths.shape[0] = 3; }, "lengths.shape[0]"},
        {"LengthAboveN", [](C& c) { c.lengths_array.set(1, 0, 0, 7); }, "lengths[1]"},
        {"ItemKAboveK", [](C& c) { c.item_k_array.set(0, 0, 0, 4); }, "item_k[0]"},
        {"ItemKNegative", [](C& c) { c.item_k_array.set(1, 0, 0, -1); }, "item_k[1]"},
        {"OrderI64", [](C& c) { c.order.dtype = TK_DTYPE_I64; }, "order.dtype"},
        {"OrderColumnsNotK", [](C& c) { c.order.shape[1] = 2; }, "order.shape[1]"},
        {"SortedF32", [](C& c) { c.sorted.dtype = TK_DTYPE_F32; }, "sorted.dtype"},
        {"OrderOverlapsX", [](C& c) { c.order.data = c.x.data; }, "disjoint from x"},
        {"OrderOverlapsRelevance", [](C& c) { c.order.data = c.relevance.data; }, "disjoint from relevance"},
        {"SortedOverlapsOrder", [](C& c) { c.sorted.data = static_cast<int32_t*>(c.order.data) + 4; }, "disjoint from order"},
        {"WorkspaceBytesWithoutWorkspace", [](C& c) { c.workspace_bytes = 16; }, "workspace"},
        {"WorkspaceSmallerThanItsQuery",
         [](C& c) {
             c.workspace.assign(queried_workspace(c), 0);
             c.workspace_bytes = c.workspace.size() - 1;
         },
         "workspace_bytes"},
        {"WorkspaceOverlapsX", [](C& c) { c.workspace_bytes = queried_workspace(c); c.workspace_at = c.x.data; }, "disjoint from x"},
    };
}

class DppInvalid : public ::testing::TestWithParam<InvalidCase<DppCall>> {};
TEST_P(DppInvalid, IsRejectedWithoutWriting) { check_invalid(GetParam()); }
INSTANTIATE_TEST_SUITE_P(ConditionalDpp, DppInvalid, ::testing::ValuesIn(dpp_cases()), case_name<DppCall>);

TEST(DppInvalid, TheUnbrokenCallIsAccepted) {
    DppCall call;
    ASSERT_EQ(call.run(), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(call.order_array.get(1, 2), -1);
    EXPECT_EQ(call.sorted_array.get(1, 2), -1);
    // Theta is ignored by TK_DPP_WEIGHT_RELEVANCE.
    DppCall linear;
    linear.params.weighting = TK_DPP_WEIGHT_RELEVANCE;
    linear.params.theta = 7.0f;
    EXPECT_EQ(linear.run(), TK_STATUS_OK) << tk_last_error();
}

TEST(DppInvalid, WorkspaceQueryNamesItsArguments) {
    DppCall call;
    uint64_t bytes = 0;
    expect_rejected(tk_conditional_dpp_workspace_size(&call.params, &call.x, nullptr), "bytes");
    call.params.k = 9;
    expect_rejected(tk_conditional_dpp_workspace_size(&call.params, &call.x, &bytes), "params->k");
    EXPECT_EQ(bytes, 0u);
}

}  // namespace
}  // namespace tkt
