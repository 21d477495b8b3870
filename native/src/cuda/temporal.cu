// Temporal redundancy on CUDA (SPEC section 5).
//   temporal_similarity_kernel   16 threads per token, lane l summing the channels l, l + 16, ... of
//                                u.v, |u|^2 and |v|^2 in order; the lanes meet in shared memory and
//                                lane 0 adds them in order (ops/temporal.hpp's finish_cosine), so the
//                                bits equal the CPU's. Tokens go grid-stride in (b, t, p) order: the
//                                reference frame's rows were read shortly before, and come from L2.
//   evs_mask_clear_kernel,       EVS's mask and grid coordinates from the kept positions.
//   evs_kept_kernel
// EVS composes the similarity pass (scoring 1 - cos) with the top-k and gather ops of
// cuda/attention.cu over its workspace; nothing waits for the device.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "core/dispatch.hpp"
#include "cuda/check.cuh"
#include "cuda/dtype.cuh"
#include "cuda/scratch.cuh"
#include "ops/attention.hpp"
#include "ops/temporal.hpp"

namespace tk::cuda {
namespace {

constexpr int kTokensPerBlock = 8;   // rows of kSumLanes threads: 128 threads
constexpr int kElementThreads = 256;
constexpr int64_t kMaxGridBlocks = 65535LL * 16;

unsigned grid_for(int64_t items, int64_t per_block) {
    return static_cast<unsigned>(std::min<int64_t>((items + per_block - 1) / per_block, kMaxGridBlocks));
}

template <class T>
__global__ void __launch_bounds__(kSumLanes* kTokensPerBlock) temporal_similarity_kernel(const TemporalSimilarityPlan p) {
    __shared__ float partial[kTokensPerBlock][3][kSumLanes];
    const int lane = static_cast<int>(threadIdx.x);
    const int row = static_cast<int>(threadIdx.y);
    // The two rows of a warp loop independently: each syncs its own half.
    const unsigned half_warp = 0xFFFFu << (16 * (row & 1));
    const int64_t tokens = p.batch * p.frames * p.positions;
    const T* x = static_cast<const T*>(p.x.data);
    for (int64_t token = static_cast<int64_t>(blockIdx.x) * kTokensPerBlock + row; token < tokens;
         token += static_cast<int64_t>(gridDim.x) * kTokensPerBlock) {
        const int64_t i = token % p.positions;
        const int64_t t = token / p.positions % p.frames;
        const int64_t b = token / (p.positions * p.frames);
        const int64_t r = reference_frame(p, t);
        float value = -INFINITY;  // no reference: most dissimilar
        if (r >= 0) {
            const T* u = x + b * p.x.strides[0] + t * p.x.strides[1] + i * p.x.strides[2];
            const T* v = x + b * p.x.strides[0] + r * p.x.strides[1] + i * p.x.strides[2];
            float dot = 0.0f, uu = 0.0f, vv = 0.0f;
            for (int64_t c = lane; c < p.channels; c += kSumLanes) {
                const float a = to_float(u[c]);
                const float e = to_float(v[c]);
                dot += a * e;
                uu += a * a;
                vv += e * e;
            }
            __syncwarp(half_warp);  // the previous token's lane 0 has read the partials
            partial[row][0][lane] = dot;
            partial[row][1][lane] = uu;
            partial[row][2][lane] = vv;
            __syncwarp(half_warp);
            if (lane == 0) value = finish_cosine(partial[row][0], partial[row][1], partial[row][2]);
        }
        if (lane == 0)
            static_cast<float*>(p.out.data)[b * p.out.strides[0] + t * p.out.strides[1] + i * p.out.strides[2]] =
                p.dissimilarity ? 1.0f - value : value;
    }
}

__global__ void evs_mask_clear_kernel(int32_t* mask, int64_t batch_stride, int64_t stride, int64_t batch, int64_t tokens) {
    for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < batch * tokens;
         e += static_cast<int64_t>(gridDim.x) * blockDim.x)
        mask[e / tokens * batch_stride + e % tokens * stride] = 0;
}

__global__ void evs_kept_kernel(const EvsPlan p, const StridedTensor indices) {
    const int64_t total = p.similarity.batch * p.retained;
    const int64_t tokens = p.similarity.frames * p.similarity.positions;
    for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
         e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t b = e / p.retained;
        const int64_t k = e % p.retained;
        const int64_t token = static_cast<const int32_t*>(indices.data)[b * indices.strides[0] + k * indices.strides[1]];
        if (token < 0 || token >= tokens) continue;  // cannot happen: K <= T * P
        if (p.positions.data != nullptr) {
            int32_t* at = static_cast<int32_t*>(p.positions.data) + b * p.positions.strides[0] + k * p.positions.strides[1];
            const int64_t cell = token % p.similarity.positions;
            at[0] = static_cast<int32_t>(token / p.similarity.positions);
            at[p.positions.strides[2]] = static_cast<int32_t>(cell / p.width);
            at[2 * p.positions.strides[2]] = static_cast<int32_t>(cell % p.width);
        }
        if (p.mask.data != nullptr)
            static_cast<int32_t*>(p.mask.data)[b * p.mask.strides[0] + token * p.mask.strides[1]] = 1;
    }
}

void launch_similarity(const TemporalSimilarityPlan& plan, cudaStream_t stream) {
    const int64_t tokens = plan.batch * plan.frames * plan.positions;
    if (tokens == 0) return;
    dispatch_float(plan.x.dtype, [&](auto tag) {
        using T = typename StorageOf<decltype(tag)::value>::type;
        temporal_similarity_kernel<T>
            <<<grid_for(tokens, kTokensPerBlock), dim3(kSumLanes, kTokensPerBlock), 0, stream>>>(plan);
        check(cudaGetLastError(), "temporal_similarity_kernel launch");
    });
}

}  // namespace

void temporal_similarity(const TemporalSimilarityPlan& plan, void* stream_handle) {
    DeviceGuard guard(plan.device_ordinal);
    launch_similarity(plan, static_cast<cudaStream_t>(stream_handle));
}

void evs(const EvsPlan& plan, void* workspace, void* stream_handle) {
    DeviceGuard guard(plan.similarity.device_ordinal);
    const auto stream = static_cast<cudaStream_t>(stream_handle);
    const TemporalSimilarityPlan& s = plan.similarity;
    const int64_t tokens = s.frames * s.positions;
    const EvsLayout layout = evs_layout(plan);
    Scratch scratch(workspace, layout.total, stream, "evs workspace");
    void* base = scratch.data();
    float* scores = at_offset<float>(base, layout.scores);

    TemporalSimilarityPlan scoring = s;
    scoring.dissimilarity = true;
    scoring.out = StridedTensor{scores, TK_DTYPE_F32, {tokens, s.positions, 1, 0}};
    launch_similarity(scoring, stream);

    StridedTensor indices = plan.indices;
    if (indices.data == nullptr) indices = StridedTensor{at_offset<int32_t>(base, layout.indices), TK_DTYPE_I32, {plan.retained, 1, 0, 0}};
    TopkPlan topk_plan{};
    topk_plan.batch = s.batch;
    topk_plan.tokens = tokens;
    topk_plan.k = plan.retained;
    topk_plan.device_ordinal = s.device_ordinal;
    topk_plan.scores = StridedTensor{scores, TK_DTYPE_F32, {tokens, 1, 0, 0}};
    topk_plan.indices = indices;
    topk(topk_plan, nullptr, stream);  // no ranked order: needs no scratch

    if (plan.out.data != nullptr) {
        GatherPlan gather_plan{};
        gather_plan.batch = s.batch;
        gather_plan.tokens = tokens;
        gather_plan.k = plan.retained;
        gather_plan.channels = s.channels;
        gather_plan.device_ordinal = s.device_ordinal;
        gather_plan.x = plan.tokens;
        gather_plan.indices = indices;
        gather_plan.out = plan.out;
        gather(gather_plan, stream);
    }
    if (plan.mask.data != nullptr) {
        evs_mask_clear_kernel<<<grid_for(s.batch * tokens, kElementThreads), kElementThreads, 0, stream>>>(
            static_cast<int32_t*>(plan.mask.data), plan.mask.strides[0], plan.mask.strides[1], s.batch, tokens);
        check(cudaGetLastError(), "evs_mask_clear_kernel launch");
    }
    if (plan.mask.data != nullptr || plan.positions.data != nullptr) {
        evs_kept_kernel<<<grid_for(s.batch * plan.retained, kElementThreads), kElementThreads, 0, stream>>>(plan, indices);
        check(cudaGetLastError(), "evs_kept_kernel launch");
    }
}

}  // namespace tk::cuda
