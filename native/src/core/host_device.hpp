#pragma once

// Functions shared by the CPU and CUDA backends (geometry, index math) are marked TK_HOST_DEVICE.
#if defined(__CUDACC__)
#  define TK_HOST_DEVICE __host__ __device__ __forceinline__
#else
#  define TK_HOST_DEVICE inline
#endif
