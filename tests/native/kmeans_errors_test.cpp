// Every class of invalid k-means argument (SPEC section 6, "k-means"): the status, a message naming
// the argument, and no byte written to any tensor, for tk_kmeans and tk_kmeans_workspace_size.
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

// x [2, 6, 4] f32, lengths {6, 4}, item_clusters {3, 2}, clusters = 3, init TK_KMEANS_INIT_GIVEN with
// initial_centres [2, 3, 4]: centres [2, 3, 4] f32, assignment [2, 6] i32, sizes [2, 3] f32,
// iterations [2] i32. A valid call, broken one way by each case.
struct KMeansCall {
    HostArray x_array{TK_DTYPE_F32, {2, 6, 4}};
    HostArray lengths_array{TK_DTYPE_I32, {2}};
    HostArray item_clusters_array{TK_DTYPE_I32, {2}};
    HostArray initial_array{TK_DTYPE_F32, {2, 3, 4}};
    HostArray centres_array{TK_DTYPE_F32, {2, 3, 4}};
    HostArray assignment_array{TK_DTYPE_I32, {2, 6}};
    HostArray sizes_array{TK_DTYPE_F32, {2, 3}};
    HostArray iterations_array{TK_DTYPE_I32, {2}};
    tk_kmeans_params params{};
    tk_tensor x{}, lengths{}, item_clusters{}, initial{}, centres{}, assignment{}, sizes{}, iterations{};
    bool null_params = false, null_x = false, null_centres = false, null_assignment = false, pass_initial = true;
    uint64_t workspace_bytes = 0;
    mutable std::vector<uint8_t> workspace;  // passed when not empty
    void* workspace_at = nullptr;            // passed when workspace is empty

    KMeansCall() {
        params.seed = 7;
        params.tolerance = 1e-4;
        params.clusters = 3;
        params.max_iterations = 20;
        params.init = TK_KMEANS_INIT_GIVEN;
        fill_values(x_array);
        fill_values(initial_array);
        lengths_array.set(0, 0, 0, 6);
        lengths_array.set(1, 0, 0, 4);
        item_clusters_array.set(0, 0, 0, 3);
        item_clusters_array.set(1, 0, 0, 2);
        for (HostArray* out : {&centres_array, &assignment_array, &sizes_array, &iterations_array}) out->fill_bytes(0xA5);
        x = x_array.desc();
        lengths = lengths_array.desc();
        item_clusters = item_clusters_array.desc();
        initial = initial_array.desc();
        centres = centres_array.desc();
        assignment = assignment_array.desc();
        sizes = sizes_array.desc();
        iterations = iterations_array.desc();
    }
    std::vector<const HostArray*> arrays() const {
        return {&x_array, &lengths_array, &item_clusters_array, &initial_array,
                &centres_array, &assignment_array, &sizes_array, &iterations_array};
    }
    tk_status run() const {
        return tk_kmeans(null_params ? nullptr : &params, null_x ? nullptr : &x, &lengths, &item_clusters,
                         pass_initial ? &initial : nullptr, null_centres ? nullptr : &centres,
                         null_assignment ? nullptr : &assignment, &sizes, &iterations,
                         workspace.empty() ? workspace_at : workspace.data(), workspace_bytes, nullptr);
    }
};

using KMeansInvalidCase = InvalidCase<KMeansCall>;

uint64_t queried_workspace(const KMeansCall& c) {
    const ScopedNumThreads one(1);
    uint64_t bytes = 0;
    EXPECT_EQ(tk_kmeans_workspace_size(&c.params, &c.x, &bytes), TK_STATUS_OK) << tk_last_error();
    return bytes;
}

std::vector<KMeansInvalidCase> invalid_cases() {
    using C = KMeansCall;
    return {
        {"NullParams", [](C& c) { c.null_params = true; }, "params"},
        {"NullX", [](C& c) { c.null_x = true; }, "x"},
        {"NullCentres", [](C& c) { c.null_centres = true; }, "centres"},
        {"NullAssignment", [](C& c) { c.null_assignment = true; }, "assignment"},
        {"ClustersNegative", [](C& c) { c.params.clusters = -1; }, "params->clusters"},
        {"ClustersAboveN", [](C& c) { c.params.clusters = 7; }, "params->clusters"},
        {"MaxIterationsZero", [](C& c) { c.params.max_iterations = 0; }, "params->max_iterations"},
        {"ToleranceNegative", [](C& c) { c.params.tolerance = -1e-4; }, "params->tolerance"},
        {"ToleranceNaN", [](C& c) { c.params.tolerance = std::nan(""); }, "params->tolerance"},
        {"ToleranceInf", [](C& c) { c.params.tolerance = std::numeric_limits<double>::infinity(); }, "params->tolerance"},
        {"InitTwo", [](C& c) { c.params.init = 2; }, "params->init"},
        {"InitNegative", [](C& c) { c.params.init = -1; }, "params->init"},
        {"XNullData", [](C& c) { c.x.data = nullptr; }, "x.data"},
        {"XRank2", [](C& c) { c.x.rank = 2; }, "x.rank"},
        {"XI32", [](C& c) { c.x.dtype = TK_DTYPE_I32; }, "x.dtype"},
        {"XChannelsNotContiguous", [](C& c) { c.x.strides[2] = 2; }, "x.strides[2]"},
        {"XZeroTokenStride", [](C& c) { c.x.strides[1] = 0; }, "x.strides[1]"},
        {"XCpuOrdinal1", [](C& c) { c.x.device_ordinal = 1; }, "x.device_ordinal"},
        {"LengthsI64", [](C& c) { c.lengths.dtype = TK_DTYPE_I64; }, "lengths.dtype"},
        {"LengthsBatchDiffers", [](C& c) { c.lengths.shape[0] = 3; }, "lengths.shape[0]"},
        {"LengthAboveN", [](C& c) { c.lengths_array.set(1, 0, 0, 7); }, "lengths[1]"},
        {"LengthNegative", [](C& c) { c.lengths_array.set(0, 0, 0, -1); }, "lengths[0]"},
        {"ItemClustersF32", [](C& c) { c.item_clusters.dtype = TK_DTYPE_F32; }, "item_clusters.dtype"},
        {"ItemClustersAboveClusters", [](C& c) { c.item_clusters_array.set(0, 0, 0, 4); }, "item_clusters[0]"},
        {"ItemClustersNegative", [](C& c) { c.item_clusters_array.set(1, 0, 0, -1); }, "item_clusters[1]"},
        {"InitialCentresMissing", [](C& c) { c.pass_initial = false; }, "initial_centres"},
        {"InitialCentresWithPlusPlus", [](C& c) { c.params.init = TK_KMEANS_INIT_PLUS_PLUS; }, "initial_centres"},
        {"InitialCentresF16", [](C& c) { c.initial.dtype = TK_DTYPE_F16; }, "initial_centres.dtype"},
        {"InitialCentresClustersDiffer", [](C& c) { c.initial.shape[1] = 2; }, "initial_centres.shape[1]"},
        {"InitialCentresChannelsDiffer", [](C& c) { c.initial.shape[2] = 5; }, "initial_centres.shape[2]"},
        {"InitialCentresZeroStride", [](C& c) { c.initial.strides[1] = 0; }, "initial_centres.strides[1]"},
        {"CentresF16", [](C& c) { c.centres.dtype = TK_DTYPE_F16; }, "centres.dtype"},
        {"CentresClustersDiffer", [](C& c) { c.centres.shape[1] = 2; }, "centres.shape[1]"},
        {"CentresRank2", [](C& c) { c.centres.rank = 2; }, "centres.rank"},
        {"CentresOverlapItself", [](C& c) { c.centres.strides[1] = 1; }, "centres.strides"},
        {"AssignmentI64", [](C& c) { c.assignment.dtype = TK_DTYPE_I64; }, "assignment.dtype"},
        {"AssignmentTokensDiffer", [](C& c) { c.assignment.shape[1] = 5; }, "assignment.shape[1]"},
        {"SizesI32", [](C& c) { c.sizes.dtype = TK_DTYPE_I32; }, "sizes.dtype"},
        {"SizesClustersDiffer", [](C& c) { c.sizes.shape[1] = 4; }, "sizes.shape[1]"},
        {"IterationsF32", [](C& c) { c.iterations.dtype = TK_DTYPE_F32; }, "iterations.dtype"},
        {"IterationsBatchDiffers", [](C& c) { c.iterations.shape[0] = 3; }, "iterations.shape[0]"},
        {"CentresOverlapX", [](C& c) { c.centres.data = c.x.data; }, "disjoint from x"},
        {"CentresOverlapInitialCentres", [](C& c) { c.centres.data = c.initial.data; }, "disjoint from initial_centres"},
        {"AssignmentOverlapsLengths", [](C& c) { c.assignment.data = c.lengths.data; }, "disjoint from lengths"},
        {"AssignmentOverlapsCentres", [](C& c) { c.assignment.data = c.centres.data; }, "disjoint from centres"},
        {"SizesOverlapAssignment", [](C& c) { c.sizes.data = c.assignment.data; }, "disjoint from assignment"},
        {"IterationsOverlapSizes", [](C& c) { c.iterations.data = c.sizes.data; }, "disjoint from sizes"},
        {"IterationsOverlapItemClusters", [](C& c) { c.iterations.data = c.item_clusters.data; }, "disjoint from item_clusters"},
        {"WorkspaceBytesWithoutWorkspace", [](C& c) { c.workspace_bytes = 16; }, "workspace"},
        {"WorkspaceSmallerThanOneThreadsQuery",
         [](C& c) {
             c.workspace.assign(queried_workspace(c), 0);
             c.workspace_bytes = c.workspace.size() - 1;
         },
         "workspace_bytes"},
        {"WorkspaceOverlapsX", [](C& c) { c.workspace_bytes = queried_workspace(c); c.workspace_at = c.x.data; }, "disjoint from x"},
        {"WorkspaceOverlapsCentres",
         [](C& c) {
             c.workspace.assign(queried_workspace(c) + 64, 0);
             c.workspace_bytes = c.workspace.size();
             c.centres.data = c.workspace.data() + 32;
         },
         "disjoint from centres"},
        {"XStrideBytesOverflow", [](C& c) { c.x.strides[1] = int64_t{1} << 62; }, "x.strides"},
        {"AssignmentStrideBeyondAddressSpace", [](C& c) { c.assignment.strides[0] = int64_t{1} << 61; }, "assignment.strides"},
    };
}

class KMeansInvalid : public ::testing::TestWithParam<KMeansInvalidCase> {};
TEST_P(KMeansInvalid, IsRejectedWithoutWriting) { check_invalid(GetParam()); }
INSTANTIATE_TEST_SUITE_P(KMeans, KMeansInvalid, ::testing::ValuesIn(invalid_cases()), case_name<KMeansCall>);

// The valid call the cases break is accepted: item 1 (length 4, 2 clusters) labels its 4 tokens with
// clusters 0 and 1, then -1; its third centre row and size are zero.
TEST(KMeansInvalid, TheUnbrokenCallIsAccepted) {
    KMeansCall call;
    ASSERT_EQ(call.run(), TK_STATUS_OK) << tk_last_error();
    for (int64_t i = 0; i < 4; ++i) {
        EXPECT_GE(call.assignment_array.get(1, i), 0);
        EXPECT_LE(call.assignment_array.get(1, i), 1);
    }
    EXPECT_EQ(call.assignment_array.get(1, 4), -1);
    EXPECT_EQ(call.assignment_array.get(1, 5), -1);
    EXPECT_EQ(call.sizes_array.get(1, 2), 0.0);
    EXPECT_EQ(call.sizes_array.get(1, 0) + call.sizes_array.get(1, 1), 4.0);
    for (int64_t c = 0; c < 4; ++c) EXPECT_EQ(call.centres_array.get(1, 2, c), 0.0);
    EXPECT_GE(call.iterations_array.get(0), 1);
}

// The workspace query validates what it is given, as the op does.
TEST(KMeansInvalid, WorkspaceQueryNamesItsArguments) {
    KMeansCall call;
    uint64_t bytes = 0;
    expect_rejected(tk_kmeans_workspace_size(&call.params, &call.x, nullptr), "bytes");
    expect_rejected(tk_kmeans_workspace_size(nullptr, &call.x, &bytes), "params");
    call.params.clusters = 9;
    expect_rejected(tk_kmeans_workspace_size(&call.params, &call.x, &bytes), "params->clusters");
    call.params.clusters = 3;
    ASSERT_EQ(tk_kmeans_workspace_size(&call.params, &call.x, &bytes), TK_STATUS_OK) << tk_last_error();
    EXPECT_GT(bytes, 0u);
}

// A library built without CUDA refuses CUDA tensors as unavailable, naming the missing build, and writes
// nothing. (With CUDA, KMeansCuda in kmeans_test.cpp runs the op.)
TEST(KMeansInvalid, CudaTensorsWithoutCudaAreUnavailable) {
    if (tk_cuda_is_built() != 0) GTEST_SKIP() << "CUDA is built: KMeansCuda tests the CUDA backend";
    KMeansCall call;
    call.x.device_kind = TK_DEVICE_CUDA;
    const auto before = snapshot(call.arrays());
    expect_rejected(call.run(), "without CUDA", TK_STATUS_BACKEND_UNAVAILABLE);
    uint64_t bytes = 0;
    expect_rejected(tk_kmeans_workspace_size(&call.params, &call.x, &bytes), "without CUDA", TK_STATUS_BACKEND_UNAVAILABLE);
    EXPECT_TRUE(snapshot(call.arrays()) == before);
}

}  // namespace
}  // namespace tkt
