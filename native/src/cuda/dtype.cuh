// Element types of the CUDA backend and the machine words that move vectors of them, shared by
// every op's kernels: the one mapping from a dispatch_float tag to a device storage type.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "tokenkernels/tokenkernels.h"

namespace tk::cuda {

template <tk_dtype D>
struct StorageOf;
template <>
struct StorageOf<TK_DTYPE_F32> {
    using type = float;
};
template <>
struct StorageOf<TK_DTYPE_F16> {
    using type = __half;
};
template <>
struct StorageOf<TK_DTYPE_BF16> {
    using type = __nv_bfloat16;
};

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

// Round to nearest even, as PyTorch converts the float accumulator back to the storage type.
template <class T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
    return v;
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
    return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

// The machine word a vector of V elements of T moves as, so that it is one memory access.
template <int Bytes>
struct WordOf;
template <>
struct WordOf<16> {
    using type = uint4;
};
template <>
struct WordOf<8> {
    using type = uint2;
};
template <>
struct WordOf<4> {
    using type = unsigned int;
};
template <>
struct WordOf<2> {
    using type = unsigned short;
};
template <class T, int V>
using Word = typename WordOf<static_cast<int>(sizeof(T)) * V>::type;

// The widest vector of T: 16 bytes.
template <class T>
constexpr int kMaxVector = 16 / static_cast<int>(sizeof(T));

// Read-only path: inputs never alias outputs (the ABI boundary checks they are disjoint).
template <class T, int V>
__device__ __forceinline__ Word<T, V> load_word(const T* ptr) {
    return __ldg(reinterpret_cast<const Word<T, V>*>(ptr));
}

}  // namespace tk::cuda
