// Batched k-means (SPEC section 6, "k-means"): the validated plan handed to a backend, and the
// counter-based random stream of k-means++ seeding that every backend draws from. The header's
// comment on tk_kmeans_params and tk_kmeans is the contract.
#pragma once

#include <cstdint>

#include "core/host_device.hpp"
#include "ops/strided_tensor.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tk {

struct KMeansPlan {
    int64_t batch;
    int64_t tokens;          // N
    int64_t channels;        // C
    int64_t clusters;        // K
    int64_t max_iterations;
    double tolerance;
    uint64_t seed;
    tk_kmeans_init init;
    int32_t device_ordinal;
    StridedTensor x;                // [B, N, C]
    StridedTensor lengths;          // [B] i32, data NULL when absent
    StridedTensor item_clusters;    // [B] i32, data NULL when absent
    StridedTensor initial_centres;  // [B, K, C] f32 (TK_KMEANS_INIT_GIVEN)
    StridedTensor centres;          // [B, K, C] f32
    StridedTensor assignment;       // [B, N] i32
    StridedTensor sizes;            // [B, K] f32, data NULL when absent
    StridedTensor iterations;       // [B] i32, data NULL when absent
};

// splitmix64's finaliser (Steele, Lea and Flood): a bijection of 64-bit integers whose outputs pass
// as independent uniform draws for consecutive inputs.
TK_HOST_DEVICE uint64_t splitmix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Draw `draw` of item `item`'s stream: a double in [0, 1) with 53 random bits. Being a function of
// (seed, item, draw) alone, it is the same whichever thread or device draws it.
TK_HOST_DEVICE double kmeans_uniform(uint64_t seed, uint64_t item, uint64_t draw) {
    const uint64_t key = splitmix64(seed ^ splitmix64(item));
    return static_cast<double>(splitmix64(key + draw) >> 11) * 0x1.0p-53;
}

// k-means++'s candidates per step after the first centre: scikit-learn's 2 + floor(ln count).
TK_HOST_DEVICE int64_t kmeans_local_trials(int64_t count) {
    int64_t trials = 2;
    // floor(ln count) without a libm call, so both backends count alike: the largest t with e^t <= count.
    double power = 2.718281828459045;
    while (power <= static_cast<double>(count)) {
        ++trials;
        power *= 2.718281828459045;
    }
    return trials;
}

namespace cpu {
// One item's scratch for each of min(threads, B) threads: given a workspace of this size nothing is
// allocated and the items run on as many threads as it holds scratch for.
uint64_t kmeans_workspace_bytes(const KMeansPlan& plan, int64_t threads);
// workspace: NULL, or at least kmeans_workspace_bytes(plan, 1) bytes (checked at the ABI).
void kmeans(const KMeansPlan& plan, void* workspace, uint64_t workspace_bytes);
}  // namespace cpu

namespace cuda {
// Scratch on the device for this plan (one item's state per CTA); the op allocates it stream-ordered
// when given NULL.
uint64_t kmeans_workspace_bytes(const KMeansPlan& plan);
void kmeans(const KMeansPlan& plan, void* workspace, void* stream);
}  // namespace cuda

}  // namespace tk
