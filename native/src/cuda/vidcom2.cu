// VidCom2's scoring on CUDA (SPEC section 5, "VidCom2"), the CPU's arithmetic in the same orders:
//   channel_partials_kernel   one thread per (item, lane, channel): lane l's sums of d and d^2 over
//                             the rows l, l + 64, ..., d the row's value less the item's first row's;
//   channel_finish_kernel     the lanes added in order, then the negated variances that the top-k
//                             ranks to choose the scored channels;
//   normalise_kernel          16 threads per token: the scored channels' squared norm in lane_sum's
//                             lanes, then each channel over the clamped norm;
//   frame_partials_kernel,    each frame's 64-lane sums of its normalised tokens;
//   frame_finish_kernel
//   centres_kernel            one thread per (item, channel): the video centre from the frame sums in
//                             frame order, each frame sum divided into its centre;
//   score_kernel              16 threads per token: the squared distances to both centres, the Gaussian
//                             kernel sums, the negated score and v;
//   importance_kernel         64 threads per frame: -S(v) / P;
//   budgets_kernel            one thread per item: the frame budgets (ops/vidcom2.hpp).
// Everything is stream-ordered over the workspace; nothing waits for the device.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "core/dispatch.hpp"
#include "cuda/check.cuh"
#include "cuda/dtype.cuh"
#include "ops/attention.hpp"
#include "ops/lane_sum.hpp"
#include "ops/temporal.hpp"
#include "ops/vidcom2.hpp"

namespace tk::cuda {
namespace {

constexpr int kElementThreads = 256;
constexpr int kTokensPerBlock = 8;  // rows of kSumLanes threads
constexpr int64_t kMaxGridBlocks = 65535LL * 16;

unsigned grid_for(int64_t items, int64_t per_block) {
    return static_cast<unsigned>(std::clamp<int64_t>((items + per_block - 1) / per_block, 1, kMaxGridBlocks));
}

#define TK_GRID_STRIDE(e, total)                                                                 \
    for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < (total); \
         e += static_cast<int64_t>(gridDim.x) * blockDim.x)

// partials[b, lane, 0 | 1, c]: lane's sums of d and d^2 over its rows, d = x[n, c] - x[0, c].
template <class T>
__global__ void channel_partials_kernel(const TemporalSimilarityPlan s, float* partials, int64_t lanes) {
    const int64_t tokens = s.frames * s.positions;
    TK_GRID_STRIDE(e, s.batch * lanes * s.channels) {
        const int64_t c = e % s.channels;
        const int64_t lane = e / s.channels % lanes;
        const int64_t b = e / (s.channels * lanes);
        const T* first = static_cast<const T*>(s.x.data) + b * s.x.strides[0];
        const float shift = to_float(first[c]);
        float sum = 0.0f, squares = 0.0f;
        for (int64_t n = lane; n < tokens; n += kRowLanes) {
            const float d = to_float(first[n / s.positions * s.x.strides[1] + n % s.positions * s.x.strides[2] + c]) - shift;
            sum += d;
            squares += d * d;
        }
        float* out = partials + ((b * lanes + lane) * 2) * s.channels + c;
        out[0] = sum;
        out[s.channels] = squares;
    }
}

// keys[b, c]: the lanes added in order, then the negated variance the top-k ranks to choose the scored
// channels.
__global__ void channel_finish_kernel(const float* partials, int64_t batch, int64_t lanes, int64_t channels, float count,
                                      float* keys) {
    TK_GRID_STRIDE(e, batch * channels) {
        const int64_t b = e / channels, c = e % channels;
        float sum = 0.0f, squares = 0.0f;
        for (int64_t l = 0; l < lanes; ++l) {
            const float* lane = partials + ((b * lanes + l) * 2) * channels + c;
            sum += lane[0];
            squares += lane[channels];
        }
        keys[e] = negated_variance(sum, squares, count);
    }
}

template <class T>
__global__ void __launch_bounds__(kSumLanes* kTokensPerBlock)
    normalise_kernel(const TemporalSimilarityPlan s, int64_t scored, const int32_t* channels, float* features) {
    __shared__ float partial[kTokensPerBlock][kSumLanes];
    const int lane = static_cast<int>(threadIdx.x);
    const int row = static_cast<int>(threadIdx.y);
    const unsigned half_warp = 0xFFFFu << (16 * (row & 1));
    const int64_t tokens = s.batch * s.frames * s.positions;
    const T* x = static_cast<const T*>(s.x.data);
    for (int64_t token = static_cast<int64_t>(blockIdx.x) * kTokensPerBlock + row; token < tokens;
         token += static_cast<int64_t>(gridDim.x) * kTokensPerBlock) {
        const int64_t i = token % s.positions;
        const int64_t t = token / s.positions % s.frames;
        const int64_t b = token / (s.positions * s.frames);
        const T* source = x + b * s.x.strides[0] + t * s.x.strides[1] + i * s.x.strides[2];
        const int32_t* chosen = channels + b * scored;
        float* f = features + token * scored;
        float squares = 0.0f;
        for (int64_t j = lane; j < scored; j += kSumLanes) {
            const float u = to_float(source[chosen[j]]);
            f[j] = u;
            squares += u * u;
        }
        __syncwarp(half_warp);  // the previous token's lanes have read the partials
        partial[row][lane] = squares;
        __syncwarp(half_warp);
        float sum = 0.0f;
        for (int l = 0; l < kSumLanes; ++l) sum += partial[row][l];
        const float norm = normalising_norm(sum);
        for (int64_t j = lane; j < scored; j += kSumLanes) f[j] = f[j] / norm;
    }
}

// partials[frame, l, j] = lane l's sum of the frame's rows l, l + 64, ... of features.
__global__ void frame_partials_kernel(const float* features, int64_t frames, int64_t positions, int64_t scored, int64_t lanes,
                                      float* partials) {
    TK_GRID_STRIDE(e, frames * lanes * scored) {
        const int64_t j = e % scored;
        const int64_t lane = e / scored % lanes;
        const int64_t frame = e / (scored * lanes);
        float sum = 0.0f;
        for (int64_t i = lane; i < positions; i += kRowLanes) sum += features[(frame * positions + i) * scored + j];
        partials[e] = sum;
    }
}

__global__ void frame_finish_kernel(const float* partials, int64_t frames, int64_t lanes, int64_t scored, float* sums) {
    TK_GRID_STRIDE(e, frames * scored) {
        const int64_t frame = e / scored, j = e % scored;
        float sum = 0.0f;
        for (int64_t l = 0; l < lanes; ++l) sum += partials[(frame * lanes + l) * scored + j];
        sums[e] = sum;
    }
}

__global__ void centres_kernel(float* frame_centres, float* video_centres, int64_t batch, int64_t frames, int64_t scored,
                               float tokens, float positions) {
    TK_GRID_STRIDE(e, batch * scored) {
        const int64_t b = e / scored, j = e % scored;
        float sum = 0.0f;
        for (int64_t t = 0; t < frames; ++t) {
            float* frame_sum = frame_centres + (b * frames + t) * scored + j;
            sum += *frame_sum;
            *frame_sum = *frame_sum / positions;
        }
        video_centres[e] = sum / tokens;
    }
}

__global__ void __launch_bounds__(kSumLanes* kTokensPerBlock)
    score_kernel(const float* features, const float* frame_centres, const float* video_centres, int64_t batch, int64_t frames,
                 int64_t positions, int64_t scored, float* scores, float* video_scores) {
    __shared__ float partial[kTokensPerBlock][2][kSumLanes];
    const int lane = static_cast<int>(threadIdx.x);
    const int row = static_cast<int>(threadIdx.y);
    const unsigned half_warp = 0xFFFFu << (16 * (row & 1));
    const int64_t tokens = batch * frames * positions;
    for (int64_t token = static_cast<int64_t>(blockIdx.x) * kTokensPerBlock + row; token < tokens;
         token += static_cast<int64_t>(gridDim.x) * kTokensPerBlock) {
        const int64_t frame = token / positions;
        const float* f = features + token * scored;
        const float* frame_centre = frame_centres + frame * scored;
        const float* video_centre = video_centres + frame / frames * scored;
        float to_video = 0.0f, to_frame = 0.0f;
        for (int64_t j = lane; j < scored; j += kSumLanes) {
            const float dv = f[j] - video_centre[j];
            const float df = f[j] - frame_centre[j];
            to_video += dv * dv;
            to_frame += df * df;
        }
        __syncwarp(half_warp);
        partial[row][0][lane] = to_video;
        partial[row][1][lane] = to_frame;
        __syncwarp(half_warp);
        if (lane == 0) {
            float video_sum = 0.0f, frame_sum = 0.0f;
            for (int l = 0; l < kSumLanes; ++l) {
                video_sum += partial[row][0][l];
                frame_sum += partial[row][1][l];
            }
            const float v = gaussian_kernel_sum(video_sum);
            video_scores[token] = v;
            scores[token] = -(v + gaussian_kernel_sum(frame_sum));
        }
    }
}

// A block of kRowLanes threads per frame, grid-stride: importance[frame] = -(S(v) / P).
__global__ void __launch_bounds__(kRowLanes)
    importance_kernel(const float* video_scores, int64_t frames, int64_t positions, float* importance) {
    __shared__ float lanes[kRowLanes];
    for (int64_t frame = blockIdx.x; frame < frames; frame += gridDim.x) {
        float sum = 0.0f;
        for (int64_t i = threadIdx.x; i < positions; i += kRowLanes) sum += video_scores[frame * positions + i];
        lanes[threadIdx.x] = sum;
        __syncthreads();
        if (threadIdx.x == 0) {
            float total = 0.0f;
            for (int l = 0; l < kRowLanes; ++l) total += lanes[l];
            importance[frame] = -(total / static_cast<float>(positions));
        }
        __syncthreads();  // thread 0 has read the lanes before the next frame overwrites them
    }
}

__global__ void budgets_kernel(float* importance, int64_t batch, int64_t frames, int64_t positions, int64_t retained,
                               float retention_ratio, float temperature, int32_t* keeps, int32_t* offsets) {
    TK_GRID_STRIDE(b, batch)
        vidcom2_frame_budgets(importance + b * frames, frames, positions, retained, retention_ratio, temperature,
                              keeps + b * frames, offsets + b * frames);
}

}  // namespace

void vidcom2_scores(const VideoSelectionPlan& plan, void* base, const VideoSelectionLayout& layout, void* stream_handle) {
    const auto stream = static_cast<cudaStream_t>(stream_handle);
    const TemporalSimilarityPlan& s = plan.similarity;
    const int64_t tokens = s.frames * s.positions;
    const int64_t scored = plan.scored_channels;
    const int64_t batch_frames = s.batch * s.frames;
    const VidCom2Scratch w = vidcom2_scratch(base, layout);

    dispatch_float(s.x.dtype, [&](auto tag) {
        using T = typename StorageOf<decltype(tag)::value>::type;
        const int64_t lanes = row_lanes(tokens);
        channel_partials_kernel<T><<<grid_for(s.batch * lanes * s.channels, kElementThreads), kElementThreads, 0, stream>>>(
            s, w.partials, lanes);
        check(cudaGetLastError(), "channel_partials_kernel launch");
        channel_finish_kernel<<<grid_for(s.batch * s.channels, kElementThreads), kElementThreads, 0, stream>>>(
            w.partials, s.batch, lanes, s.channels, static_cast<float>(tokens), w.channel_keys);
        check(cudaGetLastError(), "channel_finish_kernel launch");
        topk(scored_channels_plan(plan, w.channel_keys, w.channels), nullptr, stream);  // no ranked order: needs no scratch
        normalise_kernel<T><<<grid_for(s.batch * tokens, kTokensPerBlock), dim3(kSumLanes, kTokensPerBlock), 0, stream>>>(
            s, scored, w.channels, w.features);
        check(cudaGetLastError(), "normalise_kernel launch");
    });

    const int64_t lanes = row_lanes(s.positions);
    frame_partials_kernel<<<grid_for(batch_frames * lanes * scored, kElementThreads), kElementThreads, 0, stream>>>(
        w.features, batch_frames, s.positions, scored, lanes, w.partials);
    check(cudaGetLastError(), "frame_partials_kernel launch");
    frame_finish_kernel<<<grid_for(batch_frames * scored, kElementThreads), kElementThreads, 0, stream>>>(
        w.partials, batch_frames, lanes, scored, w.frame_centres);
    check(cudaGetLastError(), "frame_finish_kernel launch");
    centres_kernel<<<grid_for(s.batch * scored, kElementThreads), kElementThreads, 0, stream>>>(
        w.frame_centres, w.video_centres, s.batch, s.frames, scored, static_cast<float>(tokens), static_cast<float>(s.positions));
    check(cudaGetLastError(), "centres_kernel launch");
    score_kernel<<<grid_for(s.batch * tokens, kTokensPerBlock), dim3(kSumLanes, kTokensPerBlock), 0, stream>>>(
        w.features, w.frame_centres, w.video_centres, s.batch, s.frames, s.positions, scored, w.scores,
        w.video_scores);
    check(cudaGetLastError(), "score_kernel launch");
    importance_kernel<<<grid_for(batch_frames, 1), kRowLanes, 0, stream>>>(w.video_scores, batch_frames, s.positions, w.importance);
    check(cudaGetLastError(), "importance_kernel launch");
    budgets_kernel<<<grid_for(s.batch, kElementThreads), kElementThreads, 0, stream>>>(
        w.importance, s.batch, s.frames, s.positions, plan.retained, plan.retention_ratio, plan.temperature,
        w.frame_keeps, w.frame_offsets);
    check(cudaGetLastError(), "budgets_kernel launch");
}

}  // namespace tk::cuda
