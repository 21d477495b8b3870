// tk_segment_similarity on CUDA (SPEC section 5).
//   segment_similarity_kernel   one thread per (segment, position), grid-stride, positions fastest:
//                               ops/segment_similarity.hpp's segment_mean_similarity, the function the
//                               CPU runs (each row's norm computed again for every pair, where the CPU
//                               keeps it: the same bits), so the bits equal the CPU's. Each thread finds
//                               its segment's frames from the lengths (device lengths are clipped, not
//                               checked).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "core/dispatch.hpp"
#include "cuda/check.cuh"
#include "cuda/dtype.cuh"
#include "ops/segment_similarity.hpp"

namespace tk::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int64_t kMaxGridBlocks = 65535LL * 16;

template <class T>
__global__ void __launch_bounds__(kThreads) segment_similarity_kernel(const SegmentSimilarityPlan p) {
    const T* x = static_cast<const T*>(p.x.data);
    const int64_t outputs = p.segments * p.positions;
    for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < outputs;
         e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t s = e / p.positions;
        const int64_t i = e % p.positions;
        int64_t begin = 0, end = 0;
        segment_frames(p, s, &begin, &end);
        const T* first = x + begin * p.x.strides[0] + i * p.x.strides[1];
        const auto convert = [](T v) { return to_float(v); };
        const auto row = [&](int64_t w) { return first + w * p.x.strides[0]; };
        const auto norm = [&](int64_t w) { return segment_clamped_norm(row(w), p.channels, convert); };
        static_cast<float*>(p.out.data)[s * p.out.strides[0] + i * p.out.strides[1]] =
            segment_mean_similarity(end - begin, p.channels, row, norm, convert);
    }
}

}  // namespace

void segment_similarity(const SegmentSimilarityPlan& plan, void* stream_handle) {
    DeviceGuard guard(plan.device_ordinal);
    const int64_t outputs = plan.segments * plan.positions;
    if (outputs == 0) return;
    const auto blocks = static_cast<unsigned>(std::clamp<int64_t>((outputs + kThreads - 1) / kThreads, 1, kMaxGridBlocks));
    dispatch_float(plan.x.dtype, [&](auto tag) {
        using T = typename StorageOf<decltype(tag)::value>::type;
        segment_similarity_kernel<T><<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream_handle)>>>(plan);
        check(cudaGetLastError(), "segment_similarity_kernel launch");
    });
}

}  // namespace tk::cuda
