// Pieces shared by the CUDA diversity kernels: per-item bounds clamped on the device (checking
// them would need a host synchronisation), the selection key that every argmax of the op takes, and
// rows of features moved as machine words.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

#include "cuda/dtype.cuh"
#include "cuda/merge_common.cuh"

namespace tk::cuda::diversity_detail {

__device__ __forceinline__ int64_t clamp64(int64_t v, int64_t lo, int64_t hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

// L_b: lengths[b] clamped to [0, N], or N without lengths.
__device__ __forceinline__ int64_t item_length(const int32_t* lengths, int64_t stride, int64_t b, int64_t tokens) {
    return lengths != nullptr ? clamp64(lengths[b * stride], 0, tokens) : tokens;
}

// count_b = min(item_k[b] clamped to [0, k] (or k), L_b).
__device__ __forceinline__ int64_t item_count(const int32_t* item_k, int64_t stride, int64_t b, int64_t k,
                                              int64_t length) {
    const int64_t wanted = item_k != nullptr ? clamp64(item_k[b * stride], 0, k) : k;
    return wanted < length ? wanted : length;
}

// Key of token j scoring `score_key` (merge_detail::order_key: NaN below -inf below every number):
// the key above the complement of j, so that the largest key is the highest score, ties to the lower
// index. Every key of a real token is at least 1 << 32; 0 is "no candidate" (a chosen token, a token
// outside the item), below every candidate, NaN included.
__device__ __forceinline__ uint64_t token_key(uint32_t score_key, int64_t j) {
    return (static_cast<uint64_t>(score_key) << 32) | (0xffffffffu - static_cast<uint32_t>(j));
}

__device__ __forceinline__ int64_t token_of(uint64_t key) {
    return static_cast<int64_t>(0xffffffffu - static_cast<uint32_t>(key));
}

struct MaxKey {
    __device__ __forceinline__ uint64_t operator()(uint64_t a, uint64_t b) const { return a > b ? a : b; }
};

// Max is exact, associative and commutative: CTAs of one item may combine their keys in any order
// and the result is the same, run to run.
__device__ __forceinline__ void atomic_max_key(uint64_t* slot, uint64_t key) {
    atomicMax(reinterpret_cast<unsigned long long*>(slot), static_cast<unsigned long long>(key));
}

template <class T, int V>
__device__ __forceinline__ void unpack(const Word<T, V>& word, float (&values)[V]) {
    T lanes[V];
    memcpy(lanes, &word, sizeof(word));
#pragma unroll
    for (int e = 0; e < V; ++e) values[e] = to_float(lanes[e]);
}

}  // namespace tk::cuda::diversity_detail
