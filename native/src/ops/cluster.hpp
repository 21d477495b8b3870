// Clustering and aggregation (SPEC section 6): the validated plans handed to a backend, and the
// arithmetic both backends share, so that a CUDA backend can give the CPU's bits. The header's
// comments on tk_dpc_knn and tk_cluster_merge are the contract.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/host_device.hpp"
#include "ops/strided_tensor.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tk {

struct DpcKnnPlan {
    int64_t batch;
    int64_t tokens;      // N
    int64_t channels;    // C
    int64_t clusters;    // K, the columns of centres
    int64_t neighbours;  // k of the density, before clamping to an item's length
    int32_t device_ordinal;
    StridedTensor x;              // [B, N, C]
    StridedTensor lengths;        // [B] i32, data NULL when absent
    StridedTensor item_clusters;  // [B] i32, data NULL when absent
    StridedTensor centres;        // [B, K] i32
    StridedTensor assignment;     // [B, N] i32
    StridedTensor density;        // [B, N] f32, data NULL when absent
    StridedTensor delta;          // [B, N] f32, data NULL when absent
};

struct ClusterMergePlan {
    int64_t batch;
    int64_t tokens;    // N
    int64_t channels;  // C
    int64_t clusters;  // K
    tk_cluster_merge_mode mode;
    float beta;
    int32_t device_ordinal;
    StridedTensor x;           // [B, N, C]
    StridedTensor assignment;  // [B, N] i32
    StridedTensor sizes;       // [B, N] f32, data NULL when absent
    StridedTensor centres;     // [B, K] i32, data NULL when absent
    StridedTensor out;         // [B, K, C], x's dtype
    StridedTensor out_size;    // [B, K] f32, data NULL when absent
};

struct ClusterAssignPlan {
    int64_t batch;
    int64_t tokens;    // N
    int64_t channels;  // C
    int64_t clusters;  // K, the columns of centres
    int32_t device_ordinal;
    StridedTensor x;           // [B, N, C]
    StridedTensor lengths;     // [B] i32, data NULL when absent
    StridedTensor centres;     // [B, K] i32
    StridedTensor assignment;  // [B, N] i32
};

// DPC-kNN's dot products a.b (and squared norms a.a) are sums over channel blocks of this many
// channels, each block's terms accumulated in increasing channel by fused multiply-adds from 0, the
// blocks added in increasing order: the CPU GEMM micro-kernel's order, which CUDA repeats.
constexpr int64_t kDpcChannelBlock = 256;

// The squared Euclidean distance in the GEMM form (torch.cdist's for these sizes): (|a|^2 + |b|^2) -
// 2 a.b, clamped at 0 against cancellation (NaN kept).
TK_HOST_DEVICE float dpc_squared_distance(float norm_a, float norm_b, float dot) {
    const float s = (norm_a + norm_b) - 2.0f * dot;
    return s < 0.0f ? 0.0f : s;
}

// The distance of DPC-kNN from a float32 squared Euclidean distance: sqrt(s) / sqrt(C), each step
// rounded once (LightCompress's torch.cdist(x, x) / C ** 0.5, the divisor rounded to float32).
TK_HOST_DEVICE float dpc_distance(float squared, float root_channels) { return sqrtf(squared) / root_channels; }

// The order of distances: ascending, NaN after every number (NaN never is the nearest).
TK_HOST_DEVICE bool nearer(float a, float b) { return a < b || (a == a && b != b); }

// The order of densities and scores: descending, NaN after every number; ties to the lower index.
TK_HOST_DEVICE bool ranks_before(float a, int64_t i, float b, int64_t j) {
    if (a > b || (a == a && b != b)) return true;
    const bool tied = a == b || (a != a && b != b);
    return tied && i < j;
}

// A component of the unit vector of a row of the given norm (FastVID's x / x.norm()); a zero row stays
// zero instead of 0/0, so it is equally similar (0) to every centre.
TK_HOST_DEVICE float unit_component(float v, float norm) { return norm == 0.0f ? 0.0f : v / norm; }

// The order of cosine similarities in tk_cluster_assign: larger first, NaN never; the strict comparison
// leaves ties with the lower column, which is scanned first.
TK_HOST_DEVICE bool more_similar(float a, float best) { return a > best || (a == a && best != best); }

// The centre's weight of the centre modes of tk_cluster_merge given the count n of the other members:
// HoliTom's fixed beta, or FastVID's max(1 / (n + 1), beta) (its avg_weights, clamped from below).
TK_HOST_DEVICE float centre_blend_weight(tk_cluster_merge_mode mode, float beta, float count) {
    if (mode != TK_CLUSTER_MERGE_CENTRE_COUNT_BLEND) return beta;
    const float weight = 1.0f / (count + 1.0f);
    return weight < beta ? beta : weight;
}

namespace cpu {
// Scratch of one item in flight (its rows and column panels, its distance matrix, per-token values) times
// `threads` items at once. Given at least dpc_knn_workspace_bytes(plan, 1) the op allocates nothing.
uint64_t dpc_knn_workspace_bytes(const DpcKnnPlan& plan, int64_t threads);
void dpc_knn(const DpcKnnPlan& plan, void* workspace, uint64_t workspace_bytes);
void cluster_merge(const ClusterMergePlan& plan);
void cluster_assign(const ClusterAssignPlan& plan);
}  // namespace cpu

namespace cuda {
// Every item's N x N distance matrix and per-token density, delta and score; the op allocates it
// stream-ordered when given NULL.
uint64_t dpc_knn_workspace_bytes(const DpcKnnPlan& plan);
void dpc_knn(const DpcKnnPlan& plan, void* workspace, void* stream);
void cluster_merge(const ClusterMergePlan& plan, void* stream);
void cluster_assign(const ClusterAssignPlan& plan, void* stream);
}  // namespace cuda

}  // namespace tk
