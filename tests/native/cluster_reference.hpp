// Float64 references for clustering and aggregation (SPEC section 6), written for clarity from the
// SPEC: DPC-kNN with every decision's margin, so a test can tell a float32 near-tie from a bug, and
// the per-cluster aggregation.
#pragma once

#include <cstdint>
#include <vector>

namespace tkt {

struct DpcInputs {
    int64_t batch = 0, tokens = 0, channels = 0;
    int64_t clusters = 0, neighbours = 1;
    std::vector<double> x;                // [B, N, C] row-major, the values the op sees
    std::vector<int64_t> lengths;         // [B] or empty
    std::vector<int64_t> item_clusters;   // [B] or empty
};

struct DpcResult {
    std::vector<int64_t> centres;     // [B, K], -1 past an item's count
    std::vector<int64_t> assignment;  // [B, N], -1 past an item's length
    std::vector<double> density;      // [B, N], 0 past an item's length
    std::vector<double> delta;        // [B, N], 0 past an item's length
    // Bounds on how far the float32 density and delta may lie from the values above: the GEMM form's
    // squared distances are exact only to about C * eps * (|a|^2 + |b|^2), absolute.
    std::vector<double> density_error;  // [B, N]
    std::vector<double> delta_error;    // [B, N]
    // Whether some decision (density order that changes a delta, score rank, nearest centre) was
    // decided by a margin below the tolerance given (relative) plus the float32 error bounds of the
    // values compared, so float32 may decide it otherwise.
    bool near_tie = false;
};

DpcResult dpc_knn_reference(const DpcInputs& in, double tie_tolerance = 1e-5);

enum class MergeMode { kMean = 0, kSizeWeighted = 1, kCentreBlend = 2, kCentreCountBlend = 3 };

struct ClusterMergeInputs {
    int64_t batch = 0, tokens = 0, channels = 0, clusters = 0;
    MergeMode mode = MergeMode::kMean;
    double beta = 0.0;
    std::vector<double> x;             // [B, N, C]
    std::vector<int64_t> assignment;   // [B, N]
    std::vector<double> sizes;         // [B, N] or empty
    std::vector<int64_t> centres;      // [B, K] or empty
};

struct ClusterMergeResult {
    std::vector<double> out;       // [B, K, C]
    std::vector<double> out_size;  // [B, K]
};

ClusterMergeResult cluster_merge_reference(const ClusterMergeInputs& in);

// Assignment of every token to its most cosine-similar centre token (tk_cluster_assign).
struct ClusterAssignInputs {
    int64_t batch = 0, tokens = 0, channels = 0, clusters = 0;
    std::vector<double> x;             // [B, N, C]
    std::vector<int64_t> lengths;      // [B] or empty
    std::vector<int64_t> centres;      // [B, K], -1: no centre
};

struct ClusterAssignResult {
    std::vector<int64_t> assignment;  // [B, N]
    // Whether some token's best and second-best similarities lie within the tolerance, so float32 may
    // pick the other.
    bool near_tie = false;
};

ClusterAssignResult cluster_assign_reference(const ClusterAssignInputs& in, double tie_tolerance = 1e-5);

}  // namespace tkt
