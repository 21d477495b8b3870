// Temporal redundancy on CUDA (SPEC section 5).
//   temporal_similarity_kernel   16 threads per token, lane l summing the channels l, l + 16, ... of
//                                u.v, |u|^2 and |v|^2 in order; the lanes meet in shared memory and
//                                lane 0 adds them in order (ops/temporal.hpp's finish_cosine), so the
//                                bits equal the CPU's. Tokens go grid-stride in (b, t, p) order: the
//                                reference frame's rows were read shortly before, and come from L2.
//   dycoke_frames_kernel         DyCoke's per-frame counts (the top-k's per-item k) and first output
//                                slots (VidCom2's come from cuda/vidcom2.cu).
//   frame_concat_kernel          DyCoke's and VidCom2's per-frame kept positions laid one frame after
//                                another.
//   mask_clear_kernel,           the mask and grid coordinates from the kept positions.
//   kept_outputs_kernel
//   fuse_flags_kernel,           FrameFusion: which tokens merge (all that reach the threshold, or the
//   capped_flags_kernel          capped top-k's that do);
//   framefusion_rows_kernel      one CTA per item: the output row of every token that stays, a block
//                                scan in token order, and the merge count;
//   framefusion_means_kernel     one CTA per (item, position): each run's mean in frame order;
//   framefusion_resolve_kernel   every merged token's row, the source map and the run sizes;
//   framefusion_tail_kernel      the rows past each item's count, zero.
// The video methods compose the similarity pass with the top-k and gather ops of cuda/attention.cu
// over their workspace; nothing waits for the device.
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
    return static_cast<unsigned>(std::clamp<int64_t>((items + per_block - 1) / per_block, 1, kMaxGridBlocks));
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
                temporal_score(p.score, value);
    }
}

__global__ void dycoke_frames_kernel(int32_t* keeps, int32_t* offsets, int64_t batch_frames, int64_t frames, int64_t positions,
                                     int64_t compared_keeps) {
    for (int64_t f = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; f < batch_frames;
         f += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        keeps[f] = static_cast<int32_t>(dycoke_frame_keeps(f % frames, positions, compared_keeps));
        offsets[f] = static_cast<int32_t>(dycoke_frame_offset(f % frames, positions, compared_keeps));
    }
}

// kept[b, offsets[f] + j] = t * P + frame_indices[f, j] for the j < keeps[f] frame f = b * T + t keeps.
__global__ void frame_concat_kernel(const int32_t* frame_indices, const int32_t* keeps, const int32_t* offsets, int64_t batch,
                                    int64_t frames, int64_t positions, int32_t* kept, int64_t kept_batch_stride, int64_t kept_stride) {
    const int64_t total = batch * frames * positions;
    for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
         e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t j = e % positions;
        const int64_t f = e / positions;
        if (j >= keeps[f]) continue;
        const int64_t slot = offsets[f] + j;
        kept[f / frames * kept_batch_stride + slot * kept_stride] = static_cast<int32_t>(f % frames * positions + frame_indices[e]);
    }
}

__global__ void mask_clear_kernel(int32_t* mask, int64_t batch_stride, int64_t stride, int64_t batch, int64_t tokens) {
    for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < batch * tokens;
         e += static_cast<int64_t>(gridDim.x) * blockDim.x)
        mask[e / tokens * batch_stride + e % tokens * stride] = 0;
}

__global__ void kept_outputs_kernel(const VideoSelectionPlan p, const StridedTensor indices) {
    const int64_t total = p.similarity.batch * p.retained;
    const int64_t tokens = p.similarity.frames * p.similarity.positions;
    for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
         e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t b = e / p.retained;
        const int64_t k = e % p.retained;
        const int64_t token = static_cast<const int32_t*>(indices.data)[b * indices.strides[0] + k * indices.strides[1]];
        if (token < 0 || token >= tokens) continue;  // cannot happen: every slot holds a kept position
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

// ---- FrameFusion ----

constexpr int kScanThreads = 1024;
constexpr int kMeanThreads = 128;

__global__ void fuse_flags_kernel(const float* scores, int32_t* flags, int64_t count, float threshold) {
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)
        flags[i] = fuses(scores[i], threshold) ? 1 : 0;
}

// flags is zero; the capped top-k's positions that reach the threshold get 1.
__global__ void capped_flags_kernel(const float* scores, const int32_t* capped, int32_t* flags, int64_t batch, int64_t cap,
                                    int64_t tokens, float threshold) {
    for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < batch * cap;
         e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t token = capped[e];
        if (token < 0 || token >= tokens) continue;  // cannot happen: cap <= T * P
        const int64_t i = e / cap * tokens + token;
        flags[i] = fuses(scores[i], threshold) ? 1 : 0;
    }
}

// rows[b, i]: 1 where token i merges -> its output row where it stays, -1 where it merges; the rows of
// the tokens that stay are their ranks in token order, an exclusive scan over chunks of the block.
__global__ void __launch_bounds__(kScanThreads) framefusion_rows_kernel(int32_t* rows, int64_t tokens, int32_t* merge_count,
                                                                        int64_t merge_count_stride) {
    __shared__ int32_t scan[kScanThreads];
    int32_t* item_rows = rows + static_cast<int64_t>(blockIdx.x) * tokens;
    int32_t running = 0;
    for (int64_t chunk = 0; chunk < tokens; chunk += kScanThreads) {
        const int64_t i = chunk + threadIdx.x;
        const int32_t stays = i < tokens && item_rows[i] == 0 ? 1 : 0;
        scan[threadIdx.x] = stays;
        __syncthreads();
        // Hillis-Steele inclusive scan.
        for (int offset = 1; offset < kScanThreads; offset *= 2) {
            const int32_t add = threadIdx.x >= static_cast<unsigned>(offset) ? scan[threadIdx.x - offset] : 0;
            __syncthreads();
            scan[threadIdx.x] += add;
            __syncthreads();
        }
        if (i < tokens) item_rows[i] = stays ? running + scan[threadIdx.x] - 1 : -1;
        running += scan[kScanThreads - 1];
        __syncthreads();  // every thread has read the total before the next chunk overwrites it
    }
    if (threadIdx.x == 0) merge_count[blockIdx.x * merge_count_stride] = static_cast<int32_t>(tokens - running);
}

// One CTA per (item, position), threads over channels: walks the frames, a token with a row opening a
// run, a merged one (-1) joining the open run.
template <class T>
__global__ void __launch_bounds__(kMeanThreads) framefusion_means_kernel(const FrameFusionPlan p, const int32_t* rows) {
    const TemporalSimilarityPlan& s = p.similarity;
    const int64_t b = blockIdx.x / s.positions;
    const int64_t position = blockIdx.x % s.positions;
    const int32_t* item_rows = rows + b * s.frames * s.positions;
    const T* x = static_cast<const T*>(s.x.data) + b * s.x.strides[0] + position * s.x.strides[2];
    T* out = static_cast<T*>(p.out.data) + b * p.out.strides[0];
    for (int64_t c = threadIdx.x; c < s.channels; c += kMeanThreads) {
        float sum = 0.0f;
        T head_value{};
        int64_t head_row = -1;
        int64_t members = 0;
        for (int64_t t = 0; t <= s.frames; ++t) {
            const int32_t row = t < s.frames ? item_rows[t * s.positions + position] : 0;
            if (t < s.frames && row < 0) {  // joins the open run
                sum += to_float(x[t * s.x.strides[1] + c]);
                ++members;
                continue;
            }
            if (members == 1) out[head_row * p.out.strides[1] + c] = head_value;  // copied bit for bit
            if (members > 1) out[head_row * p.out.strides[1] + c] = from_float<T>(sum / static_cast<float>(members));
            if (t == s.frames) break;
            head_row = row;
            head_value = x[t * s.x.strides[1] + c];
            sum = to_float(head_value);
            members = 1;
        }
    }
}

// One thread per (item, position): each merged token's row is its run head's; the source map and the
// run sizes.
__global__ void framefusion_resolve_kernel(const FrameFusionPlan p, int32_t* rows) {
    const TemporalSimilarityPlan& s = p.similarity;
    const int64_t tokens = s.frames * s.positions;
    for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < s.batch * s.positions;
         e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t b = e / s.positions;
        const int64_t position = e % s.positions;
        int32_t* item_rows = rows + b * tokens;
        int32_t head = 0;
        int64_t members = 0;
        for (int64_t t = 0; t <= s.frames; ++t) {
            const int64_t i = t * s.positions + position;
            const bool opens = t == s.frames || item_rows[i] >= 0;
            if (opens && members > 0 && p.out_size.data != nullptr)
                static_cast<float*>(p.out_size.data)[b * p.out_size.strides[0] + head * p.out_size.strides[1]] = static_cast<float>(members);
            if (t == s.frames) break;
            if (opens) {
                head = item_rows[i];
                members = 0;
            }
            item_rows[i] = head;
            ++members;
            if (p.source_map.data != nullptr)
                static_cast<int32_t*>(p.source_map.data)[b * p.source_map.strides[0] + i * p.source_map.strides[1]] = head;
        }
    }
}

// The rows past each item's count: zero in out and out_size.
template <class T>
__global__ void framefusion_tail_kernel(const FrameFusionPlan p) {
    const TemporalSimilarityPlan& s = p.similarity;
    const int64_t tokens = s.frames * s.positions;
    for (int64_t r = blockIdx.x; r < s.batch * tokens; r += gridDim.x) {
        const int64_t b = r / tokens;
        const int64_t row = r % tokens;
        if (row < tokens - static_cast<const int32_t*>(p.merge_count.data)[b * p.merge_count.strides[0]]) continue;
        T* out = static_cast<T*>(p.out.data) + b * p.out.strides[0] + row * p.out.strides[1];
        for (int64_t c = threadIdx.x; c < s.channels; c += blockDim.x) out[c] = from_float<T>(0.0f);
        if (threadIdx.x == 0 && p.out_size.data != nullptr)
            static_cast<float*>(p.out_size.data)[b * p.out_size.strides[0] + row * p.out_size.strides[1]] = 0.0f;
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

// The plan's scores of every token into scores [B, T * P], contiguous.
void score_tokens(const TemporalSimilarityPlan& s, float* scores, cudaStream_t stream) {
    TemporalSimilarityPlan scoring = s;
    scoring.out = StridedTensor{scores, TK_DTYPE_F32, {s.frames * s.positions, s.positions, 1, 0}};
    launch_similarity(scoring, stream);
}

}  // namespace

void temporal_similarity(const TemporalSimilarityPlan& plan, void* stream_handle) {
    DeviceGuard guard(plan.device_ordinal);
    launch_similarity(plan, static_cast<cudaStream_t>(stream_handle));
}

void select_video_tokens(const VideoSelectionPlan& plan, void* workspace, void* stream_handle) {
    DeviceGuard guard(plan.similarity.device_ordinal);
    const auto stream = static_cast<cudaStream_t>(stream_handle);
    const TemporalSimilarityPlan& s = plan.similarity;
    const int64_t tokens = s.frames * s.positions;
    const VideoSelectionLayout layout = video_selection_layout(plan);
    Scratch scratch(workspace, layout.total, stream, "video selection workspace");
    void* base = scratch.data();
    float* scores = at_offset<float>(base, layout.scores);

    if (plan.method == VideoMethod::kVidCom2) vidcom2_scores(plan, base, layout, stream);
    else score_tokens(s, scores, stream);

    StridedTensor indices = plan.indices;
    if (indices.data == nullptr) indices = StridedTensor{at_offset<int32_t>(base, layout.indices), TK_DTYPE_I32, {plan.retained, 1, 0, 0}};
    if (plan.method == VideoMethod::kEvs) {
        topk(video_topk_plan(plan, scores, indices), nullptr, stream);  // no ranked order: needs no scratch
    } else {
        auto* frame_keeps = at_offset<int32_t>(base, layout.frame_keeps);
        auto* frame_offsets = at_offset<int32_t>(base, layout.frame_offsets);
        auto* frame_indices = at_offset<int32_t>(base, layout.frame_indices);
        const int64_t batch_frames = s.batch * s.frames;
        if (plan.method == VideoMethod::kDyCoke) {
            dycoke_frames_kernel<<<grid_for(batch_frames, kElementThreads), kElementThreads, 0, stream>>>(
                frame_keeps, frame_offsets, batch_frames, s.frames, s.positions, plan.frame_keeps);
            check(cudaGetLastError(), "dycoke_frames_kernel launch");
        }
        topk(frame_topk_plan(plan, scores, frame_keeps, frame_indices), nullptr, stream);
        frame_concat_kernel<<<grid_for(batch_frames * s.positions, kElementThreads), kElementThreads, 0, stream>>>(
            frame_indices, frame_keeps, frame_offsets, s.batch, s.frames, s.positions, static_cast<int32_t*>(indices.data),
            indices.strides[0], indices.strides[1]);
        check(cudaGetLastError(), "frame_concat_kernel launch");
    }

    if (plan.out.data != nullptr) gather(kept_rows_plan(plan, indices), stream);
    if (plan.mask.data != nullptr) {
        mask_clear_kernel<<<grid_for(s.batch * tokens, kElementThreads), kElementThreads, 0, stream>>>(
            static_cast<int32_t*>(plan.mask.data), plan.mask.strides[0], plan.mask.strides[1], s.batch, tokens);
        check(cudaGetLastError(), "mask_clear_kernel launch");
    }
    if ((plan.mask.data != nullptr || plan.positions.data != nullptr) && s.batch * plan.retained > 0) {
        kept_outputs_kernel<<<grid_for(s.batch * plan.retained, kElementThreads), kElementThreads, 0, stream>>>(plan, indices);
        check(cudaGetLastError(), "kept_outputs_kernel launch");
    }
}

void framefusion_merge(const FrameFusionPlan& plan, void* workspace, void* stream_handle) {
    DeviceGuard guard(plan.similarity.device_ordinal);
    const auto stream = static_cast<cudaStream_t>(stream_handle);
    const TemporalSimilarityPlan& s = plan.similarity;
    const int64_t tokens = s.frames * s.positions;
    const FrameFusionLayout layout = framefusion_layout(plan);
    Scratch scratch(workspace, layout.total, stream, "framefusion workspace");
    void* base = scratch.data();
    float* scores = at_offset<float>(base, layout.scores);
    auto* rows = at_offset<int32_t>(base, layout.rows);

    score_tokens(s, scores, stream);

    const int64_t all = s.batch * tokens;
    if (plan.max_merges < 0) {
        fuse_flags_kernel<<<grid_for(all, kElementThreads), kElementThreads, 0, stream>>>(scores, rows, all, plan.threshold);
        check(cudaGetLastError(), "fuse_flags_kernel launch");
    } else {
        auto* capped = at_offset<int32_t>(base, layout.capped);
        topk(capped_merges_plan(plan, scores, capped), nullptr, stream);
        check(cudaMemsetAsync(rows, 0, static_cast<size_t>(all) * sizeof(int32_t), stream), "cudaMemsetAsync (framefusion flags)");
        if (plan.max_merges > 0) {
            capped_flags_kernel<<<grid_for(s.batch * plan.max_merges, kElementThreads), kElementThreads, 0, stream>>>(
                scores, capped, rows, s.batch, plan.max_merges, tokens, plan.threshold);
            check(cudaGetLastError(), "capped_flags_kernel launch");
        }
    }
    framefusion_rows_kernel<<<static_cast<unsigned>(s.batch), kScanThreads, 0, stream>>>(
        rows, tokens, static_cast<int32_t*>(plan.merge_count.data), plan.merge_count.strides[0]);
    check(cudaGetLastError(), "framefusion_rows_kernel launch");
    dispatch_float(s.x.dtype, [&](auto tag) {
        using T = typename StorageOf<decltype(tag)::value>::type;
        if (s.positions * s.channels > 0) {
            framefusion_means_kernel<T><<<static_cast<unsigned>(s.batch * s.positions), kMeanThreads, 0, stream>>>(plan, rows);
            check(cudaGetLastError(), "framefusion_means_kernel launch");
        }
        framefusion_resolve_kernel<<<grid_for(s.batch * s.positions, kElementThreads), kElementThreads, 0, stream>>>(plan, rows);
        check(cudaGetLastError(), "framefusion_resolve_kernel launch");
        framefusion_tail_kernel<T><<<grid_for(all, 1), kMeanThreads, 0, stream>>>(plan);
        check(cudaGetLastError(), "framefusion_tail_kernel launch");
    });
}

}  // namespace tk::cuda
