// Spatio-temporal pooling on CUDA (SPEC section 1). Two kernels: a "box" kernel for window and
// adaptive avg/max (each output pixel reduces a T x H x W box of the input) and a bilinear kernel
// (four taps per output pixel within one frame). The geometry (pool_range, linear_taps,
// max_propagate_nan) is the one in ops/pool.hpp that the CPU backend uses, and the avg sum runs in
// the same (t, h, w) order, so both backends compute the same function.
//
// Mapping, channels last: a row of `lanes` threads owns one output pixel at a time, and consecutive
// lanes take consecutive channel vectors of it, so every warp-wide access is contiguous. A vector is
// V channels moved as one 16-, 8-, 4- or 2-byte word; V is the widest the pointers, C and the strides
// allow (chosen on the host, a template parameter of the kernels). Pixels are walked grid-stride, so
// any number of them fits a 1-D grid.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/dispatch.hpp"
#include "cuda/check.cuh"
#include "cuda/dtype.cuh"
#include "ops/pool.hpp"

namespace tk::cuda {
namespace {

constexpr int kBlockThreads = 256;
constexpr int kMinBlocksPerMultiprocessor = 3;
// Loads a box-kernel thread issues before it consumes the first: a 2x2 window is read at once.
constexpr int kLoadsInFlight = 4;
constexpr int64_t kMaxGridBlocks = 2147483647;

template <class T, int V>
__device__ __forceinline__ void unpack(const Word<T, V>& word, float (&values)[V]) {
    T lanes[V];
    memcpy(lanes, &word, sizeof(word));
#pragma unroll
    for (int k = 0; k < V; ++k) values[k] = to_float(lanes[k]);
}

template <class T, int V>
__device__ __forceinline__ void store_floats(T* ptr, const float (&values)[V]) {
    T lanes[V];
#pragma unroll
    for (int k = 0; k < V; ++k) lanes[k] = from_float<T>(values[k]);
    Word<T, V> word;
    memcpy(&word, lanes, sizeof(word));
    // An explicit store instruction: a plain assignment of the word was split into per-lane stores.
    __stwb(reinterpret_cast<Word<T, V>*>(ptr), word);
}

struct OutPixel {
    int64_t b;
    int64_t t;
    int64_t h;
    int64_t w;
};

// Output pixels are numbered row-major over [B, T', H', W'].
__device__ __forceinline__ OutPixel unflatten_pixel(int64_t pixel, const PoolPlan& plan) {
    OutPixel o;
    o.w = pixel % plan.out_size[3];
    pixel /= plan.out_size[3];
    o.h = pixel % plan.out_size[2];
    pixel /= plan.out_size[2];
    o.t = pixel % plan.out_size[1];
    o.b = pixel / plan.out_size[1];
    return o;
}

__device__ __forceinline__ int64_t out_offset(const PoolPlan& plan, const OutPixel& o) {
    return o.b * plan.out_stride[0] + o.t * plan.out_stride[1] + o.h * plan.out_stride[2] + o.w * plan.out_stride[3];
}

// Walks the element offsets of a T x H x W box in (t, h, w) order, w fastest, by increments
// only (no division per element).
class BoxCursor {
public:
    __device__ BoxCursor(int64_t origin, const Range& t, const Range& h, const Range& w, const PoolPlan& plan)
        : offset_(origin + t.start * plan.in_stride[1] + h.start * plan.in_stride[2] + w.start * plan.in_stride[3]),
          w_step_(plan.in_stride[3]),
          h_wrap_(plan.in_stride[2] - (w.end - w.start) * plan.in_stride[3]),
          t_wrap_(plan.in_stride[1] - (h.end - h.start) * plan.in_stride[2]),
          w_count_(w.end - w.start),
          h_count_(h.end - h.start) {}

    __device__ int64_t offset() const { return offset_; }

    // Selects rather than branches, so the loads of one chunk issue back to back.
    __device__ void advance() {
        const bool row_done = ++w_ == w_count_;
        w_ = row_done ? 0 : w_;
        h_ += row_done ? 1 : 0;
        const bool frame_done = h_ == h_count_;
        h_ = frame_done ? 0 : h_;
        offset_ += w_step_ + (row_done ? h_wrap_ : 0) + (frame_done ? t_wrap_ : 0);
    }

private:
    int64_t offset_;
    int64_t w_step_;
    int64_t h_wrap_;  // from one past the end of a row to the start of the next row
    int64_t t_wrap_;  // from one past the last row of a frame to the first row of the next frame
    int64_t w_count_;
    int64_t h_count_;
    int64_t w_ = 0;
    int64_t h_ = 0;
};

// Window and adaptive avg/max. Each thread reduces whole boxes for its channel vectors, issuing
// kLoadsInFlight independent loads before accumulating them in order.
template <class T, int V, bool IsMax>
__global__ void __launch_bounds__(kBlockThreads, kMinBlocksPerMultiprocessor)
    pool_box_kernel(const PoolPlan plan, int64_t pixels, int64_t channel_vectors) {
    const T* x = static_cast<const T*>(plan.x);
    T* out = static_cast<T*>(plan.out);
    const int64_t pixel_step = static_cast<int64_t>(gridDim.x) * blockDim.y;
    for (int64_t pixel = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y; pixel < pixels;
         pixel += pixel_step) {
        const OutPixel o = unflatten_pixel(pixel, plan);
        const Range t = pool_range(plan, 0, o.t);
        const Range h = pool_range(plan, 1, o.h);
        const Range w = pool_range(plan, 2, o.w);
        const int64_t count = (t.end - t.start) * (h.end - h.start) * (w.end - w.start);
        const int64_t origin = o.b * plan.in_stride[0];
        T* out_pixel = out + out_offset(plan, o);
        for (int64_t vector = threadIdx.x; vector < channel_vectors; vector += blockDim.x) {
            const int64_t channel = vector * V;
            float acc[V];
#pragma unroll
            for (int k = 0; k < V; ++k) acc[k] = IsMax ? -INFINITY : 0.0f;
            BoxCursor cursor(origin + channel, t, h, w, plan);
            for (int64_t first = 0; first < count; first += kLoadsInFlight) {
                Word<T, V> words[kLoadsInFlight];
#pragma unroll
                for (int u = 0; u < kLoadsInFlight; ++u) {
                    if (first + u < count) {
                        words[u] = load_word<T, V>(x + cursor.offset());
                        cursor.advance();
                    }
                }
#pragma unroll
                for (int u = 0; u < kLoadsInFlight; ++u) {
                    if (first + u < count) {
                        float values[V];
                        unpack<T, V>(words[u], values);
#pragma unroll
                        for (int k = 0; k < V; ++k)
                            acc[k] = IsMax ? max_propagate_nan(acc[k], values[k]) : acc[k] + values[k];
                    }
                }
            }
            if (!IsMax) {
                const float divisor = static_cast<float>(count);
#pragma unroll
                for (int k = 0; k < V; ++k) acc[k] = acc[k] / divisor;
            }
            store_floats<T, V>(out_pixel + channel, acc);
        }
    }
}

// Bilinear resize of each frame (T' == T), align_corners = False: four taps per output pixel,
// combined as PyTorch's upsample_bilinear2d does.
template <class T, int V>
__global__ void __launch_bounds__(kBlockThreads, kMinBlocksPerMultiprocessor)
    pool_bilinear_kernel(const PoolPlan plan, int64_t pixels, int64_t channel_vectors) {
    const T* x = static_cast<const T*>(plan.x);
    T* out = static_cast<T*>(plan.out);
    const int64_t pixel_step = static_cast<int64_t>(gridDim.x) * blockDim.y;
    for (int64_t pixel = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y; pixel < pixels;
         pixel += pixel_step) {
        const OutPixel o = unflatten_pixel(pixel, plan);
        const LinearTaps h = linear_taps(o.h, plan.in_size[2], plan.out_size[2]);
        const LinearTaps w = linear_taps(o.w, plan.in_size[3], plan.out_size[3]);
        const T* frame = x + o.b * plan.in_stride[0] + o.t * plan.in_stride[1];
        const T* row_lo = frame + h.lo * plan.in_stride[2];
        const T* row_hi = frame + h.hi * plan.in_stride[2];
        const int64_t col_lo = w.lo * plan.in_stride[3];
        const int64_t col_hi = w.hi * plan.in_stride[3];
        T* out_pixel = out + out_offset(plan, o);
        for (int64_t vector = threadIdx.x; vector < channel_vectors; vector += blockDim.x) {
            const int64_t channel = vector * V;
            const Word<T, V> word00 = load_word<T, V>(row_lo + col_lo + channel);
            const Word<T, V> word01 = load_word<T, V>(row_lo + col_hi + channel);
            const Word<T, V> word10 = load_word<T, V>(row_hi + col_lo + channel);
            const Word<T, V> word11 = load_word<T, V>(row_hi + col_hi + channel);
            float x00[V], x01[V], x10[V], x11[V], result[V];
            unpack<T, V>(word00, x00);
            unpack<T, V>(word01, x01);
            unpack<T, V>(word10, x10);
            unpack<T, V>(word11, x11);
#pragma unroll
            for (int k = 0; k < V; ++k)
                result[k] = h.w_lo * (w.w_lo * x00[k] + w.w_hi * x01[k]) + h.w_hi * (w.w_lo * x10[k] + w.w_hi * x11[k]);
            store_floats<T, V>(out_pixel + channel, result);
        }
    }
}

// Whether V-element vectors of T can be used: both base pointers aligned to the vector, and every
// offset a kernel forms (channel, and stride times index along B, T, H, W) a multiple of V. A
// dimension of size 1 is only ever indexed at 0, so its stride does not matter.
template <class T>
bool vectors_fit(const PoolPlan& plan, int64_t v) {
    const uintptr_t bytes = static_cast<uintptr_t>(v) * sizeof(T);
    if (reinterpret_cast<uintptr_t>(plan.x) % bytes != 0 || reinterpret_cast<uintptr_t>(plan.out) % bytes != 0)
        return false;
    if (plan.in_size[4] % v != 0) return false;
    for (int d = 0; d < 4; ++d) {
        if (plan.in_size[d] > 1 && plan.in_stride[d] % v != 0) return false;
        if (plan.out_size[d] > 1 && plan.out_stride[d] % v != 0) return false;
    }
    return true;
}

struct DeviceCapacity {
    int multiprocessors;
    int threads_per_multiprocessor;
};

DeviceCapacity device_capacity(int32_t ordinal) {
    DeviceCapacity capacity{};
    check(cudaDeviceGetAttribute(&capacity.multiprocessors, cudaDevAttrMultiProcessorCount, ordinal),
          "cudaDeviceGetAttribute(MultiProcessorCount)");
    check(cudaDeviceGetAttribute(&capacity.threads_per_multiprocessor, cudaDevAttrMaxThreadsPerMultiProcessor, ordinal),
          "cudaDeviceGetAttribute(MaxThreadsPerMultiProcessor)");
    return capacity;
}

struct LaunchShape {
    dim3 grid;
    dim3 block;
};

// block = (lanes, pixels per block). A warp per pixel (fewer lanes when a pixel has fewer
// vectors, so small C still fills warps); more lanes per pixel, up to the block, when there are too
// few pixels to occupy the device otherwise (e.g. averaging a whole video into a few tokens).
LaunchShape launch_shape(int64_t pixels, int64_t channel_vectors, const DeviceCapacity& capacity) {
    int64_t lanes = 1;
    while (lanes < 32 && lanes < channel_vectors) lanes *= 2;
    const int64_t resident_threads =
        static_cast<int64_t>(capacity.multiprocessors) * capacity.threads_per_multiprocessor;
    while (lanes < kBlockThreads && lanes < channel_vectors && pixels * lanes < resident_threads) lanes *= 2;
    const int64_t pixels_per_block = kBlockThreads / lanes;
    const int64_t blocks = std::min((pixels + pixels_per_block - 1) / pixels_per_block, kMaxGridBlocks);
    return LaunchShape{dim3(static_cast<unsigned>(blocks)),
                       dim3(static_cast<unsigned>(lanes), static_cast<unsigned>(pixels_per_block))};
}

// Launches with the widest vector that fits, V halving from 16 bytes down to one element.
template <class T, int V = kMaxVector<T>>
void launch_pool(const PoolPlan& plan, int64_t pixels, const DeviceCapacity& capacity, cudaStream_t stream) {
    if constexpr (V > 1) {
        if (!vectors_fit<T>(plan, V)) return launch_pool<T, V / 2>(plan, pixels, capacity, stream);
    }
    const int64_t channel_vectors = plan.in_size[4] / V;
    const LaunchShape shape = launch_shape(pixels, channel_vectors, capacity);
    if (plan.mode == TK_POOL_BILINEAR)
        pool_bilinear_kernel<T, V><<<shape.grid, shape.block, 0, stream>>>(plan, pixels, channel_vectors);
    else if (pool_is_max(plan.mode))
        pool_box_kernel<T, V, true><<<shape.grid, shape.block, 0, stream>>>(plan, pixels, channel_vectors);
    else
        pool_box_kernel<T, V, false><<<shape.grid, shape.block, 0, stream>>>(plan, pixels, channel_vectors);
    check(cudaGetLastError(), "pool kernel launch");
}

}  // namespace

void pool(const PoolPlan& plan, void* stream) {
    const int64_t pixels = plan.out_size[0] * plan.out_size[1] * plan.out_size[2] * plan.out_size[3];
    if (pixels == 0 || plan.out_size[4] == 0) return;
    DeviceGuard guard(plan.device_ordinal);
    const DeviceCapacity capacity = device_capacity(plan.device_ordinal);
    dispatch_float(plan.dtype, [&](auto tag) {
        using T = typename StorageOf<decltype(tag)::value>::type;
        launch_pool<T>(plan, pixels, capacity, static_cast<cudaStream_t>(stream));
    });
}

}  // namespace tk::cuda
