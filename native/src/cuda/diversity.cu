// Diversity selection on CUDA (SPEC section 4; the contract is the header's comment on
// tk_diversity_params and tk_diversity_select). One stream-ordered launch sequence per call, no host
// synchronisation, launch sizes from the plan only, so the op can be captured in a CUDA graph:
//
//   cudaMemsetAsync       chosen flags, step keys (and nearest keys) reset
//   row_stats_kernel      per row, 1 / max(|x|, eps) (cosine; NaN for a row holding NaN or Inf)
//                         or |x|^2 (l2, most-isolated only)
//   nearest_kernel        (most isolated) every token's nearest-neighbour distance: a tiled GEMM
//                         with a row-min epilogue, tensor cores for f16/bf16 (diversity_nearest.cuh)
//   first_center_kernel   the first center's key into step_key[b, 0]
//   greedy_item_kernel    one CTA per item runs every step (PyTorch3D farthest-point sampling), or
//   greedy_step_kernel    k - 1 launches, each one step over S CTAs per item
//   finish_kernel         order from the step keys, then -1; sorted by a scan of the chosen flags
//
// The running score of every token (min or sum of its distances to the chosen tokens) lives in the
// workspace with a chosen flag: O(N) per item, never N x N, and no normalised copy of x either: the
// cosine distance of rows j and c is 1 - dot(x_j, x_c) * inv_j * inv_c on the raw features, with
// fp32 accumulation (exact products for f16/bf16), which reads half the bytes of a float32 copy on
// every step for f16/bf16 and is as accurate as normalising first. l2 is the direct form
// sum (x_j - x_c)^2 here: the loop is memory-bound, so the subtraction is free and small distances
// keep their accuracy.
//
// Every argmax compares 64-bit keys (diversity_common.cuh): order_key(score) above the complement of
// the index, so NaN ranks below -inf, ties go to the lower index, and a chosen token (key 0) is never
// chosen again, even among exact duplicates. Each token's distance is reduced in one fixed order
// (lanes over channels, then a butterfly), so identical rows get identical scores.
//
// Large items (video: 10K-100K tokens) are split over S CTAs per step. The split is k - 1 ordinary
// launches, not one cooperative kernel with a grid barrier: a cooperative grid must be co-resident,
// so its size would come from the device's occupancy rather than the plan, and a grid barrier per
// step costs about what a kernel boundary does; plain launches are capturable with every toolkit
// involved (11.8 to 13) and need no co-residency. The CTAs of a step combine by atomicMax on the
// step's key (max is exact and order-free: deterministic), and the next launch reads it as its
// center. A step over N = 10K tokens of C = 1152 moves 25 MB (f16), several microseconds, so launch
// overhead is a small share; small items run the whole loop in one launch.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>

#include "core/dispatch.hpp"
#include "cuda/check.cuh"
#include "cuda/diversity_common.cuh"
#include "cuda/diversity_nearest.cuh"
#include "cuda/dtype.cuh"
#include "cuda/merge_common.cuh"
#include "cuda/scratch.cuh"
#include "ops/diversity.hpp"
#include "ops/merge.hpp"

namespace tk::cuda {
namespace {

using namespace diversity_detail;

constexpr int kStatThreads = 256;    // row_stats_kernel: a warp per row
constexpr int kFirstThreads = 256;   // first_center_kernel
constexpr int64_t kFirstTokens = 4 * kFirstThreads;  // tokens per first_center_kernel CTA
constexpr int kGreedyThreads = 256;  // greedy kernels: a warp per token row
constexpr int kGreedyWarps = kGreedyThreads / 32;
constexpr int kItemThreads = 512;    // finish_kernel: one CTA per item
constexpr int64_t kMaxGridBlocks = 2147483647;
// CTAs the split passes aim for (a few waves on the largest GPUs); fixed, so that launch sizes and
// the workspace depend on the plan only.
constexpr int64_t kTargetBlocks = 1024;
// Features a greedy CTA reads per step at least before an item is split further: below this, a step
// costs less than a launch.
constexpr int64_t kMinStepElements = 65536;

__host__ __device__ __forceinline__ int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

dim3 grid_of(int64_t blocks) { return dim3(static_cast<unsigned>(std::max<int64_t>(1, blocks))); }

// ---- Row statistics ----------------------------------------------------------------------------

// One warp per row of [B, N]. Cosine: 1 / max(|x|, eps), NaN for a row holding NaN or Inf, whose
// normalised row holds NaN, so that all its distances are NaN as on the CPU. l2: |x|^2 as it comes
// (Inf or NaN included): the CPU's expansion takes the same sums, so non-finite rows give the same
// Inf or NaN distances.
template <class T>
__global__ void row_stats_kernel(const StridedTensor x, int64_t tokens, int64_t channels, int64_t rows, int32_t l2,
                                 float* row_stat) {
    const int lane = threadIdx.x % 32;
    const int64_t warp_step = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
    for (int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32; row < rows;
         row += warp_step) {
        const int64_t b = row / tokens;
        const int64_t i = row % tokens;
        const T* v = static_cast<const T*>(x.data) + b * x.strides[0] + i * x.strides[1];
        float sum = 0.0f;
        int non_finite = 0;
        for (int64_t c = lane; c < channels; c += 32) {
            const float f = to_float(v[c]);
            sum = fmaf(f, f, sum);
            non_finite |= isfinite(f) ? 0 : 1;
        }
#pragma unroll
        for (int offset = 16; offset > 0; offset /= 2) {
            sum += __shfl_xor_sync(0xffffffffu, sum, offset);
            non_finite |= __shfl_xor_sync(0xffffffffu, non_finite, offset);
        }
        if (lane == 0) row_stat[row] = l2 ? sum : (non_finite ? NAN : 1.0f / fmaxf(sqrtf(sum), kCosineEps));
    }
}

// ---- First center ------------------------------------------------------------------------------

struct FirstArgs {
    tk_first_center policy;
    const void* score;            // TK_FIRST_SCORE: [B, N]
    int64_t score_batch_stride;
    int64_t score_stride;
    const int32_t* first_index;   // TK_FIRST_INDEX: [B]
    int64_t first_index_stride;
    const uint32_t* nearest_key;  // TK_FIRST_MOST_ISOLATED: [B, N]
    const int32_t* lengths;
    int64_t lengths_stride;
    int64_t tokens;
    int64_t k;
    int64_t chunks;               // CTAs per item
    uint64_t* step_key;           // [B, k]; the first center goes to column 0
};

// grid B * chunks, kFirstThreads threads; CTA (b, chunk) ranks tokens [chunk, chunk + 1) *
// kFirstTokens of [0, L_b) and folds its best key into step_key[b, 0] (zeroed before). With
// TK_FIRST_INDEX (one chunk) thread 0 writes the clamped index. S is the score's storage type.
template <class S>
__global__ void __launch_bounds__(kFirstThreads) first_center_kernel(const FirstArgs a) {
    using Reduce = cub::BlockReduce<uint64_t, kFirstThreads>;
    __shared__ typename Reduce::TempStorage storage;
    const int64_t b = blockIdx.x / a.chunks;
    const int64_t chunk = blockIdx.x % a.chunks;
    const int64_t length = item_length(a.lengths, a.lengths_stride, b, a.tokens);
    uint64_t* first_key = a.step_key + b * a.k;
    if (a.policy == TK_FIRST_INDEX) {  // the whole grid takes this branch: no barrier follows
        if (threadIdx.x == 0 && length > 0) {
            const int64_t center = clamp64(a.first_index[b * a.first_index_stride], 0, length - 1);
            *first_key = token_key(merge_detail::order_key(0.0f), center);
        }
        return;
    }
    const int64_t begin = chunk * kFirstTokens;
    const int64_t end = min(length, begin + kFirstTokens);
    uint64_t best = 0;
    for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x) {
        uint32_t score_key;
        if (a.policy == TK_FIRST_SCORE) {
            const S* score = static_cast<const S*>(a.score) + b * a.score_batch_stride;
            score_key = merge_detail::order_key(to_float(score[j * a.score_stride]));
        } else {
            const uint32_t nearest = a.nearest_key[b * a.tokens + j];
            score_key = nearest == kNoNeighbour ? merge_detail::order_key(NAN) : nearest;
        }
        const uint64_t key = token_key(score_key, j);
        best = key > best ? key : best;
    }
    const uint64_t block_best = Reduce(storage).Reduce(best, MaxKey{});
    if (threadIdx.x == 0 && block_best != 0) atomic_max_key(first_key, block_best);
}

// ---- Greedy steps ------------------------------------------------------------------------------

struct GreedyArgs {
    const void* x;
    int64_t batch_stride;
    int64_t token_stride;
    int64_t tokens;
    int64_t channels;
    int64_t k;
    const int32_t* lengths;
    int64_t lengths_stride;
    const int32_t* item_k;
    int64_t item_k_stride;
    const float* row_stat;  // cosine: [B, N] inverse norms
    float* score;           // [B, N]
    uint8_t* chosen;        // [B, N]
    uint64_t* step_key;     // [B, k]: key of the token chosen at each step
    int64_t splits;         // greedy_step_kernel: CTAs per item
    int64_t split_tokens;   // tokens per CTA
    int32_t max_sum;
};

// sum over channels of x_j * x_c (cosine) or (x_j - x_c)^2 (l2): lanes over V-element words in
// increasing order, then a butterfly, whose result is the same bits on every lane.
template <class T, int V, bool L2>
__device__ __forceinline__ float row_reduce(const T* row, const T* center, int64_t words, int lane) {
    float acc = 0.0f;
#pragma unroll 4
    for (int64_t w = lane; w < words; w += 32) {
        float xs[V];
        float cs[V];
        unpack<T, V>(load_word<T, V>(row + w * V), xs);
        unpack<T, V>(load_word<T, V>(center + w * V), cs);
#pragma unroll
        for (int e = 0; e < V; ++e) {
            if constexpr (L2) {
                const float diff = xs[e] - cs[e];
                acc = fmaf(diff, diff, acc);
            } else {
                acc = fmaf(xs[e], cs[e], acc);
            }
        }
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, offset);
    return acc;
}

// One step over tokens [begin, end) of item b: the previous center is flagged chosen; every other
// unchosen token adds its distance to it into its score (the first step sets it); returns the best
// key of this thread's tokens. A warp per token row, lane 0 owns the score.
template <class T, int V, bool L2>
__device__ uint64_t greedy_pass(const GreedyArgs& a, int64_t b, int64_t step, int64_t center, int64_t begin,
                                int64_t end) {
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    const T* item = static_cast<const T*>(a.x) + b * a.batch_stride;
    const T* center_row = item + center * a.token_stride;
    const int64_t base = b * a.tokens;
    const int64_t words = a.channels / V;
    const float center_stat = L2 ? 0.0f : a.row_stat[base + center];
    uint64_t best = 0;
    for (int64_t j = begin + warp; j < end; j += kGreedyWarps) {
        if (j == center) {
            if (lane == 0) a.chosen[base + j] = 1;
            continue;
        }
        // Lane 0's read, broadcast: the branch is uniform over the warp before its shuffles.
        if (__shfl_sync(0xffffffffu, lane == 0 ? static_cast<int>(a.chosen[base + j]) : 0, 0)) continue;
        const float reduced = row_reduce<T, V, L2>(item + j * a.token_stride, center_row, words, lane);
        if (lane == 0) {
            const float distance =
                L2 ? reduced : 1.0f - merge_detail::cosine_of(reduced, a.row_stat[base + j], center_stat);
            float score = distance;
            if (step > 1) {
                // The running min ignores a NaN distance (fminf); the sum propagates it.
                const float previous = a.score[base + j];
                score = a.max_sum ? previous + distance : fminf(previous, distance);
            }
            a.score[base + j] = score;
            const uint64_t key = token_key(merge_detail::order_key(score), j);
            best = key > best ? key : best;
        }
    }
    return best;
}

// grid B, kGreedyThreads threads: the whole loop of item b in one CTA; the block's argmax of each
// step is the next center. Loop bounds depend on the item only, so the barriers are uniform.
template <class T, int V, bool L2>
__global__ void __launch_bounds__(kGreedyThreads) greedy_item_kernel(const GreedyArgs a) {
    using Reduce = cub::BlockReduce<uint64_t, kGreedyThreads>;
    __shared__ typename Reduce::TempStorage storage;
    __shared__ uint64_t step_best;
    const int64_t b = blockIdx.x;
    const int64_t length = item_length(a.lengths, a.lengths_stride, b, a.tokens);
    const int64_t count = item_count(a.item_k, a.item_k_stride, b, a.k, length);
    uint64_t* keys = a.step_key + b * a.k;
    int64_t center = count > 0 ? token_of(keys[0]) : 0;
    for (int64_t step = 1; step < count; ++step) {
        const uint64_t best = greedy_pass<T, V, L2>(a, b, step, center, 0, length);
        const uint64_t block_best = Reduce(storage).Reduce(best, MaxKey{});
        if (threadIdx.x == 0) {
            keys[step] = block_best;
            step_best = block_best;
        }
        // Also orders this step's chosen flags and scores before the next step reads them.
        __syncthreads();
        center = token_of(step_best);
        __syncthreads();  // step_best and the reduction storage are reused by the next step
    }
}

// grid B * splits, kGreedyThreads threads: step `step` over tokens [s, s + 1) * split_tokens of
// item b. The previous launch left the last center in step_key[b, step - 1]; this one folds its
// CTAs' best keys into step_key[b, step] (zeroed before).
template <class T, int V, bool L2>
__global__ void __launch_bounds__(kGreedyThreads) greedy_step_kernel(const GreedyArgs a, int64_t step) {
    using Reduce = cub::BlockReduce<uint64_t, kGreedyThreads>;
    __shared__ typename Reduce::TempStorage storage;
    const int64_t b = blockIdx.x / a.splits;
    const int64_t split = blockIdx.x % a.splits;
    const int64_t length = item_length(a.lengths, a.lengths_stride, b, a.tokens);
    const int64_t count = item_count(a.item_k, a.item_k_stride, b, a.k, length);
    const int64_t begin = split * a.split_tokens;
    const int64_t end = min(length, begin + a.split_tokens);
    // The whole CTA leaves together, before the barrier: the item is done, or the split is past L_b.
    if (step >= count || begin >= end) return;
    uint64_t* keys = a.step_key + b * a.k;
    const uint64_t best = greedy_pass<T, V, L2>(a, b, step, token_of(keys[step - 1]), begin, end);
    const uint64_t block_best = Reduce(storage).Reduce(best, MaxKey{});
    if (threadIdx.x == 0 && block_best != 0) atomic_max_key(keys + step, block_best);
}

// ---- Outputs -----------------------------------------------------------------------------------

struct FinishArgs {
    const uint64_t* step_key;  // [B, k]
    uint8_t* chosen;           // [B, N]
    const int32_t* lengths;
    int64_t lengths_stride;
    const int32_t* item_k;
    int64_t item_k_stride;
    int64_t tokens;
    int64_t k;
    StridedTensor order;       // [B, k]
    StridedTensor sorted;      // [B, k], data NULL when absent
};

// grid B, kItemThreads threads. order[b, t] is the token of step t, -1 from count_b on; every chosen
// token is flagged (the last step's center was never a previous center). sorted: thread t scans a
// contiguous run of [0, L_b), a block scan of the runs' counts places each run's chosen tokens, in
// increasing order; -1 from count_b on. The global flags a thread wrote are visible to the block
// after __syncthreads.
__global__ void __launch_bounds__(kItemThreads) finish_kernel(const FinishArgs a) {
    using Scan = cub::BlockScan<int32_t, kItemThreads>;
    __shared__ typename Scan::TempStorage scan_storage;
    const int64_t b = blockIdx.x;
    const int64_t length = item_length(a.lengths, a.lengths_stride, b, a.tokens);
    const int64_t count = item_count(a.item_k, a.item_k_stride, b, a.k, length);
    const uint64_t* keys = a.step_key + b * a.k;
    uint8_t* chosen = a.chosen + b * a.tokens;
    int32_t* order = static_cast<int32_t*>(a.order.data) + b * a.order.strides[0];
    for (int64_t t = threadIdx.x; t < a.k; t += blockDim.x) {
        int32_t token = -1;
        if (t < count) {
            token = static_cast<int32_t>(token_of(keys[t]));
            chosen[token] = 1;
        }
        order[t * a.order.strides[1]] = token;
    }
    if (a.sorted.data == nullptr) return;  // the same for every CTA: no barrier is skipped by some
    __syncthreads();
    int32_t* sorted = static_cast<int32_t*>(a.sorted.data) + b * a.sorted.strides[0];
    const int64_t run = ceil_div(length, kItemThreads);
    const int64_t begin = min(length, static_cast<int64_t>(threadIdx.x) * run);
    const int64_t end = min(length, begin + run);
    int32_t in_run = 0;
    for (int64_t j = begin; j < end; ++j) in_run += chosen[j];
    int32_t before = 0;
    Scan(scan_storage).ExclusiveSum(in_run, before);
    int64_t slot = before;
    for (int64_t j = begin; j < end; ++j) {
        if (chosen[j]) {
            sorted[slot * a.sorted.strides[1]] = static_cast<int32_t>(j);
            ++slot;
        }
    }
    for (int64_t t = count + threadIdx.x; t < a.k; t += blockDim.x) sorted[t * a.sorted.strides[1]] = -1;
}

// ---- Plan ---------------------------------------------------------------------------------------

// Launch shapes of the split passes, from the plan only.
struct Shape {
    int64_t nearest_row_tiles;
    int64_t nearest_splits;
    int64_t nearest_tiles_per_split;
    int64_t first_chunks;
    int64_t greedy_splits;  // 1: greedy_item_kernel
    int64_t split_tokens;
};

Shape shape_of(const DiversityPlan& plan) {
    Shape s{};
    const int64_t tiles = ceil_div(plan.tokens, diversity_detail::kSourceTile);
    s.nearest_row_tiles = tiles;
    const int64_t splits = std::clamp<int64_t>(ceil_div(kTargetBlocks, std::max<int64_t>(1, plan.batch * tiles)), 1,
                                               std::max<int64_t>(1, tiles));
    s.nearest_tiles_per_split = std::max<int64_t>(1, ceil_div(tiles, splits));
    s.nearest_splits = std::max<int64_t>(1, ceil_div(tiles, s.nearest_tiles_per_split));
    s.first_chunks = plan.first == TK_FIRST_INDEX ? 1 : std::max<int64_t>(1, ceil_div(plan.tokens, kFirstTokens));
    const int64_t by_work = ceil_div(plan.tokens * plan.channels, kMinStepElements);
    const int64_t by_rows = ceil_div(plan.tokens, kGreedyWarps);
    // B = 0 or N = 0 (nothing to select) still gets a shape: no divisor below is 0.
    const int64_t wanted = std::clamp<int64_t>(ceil_div(kTargetBlocks, std::max<int64_t>(1, plan.batch)), 1,
                                               std::max<int64_t>(1, std::min(by_work, by_rows)));
    s.split_tokens = std::max<int64_t>(1, ceil_div(plan.tokens, wanted));
    s.greedy_splits = ceil_div(plan.tokens, s.split_tokens);
    return s;
}

struct Layout {
    uint64_t row_stat;     // f32 [B, N], cosine or l2 with the most-isolated first center
    uint64_t nearest_key;  // u32 [B, N], most isolated only
    uint64_t score;        // f32 [B, N]
    uint64_t chosen;       // u8 [B, N]
    uint64_t step_key;     // u64 [B, k]
    uint64_t total;
};

bool needs_row_stats(const DiversityPlan& plan) {
    return plan.distance == TK_DISTANCE_COSINE || plan.first == TK_FIRST_MOST_ISOLATED;
}

Layout layout_of(const DiversityPlan& plan, const Shape& s) {
    const int64_t nearest_blocks = plan.batch * s.nearest_row_tiles * s.nearest_splits;
    const int64_t step_blocks = plan.batch * s.greedy_splits;
    const int64_t first_blocks = plan.batch * s.first_chunks;
    if (plan.batch > kMaxGridBlocks || nearest_blocks > kMaxGridBlocks || step_blocks > kMaxGridBlocks ||
        first_blocks > kMaxGridBlocks)
        throw Error(TK_STATUS_INVALID_ARGUMENT, "x: B * ceil(N / 64) must be at most 2147483647 on CUDA, got B = " +
                                                    std::to_string(plan.batch) +
                                                    ", N = " + std::to_string(plan.tokens));
    const uint64_t rows = static_cast<uint64_t>(plan.batch) * static_cast<uint64_t>(plan.tokens);
    Layout w{};
    RegionCursor cursor;
    w.row_stat = cursor.take(needs_row_stats(plan) ? rows * sizeof(float) : 0);
    w.nearest_key = cursor.take(plan.first == TK_FIRST_MOST_ISOLATED ? rows * sizeof(uint32_t) : 0);
    w.score = cursor.take(rows * sizeof(float));
    w.chosen = cursor.take(rows * sizeof(uint8_t));
    w.step_key = cursor.take(static_cast<uint64_t>(plan.batch) * static_cast<uint64_t>(plan.k) * sizeof(uint64_t));
    w.total = cursor.total();
    return w;
}

// Whether rows can move as V-element words: data aligned, C and every used stride multiples of V.
template <class T>
bool rows_fit_words(const DiversityPlan& plan, int64_t v) {
    return reinterpret_cast<uintptr_t>(plan.x.data) % (static_cast<uintptr_t>(v) * sizeof(T)) == 0 &&
           plan.channels % v == 0 && (plan.tokens <= 1 || plan.x.strides[1] % v == 0) &&
           (plan.batch <= 1 || plan.x.strides[0] % v == 0);
}

template <class T, int V, bool L2>
void launch_greedy(const DiversityPlan& plan, const Shape& s, const GreedyArgs& args, cudaStream_t stream) {
    if (s.greedy_splits == 1) {
        greedy_item_kernel<T, V, L2><<<grid_of(plan.batch), kGreedyThreads, 0, stream>>>(args);
        check(cudaGetLastError(), "diversity greedy_item_kernel launch");
        return;
    }
    const dim3 grid = grid_of(plan.batch * s.greedy_splits);
    for (int64_t step = 1; step < plan.k; ++step) {
        greedy_step_kernel<T, V, L2><<<grid, kGreedyThreads, 0, stream>>>(args, step);
        check(cudaGetLastError(), "diversity greedy_step_kernel launch");
    }
}

template <class T, bool L2>
void launch_greedy_words(const DiversityPlan& plan, const Shape& s, const GreedyArgs& args, cudaStream_t stream) {
    constexpr int V = kMaxVector<T>;
    if (rows_fit_words<T>(plan, V))
        launch_greedy<T, V, L2>(plan, s, args, stream);
    else
        launch_greedy<T, 1, L2>(plan, s, args, stream);
}

}  // namespace

uint64_t diversity_workspace_bytes(const DiversityPlan& plan) {
    DeviceGuard guard(plan.device_ordinal);
    return layout_of(plan, shape_of(plan)).total;
}

void diversity_select(const DiversityPlan& plan, void* workspace, void* stream_handle) {
    DeviceGuard guard(plan.device_ordinal);
    const auto stream = static_cast<cudaStream_t>(stream_handle);
    if (plan.batch * plan.k == 0) return;
    const Shape shape = shape_of(plan);
    const Layout layout = layout_of(plan, shape);
    Scratch scratch(workspace, layout.total, stream, "diversity workspace");
    void* base = scratch.data();
    const int64_t rows = plan.batch * plan.tokens;
    const bool l2 = plan.distance == TK_DISTANCE_L2;
    const bool most_isolated = plan.first == TK_FIRST_MOST_ISOLATED;
    float* row_stat = needs_row_stats(plan) ? at_offset<float>(base, layout.row_stat) : nullptr;
    uint32_t* nearest_key = most_isolated ? at_offset<uint32_t>(base, layout.nearest_key) : nullptr;
    uint8_t* chosen = at_offset<uint8_t>(base, layout.chosen);
    uint64_t* step_key = at_offset<uint64_t>(base, layout.step_key);

    check(cudaMemsetAsync(chosen, 0, static_cast<size_t>(rows) * sizeof(uint8_t), stream),
          "cudaMemsetAsync (diversity chosen flags)");
    check(cudaMemsetAsync(step_key, 0, static_cast<size_t>(plan.batch * plan.k) * sizeof(uint64_t), stream),
          "cudaMemsetAsync (diversity step keys)");
    if (row_stat != nullptr) {
        dispatch_float(plan.x.dtype, [&](auto tag) {
            using T = typename StorageOf<decltype(tag)::value>::type;
            const int64_t blocks = std::min(ceil_div(rows * 32, kStatThreads), kMaxGridBlocks);
            row_stats_kernel<T><<<grid_of(blocks), kStatThreads, 0, stream>>>(plan.x, plan.tokens, plan.channels, rows,
                                                                              l2 ? 1 : 0, row_stat);
            check(cudaGetLastError(), "diversity row_stats_kernel launch");
        });
    }

    if (most_isolated) {
        // 0xff bytes: kNoNeighbour, above every distance key, until a number is seen.
        check(cudaMemsetAsync(nearest_key, 0xff, static_cast<size_t>(rows) * sizeof(uint32_t), stream),
              "cudaMemsetAsync (diversity nearest keys)");
        NearestArgs nearest{};
        nearest.x = plan.x.data;
        nearest.batch_stride = plan.x.strides[0];
        nearest.token_stride = plan.x.strides[1];
        nearest.tokens = plan.tokens;
        nearest.channels = plan.channels;
        nearest.l2 = l2 ? 1 : 0;
        nearest.lengths = static_cast<const int32_t*>(plan.lengths.data);
        nearest.lengths_stride = plan.lengths.strides[0];
        nearest.row_stat = row_stat;
        nearest.row_tiles = shape.nearest_row_tiles;
        nearest.splits = shape.nearest_splits;
        nearest.tiles_per_split = shape.nearest_tiles_per_split;
        nearest.nearest_key = nearest_key;
        dispatch_float(plan.x.dtype, [&](auto tag) {
            using T = typename StorageOf<decltype(tag)::value>::type;
            nearest.vector_loads = rows_fit_words<T>(plan, kLoadVector<T>) ? 1 : 0;
            nearest_kernel<T><<<grid_of(plan.batch * shape.nearest_row_tiles * shape.nearest_splits), kMatchThreads, 0,
                                stream>>>(nearest);
            check(cudaGetLastError(), "diversity nearest_kernel launch");
        });
    }

    FirstArgs first{};
    first.policy = plan.first;
    first.score = plan.first_score.data;
    first.score_batch_stride = plan.first_score.strides[0];
    first.score_stride = plan.first_score.strides[1];
    first.first_index = static_cast<const int32_t*>(plan.first_index.data);
    first.first_index_stride = plan.first_index.strides[0];
    first.nearest_key = nearest_key;
    first.lengths = static_cast<const int32_t*>(plan.lengths.data);
    first.lengths_stride = plan.lengths.strides[0];
    first.tokens = plan.tokens;
    first.k = plan.k;
    first.chunks = shape.first_chunks;
    first.step_key = step_key;
    const dim3 first_grid = grid_of(plan.batch * shape.first_chunks);
    if (plan.first == TK_FIRST_SCORE) {
        dispatch_float(plan.first_score.dtype, [&](auto tag) {
            using S = typename StorageOf<decltype(tag)::value>::type;
            first_center_kernel<S><<<first_grid, kFirstThreads, 0, stream>>>(first);
        });
    } else {
        first_center_kernel<float><<<first_grid, kFirstThreads, 0, stream>>>(first);
    }
    check(cudaGetLastError(), "diversity first_center_kernel launch");

    if (plan.k > 1) {
        GreedyArgs greedy{};
        greedy.x = plan.x.data;
        greedy.batch_stride = plan.x.strides[0];
        greedy.token_stride = plan.x.strides[1];
        greedy.tokens = plan.tokens;
        greedy.channels = plan.channels;
        greedy.k = plan.k;
        greedy.lengths = static_cast<const int32_t*>(plan.lengths.data);
        greedy.lengths_stride = plan.lengths.strides[0];
        greedy.item_k = static_cast<const int32_t*>(plan.item_k.data);
        greedy.item_k_stride = plan.item_k.strides[0];
        greedy.row_stat = row_stat;
        greedy.score = at_offset<float>(base, layout.score);
        greedy.chosen = chosen;
        greedy.step_key = step_key;
        greedy.splits = shape.greedy_splits;
        greedy.split_tokens = shape.split_tokens;
        greedy.max_sum = plan.objective == TK_DIVERSITY_MAX_SUM ? 1 : 0;
        dispatch_float(plan.x.dtype, [&](auto tag) {
            using T = typename StorageOf<decltype(tag)::value>::type;
            if (l2)
                launch_greedy_words<T, true>(plan, shape, greedy, stream);
            else
                launch_greedy_words<T, false>(plan, shape, greedy, stream);
        });
    }

    FinishArgs finish{};
    finish.step_key = step_key;
    finish.chosen = chosen;
    finish.lengths = static_cast<const int32_t*>(plan.lengths.data);
    finish.lengths_stride = plan.lengths.strides[0];
    finish.item_k = static_cast<const int32_t*>(plan.item_k.data);
    finish.item_k_stride = plan.item_k.strides[0];
    finish.tokens = plan.tokens;
    finish.k = plan.k;
    finish.order = plan.order;
    finish.sorted = plan.sorted;
    finish_kernel<<<grid_of(plan.batch), kItemThreads, 0, stream>>>(finish);
    check(cudaGetLastError(), "diversity finish_kernel launch");
}

}  // namespace tk::cuda
