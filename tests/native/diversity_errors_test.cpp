// Every class of invalid diversity-selection argument (SPEC "Errors"): the status, a message naming the
// argument, and no byte written to any tensor, for tk_diversity_select and tk_diversity_workspace_size.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "support.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tkt {
namespace {

// x [2, 6, 4] f32, lengths {6, 4}, item_k {3, 2}, k = 3, first = TK_FIRST_INDEX with first_index
// {5, 1}: order and sorted [2, 3] i32. A valid call, broken one way by each case.
struct DiversityCall {
    HostArray x_array{TK_DTYPE_F32, {2, 6, 4}};
    HostArray lengths_array{TK_DTYPE_I32, {2}};
    HostArray item_k_array{TK_DTYPE_I32, {2}};
    HostArray first_index_array{TK_DTYPE_I32, {2}};
    HostArray first_score_array{TK_DTYPE_F32, {2, 6}};
    HostArray order_array{TK_DTYPE_I32, {2, 3}};
    HostArray sorted_array{TK_DTYPE_I32, {2, 3}};
    tk_diversity_params params{3, TK_DISTANCE_COSINE, TK_FIRST_INDEX, TK_DIVERSITY_MAX_MIN};
    tk_tensor x{}, lengths{}, item_k{}, first_index{}, first_score{}, order{}, sorted{};
    bool null_params = false, null_x = false, null_order = false, pass_first_index = true, pass_first_score = false;
    uint64_t workspace_bytes = 0;
    mutable std::vector<uint8_t> workspace;  // passed when not empty
    void* workspace_at = nullptr;            // passed when workspace is empty

    DiversityCall() {
        fill_values(x_array);
        fill_values(first_score_array);
        lengths_array.set(0, 0, 0, 6);
        lengths_array.set(1, 0, 0, 4);
        item_k_array.set(0, 0, 0, 3);
        item_k_array.set(1, 0, 0, 2);
        first_index_array.set(0, 0, 0, 5);
        first_index_array.set(1, 0, 0, 1);
        order_array.fill_bytes(0xA5);
        sorted_array.fill_bytes(0xA5);
        x = x_array.desc();
        lengths = lengths_array.desc();
        item_k = item_k_array.desc();
        first_index = first_index_array.desc();
        first_score = first_score_array.desc();
        order = order_array.desc();
        sorted = sorted_array.desc();
    }
    // Switches the call to TK_FIRST_SCORE (first_score given, first_index not).
    void use_score() {
        params.first = TK_FIRST_SCORE;
        pass_first_index = false;
        pass_first_score = true;
    }
    std::vector<const HostArray*> arrays() const {
        return {&x_array, &lengths_array, &item_k_array, &first_index_array, &first_score_array, &order_array, &sorted_array};
    }
    tk_status run() const {
        return tk_diversity_select(null_params ? nullptr : &params, null_x ? nullptr : &x, &lengths, &item_k,
                                   pass_first_index ? &first_index : nullptr, pass_first_score ? &first_score : nullptr,
                                   null_order ? nullptr : &order, &sorted, workspace.empty() ? workspace_at : workspace.data(),
                                   workspace_bytes, nullptr);
    }
};

using DiversityInvalidCase = InvalidCase<DiversityCall>;

// The workspace size the call's query gives with one thread (what the CPU accepts at least).
uint64_t queried_workspace(const DiversityCall& c) {
    const ScopedNumThreads one(1);
    uint64_t bytes = 0;
    EXPECT_EQ(tk_diversity_workspace_size(&c.params, &c.x, &bytes), TK_STATUS_OK) << tk_last_error();
    return bytes;
}

std::vector<DiversityInvalidCase> invalid_cases() {
    using C = DiversityCall;
    return {
        {"NullParams", [](C& c) { c.null_params = true; }, "params"},
        {"NullX", [](C& c) { c.null_x = true; }, "x"},
        {"NullOrder", [](C& c) { c.null_order = true; }, "order"},
        {"KNegative", [](C& c) { c.params.k = -1; }, "params->k"},
        {"KAboveN", [](C& c) { c.params.k = 7; }, "params->k"},
        {"DistanceTwo", [](C& c) { c.params.distance = 2; }, "params->distance"},
        {"FirstCenterThree", [](C& c) { c.params.first = 3; }, "params->first"},
        {"FirstCenterNegative", [](C& c) { c.params.first = -1; }, "params->first"},
        {"ObjectiveTwo", [](C& c) { c.params.objective = 2; }, "params->objective"},
        {"XNullData", [](C& c) { c.x.data = nullptr; }, "x.data"},
        {"XRank2", [](C& c) { c.x.rank = 2; }, "x.rank"},
        {"XI32", [](C& c) { c.x.dtype = TK_DTYPE_I32; }, "x.dtype"},
        {"XUnknownDtype", [](C& c) { c.x.dtype = 11; }, "x.dtype"},
        {"XChannelsNotContiguous", [](C& c) { c.x.strides[2] = 2; }, "x.strides[2]"},
        {"XZeroTokenStride", [](C& c) { c.x.strides[1] = 0; }, "x.strides[1]"},
        {"XCpuOrdinal1", [](C& c) { c.x.device_ordinal = 1; }, "x.device_ordinal"},
        {"LengthsI64", [](C& c) { c.lengths.dtype = TK_DTYPE_I64; }, "lengths.dtype"},
        {"LengthsRank2", [](C& c) { c.lengths.rank = 2; }, "lengths.rank"},
        {"LengthsBatchDiffers", [](C& c) { c.lengths.shape[0] = 3; }, "lengths.shape[0]"},
        {"LengthAboveN", [](C& c) { c.lengths_array.set(1, 0, 0, 7); }, "lengths[1]"},
        {"LengthNegative", [](C& c) { c.lengths_array.set(0, 0, 0, -1); }, "lengths[0]"},
        {"ItemKF32", [](C& c) { c.item_k.dtype = TK_DTYPE_F32; }, "item_k.dtype"},
        {"ItemKBatchDiffers", [](C& c) { c.item_k.shape[0] = 1; }, "item_k.shape[0]"},
        {"ItemKAboveK", [](C& c) { c.item_k_array.set(0, 0, 0, 4); }, "item_k[0]"},
        {"ItemKNegative", [](C& c) { c.item_k_array.set(1, 0, 0, -1); }, "item_k[1]"},
        {"FirstIndexMissing", [](C& c) { c.pass_first_index = false; }, "first_index"},
        {"FirstIndexI64", [](C& c) { c.first_index.dtype = TK_DTYPE_I64; }, "first_index.dtype"},
        {"FirstIndexBatchDiffers", [](C& c) { c.first_index.shape[0] = 3; }, "first_index.shape[0]"},
        {"FirstIndexRank2", [](C& c) { c.first_index.rank = 2; }, "first_index.rank"},
        {"FirstIndexPastLength", [](C& c) { c.first_index_array.set(1, 0, 0, 4); }, "first_index[1]"},
        {"FirstIndexNegative", [](C& c) { c.first_index_array.set(0, 0, 0, -1); }, "first_index[0]"},
        {"FirstIndexWithoutIndexPolicy", [](C& c) { c.params.first = TK_FIRST_MOST_ISOLATED; }, "first_index"},
        {"FirstScoreWithoutScorePolicy", [](C& c) { c.pass_first_score = true; }, "first_score"},
        {"FirstScoreMissing", [](C& c) { c.use_score(); c.pass_first_score = false; }, "first_score"},
        {"FirstScoreI32", [](C& c) { c.use_score(); c.first_score.dtype = TK_DTYPE_I32; }, "first_score.dtype"},
        {"FirstScoreTokensDiffer", [](C& c) { c.use_score(); c.first_score.shape[1] = 5; }, "first_score.shape[1]"},
        {"FirstScoreRank1", [](C& c) { c.use_score(); c.first_score.rank = 1; }, "first_score.rank"},
        {"FirstScoreZeroStride", [](C& c) { c.use_score(); c.first_score.strides[1] = 0; }, "first_score.strides[1]"},
        {"OrderI64", [](C& c) { c.order.dtype = TK_DTYPE_I64; }, "order.dtype"},
        {"OrderColumnsNotK", [](C& c) { c.order.shape[1] = 2; }, "order.shape[1]"},
        {"OrderBatchDiffers", [](C& c) { c.order.shape[0] = 1; }, "order.shape[0]"},
        {"OrderRank3", [](C& c) { c.order.rank = 3; }, "order.rank"},
        {"SortedF32", [](C& c) { c.sorted.dtype = TK_DTYPE_F32; }, "sorted.dtype"},
        {"SortedColumnsNotK", [](C& c) { c.sorted.shape[1] = 4; }, "sorted.shape[1]"},
        {"OrderOverlapsItself", [](C& c) { c.order.strides[0] = 1; }, "order.strides"},
        {"OrderOverlapsX", [](C& c) { c.order.data = c.x.data; }, "disjoint from x"},
        {"OrderOverlapsLengths", [](C& c) { c.order.data = c.lengths.data; }, "disjoint from lengths"},
        {"OrderOverlapsItemK", [](C& c) { c.order.data = c.item_k.data; }, "disjoint from item_k"},
        {"OrderOverlapsFirstIndex", [](C& c) { c.order.data = c.first_index.data; }, "disjoint from first_index"},
        {"OrderOverlapsFirstScore", [](C& c) { c.use_score(); c.order.data = c.first_score.data; }, "disjoint from first_score"},
        {"SortedOverlapsOrder", [](C& c) { c.sorted.data = static_cast<int32_t*>(c.order.data) + 4; }, "disjoint from order"},
        {"WorkspaceBytesWithoutWorkspace", [](C& c) { c.workspace_bytes = 16; }, "workspace"},
        {"WorkspaceSmallerThanItsQuery",
         [](C& c) {
             uint64_t bytes = 0;
             ASSERT_EQ(tk_diversity_workspace_size(&c.params, &c.x, &bytes), TK_STATUS_OK) << tk_last_error();
             c.workspace.assign(bytes, 0);
             c.workspace_bytes = bytes - 1;
         },
         "workspace_bytes"},
        // The most isolated search keeps a score tile per thread in the workspace: a smaller one serves
        // fewer threads, down to the size queried with one thread.
        {"MostIsolatedWorkspaceSmallerThanOneThreadsQuery",
         [](C& c) {
             c.params.first = TK_FIRST_MOST_ISOLATED;
             c.pass_first_index = false;
             const ScopedNumThreads one(1);
             uint64_t bytes = 0;
             ASSERT_EQ(tk_diversity_workspace_size(&c.params, &c.x, &bytes), TK_STATUS_OK) << tk_last_error();
             c.workspace.assign(bytes, 0);
             c.workspace_bytes = bytes - 1;
         },
         "workspace_bytes"},
        // A workspace of the queried size that holds x, order or first_index: the op would write its
        // scratch over what it reads or returns.
        {"WorkspaceOverlapsX", [](C& c) { c.workspace_bytes = queried_workspace(c); c.workspace_at = c.x.data; }, "disjoint from x"},
        {"WorkspaceOverlapsOrder",
         [](C& c) {
             c.workspace.assign(queried_workspace(c) + 64, 0);
             c.workspace_bytes = c.workspace.size();
             c.order.data = c.workspace.data() + 32;
         },
         "disjoint from order"},
        {"WorkspaceOverlapsFirstIndex",  // first_index {0, 0} inside the workspace
         [](C& c) {
             c.workspace.assign(queried_workspace(c) + 64, 0);
             c.workspace_bytes = c.workspace.size();
             c.first_index.data = c.workspace.data() + 32;
         },
         "disjoint from first_index"},
        {"XStrideBytesOverflow", [](C& c) { c.x.strides[1] = int64_t{1} << 62; }, "x.strides"},
        {"SortedStrideBytesBeyondAddressSpace", [](C& c) { c.sorted.strides[0] = int64_t{1} << 61; }, "sorted.strides"},
    };
}

class DiversityInvalid : public ::testing::TestWithParam<DiversityInvalidCase> {};
TEST_P(DiversityInvalid, IsRejectedWithoutWriting) { check_invalid(GetParam()); }
INSTANTIATE_TEST_SUITE_P(Diversity, DiversityInvalid, ::testing::ValuesIn(invalid_cases()), case_name<DiversityCall>);

// The valid call the cases break is accepted, and writes what the contract says (item 1: length 4,
// item_k 2, so 2 tokens then -1).
TEST(DiversityInvalid, TheUnbrokenCallIsAccepted) {
    DiversityCall call;
    ASSERT_EQ(call.run(), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(call.order_array.get(0, 0), 5);
    EXPECT_EQ(call.order_array.get(1, 0), 1);
    EXPECT_EQ(call.order_array.get(1, 2), -1);
    EXPECT_EQ(call.sorted_array.get(1, 2), -1);
    DiversityCall score_call;
    score_call.use_score();
    EXPECT_EQ(score_call.run(), TK_STATUS_OK) << tk_last_error();
}

// With L = 0 the first index has no range to lie in: any value is accepted and nothing is chosen.
TEST(DiversityInvalid, EmptyItemAcceptsAnyFirstIndex) {
    DiversityCall call;
    call.lengths_array.set(1, 0, 0, 0);
    call.first_index_array.set(1, 0, 0, 9);
    ASSERT_EQ(call.run(), TK_STATUS_OK) << tk_last_error();
    for (int64_t i = 0; i < 3; ++i) EXPECT_EQ(call.order_array.get(1, i), -1);
}

TEST(DiversityInvalidWorkspaceSize, EachArgumentIsNamed) {
    DiversityCall c;
    uint64_t bytes = 12345;
    expect_rejected(tk_diversity_workspace_size(&c.params, &c.x, nullptr), "bytes");
    expect_rejected(tk_diversity_workspace_size(nullptr, &c.x, &bytes), "params");
    expect_rejected(tk_diversity_workspace_size(&c.params, nullptr, &bytes), "x");
    c.params.k = 7;
    expect_rejected(tk_diversity_workspace_size(&c.params, &c.x, &bytes), "params->k");
    c.params.k = 3;
    c.params.objective = 5;
    expect_rejected(tk_diversity_workspace_size(&c.params, &c.x, &bytes), "params->objective");
    EXPECT_EQ(bytes, 12345u) << "a rejected query wrote bytes";
    c.params.objective = TK_DIVERSITY_MAX_SUM;
    ASSERT_EQ(tk_diversity_workspace_size(&c.params, &c.x, &bytes), TK_STATUS_OK) << tk_last_error();
    // One item's packed copy at least: N rows of C floats (rounded up to 16).
    EXPECT_GE(bytes, 6u * 16u * sizeof(float));
}

// Without a CUDA device, a tensor that says it lives on one is refused as such.
TEST(DiversityInvalidDevices, CudaTensorWithoutCuda) {
    if (cuda_unavailable_reason().empty()) GTEST_SKIP() << "a CUDA device is present";
    DiversityCall c;
    c.item_k.device_kind = TK_DEVICE_CUDA;
    const auto before = snapshot(c.arrays());
    expect_rejected(c.run(), "item_k.device_ordinal", TK_STATUS_BACKEND_UNAVAILABLE);
    EXPECT_TRUE(snapshot(c.arrays()) == before);
}

// With one, an input on the device beside host tensors is a device mismatch.
TEST(DiversityInvalidDevicesCuda, MixedDevicesAreRejectedWithoutWriting) {
    const std::string why = cuda_unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << why;
    DiversityCall c;
    const DeviceBuffer index_d(c.first_index_array.bytes().size());
    c.first_index.data = static_cast<uint8_t*>(index_d.get()) +
                         (static_cast<const uint8_t*>(c.first_index.data) - c.first_index_array.bytes().data());
    c.first_index.device_kind = TK_DEVICE_CUDA;
    const auto before = snapshot(c.arrays());
    expect_rejected(c.run(), "first_index.device");
    EXPECT_TRUE(snapshot(c.arrays()) == before);
}

}  // namespace
}  // namespace tkt
