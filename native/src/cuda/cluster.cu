// CUDA backend of clustering and aggregation (SPEC section 6). DPC-kNN in seven kernels over all items
// at once, with no host synchronisation: every token's squared norm, the distance matrix of every item
// in the GEMM form (one thread per pair, 16x16 tiles of rows staged in shared memory 16 channels at a
// time, each dot product accumulated in the CPU micro-kernel's order: fused multiply-adds in increasing
// channel, blocks of kDpcChannelBlock channels added in order), each item's largest distance, each
// token's density (its k smallest distances by repeated selection, added in ascending order), delta
// and score, each token's rank by score (its count of tokens ranked before it: the ranks below K_b are
// the centres) and the assignment. Aggregation: one block per (item, cluster), threads over channels,
// members added in token order; no float atomics anywhere. Outside the dot products every float
// operation is rounded on its own (-fmad=false), as on the CPU: the bits are the CPU's where the CPU's
// dot products fuse their multiply-adds (its AVX-512 and AVX2 variants; its portable variant rounds
// each product).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/dispatch.hpp"
#include "core/regions.hpp"
#include "cuda/check.cuh"
#include "cuda/dtype.cuh"
#include "cuda/scratch.cuh"
#include "ops/cluster.hpp"
#include "ops/lane_sum.hpp"
#include "ops/portable_math.hpp"

namespace tk::cuda {
namespace {

constexpr int kTile = 16;          // distance tile: kTile x kTile pairs, kTile channels per step
constexpr int kThreads = 256;      // per-token kernels
constexpr int kMergeThreads = 128; // aggregation: channels per block step

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct Layout {
    uint64_t distance, norm, largest, density, delta, score, total;
};

Layout layout_of(const DpcKnnPlan& plan) {
    const uint64_t b = static_cast<uint64_t>(plan.batch), n = static_cast<uint64_t>(plan.tokens);
    RegionCursor cursor;
    Layout l{};
    l.distance = cursor.take(b * n * n * sizeof(float));
    l.norm = cursor.take(b * n * sizeof(float));
    l.largest = cursor.take(b * sizeof(float));
    l.density = cursor.take(b * n * sizeof(float));
    l.delta = cursor.take(b * n * sizeof(float));
    l.score = cursor.take(b * n * sizeof(float));
    l.total = cursor.total();
    return l;
}

// Item b's length and cluster count, clamped to their ranges (device values are not checked).
__device__ int64_t item_length(const DpcKnnPlan& p, int64_t b) {
    if (p.lengths.data == nullptr) return p.tokens;
    const int64_t v = *(static_cast<const int32_t*>(p.lengths.data) + b * p.lengths.strides[0]);
    return v < 0 ? 0 : (v > p.tokens ? p.tokens : v);
}

__device__ int64_t item_clusters(const DpcKnnPlan& p, int64_t b, int64_t length) {
    int64_t v = p.clusters;
    if (p.item_clusters.data != nullptr) {
        v = *(static_cast<const int32_t*>(p.item_clusters.data) + b * p.item_clusters.strides[0]);
        v = v < 0 ? 0 : (v > p.clusters ? p.clusters : v);
    }
    return v < length ? v : length;
}

__device__ int32_t& at2(const StridedTensor& t, int64_t b, int64_t i) {
    return *(static_cast<int32_t*>(t.data) + b * t.strides[0] + i * t.strides[1]);
}

__device__ float& at2f(const StridedTensor& t, int64_t b, int64_t i) {
    return *(static_cast<float*>(t.data) + b * t.strides[0] + i * t.strides[1]);
}

// Adds the dot product of channels [c0, c0 + kTile) to the running sums in the order of
// kDpcChannelBlock: `block` by fused multiply-adds, folded into `dot` where a channel block (or the
// channels) ends. Padding channels add fma(0, 0, block) == block.
__device__ void end_tile_step(int64_t c0, int64_t channels, float& block, float& dot) {
    const int64_t next = c0 + kTile;
    if (next % kDpcChannelBlock == 0 || next >= channels) {
        dot = c0 < kDpcChannelBlock ? block : dot + block;
        block = 0.0f;
    }
}

// |x_i|^2 of every token (one thread per token): the dot product of the row with itself in the same
// order as distance_kernel's, so it equals that kernel's diagonal and the CPU's.
template <class T>
__global__ void norm_kernel(DpcKnnPlan p, float* norm) {
    const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (t >= p.batch * p.tokens) return;
    const int64_t b = t / p.tokens, i = t % p.tokens;
    if (i >= item_length(p, b)) return;
    const T* x = static_cast<const T*>(p.x.data) + b * p.x.strides[0] + i * p.x.strides[1];
    float dot = 0.0f, block = 0.0f;
    for (int64_t c0 = 0; c0 < p.channels; c0 += kTile) {
        for (int64_t c = c0; c < c0 + kTile && c < p.channels; ++c) {
            const float v = to_float(x[c]);
            block = fmaf(v, v, block);
        }
        end_tile_step(c0, p.channels, block, dot);
    }
    norm[t] = dot;
}

// d(i, j) for the pairs of a 16 x 16 tile (blocks: item, then tile row, then tile column): the dot
// product of the two rows (end_tile_step's order), then dpc_squared_distance with the norms and
// dpc_distance, as on the CPU.
template <class T>
__global__ void distance_kernel(DpcKnnPlan p, const float* norm, float* distance) {
    __shared__ float rows_i[kTile][kTile + 1];
    __shared__ float rows_j[kTile][kTile + 1];
    const int64_t n = p.tokens;
    const int64_t tiles = (n + kTile - 1) / kTile;
    const int64_t b = blockIdx.x / (tiles * tiles);
    const int64_t tile_i = blockIdx.x / tiles % tiles, tile_j = blockIdx.x % tiles;
    const int64_t i = tile_i * kTile + threadIdx.y;
    const int64_t j = tile_j * kTile + threadIdx.x;
    const int64_t length = item_length(p, b);
    if (tile_i * kTile >= length || tile_j * kTile >= length) return;  // the whole block
    const T* x = static_cast<const T*>(p.x.data) + b * p.x.strides[0];
    float dot = 0.0f, block = 0.0f;
    for (int64_t c0 = 0; c0 < p.channels; c0 += kTile) {
        // Thread (y, x) stages channel c0 + x of row y of each side; channels past C are zeros.
        const int64_t c = c0 + threadIdx.x;
        const int64_t row_i = tile_i * kTile + threadIdx.y;
        const int64_t row_j = tile_j * kTile + threadIdx.y;
        rows_i[threadIdx.y][threadIdx.x] = row_i < length && c < p.channels ? to_float(x[row_i * p.x.strides[1] + c]) : 0.0f;
        rows_j[threadIdx.y][threadIdx.x] = row_j < length && c < p.channels ? to_float(x[row_j * p.x.strides[1] + c]) : 0.0f;
        __syncthreads();
#pragma unroll
        for (int l = 0; l < kTile; ++l) block = fmaf(rows_i[threadIdx.y][l], rows_j[threadIdx.x][l], block);
        __syncthreads();
        end_tile_step(c0, p.channels, block, dot);
    }
    if (i < length && j < length) {
        const float root_channels = static_cast<float>(sqrt(static_cast<double>(p.channels)));
        const float* item_norm = norm + b * n;
        distance[(b * n + i) * n + j] = dpc_distance(dpc_squared_distance(item_norm[i], item_norm[j], dot), root_channels);
    }
}

// The largest distance of each item (NaN ignored; 0 when none): one block per item.
__global__ void largest_kernel(DpcKnnPlan p, const float* distance, float* largest) {
    __shared__ float block_max[kThreads];
    const int64_t b = blockIdx.x;
    const int64_t n = p.tokens;
    const int64_t length = item_length(p, b);
    float m = 0.0f;
    for (int64_t e = threadIdx.x; e < length * length; e += blockDim.x) {
        const float v = distance[(b * n + e / length) * n + e % length];
        if (v > m) m = v;
    }
    block_max[threadIdx.x] = m;
    __syncthreads();
    for (int width = kThreads / 2; width >= 1; width /= 2) {
        if (threadIdx.x < width && block_max[threadIdx.x + width] > block_max[threadIdx.x])
            block_max[threadIdx.x] = block_max[threadIdx.x + width];
        __syncthreads();
    }
    if (threadIdx.x == 0) largest[b] = block_max[0];
}

// Whether distance a at j comes after (b, at i) in the order of the k nearest: ascending, NaN last,
// ties to the lower index (which of equal values is taken does not change the sum).
__device__ bool after(float a, int64_t j, float b, int64_t i) {
    if (nearer(b, a)) return true;
    if (nearer(a, b)) return false;
    return j > i;
}

// Density of each token: its k_b smallest distances, taken one by one in ascending order.
__global__ void density_kernel(DpcKnnPlan p, const float* distance, float* density) {
    const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (t >= p.batch * p.tokens) return;
    const int64_t b = t / p.tokens, i = t % p.tokens;
    const int64_t length = item_length(p, b);
    if (i >= length) return;
    const float* row = distance + (b * p.tokens + i) * p.tokens;
    const int64_t k = p.neighbours < length ? p.neighbours : length;
    float previous = 0.0f;
    int64_t previous_index = -1;
    float sum = 0.0f;
    for (int64_t step = 0; step < k; ++step) {
        float best = 0.0f;
        int64_t best_index = -1;
        for (int64_t j = 0; j < length; ++j) {
            const bool candidate = previous_index < 0 || after(row[j], j, previous, previous_index);
            if (candidate && (best_index < 0 || after(best, best_index, row[j], j))) {
                best = row[j];
                best_index = j;
            }
        }
        sum += best * best;
        previous = best;
        previous_index = best_index;
    }
    density[t] = portable_exp(-(sum / static_cast<float>(k)));
}

// Delta and score of each token, and the density and delta outputs (0 past the item's length).
__global__ void delta_kernel(DpcKnnPlan p, const float* distance, const float* largest, const float* density, float* delta,
                             float* score) {
    const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (t >= p.batch * p.tokens) return;
    const int64_t b = t / p.tokens, i = t % p.tokens;
    const int64_t length = item_length(p, b);
    float best = 0.0f, own = 0.0f;
    if (i < length) {
        const float* row = distance + (b * p.tokens + i) * p.tokens;
        const float* item_density = density + b * p.tokens;
        own = item_density[i];
        best = largest[b];
        for (int64_t j = 0; j < length; ++j)
            if (ranks_before(item_density[j], j, own, i) && row[j] < best) best = row[j];
        delta[t] = best;
        score[t] = best * own;
    }
    if (p.density.data != nullptr) at2f(p.density, b, i) = i < length ? own : 0.0f;
    if (p.delta.data != nullptr) at2f(p.delta, b, i) = i < length ? best : 0.0f;
}

// centres[b, rank of i] = i for the ranks below K_b; -1 in the columns from K_b.
__global__ void centre_kernel(DpcKnnPlan p, const float* score) {
    const int64_t width = p.tokens > p.clusters ? p.tokens : p.clusters;
    const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (t >= p.batch * width) return;
    const int64_t b = t / width, i = t % width;
    const int64_t length = item_length(p, b);
    const int64_t clusters = item_clusters(p, b, length);
    if (i < p.clusters && i >= clusters) at2(p.centres, b, i) = -1;
    if (i >= length) return;
    const float* item_score = score + b * p.tokens;
    const float own = item_score[i];
    int64_t rank = 0;
    for (int64_t j = 0; j < length && rank < clusters; ++j)
        if (ranks_before(item_score[j], j, own, i)) ++rank;
    if (rank < clusters) at2(p.centres, b, rank) = static_cast<int32_t>(i);
}

__global__ void assign_kernel(DpcKnnPlan p, const float* distance) {
    const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (t >= p.batch * p.tokens) return;
    const int64_t b = t / p.tokens, i = t % p.tokens;
    const int64_t length = item_length(p, b);
    const int64_t clusters = item_clusters(p, b, length);
    int32_t cluster = -1;
    if (i < length && clusters > 0) {
        for (int64_t j = 0; j < clusters && cluster < 0; ++j)
            if (at2(p.centres, b, j) == i) cluster = static_cast<int32_t>(j);
        if (cluster < 0) {
            const float* row = distance + (b * p.tokens + i) * p.tokens;
            cluster = 0;
            float best = row[at2(p.centres, b, 0)];
            for (int64_t j = 1; j < clusters; ++j) {
                const float v = row[at2(p.centres, b, j)];
                if (nearer(v, best)) {
                    best = v;
                    cluster = static_cast<int32_t>(j);
                }
            }
        }
    }
    at2(p.assignment, b, i) = cluster;
}

// One block per (item, cluster); each thread owns channels c, c + blockDim.x, ... and adds the members
// in token order, as the CPU does. Device assignments and centres out of range match no cluster.
template <class T>
__global__ void cluster_merge_kernel(ClusterMergePlan p) {
    const int64_t task = blockIdx.x;
    const int64_t b = task / p.clusters, cluster = task % p.clusters;
    int64_t centre = -1;
    if (p.centres.data != nullptr) {
        centre = at2(p.centres, b, cluster);
        if (centre < -1 || centre >= p.tokens) centre = -1;
    }
    const bool blend = p.mode == TK_CLUSTER_MERGE_CENTRE_BLEND || p.mode == TK_CLUSTER_MERGE_CENTRE_COUNT_BLEND;
    const bool weighted = p.mode == TK_CLUSTER_MERGE_SIZE_WEIGHTED;
    const T* x = static_cast<const T*>(p.x.data) + b * p.x.strides[0];
    T* out = static_cast<T*>(p.out.data) + b * p.out.strides[0] + cluster * p.out.strides[1];
    // The weight and size are the same for every channel: each thread computes them alongside.
    for (int64_t c0 = 0; c0 == 0 || c0 < p.channels; c0 += blockDim.x) {
        const int64_t c = c0 + threadIdx.x;
        const bool has_channel = c < p.channels;
        float sum = 0.0f, weight = 0.0f, size = 0.0f;
        for (int64_t i = 0; i < p.tokens; ++i) {
            if (at2(p.assignment, b, i) != cluster) continue;
            const float token_size = p.sizes.data != nullptr ? at2f(p.sizes, b, i) : 1.0f;
            size += token_size;
            if (blend && i == centre) continue;
            const float v = has_channel ? to_float(x[i * p.x.strides[1] + c]) : 0.0f;
            if (weighted) {
                sum += token_size * v;
                weight += token_size;
            } else {
                sum += v;
                weight += 1.0f;
            }
        }
        if (has_channel) {
            float value;
            if (blend && centre >= 0) {
                const float v = to_float(x[centre * p.x.strides[1] + c]);
                const float centre_weight = centre_blend_weight(p.mode, p.beta, weight);
                value = weight > 0.0f ? centre_weight * v + (1.0f - centre_weight) * (sum / weight) : v;
            } else if (blend || weight == 0.0f) {
                value = 0.0f;
            } else {
                value = sum / weight;
            }
            out[c] = from_float<T>(value);
        }
        if (c == 0 && p.out_size.data != nullptr) at2f(p.out_size, b, cluster) = blend && centre < 0 ? 0.0f : size;
    }
}

// One thread per (item, token), each sum in ops/lane_sum.hpp's order as on the CPU (the CPU keeps the
// centres' unit rows; here each thread recomputes them, the same float operations). Device lengths are
// clamped and a centre outside [0, L_b) counts as -1.
template <class T>
__global__ void cluster_assign_kernel(ClusterAssignPlan p) {
    const int64_t task = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (task >= p.batch * p.tokens) return;
    const int64_t b = task / p.tokens, i = task % p.tokens;
    int64_t length = p.tokens;
    if (p.lengths.data != nullptr) {
        length = *(static_cast<const int32_t*>(p.lengths.data) + b * p.lengths.strides[0]);
        length = length < 0 ? 0 : length > p.tokens ? p.tokens : length;
    }
    const T* x = static_cast<const T*>(p.x.data) + b * p.x.strides[0];
    const int64_t channels = p.channels;
    const auto norm_of = [&](int64_t t) {
        const T* row = x + t * p.x.strides[1];
        return sqrtf(lane_sum(channels, [&](int64_t c) { return to_float(row[c]) * to_float(row[c]); }));
    };
    const auto centre_of = [&](int64_t j) {
        const int64_t centre = at2(p.centres, b, j);
        return centre < 0 || centre >= length ? int64_t{-1} : centre;
    };
    int32_t cluster = -1;
    if (i < length) {
        int64_t first_valid = -1;
        for (int64_t j = 0; j < p.clusters; ++j) {
            const int64_t centre = centre_of(j);
            if (centre >= 0 && first_valid < 0) first_valid = j;
            if (centre == i && cluster < 0) cluster = static_cast<int32_t>(j);
        }
        if (cluster < 0 && first_valid >= 0) {
            const T* row = x + i * p.x.strides[1];
            const float norm = norm_of(i);
            float best = NAN;
            for (int64_t j = 0; j < p.clusters; ++j) {
                const int64_t centre = centre_of(j);
                if (centre < 0) continue;
                const T* centre_row = x + centre * p.x.strides[1];
                const float centre_norm = norm_of(centre);
                const float similarity = lane_sum(channels, [&](int64_t c) {
                    return unit_component(to_float(row[c]), norm) * unit_component(to_float(centre_row[c]), centre_norm);
                });
                if (more_similar(similarity, best)) {
                    best = similarity;
                    cluster = static_cast<int32_t>(j);
                }
            }
            if (cluster < 0) cluster = static_cast<int32_t>(first_valid);
        }
    }
    at2(p.assignment, b, i) = cluster;
}

}  // namespace

uint64_t dpc_knn_workspace_bytes(const DpcKnnPlan& plan) {
    DeviceGuard guard(plan.device_ordinal);
    return layout_of(plan).total;
}

void dpc_knn(const DpcKnnPlan& plan, void* workspace, void* stream_handle) {
    DeviceGuard guard(plan.device_ordinal);
    const auto stream = static_cast<cudaStream_t>(stream_handle);
    if (plan.batch * plan.tokens == 0) {
        return;
    }
    const Layout layout = layout_of(plan);
    Scratch scratch(workspace, layout.total, stream, "DPC-kNN workspace");
    void* base = scratch.data();
    float* distance = at_offset<float>(base, layout.distance);
    float* norm = at_offset<float>(base, layout.norm);
    float* largest = at_offset<float>(base, layout.largest);
    float* density = at_offset<float>(base, layout.density);
    float* delta = at_offset<float>(base, layout.delta);
    float* score = at_offset<float>(base, layout.score);
    const int64_t tiles = ceil_div(plan.tokens, kTile);
    const unsigned token_blocks = static_cast<unsigned>(ceil_div(plan.batch * plan.tokens, kThreads));
    dispatch_float(plan.x.dtype, [&](auto tag) {
        using T = typename StorageOf<decltype(tag)::value>::type;
        norm_kernel<T><<<token_blocks, kThreads, 0, stream>>>(plan, norm);
        check(cudaGetLastError(), "norm_kernel launch");
        distance_kernel<T><<<static_cast<unsigned>(plan.batch * tiles * tiles), dim3(kTile, kTile), 0, stream>>>(plan, norm,
                                                                                                                  distance);
    });
    check(cudaGetLastError(), "distance_kernel launch");
    largest_kernel<<<static_cast<unsigned>(plan.batch), kThreads, 0, stream>>>(plan, distance, largest);
    check(cudaGetLastError(), "largest_kernel launch");
    density_kernel<<<token_blocks, kThreads, 0, stream>>>(plan, distance, density);
    check(cudaGetLastError(), "density_kernel launch");
    delta_kernel<<<token_blocks, kThreads, 0, stream>>>(plan, distance, largest, density, delta, score);
    check(cudaGetLastError(), "delta_kernel launch");
    const int64_t width = std::max(plan.tokens, plan.clusters);
    centre_kernel<<<static_cast<unsigned>(ceil_div(plan.batch * width, kThreads)), kThreads, 0, stream>>>(plan, score);
    check(cudaGetLastError(), "centre_kernel launch");
    assign_kernel<<<token_blocks, kThreads, 0, stream>>>(plan, distance);
    check(cudaGetLastError(), "assign_kernel launch");
}

void cluster_merge(const ClusterMergePlan& plan, void* stream_handle) {
    DeviceGuard guard(plan.device_ordinal);
    const auto stream = static_cast<cudaStream_t>(stream_handle);
    if (plan.batch * plan.clusters == 0) return;
    dispatch_float(plan.x.dtype, [&](auto tag) {
        using T = typename StorageOf<decltype(tag)::value>::type;
        cluster_merge_kernel<T><<<static_cast<unsigned>(plan.batch * plan.clusters), kMergeThreads, 0, stream>>>(plan);
    });
    check(cudaGetLastError(), "cluster_merge_kernel launch");
}

void cluster_assign(const ClusterAssignPlan& plan, void* stream_handle) {
    DeviceGuard guard(plan.device_ordinal);
    const auto stream = static_cast<cudaStream_t>(stream_handle);
    if (plan.batch * plan.tokens == 0) return;
    const unsigned blocks = static_cast<unsigned>(ceil_div(plan.batch * plan.tokens, kThreads));
    dispatch_float(plan.x.dtype, [&](auto tag) {
        using T = typename StorageOf<decltype(tag)::value>::type;
        cluster_assign_kernel<T><<<blocks, kThreads, 0, stream>>>(plan);
    });
    check(cudaGetLastError(), "cluster_assign_kernel launch");
}

}  // namespace tk::cuda
