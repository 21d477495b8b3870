// Every class of invalid clustering and aggregation argument (SPEC section 6): the status, a message
// naming the argument, and no byte written to any tensor, for tk_dpc_knn, tk_dpc_knn_workspace_size
// tk_cluster_merge and tk_cluster_assign.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "support.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tkt {
namespace {

// x [2, 6, 4] f32, lengths {6, 4}, item_clusters {3, 2}, clusters 3, neighbours 2: centres [2, 3],
// assignment, density and delta [2, 6]. A valid call, broken one way by each case.
struct DpcCall {
    HostArray x_array{TK_DTYPE_F32, {2, 6, 4}};
    HostArray lengths_array{TK_DTYPE_I32, {2}};
    HostArray item_clusters_array{TK_DTYPE_I32, {2}};
    HostArray centres_array{TK_DTYPE_I32, {2, 3}};
    HostArray assignment_array{TK_DTYPE_I32, {2, 6}};
    HostArray density_array{TK_DTYPE_F32, {2, 6}};
    HostArray delta_array{TK_DTYPE_F32, {2, 6}};
    tk_dpc_knn_params params{3, 2};
    tk_tensor x{}, lengths{}, item_clusters{}, centres{}, assignment{}, density{}, delta{};
    bool null_params = false, null_x = false, null_centres = false, null_assignment = false;
    uint64_t workspace_bytes = 0;
    mutable std::vector<uint8_t> workspace;
    void* workspace_at = nullptr;

    DpcCall() {
        fill_values(x_array);
        lengths_array.set(0, 0, 0, 6);
        lengths_array.set(1, 0, 0, 4);
        item_clusters_array.set(0, 0, 0, 3);
        item_clusters_array.set(1, 0, 0, 2);
        for (HostArray* a : {&centres_array, &assignment_array, &density_array, &delta_array}) a->fill_bytes(0xA5);
        x = x_array.desc();
        lengths = lengths_array.desc();
        item_clusters = item_clusters_array.desc();
        centres = centres_array.desc();
        assignment = assignment_array.desc();
        density = density_array.desc();
        delta = delta_array.desc();
    }
    std::vector<const HostArray*> arrays() const {
        return {&x_array, &lengths_array, &item_clusters_array, &centres_array, &assignment_array, &density_array, &delta_array};
    }
    tk_status run() const {
        return tk_dpc_knn(null_params ? nullptr : &params, null_x ? nullptr : &x, &lengths, &item_clusters,
                          null_centres ? nullptr : &centres, null_assignment ? nullptr : &assignment, &density, &delta,
                          workspace.empty() ? workspace_at : workspace.data(), workspace_bytes, nullptr);
    }
};

uint64_t queried_workspace(const DpcCall& c) {
    const ScopedNumThreads one(1);
    uint64_t bytes = 0;
    EXPECT_EQ(tk_dpc_knn_workspace_size(&c.params, &c.x, &bytes), TK_STATUS_OK) << tk_last_error();
    return bytes;
}

std::vector<InvalidCase<DpcCall>> dpc_cases() {
    using C = DpcCall;
    return {
        {"NullParams", [](C& c) { c.null_params = true; }, "params"},
        {"NullX", [](C& c) { c.null_x = true; }, "x"},
        {"NullCentres", [](C& c) { c.null_centres = true; }, "centres"},
        {"NullAssignment", [](C& c) { c.null_assignment = true; }, "assignment"},
        {"ClustersNegative", [](C& c) { c.params.clusters = -1; }, "params->clusters"},
        {"ClustersAboveN", [](C& c) { c.params.clusters = 7; }, "params->clusters"},
        {"NeighboursZero", [](C& c) { c.params.neighbours = 0; }, "params->neighbours"},
        {"XRank2", [](C& c) { c.x.rank = 2; }, "x.rank"},
        {"XI32", [](C& c) { c.x.dtype = TK_DTYPE_I32; }, "x.dtype"},
        {"XChannelsNotContiguous", [](C& c) { c.x.strides[2] = 2; }, "x.strides[2]"},
        {"XNullData", [](C& c) { c.x.data = nullptr; }, "x.data"},
        {"LengthsI64", [](C& c) { c.lengths.dtype = TK_DTYPE_I64; }, "lengths.dtype"},
        {"LengthAboveN", [](C& c) { c.lengths_array.set(1, 0, 0, 7); }, "lengths[1]"},
        {"LengthNegative", [](C& c) { c.lengths_array.set(0, 0, 0, -1); }, "lengths[0]"},
        {"ItemClustersBatchDiffers", [](C& c) { c.item_clusters.shape[0] = 3; }, "item_clusters.shape[0]"},
        {"ItemClustersAboveClusters", [](C& c) { c.item_clusters_array.set(0, 0, 0, 4); }, "item_clusters[0]"},
        {"CentresI64", [](C& c) { c.centres.dtype = TK_DTYPE_I64; }, "centres.dtype"},
        {"CentresColumnsNotClusters", [](C& c) { c.centres.shape[1] = 2; }, "centres.shape[1]"},
        {"AssignmentTokensDiffer", [](C& c) { c.assignment.shape[1] = 5; }, "assignment.shape[1]"},
        {"AssignmentF32", [](C& c) { c.assignment.dtype = TK_DTYPE_F32; }, "assignment.dtype"},
        {"DensityI32", [](C& c) { c.density.dtype = TK_DTYPE_I32; }, "density.dtype"},
        {"DeltaBatchDiffers", [](C& c) { c.delta.shape[0] = 1; }, "delta.shape[0]"},
        {"CentresOverlapX", [](C& c) { c.centres.data = c.x.data; }, "disjoint from x"},
        {"AssignmentOverlapsCentres", [](C& c) { c.assignment.data = c.centres.data; }, "disjoint from centres"},
        {"DeltaOverlapsDensity", [](C& c) { c.delta.data = c.density.data; }, "disjoint from density"},
        {"AssignmentOverlapsItself", [](C& c) { c.assignment.strides[0] = 1; }, "assignment.strides"},
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

class DpcKnnInvalid : public ::testing::TestWithParam<InvalidCase<DpcCall>> {};
TEST_P(DpcKnnInvalid, IsRejectedWithoutWriting) { check_invalid(GetParam()); }
INSTANTIATE_TEST_SUITE_P(DpcKnn, DpcKnnInvalid, ::testing::ValuesIn(dpc_cases()), case_name<DpcCall>);

TEST(DpcKnnInvalid, TheUnbrokenCallIsAccepted) {
    DpcCall call;
    ASSERT_EQ(call.run(), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(call.centres_array.get(1, 2), -1);
    EXPECT_EQ(call.assignment_array.get(1, 4), -1);
    EXPECT_EQ(call.density_array.get(1, 5), 0.0);
}

TEST(DpcKnnInvalid, WorkspaceQueryNamesItsArguments) {
    DpcCall call;
    expect_rejected(tk_dpc_knn_workspace_size(&call.params, &call.x, nullptr), "bytes");
    uint64_t bytes = 0;
    expect_rejected(tk_dpc_knn_workspace_size(nullptr, &call.x, &bytes), "params");
    call.params.neighbours = -2;
    expect_rejected(tk_dpc_knn_workspace_size(&call.params, &call.x, &bytes), "params->neighbours");
}

// x [2, 5, 3] f32, assignment [2, 5] in [-1, 3), sizes [2, 5], centres [2, 3]; clusters 3 in the
// centre mode: out [2, 3, 3], out_size [2, 3].
struct MergeCall {
    HostArray x_array{TK_DTYPE_F32, {2, 5, 3}};
    HostArray assignment_array{TK_DTYPE_I32, {2, 5}};
    HostArray sizes_array{TK_DTYPE_F32, {2, 5}};
    HostArray centres_array{TK_DTYPE_I32, {2, 3}};
    HostArray out_array{TK_DTYPE_F32, {2, 3, 3}};
    HostArray out_size_array{TK_DTYPE_F32, {2, 3}};
    tk_cluster_merge_params params{3, TK_CLUSTER_MERGE_CENTRE_BLEND, 0.5f};
    tk_tensor x{}, assignment{}, sizes{}, centres{}, out{}, out_size{};
    bool null_params = false, null_assignment = false, null_sizes = false, null_centres = false, null_out = false;

    MergeCall() {
        fill_values(x_array);
        fill_values(sizes_array);
        const int a[2][5] = {{0, 1, 2, 0, -1}, {2, 2, 1, 0, 0}};
        const int k[2][3] = {{0, 1, 2}, {3, -1, 0}};
        for (int64_t b = 0; b < 2; ++b) {
            for (int64_t i = 0; i < 5; ++i) assignment_array.set(b, i, 0, a[b][i]);
            for (int64_t j = 0; j < 3; ++j) centres_array.set(b, j, 0, k[b][j]);
        }
        out_array.fill_bytes(0xA5);
        out_size_array.fill_bytes(0xA5);
        x = x_array.desc();
        assignment = assignment_array.desc();
        sizes = sizes_array.desc();
        centres = centres_array.desc();
        out = out_array.desc();
        out_size = out_size_array.desc();
    }
    std::vector<const HostArray*> arrays() const {
        return {&x_array, &assignment_array, &sizes_array, &centres_array, &out_array, &out_size_array};
    }
    tk_status run() const {
        return tk_cluster_merge(null_params ? nullptr : &params, &x, null_assignment ? nullptr : &assignment,
                                null_sizes ? nullptr : &sizes, null_centres ? nullptr : &centres, null_out ? nullptr : &out,
                                &out_size, nullptr);
    }
};

std::vector<InvalidCase<MergeCall>> merge_cases() {
    using C = MergeCall;
    return {
        {"NullParams", [](C& c) { c.null_params = true; }, "params"},
        {"ClustersNegative", [](C& c) { c.params.clusters = -1; }, "params->clusters"},
        {"ModeFour", [](C& c) { c.params.mode = 4; }, "params->mode"},
        {"ModeNegative", [](C& c) { c.params.mode = -1; }, "params->mode"},
        {"CentresMissingForCountBlend",
         [](C& c) {
             c.params.mode = TK_CLUSTER_MERGE_CENTRE_COUNT_BLEND;
             c.null_centres = true;
         },
         "centres"},
        {"BetaNaN", [](C& c) { c.params.beta = NAN; }, "params->beta"},
        {"BetaInfinite", [](C& c) { c.params.beta = INFINITY; }, "params->beta"},
        {"XRank2", [](C& c) { c.x.rank = 2; }, "x.rank"},
        {"XI64", [](C& c) { c.x.dtype = TK_DTYPE_I64; }, "x.dtype"},
        {"NullAssignment", [](C& c) { c.null_assignment = true; }, "assignment"},
        {"AssignmentF32", [](C& c) { c.assignment.dtype = TK_DTYPE_F32; }, "assignment.dtype"},
        {"AssignmentTokensDiffer", [](C& c) { c.assignment.shape[1] = 4; }, "assignment.shape[1]"},
        {"AssignmentAboveClusters", [](C& c) { c.assignment_array.set(1, 3, 0, 3); }, "assignment[1, 3]"},
        {"AssignmentBelowMinusOne", [](C& c) { c.assignment_array.set(0, 2, 0, -2); }, "assignment[0, 2]"},
        {"SizesMissingForSizeWeighted",
         [](C& c) {
             c.params.mode = TK_CLUSTER_MERGE_SIZE_WEIGHTED;
             c.null_sizes = true;
         },
         "sizes"},
        {"SizesI32", [](C& c) { c.sizes.dtype = TK_DTYPE_I32; }, "sizes.dtype"},
        {"SizesBatchDiffers", [](C& c) { c.sizes.shape[0] = 1; }, "sizes.shape[0]"},
        {"CentresMissingForBlend", [](C& c) { c.null_centres = true; }, "centres"},
        {"CentresColumnsDiffer", [](C& c) { c.centres.shape[1] = 2; }, "centres.shape[1]"},
        {"CentrePastN", [](C& c) { c.centres_array.set(0, 1, 0, 5); }, "centres[0, 1]"},
        {"NullOut", [](C& c) { c.null_out = true; }, "out"},
        {"OutDtypeDiffers", [](C& c) { c.out.dtype = TK_DTYPE_F16; }, "out.dtype"},
        {"OutRowsNotClusters", [](C& c) { c.out.shape[1] = 2; }, "out.shape[1]"},
        {"OutChannelsNotContiguous", [](C& c) { c.out.strides[2] = 2; c.out.strides[1] = 6; c.out.strides[0] = 18; }, "out"},
        {"OutOverlapsX", [](C& c) { c.out.data = c.x.data; }, "disjoint from x"},
        {"OutSizeI32", [](C& c) { c.out_size.dtype = TK_DTYPE_I32; }, "out_size.dtype"},
        {"OutSizeOverlapsOut", [](C& c) { c.out_size.data = c.out.data; }, "disjoint from out"},
    };
}

class ClusterMergeInvalid : public ::testing::TestWithParam<InvalidCase<MergeCall>> {};
TEST_P(ClusterMergeInvalid, IsRejectedWithoutWriting) { check_invalid(GetParam()); }
INSTANTIATE_TEST_SUITE_P(ClusterMerge, ClusterMergeInvalid, ::testing::ValuesIn(merge_cases()), case_name<MergeCall>);

TEST(ClusterMergeInvalid, TheUnbrokenCallIsAccepted) {
    MergeCall call;
    ASSERT_EQ(call.run(), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(call.out_size_array.get(1, 1), 0.0);  // centre -1: an empty cluster
}

// x [2, 6, 3] f32, lengths {6, 4}, centres [2, 3] ({0, 5, -1}, {3, -1, 1}): assignment [2, 6].
struct AssignCall {
    HostArray x_array{TK_DTYPE_F32, {2, 6, 3}};
    HostArray lengths_array{TK_DTYPE_I32, {2}};
    HostArray centres_array{TK_DTYPE_I32, {2, 3}};
    HostArray assignment_array{TK_DTYPE_I32, {2, 6}};
    tk_cluster_assign_params params{3};
    tk_tensor x{}, lengths{}, centres{}, assignment{};
    bool null_params = false, null_x = false, null_centres = false, null_assignment = false;

    AssignCall() {
        fill_values(x_array);
        lengths_array.set(0, 0, 0, 6);
        lengths_array.set(1, 0, 0, 4);
        const int k[2][3] = {{0, 5, -1}, {3, -1, 1}};
        for (int64_t b = 0; b < 2; ++b)
            for (int64_t j = 0; j < 3; ++j) centres_array.set(b, j, 0, k[b][j]);
        assignment_array.fill_bytes(0xA5);
        x = x_array.desc();
        lengths = lengths_array.desc();
        centres = centres_array.desc();
        assignment = assignment_array.desc();
    }
    std::vector<const HostArray*> arrays() const { return {&x_array, &lengths_array, &centres_array, &assignment_array}; }
    tk_status run() const {
        return tk_cluster_assign(null_params ? nullptr : &params, null_x ? nullptr : &x, &lengths,
                                 null_centres ? nullptr : &centres, null_assignment ? nullptr : &assignment, nullptr);
    }
};

std::vector<InvalidCase<AssignCall>> assign_cases() {
    using C = AssignCall;
    return {
        {"NullParams", [](C& c) { c.null_params = true; }, "params"},
        {"NullX", [](C& c) { c.null_x = true; }, "x"},
        {"NullCentres", [](C& c) { c.null_centres = true; }, "centres"},
        {"NullAssignment", [](C& c) { c.null_assignment = true; }, "assignment"},
        {"ClustersNegative", [](C& c) { c.params.clusters = -1; }, "params->clusters"},
        {"XRank2", [](C& c) { c.x.rank = 2; }, "x.rank"},
        {"XI32", [](C& c) { c.x.dtype = TK_DTYPE_I32; }, "x.dtype"},
        {"XChannelsNotContiguous", [](C& c) { c.x.strides[2] = 2; }, "x.strides[2]"},
        {"LengthsI64", [](C& c) { c.lengths.dtype = TK_DTYPE_I64; }, "lengths.dtype"},
        {"LengthAboveN", [](C& c) { c.lengths_array.set(1, 0, 0, 7); }, "lengths[1]"},
        {"CentresI64", [](C& c) { c.centres.dtype = TK_DTYPE_I64; }, "centres.dtype"},
        {"CentresColumnsNotClusters", [](C& c) { c.centres.shape[1] = 2; }, "centres.shape[1]"},
        {"CentreBelowMinusOne", [](C& c) { c.centres_array.set(0, 2, 0, -2); }, "centres[0, 2]"},
        {"CentrePastTheItemsLength", [](C& c) { c.centres_array.set(1, 0, 0, 4); }, "centres[1, 0]"},
        {"AssignmentTokensDiffer", [](C& c) { c.assignment.shape[1] = 5; }, "assignment.shape[1]"},
        {"AssignmentF32", [](C& c) { c.assignment.dtype = TK_DTYPE_F32; }, "assignment.dtype"},
        {"AssignmentOverlapsCentres", [](C& c) { c.assignment.data = c.centres.data; }, "disjoint from centres"},
        {"AssignmentOverlapsX", [](C& c) { c.assignment.data = c.x.data; }, "disjoint from x"},
        {"AssignmentOverlapsItself", [](C& c) { c.assignment.strides[0] = 1; }, "assignment.strides"},
    };
}

class ClusterAssignInvalid : public ::testing::TestWithParam<InvalidCase<AssignCall>> {};
TEST_P(ClusterAssignInvalid, IsRejectedWithoutWriting) { check_invalid(GetParam()); }
INSTANTIATE_TEST_SUITE_P(ClusterAssign, ClusterAssignInvalid, ::testing::ValuesIn(assign_cases()), case_name<AssignCall>);

TEST(ClusterAssignInvalid, TheUnbrokenCallIsAccepted) {
    AssignCall call;
    ASSERT_EQ(call.run(), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(call.assignment_array.get(0, 0), 0.0);  // a centre joins its own column
    EXPECT_EQ(call.assignment_array.get(1, 3), 0.0);
    EXPECT_EQ(call.assignment_array.get(1, 1), 2.0);
    EXPECT_EQ(call.assignment_array.get(1, 4), -1.0);  // past the length
}

}  // namespace
}  // namespace tkt
