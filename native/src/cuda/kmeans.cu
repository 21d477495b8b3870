// Batched k-means on CUDA (SPEC section 6, "k-means"). One launch: each CTA runs whole items, every
// iteration included, in its own slot of the workspace, so nothing waits on the host and the launch
// size comes from the plan alone (capturable in a CUDA graph).
//
// The arithmetic repeats the CPU backend's where the SPEC fixes an order, with no atomics:
//   - a distance is 16 partial sums over channels c = l (mod 16), each product and sum rounded on its
//     own (-fmad=false), then halved (partial[l] += partial[l + w], w = 8 .. 1): the bits of the CPU's
//     portable distance block (TK_CPU_ISA=portable; its AVX-512 block fuses the multiply-add, so the
//     default CPU run may differ from this one in the last bit of a distance, hence on near-ties);
//   - each centre's sum runs over its tokens in increasing order, one thread per channel; relocation,
//     alpha = float(1.0 / count), the float64 centre shift and variances, k-means++'s prefix sums and
//     potentials are taken in the CPU's order (the serial parts by one thread: they are O(K C) or O(N)
//     an iteration, small next to the O(N K C) distances).
// Given the same labels, the centres, sizes and iteration counts are therefore the CPU's bits.
// Lengths and per-item cluster counts are clamped to [0, N] and [0, K] (checking them would need a
// host synchronisation).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "core/dispatch.hpp"
#include "core/regions.hpp"
#include "cuda/check.cuh"
#include "cuda/dtype.cuh"
#include "cuda/scratch.cuh"
#include "ops/kmeans.hpp"

namespace tk::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kLanes = 16;
// Items run on at most this many CTAs (each in its own workspace slot); more items loop over them.
constexpr int64_t kMaxSlots = 1024;
constexpr int kMaxTrials = 32;  // 2 + floor(ln 2^31) = 23 at most

// Where one item's scratch lies in its slot.
struct SlotLayout {
    uint64_t centres, sums, distances, labels, previous, nearest, taken, prefix, candidates, variance, counts, moves, bytes;
};

SlotLayout slot_layout(const KMeansPlan& plan) {
    const uint64_t n = static_cast<uint64_t>(plan.tokens), k = static_cast<uint64_t>(plan.clusters);
    const uint64_t c = static_cast<uint64_t>(plan.channels);
    const uint64_t trials = static_cast<uint64_t>(kmeans_local_trials(plan.clusters));
    RegionCursor cursor;
    SlotLayout s{};
    s.centres = cursor.take(k * c * sizeof(float));
    s.sums = cursor.take(k * c * sizeof(float));
    s.distances = cursor.take(n * std::max(k, trials) * sizeof(float));
    s.labels = cursor.take(n * sizeof(int32_t));
    s.previous = cursor.take(n * sizeof(int32_t));
    s.nearest = cursor.take(n * sizeof(float));
    s.taken = cursor.take(n * sizeof(int32_t));
    s.prefix = cursor.take(n * sizeof(double));
    s.candidates = cursor.take(trials * n * sizeof(float));
    s.variance = cursor.take(c * sizeof(double));
    s.counts = cursor.take(k * sizeof(int64_t));
    s.moves = cursor.take(3 * k * sizeof(int32_t));  // per relocation: the empty cluster, the token, zero-after flag
    s.bytes = cursor.used();
    return s;
}

int64_t slot_count(const KMeansPlan& plan) { return std::min<int64_t>(plan.batch, kMaxSlots); }

struct Args {
    StridedTensor x, lengths, item_clusters, initial, centres, assignment, sizes, iterations;
    int64_t batch, tokens, channels, clusters, max_iterations;
    double tolerance;
    uint64_t seed;
    int init;
    SlotLayout layout;
    unsigned char* base;
};

__device__ __forceinline__ bool is_nan(float v) { return v != v; }

template <class T>
__device__ __forceinline__ const T* row_of(const Args& a, int64_t b, int64_t i) {
    return static_cast<const T*>(a.x.data) + b * a.x.strides[0] + i * a.x.strides[1];
}

// The CPU's portable distance between a token row and a centre (float) or another token row: 16 partial
// sums over the channels, halved.
template <class T, class U>
__device__ float squared_distance(const T* x, const U* y, int64_t channels) {
    float partial[kLanes];
#pragma unroll
    for (int l = 0; l < kLanes; ++l) partial[l] = 0.0f;
    for (int64_t c0 = 0; c0 < channels; c0 += kLanes)
#pragma unroll
        for (int l = 0; l < kLanes; ++l)
            if (c0 + l < channels) {
                const float diff = to_float(x[c0 + l]) - to_float(y[c0 + l]);
                partial[l] += diff * diff;
            }
#pragma unroll
    for (int width = kLanes / 2; width >= 1; width /= 2)
#pragma unroll
        for (int l = 0; l < width; ++l) partial[l] += partial[l + width];
    return partial[0];
}

// One item's state in its slot.
struct Slot {
    float* centres;
    float* sums;
    float* distances;
    int32_t* labels;
    int32_t* previous;
    float* nearest;
    int32_t* taken;
    double* prefix;
    float* candidates;
    double* variance;
    int64_t* counts;
    int32_t* moves;
};

__device__ Slot slot_at(const Args& a, int64_t slot) {
    unsigned char* base = a.base + static_cast<uint64_t>(slot) * a.layout.bytes;
    return Slot{reinterpret_cast<float*>(base + a.layout.centres),   reinterpret_cast<float*>(base + a.layout.sums),
                reinterpret_cast<float*>(base + a.layout.distances), reinterpret_cast<int32_t*>(base + a.layout.labels),
                reinterpret_cast<int32_t*>(base + a.layout.previous), reinterpret_cast<float*>(base + a.layout.nearest),
                reinterpret_cast<int32_t*>(base + a.layout.taken),    reinterpret_cast<double*>(base + a.layout.prefix),
                reinterpret_cast<float*>(base + a.layout.candidates), reinterpret_cast<double*>(base + a.layout.variance),
                reinterpret_cast<int64_t*>(base + a.layout.counts),   reinterpret_cast<int32_t*>(base + a.layout.moves)};
}

// labels and nearest from the centres (ties to the lower cluster, NaN never the nearest).
template <class T>
__device__ void assign(const Args& a, int64_t b, const Slot& s, const float* centres, int64_t length, int64_t count) {
    const int64_t C = a.channels;
    for (int64_t p = threadIdx.x; p < length * count; p += blockDim.x) {
        const int64_t i = p / count, k = p % count;
        s.distances[p] = squared_distance(row_of<T>(a, b, i), centres + k * C, C);
    }
    __syncthreads();
    for (int64_t i = threadIdx.x; i < length; i += blockDim.x) {
        const float* d = s.distances + i * count;
        int64_t best = -1;
        float best_distance = d[0];
        for (int64_t k = 0; k < count; ++k)
            if (!is_nan(d[k]) && (best < 0 || d[k] < best_distance)) {
                best = k;
                best_distance = d[k];
            }
        s.labels[i] = static_cast<int32_t>(best < 0 ? 0 : best);
        s.nearest[i] = best_distance;
    }
    __syncthreads();
}

// Greedy k-means++ on the item's stream (SPEC): candidates by thread 0, distances over the block.
template <class T>
__device__ void seed_plus_plus(const Args& a, int64_t b, const Slot& s, int64_t length, int64_t count) {
    __shared__ int32_t candidate[kMaxTrials];
    __shared__ double potential_of[kMaxTrials];
    __shared__ double potential;
    __shared__ int32_t chosen;
    const int64_t C = a.channels;
    const int64_t trials = kmeans_local_trials(count);
    uint64_t draw = 0;
    if (threadIdx.x == 0) {
        const double u = kmeans_uniform(a.seed, static_cast<uint64_t>(b), draw);
        const int64_t first = static_cast<int64_t>(u * static_cast<double>(length));
        chosen = static_cast<int32_t>(first < length - 1 ? first : length - 1);
    }
    ++draw;
    __syncthreads();
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s.centres[c] = to_float(row_of<T>(a, b, chosen)[c]);
    for (int64_t i = threadIdx.x; i < length; i += blockDim.x)
        s.nearest[i] = squared_distance(row_of<T>(a, b, i), row_of<T>(a, b, chosen), C);
    __syncthreads();
    if (threadIdx.x == 0) {
        double sum = 0.0;
        for (int64_t i = 0; i < length; ++i) sum += static_cast<double>(s.nearest[i]);
        potential = sum;
    }
    __syncthreads();
    for (int64_t j = 1; j < count; ++j) {
        if (threadIdx.x == 0) {
            double running = 0.0;
            for (int64_t i = 0; i < length; ++i) s.prefix[i] = running += static_cast<double>(s.nearest[i]);
            for (int64_t t = 0; t < trials; ++t) {
                const double target = kmeans_uniform(a.seed, static_cast<uint64_t>(b), draw + t) * potential;
                int64_t pick = length - 1;
                if (!isnan(potential)) {
                    int64_t lo = 0, hi = length;  // the first prefix >= target (numpy's searchsorted, left)
                    while (lo < hi) {
                        const int64_t mid = lo + (hi - lo) / 2;
                        if (s.prefix[mid] < target) lo = mid + 1; else hi = mid;
                    }
                    pick = lo < length - 1 ? lo : length - 1;
                }
                candidate[t] = static_cast<int32_t>(pick);
            }
        }
        draw += static_cast<uint64_t>(trials);
        __syncthreads();
        for (int64_t p = threadIdx.x; p < trials * length; p += blockDim.x) {
            const int64_t t = p / length, i = p % length;
            const float d = squared_distance(row_of<T>(a, b, i), row_of<T>(a, b, candidate[t]), C);
            const float closest = s.nearest[i];
            s.candidates[p] = (is_nan(d) || is_nan(closest)) ? __int_as_float(0x7fc00000) : fminf(d, closest);
        }
        __syncthreads();
        for (int64_t t = threadIdx.x; t < trials; t += blockDim.x) {
            double sum = 0.0;
            for (int64_t i = 0; i < length; ++i) sum += static_cast<double>(s.candidates[t * length + i]);
            potential_of[t] = sum;
        }
        __syncthreads();
        __shared__ int32_t best_trial;
        if (threadIdx.x == 0) {
            int64_t best = -1;
            double best_potential = 0.0;
            for (int64_t t = 0; t < trials; ++t) {
                const double p = potential_of[t];
                if (best < 0 || (!isnan(p) && (isnan(best_potential) || p < best_potential))) {
                    best = t;
                    best_potential = p;
                }
            }
            best_trial = static_cast<int32_t>(best);
            potential = best_potential;
        }
        __syncthreads();
        for (int64_t i = threadIdx.x; i < length; i += blockDim.x) s.nearest[i] = s.candidates[best_trial * length + i];
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
            s.centres[j * C + c] = to_float(row_of<T>(a, b, candidate[best_trial])[c]);
        __syncthreads();
    }
}

template <class T>
__global__ void __launch_bounds__(kThreads) kmeans_kernel(Args a) {
    __shared__ int stop;
    __shared__ double tolerance;
    const int64_t C = a.channels;
    const Slot s = slot_at(a, blockIdx.x);
    for (int64_t b = blockIdx.x; b < a.batch; b += gridDim.x) {
        int64_t length = a.tokens, count = a.clusters;
        if (a.lengths.data != nullptr) {
            const int64_t v = *(static_cast<const int32_t*>(a.lengths.data) + b * a.lengths.strides[0]);
            length = v < 0 ? 0 : (v > a.tokens ? a.tokens : v);
        }
        if (a.item_clusters.data != nullptr) {
            const int64_t v = *(static_cast<const int32_t*>(a.item_clusters.data) + b * a.item_clusters.strides[0]);
            count = v < 0 ? 0 : (v > a.clusters ? a.clusters : v);
        }
        if (count > length) count = length;
        float* centres = s.centres;
        float* sums = s.sums;
        int64_t iteration = 0;
        if (count > 0) {
            if (a.init == TK_KMEANS_INIT_GIVEN) {
                for (int64_t p = threadIdx.x; p < count * C; p += blockDim.x) {
                    const int64_t k = p / C, c = p % C;
                    centres[p] = *(static_cast<const float*>(a.initial.data) + b * a.initial.strides[0] + k * a.initial.strides[1] +
                                   c * a.initial.strides[2]);
                }
                __syncthreads();
            } else {
                seed_plus_plus<T>(a, b, s, length, count);
            }
            // sklearn's _tolerance: per channel in float64, in the CPU's order.
            for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
                double mean = 0.0;
                for (int64_t i = 0; i < length; ++i) mean += to_float(row_of<T>(a, b, i)[c]);
                mean /= static_cast<double>(length);
                double variance = 0.0;
                for (int64_t i = 0; i < length; ++i) {
                    const double d = to_float(row_of<T>(a, b, i)[c]) - mean;
                    variance += d * d;
                }
                s.variance[c] = variance / static_cast<double>(length);
            }
            for (int64_t i = threadIdx.x; i < length; i += blockDim.x) s.previous[i] = -1;
            __syncthreads();
            if (threadIdx.x == 0) {
                double total = 0.0;
                for (int64_t c = 0; c < C; ++c) total += s.variance[c];
                tolerance = a.tolerance == 0.0 ? 0.0 : a.tolerance * (C > 0 ? total / static_cast<double>(C) : 0.0);
            }
            __syncthreads();
            bool strict = false;
            while (iteration < a.max_iterations) {
                ++iteration;
                assign<T>(a, b, s, centres, length, count);
                // Counts, then the relocations (thread 0), then the sums, one thread per channel.
                __shared__ int64_t moves;
                if (threadIdx.x == 0) {
                    for (int64_t k = 0; k < count; ++k) s.counts[k] = 0;
                    for (int64_t i = 0; i < length; ++i) ++s.counts[s.labels[i]];
                    // The empty clusters before any relocation (marked -1): one a relocation empties stays empty.
                    for (int64_t k = 0; k < count; ++k)
                        if (s.counts[k] == 0) s.counts[k] = -1;
                    int64_t m = 0;
                    for (int64_t k = 0; k < count; ++k) {
                        if (s.counts[k] != -1) continue;
                        if (m == 0)
                            for (int64_t i = 0; i < length; ++i) s.taken[i] = 0;
                        // The farthest token not yet moved: larger distance first, NaN last, lower token on ties.
                        int64_t far = -1;
                        for (int64_t i = 0; i < length; ++i) {
                            if (s.taken[i]) continue;
                            if (far < 0) {
                                far = i;
                                continue;
                            }
                            const float di = s.nearest[i], df = s.nearest[far];
                            if (is_nan(df) && !is_nan(di)) far = i;
                            else if (!is_nan(di) && !is_nan(df) && di > df) far = i;
                        }
                        s.taken[far] = 1;
                        const int64_t old = s.labels[far];
                        s.counts[k] = 1;
                        s.moves[3 * m] = static_cast<int32_t>(k);
                        s.moves[3 * m + 1] = static_cast<int32_t>(far);
                        s.moves[3 * m + 2] = --s.counts[old] == 0 ? static_cast<int32_t>(old) : -1;
                        ++m;
                    }
                    moves = m;
                }
                __syncthreads();
                for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
                    for (int64_t k = 0; k < count; ++k) sums[k * C + c] = 0.0f;
                    for (int64_t i = 0; i < length; ++i) sums[s.labels[i] * C + c] += to_float(row_of<T>(a, b, i)[c]);
                    for (int64_t m = 0; m < moves; ++m) {
                        const int64_t far = s.moves[3 * m + 1];
                        const float v = to_float(row_of<T>(a, b, far)[c]);
                        const int64_t old = s.labels[far];
                        sums[old * C + c] -= v;
                        sums[s.moves[3 * m] * C + c] = v;
                        if (s.moves[3 * m + 2] >= 0) sums[s.moves[3 * m + 2] * C + c] = 0.0f;
                    }
                    for (int64_t k = 0; k < count; ++k)
                        if (s.counts[k] > 0) sums[k * C + c] *= static_cast<float>(1.0 / static_cast<double>(s.counts[k]));
                }
                __syncthreads();
                const int changed = __syncthreads_or([&] {
                    int any = 0;
                    for (int64_t i = threadIdx.x; i < length; i += blockDim.x) any |= s.labels[i] != s.previous[i];
                    return any;
                }());
                if (threadIdx.x == 0) {
                    double shift = 0.0;
                    for (int64_t k = 0; k < count; ++k)
                        for (int64_t c = 0; c < C; ++c) {
                            const double d = static_cast<double>(sums[k * C + c]) - static_cast<double>(centres[k * C + c]);
                            shift += d * d;
                        }
                    stop = !changed ? 2 : (shift <= tolerance ? 1 : 0);
                }
                __syncthreads();
                float* swap = centres;
                centres = sums;
                sums = swap;
                if (stop == 2) {
                    strict = true;
                    break;
                }
                if (stop == 1) break;
                for (int64_t i = threadIdx.x; i < length; i += blockDim.x) s.previous[i] = s.labels[i];
                __syncthreads();
            }
            if (!strict) assign<T>(a, b, s, centres, length, count);
            if (threadIdx.x == 0) {
                for (int64_t k = 0; k < count; ++k) s.counts[k] = 0;
                for (int64_t i = 0; i < length; ++i) ++s.counts[s.labels[i]];
            }
            __syncthreads();
        }
        // Outputs: centres and sizes past count zero, labels past length -1.
        for (int64_t p = threadIdx.x; p < a.clusters * C; p += blockDim.x) {
            const int64_t k = p / C, c = p % C;
            *(static_cast<float*>(a.centres.data) + b * a.centres.strides[0] + k * a.centres.strides[1] + c * a.centres.strides[2]) =
                k < count ? centres[p] : 0.0f;
        }
        for (int64_t i = threadIdx.x; i < a.tokens; i += blockDim.x)
            *(static_cast<int32_t*>(a.assignment.data) + b * a.assignment.strides[0] + i * a.assignment.strides[1]) =
                (i < length && count > 0) ? s.labels[i] : -1;
        if (a.sizes.data != nullptr)
            for (int64_t k = threadIdx.x; k < a.clusters; k += blockDim.x)
                *(static_cast<float*>(a.sizes.data) + b * a.sizes.strides[0] + k * a.sizes.strides[1]) =
                    k < count ? static_cast<float>(s.counts[k]) : 0.0f;
        if (a.iterations.data != nullptr && threadIdx.x == 0)
            *(static_cast<int32_t*>(a.iterations.data) + b * a.iterations.strides[0]) = static_cast<int32_t>(iteration);
        __syncthreads();  // the slot is reused by the next item
    }
}

}  // namespace

uint64_t kmeans_workspace_bytes(const KMeansPlan& plan) {
    const int64_t slots = slot_count(plan);
    if (slots == 0) return 0;
    return static_cast<uint64_t>(slots) * slot_layout(plan).bytes + kWorkspaceAlignment - 1;
}

void kmeans(const KMeansPlan& plan, void* workspace, void* stream_handle) {
    DeviceGuard guard(plan.device_ordinal);
    const auto stream = static_cast<cudaStream_t>(stream_handle);
    if (plan.batch == 0) return;
    const SlotLayout layout = slot_layout(plan);
    const int64_t slots = slot_count(plan);
    Scratch scratch(workspace, kmeans_workspace_bytes(plan), stream, "k-means workspace");
    Args a{plan.x,        plan.lengths,  plan.item_clusters,  plan.initial_centres, plan.centres, plan.assignment,
           plan.sizes,    plan.iterations, plan.batch,        plan.tokens,          plan.channels, plan.clusters,
           plan.max_iterations, plan.tolerance, plan.seed, plan.init, layout, static_cast<unsigned char*>(scratch.data())};
    dispatch_float(plan.x.dtype, [&](auto tag) {
        using T = typename StorageOf<decltype(tag)::value>::type;
        kmeans_kernel<T><<<static_cast<unsigned>(slots), kThreads, 0, stream>>>(a);
        check(cudaGetLastError(), "k-means kernel launch");
    });
}

}  // namespace tk::cuda
