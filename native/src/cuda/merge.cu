// Bipartite token merging on CUDA (SPEC section 2; the contract is the header's comment on
// tk_merge_params). One stream-ordered launch sequence per call, no host synchronisation:
//
//   inverse_norms_kernel   1 / max(|v|, eps) of every metric row                  (merge_match.cuh)
//   match_kernel           each source's best destination and score: tiled GEMM
//                          with a row-argmax epilogue, tensor cores for f16/bf16   (merge_match.cuh)
//   select_kernel          per item, the merge count and the count-th largest
//                          selection key by an 8 x 8-bit radix select (no sort)
//   classify_kernel        per source: the key grouping it under its destination
//                          (merged) or after all of them (unmerged); the key
//                          ordering it by descending score (ToMe order only)
//   cub::DeviceRadixSort   stable sorts of those keys: the merged sources of each
//                          destination become contiguous, in increasing position
//   assign_rows_kernel     per item, the output row of every token (and source_map)
//   merge_rows_kernel      each output row: a copy, a destination's group reduced
//                          in increasing source position, or threshold padding
//   unmerge_kernel         (tk_unmerge) out[b, i] = y[b, map[b, i]], zeros for an
//                          index outside [0, N')
//
// Determinism: every reduction has a fixed order (no float atomics; the only atomics are integer
// histogram counts). The float arithmetic of a destination is spelled with __fmul_rn / __fadd_rn so
// that no FMA contraction changes it: products rounded, then added, as a plain CPU loop does.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/dispatch.hpp"
#include "cuda/check.cuh"
#include "cuda/dtype.cuh"
#include "cuda/merge_common.cuh"
#include "cuda/merge_match.cuh"
#include "cuda/scratch.cuh"
#include "ops/merge.hpp"

namespace tk::cuda {
namespace {

using namespace merge_detail;

constexpr int kItemThreads = 512;  // select_kernel and assign_rows_kernel: one CTA per item
constexpr int kRowThreads = 256;
constexpr int kElementThreads = 256;
constexpr int64_t kMaxGridBlocks = 2147483647;
constexpr uint64_t kNoKey = ~0ull;  // above every selection key: "nothing merges"

// ---- Workspace -------------------------------------------------------------------------------

// Regions of the workspace, each kWorkspaceAlignment-aligned; offsets in bytes.
struct WorkspaceLayout {
    uint64_t inverse_norm;    // f32 [B, N]
    uint64_t best;            // f32 [B, S]
    uint64_t best_position;   // i32 [B, S]
    uint64_t kth_key;         // u64 [B]   the smallest selection key that merges (kNoKey: none)
    uint64_t count;           // i32 [B]   merges per item
    uint64_t source_id;       // i32 [B, S] s, the sort's values
    uint64_t group_key;       // u64 [B, S] (b << 32) | destination, or | D when unmerged
    uint64_t order_key;       // u64 [B, S] (b << 32) | ~score key (ToMe order)
    uint64_t sorted_key;      // u64 [B, S] group_key sorted
    uint64_t group_source;    // i32 [B, S] source ids in group_key order
    uint64_t ordered_source;  // i32 [B, S] source ids by descending score (ToMe order)
    uint64_t token_row;       // i32 [B, N] output row of every token
    uint64_t row_token;       // i32 [B, N] input token of every output row, -1 for padding
    uint64_t sort_temp;       // CUB's scratch
    uint64_t sort_temp_bytes;
    uint64_t match_bytes;     // what merge_match needs (inverse_norm only)
    uint64_t total;
};

int64_t sort_items(const MergePlan& plan) { return plan.batch * merge_source_count(plan.tokens); }

// Key bits the sorts must look at: 32 of position / score plus those of the item index.
int sort_end_bit(int64_t batch) {
    int bits = 32;
    for (int64_t b = batch - 1; b > 0; b >>= 1) ++bits;
    return bits;
}

// CUB's scratch depends on the number of digit passes, hence on end_bit.
uint64_t sort_temp_bytes(int64_t items, int end_bit) {
    size_t bytes = 0;
    check(cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const uint64_t*>(nullptr),
                                          static_cast<uint64_t*>(nullptr), static_cast<const int32_t*>(nullptr),
                                          static_cast<int32_t*>(nullptr), static_cast<int>(items), 0, end_bit),
          "cub::DeviceRadixSort::SortPairs (workspace query)");
    return bytes;
}

WorkspaceLayout workspace_layout(const MergePlan& plan) {
    // match_kernel and the one-CTA-per-item kernels put the item in a grid dimension.
    if (plan.batch > 65535) throw Error(TK_STATUS_INVALID_ARGUMENT, "metric: B must be at most 65535 on CUDA");
    const int64_t items = sort_items(plan);
    if (items > INT_MAX)
        throw Error(TK_STATUS_INVALID_ARGUMENT, "metric: B * ceil(N / 2) must be at most 2147483647 on CUDA, got " +
                                                    std::to_string(items));
    const uint64_t rows = static_cast<uint64_t>(plan.batch * plan.tokens);
    const uint64_t sources = static_cast<uint64_t>(items);
    const uint64_t batch = static_cast<uint64_t>(plan.batch);
    WorkspaceLayout w{};
    RegionCursor cursor;
    w.inverse_norm = cursor.take(rows * sizeof(float));
    w.match_bytes = cursor.used();
    w.best = cursor.take(sources * sizeof(float));
    w.best_position = cursor.take(sources * sizeof(int32_t));
    w.kth_key = cursor.take(batch * sizeof(uint64_t));
    w.count = cursor.take(batch * sizeof(int32_t));
    w.source_id = cursor.take(sources * sizeof(int32_t));
    w.group_key = cursor.take(sources * sizeof(uint64_t));
    w.order_key = cursor.take(sources * sizeof(uint64_t));
    w.sorted_key = cursor.take(sources * sizeof(uint64_t));
    w.group_source = cursor.take(sources * sizeof(int32_t));
    w.ordered_source = cursor.take(sources * sizeof(int32_t));
    w.token_row = cursor.take(rows * sizeof(int32_t));
    w.row_token = cursor.take(rows * sizeof(int32_t));
    w.sort_temp_bytes = items > 0 ? sort_temp_bytes(items, sort_end_bit(plan.batch)) : 0;
    w.sort_temp = cursor.take(w.sort_temp_bytes);
    // Slack to align a caller's workspace that starts off a kWorkspaceAlignment boundary.
    w.total = cursor.used() + kWorkspaceAlignment - 1;
    w.match_bytes += kWorkspaceAlignment - 1;
    return w;
}

// ---- Vectors of channels ----------------------------------------------------------------------

template <class T, int V>
__device__ __forceinline__ void store_word(T* ptr, const Word<T, V>& word) {
    __stwb(reinterpret_cast<Word<T, V>*>(ptr), word);
}

template <class T, int V>
__device__ __forceinline__ void unpack(const Word<T, V>& word, float (&values)[V]) {
    T lanes[V];
    memcpy(lanes, &word, sizeof(word));
#pragma unroll
    for (int k = 0; k < V; ++k) values[k] = to_float(lanes[k]);
}

template <class T, int V>
__device__ __forceinline__ Word<T, V> pack(const float (&values)[V]) {
    T lanes[V];
#pragma unroll
    for (int k = 0; k < V; ++k) lanes[k] = from_float<T>(values[k]);
    Word<T, V> word;
    memcpy(&word, lanes, sizeof(word));
    return word;
}

template <class T, int V>
__device__ __forceinline__ Word<T, V> zero_word() {
    Word<T, V> word;
    memset(&word, 0, sizeof(word));
    return word;
}

// Whether V-element vectors fit: both pointers aligned, C and every used stride multiples of V.
template <class T>
bool vectors_fit(int64_t v, int64_t channels, const TokenRows& a, int64_t a_rows, const TokenRows& b, int64_t b_rows,
                 int64_t batch) {
    const uintptr_t bytes = static_cast<uintptr_t>(v) * sizeof(T);
    if (reinterpret_cast<uintptr_t>(a.data) % bytes != 0 || reinterpret_cast<uintptr_t>(b.data) % bytes != 0)
        return false;
    if (channels % v != 0) return false;
    const bool batches = batch > 1;
    if (batches && (a.batch_stride % v != 0 || b.batch_stride % v != 0)) return false;
    return (a_rows <= 1 || a.token_stride % v == 0) && (b_rows <= 1 || b.token_stride % v == 0);
}

struct LaunchShape {
    dim3 grid;
    dim3 block;
};

// block = (lanes, rows per block): a warp per row, fewer lanes when a row has fewer vectors.
LaunchShape row_launch_shape(int64_t rows, int64_t vectors) {
    int64_t lanes = 1;
    while (lanes < 32 && lanes < vectors) lanes *= 2;
    const int64_t rows_per_block = kRowThreads / lanes;
    const int64_t blocks = std::min((rows + rows_per_block - 1) / rows_per_block, kMaxGridBlocks);
    return LaunchShape{dim3(static_cast<unsigned>(blocks)),
                       dim3(static_cast<unsigned>(lanes), static_cast<unsigned>(rows_per_block))};
}

dim3 element_grid(int64_t elements, int64_t threads) {
    return dim3(static_cast<unsigned>(std::min((elements + threads - 1) / threads, kMaxGridBlocks)));
}

// ---- Selection ---------------------------------------------------------------------------------

struct SelectArgs {
    const float* best;  // [B, S]
    int64_t sources;
    int64_t r;          // fixed: the merges; threshold: the cap
    int32_t use_threshold;
    float threshold;
    int32_t protect_first;
    uint64_t* kth_key;  // [B]
    int32_t* count;     // [B]
    int32_t* merge_count;  // optional output
    int64_t merge_count_stride;
};

// One CTA per item. The merge count, then the count-th largest selection key by radix select over
// 8-bit digits, most significant first: each pass histograms the keys that match the digits chosen
// so far and picks the digit where the count is reached. Keys are distinct (they hold the position),
// so exactly `count` keys are >= the result.
__global__ void __launch_bounds__(kItemThreads) select_kernel(const SelectArgs args) {
    using BlockReduce = cub::BlockReduce<int, kItemThreads>;
    __shared__ typename BlockReduce::TempStorage reduce_storage;
    __shared__ int histogram[256];
    __shared__ int target_shared;
    __shared__ uint64_t prefix_shared;
    __shared__ int remaining_shared;
    const int64_t b = blockIdx.x;
    const float* best = args.best + b * args.sources;

    int target = static_cast<int>(args.r);
    if (args.use_threshold) {
        int above = 0;
        for (int64_t s = threadIdx.x; s < args.sources; s += kItemThreads) above += best[s] > args.threshold ? 1 : 0;
        const int total = BlockReduce(reduce_storage).Sum(above);
        if (threadIdx.x == 0) target_shared = min(total, target);
        __syncthreads();
        target = target_shared;
    }

    uint64_t prefix = 0;
    uint64_t mask = 0;
    int remaining = target;
    for (int shift = 56; target > 0 && shift >= 0; shift -= 8) {
        for (int bin = threadIdx.x; bin < 256; bin += kItemThreads) histogram[bin] = 0;
        __syncthreads();
        for (int64_t s = threadIdx.x; s < args.sources; s += kItemThreads) {
            const uint64_t key = selection_key(best[s], s, args.protect_first);
            if ((key & mask) == prefix) atomicAdd(&histogram[(key >> shift) & 255], 1);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            int above = 0;  // matching keys in higher bins
            for (int bin = 255; bin >= 0; --bin) {
                if (above + histogram[bin] >= remaining) {
                    prefix_shared = prefix | (static_cast<uint64_t>(bin) << shift);
                    remaining_shared = remaining - above;
                    break;
                }
                above += histogram[bin];
            }
        }
        __syncthreads();
        prefix = prefix_shared;
        remaining = remaining_shared;
        mask |= 255ull << shift;
    }
    if (threadIdx.x == 0) {
        args.kth_key[b] = target > 0 ? prefix : kNoKey;
        args.count[b] = target;
        if (args.merge_count != nullptr) args.merge_count[b * args.merge_count_stride] = target;
    }
}

struct ClassifyArgs {
    const float* best;
    const int32_t* best_position;
    const uint64_t* kth_key;
    int64_t sources;
    int64_t destinations;
    int32_t protect_first;
    int64_t items;         // B * S
    int32_t* source_id;
    uint64_t* group_key;
    uint64_t* order_key;   // NULL unless the ToMe order ranks unmerged sources by score
};

__global__ void classify_kernel(const ClassifyArgs args) {
    const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; index < args.items;
         index += step) {
        const int64_t b = index / args.sources;
        const int64_t s = index % args.sources;
        const uint64_t key = selection_key(args.best[index], s, args.protect_first);
        const bool merged = key >= args.kth_key[b];
        const int64_t group = merged ? (args.best_position[index] - 1) / 2 : args.destinations;
        const uint64_t item = static_cast<uint64_t>(b) << 32;
        args.source_id[index] = static_cast<int32_t>(s);
        args.group_key[index] = item | static_cast<uint64_t>(group);
        // Ascending ~score key is descending score; the stable sort keeps ties in position order.
        if (args.order_key != nullptr) args.order_key[index] = item | static_cast<uint32_t>(~(key >> 32));
    }
}

// ---- Output rows -------------------------------------------------------------------------------

struct AssignArgs {
    const float* best;
    const int32_t* best_position;
    const uint64_t* kth_key;
    const int32_t* count;
    const int32_t* ordered_source;  // ToMe order without protect_first
    int64_t tokens;
    int64_t sources;
    int64_t destinations;
    int64_t output_tokens;
    int32_t protect_first;
    int32_t protect_second;
    tk_merge_order order;
    int32_t* token_row;  // [B, N]
    int32_t* row_token;  // [B, N]
    TokenRows source_map;
};

// One CTA per item. Surviving tokens get their row first; merged sources then take the row of
// their destination (global writes of a CTA are visible to it after __syncthreads).
__global__ void __launch_bounds__(kItemThreads) assign_rows_kernel(const AssignArgs args) {
    using BlockScan = cub::BlockScan<int, kItemThreads>;
    __shared__ typename BlockScan::TempStorage scan_storage;
    const int64_t b = blockIdx.x;
    const float* best = args.best + b * args.sources;
    const uint64_t kth_key = args.kth_key[b];
    const int64_t count = args.count[b];
    const int64_t unmerged = args.sources - count;
    int32_t* token_row = args.token_row + b * args.tokens;
    int32_t* row_token = args.row_token + b * args.tokens;
    auto merged = [&](int64_t s) { return selection_key(best[s], s, args.protect_first) >= kth_key; };
    auto place = [&](int64_t token, int64_t row) {
        token_row[token] = static_cast<int32_t>(row);
        row_token[row] = static_cast<int32_t>(token);
    };

    if (args.order == TK_MERGE_ORDER_POSITIONAL) {
        // Survivors in increasing position: the row is the number of survivors before the token.
        int64_t carry = 0;
        for (int64_t base = 0; base < args.tokens; base += kItemThreads) {
            const int64_t token = base + threadIdx.x;
            const int survives = token < args.tokens && (token % 2 == 1 || !merged(token / 2)) ? 1 : 0;
            int offset = 0;
            int tile_survivors = 0;
            BlockScan(scan_storage).ExclusiveSum(survives, offset, tile_survivors);
            if (survives) place(token, carry + offset);
            carry += tile_survivors;
            __syncthreads();  // scan_storage is reused by the next tile
        }
    } else {
        // ToMe: [unmerged sources, destinations]; with protect_second [unm[0], dst[0], unm[1:], dst[1:]].
        for (int64_t d = threadIdx.x; d < args.destinations; d += kItemThreads)
            place(2 * d + 1, args.protect_second && d == 0 ? (unmerged > 0 ? 1 : 0) : unmerged + d);
        auto unmerged_row = [&](int64_t u) { return args.protect_second && u > 0 ? u + 1 : u; };
        if (args.protect_first) {
            // ToMe sorts the unmerged sources back into original order.
            int64_t carry = 0;
            for (int64_t base = 0; base < args.sources; base += kItemThreads) {
                const int64_t s = base + threadIdx.x;
                const int kept = s < args.sources && !merged(s) ? 1 : 0;
                int offset = 0;
                int tile_kept = 0;
                BlockScan(scan_storage).ExclusiveSum(kept, offset, tile_kept);
                if (kept) place(2 * s, unmerged_row(carry + offset));
                carry += tile_kept;
                __syncthreads();
            }
        } else {
            // By descending score: the sorted order past the `count` merged sources.
            const int32_t* ordered = args.ordered_source + b * args.sources;
            for (int64_t j = count + threadIdx.x; j < args.sources; j += kItemThreads)
                place(2 * static_cast<int64_t>(ordered[j]), unmerged_row(j - count));
        }
    }
    // Threshold mode: the rows past N - count are padding.
    for (int64_t row = args.tokens - count + threadIdx.x; row < args.output_tokens; row += kItemThreads)
        row_token[row] = -1;

    if (args.source_map.data == nullptr) return;
    __syncthreads();
    int32_t* map = static_cast<int32_t*>(args.source_map.data) + b * args.source_map.batch_stride;
    const int32_t* best_position = args.best_position + b * args.sources;
    for (int64_t token = threadIdx.x; token < args.tokens; token += kItemThreads) {
        const bool absorbed = token % 2 == 0 && merged(token / 2);
        map[token * args.source_map.token_stride] = token_row[absorbed ? best_position[token / 2] : token];
    }
}

// ---- Merging -----------------------------------------------------------------------------------

struct MergeRowsArgs {
    TokenRows x;
    TokenRows size;  // data NULL: all ones
    TokenRows out;
    TokenRows out_size;  // optional
    int64_t batch;
    int64_t tokens;
    int64_t output_tokens;
    int64_t channel_vectors;
    tk_merge_mode mode;
    const int32_t* row_token;
    const uint64_t* sorted_key;    // group keys, sorted
    const int32_t* group_source;   // source ids in sorted_key order
    int64_t sorted_items;
};

__device__ __forceinline__ float size_of(const TokenRows& size, int64_t b, int64_t token) {
    return size.data == nullptr ? 1.0f
                                : static_cast<const float*>(size.data)[b * size.batch_stride + token * size.token_stride];
}

// First index in keys[0, n) whose key is >= key.
__device__ __forceinline__ int64_t lower_bound(const uint64_t* keys, int64_t n, uint64_t key) {
    int64_t lo = 0;
    while (n > 0) {
        const int64_t half = n / 2;
        if (keys[lo + half] < key) {
            lo += half + 1;
            n -= half + 1;
        } else {
            n = half;
        }
    }
    return lo;
}

__device__ __forceinline__ float max_propagate_nan(float acc, float v) { return (v > acc || v != v) ? v : acc; }

// Output rows walked grid-stride; a row of `lanes` threads owns one output row, lanes take
// consecutive channel vectors.
template <class T, int V>
__global__ void __launch_bounds__(kRowThreads) merge_rows_kernel(const MergeRowsArgs args) {
    const T* x = static_cast<const T*>(args.x.data);
    T* out = static_cast<T*>(args.out.data);
    const int64_t rows = args.batch * args.output_tokens;
    const int64_t row_step = static_cast<int64_t>(gridDim.x) * blockDim.y;
    for (int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y; index < rows; index += row_step) {
        const int64_t b = index / args.output_tokens;
        const int64_t row = index % args.output_tokens;
        const int64_t token = args.row_token[b * args.tokens + row];
        T* out_row = out + b * args.out.batch_stride + row * args.out.token_stride;
        float* out_size = args.out_size.data == nullptr
                              ? nullptr
                              : static_cast<float*>(args.out_size.data) + b * args.out_size.batch_stride +
                                    row * args.out_size.token_stride;
        if (token < 0) {  // threshold padding
            for (int64_t v = threadIdx.x; v < args.channel_vectors; v += blockDim.x)
                store_word<T, V>(out_row + v * V, zero_word<T, V>());
            if (out_size != nullptr && threadIdx.x == 0) *out_size = 0.0f;
            continue;
        }
        const T* x_row = x + b * args.x.batch_stride + token * args.x.token_stride;
        const float own_size = size_of(args.size, b, token);
        // A destination's group is the run of sorted keys equal to (b << 32) | d, sources in
        // increasing position (the sort is stable over position-ordered input).
        int64_t first = 0;
        int64_t last = 0;
        if (token % 2 == 1 && args.mode != TK_MERGE_DROP) {
            const uint64_t group = (static_cast<uint64_t>(b) << 32) | static_cast<uint64_t>((token - 1) / 2);
            first = lower_bound(args.sorted_key, args.sorted_items, group);
            last = lower_bound(args.sorted_key, args.sorted_items, group + 1);
        }
        // Nothing merged into it (an unmerged source, a destination that took no source, any
        // destination under DROP): copied bit for bit, as the CPU backend does.
        if (first == last) {
            for (int64_t v = threadIdx.x; v < args.channel_vectors; v += blockDim.x)
                store_word<T, V>(out_row + v * V, load_word<T, V>(x_row + v * V));
            if (out_size != nullptr && threadIdx.x == 0) *out_size = own_size;
            continue;
        }
        float total_size = own_size;
        for (int64_t j = first; j < last; ++j)
            total_size = __fadd_rn(total_size, size_of(args.size, b, 2 * static_cast<int64_t>(args.group_source[j])));
        for (int64_t v = threadIdx.x; v < args.channel_vectors; v += blockDim.x) {
            float acc[V];
            unpack<T, V>(load_word<T, V>(x_row + v * V), acc);
            if (args.mode == TK_MERGE_WEIGHTED_MEAN) {
#pragma unroll
                for (int k = 0; k < V; ++k) acc[k] = __fmul_rn(own_size, acc[k]);
            }
            for (int64_t j = first; j < last; ++j) {
                const int64_t source_token = 2 * static_cast<int64_t>(args.group_source[j]);
                float values[V];
                unpack<T, V>(load_word<T, V>(x + b * args.x.batch_stride + source_token * args.x.token_stride + v * V),
                             values);
                if (args.mode == TK_MERGE_WEIGHTED_MEAN) {
                    const float source_size = size_of(args.size, b, source_token);
#pragma unroll
                    for (int k = 0; k < V; ++k) acc[k] = __fadd_rn(acc[k], __fmul_rn(source_size, values[k]));
                } else if (args.mode == TK_MERGE_AMAX) {
#pragma unroll
                    for (int k = 0; k < V; ++k) acc[k] = max_propagate_nan(acc[k], values[k]);
                } else {
#pragma unroll
                    for (int k = 0; k < V; ++k) acc[k] = __fadd_rn(acc[k], values[k]);
                }
            }
            if (args.mode == TK_MERGE_WEIGHTED_MEAN || args.mode == TK_MERGE_MEAN) {
                const float divisor =
                    args.mode == TK_MERGE_WEIGHTED_MEAN ? total_size : static_cast<float>(1 + (last - first));
#pragma unroll
                for (int k = 0; k < V; ++k) acc[k] = __fdiv_rn(acc[k], divisor);
            }
            store_word<T, V>(out_row + v * V, pack<T, V>(acc));
        }
        if (out_size != nullptr && threadIdx.x == 0) *out_size = total_size;
    }
}

// ---- Unmerging ---------------------------------------------------------------------------------

template <class T, int V, class Index>
__global__ void __launch_bounds__(kRowThreads) unmerge_kernel(const UnmergePlan plan, int64_t channel_vectors) {
    const T* y = static_cast<const T*>(plan.y.data);
    T* out = static_cast<T*>(plan.out.data);
    const Index* map = static_cast<const Index*>(plan.source_map.data);
    const int64_t rows = plan.batch * plan.tokens;
    const int64_t row_step = static_cast<int64_t>(gridDim.x) * blockDim.y;
    for (int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y; index < rows; index += row_step) {
        const int64_t b = index / plan.tokens;
        const int64_t i = index % plan.tokens;
        const int64_t source = map[b * plan.source_map.batch_stride + i * plan.source_map.token_stride];
        T* out_row = out + b * plan.out.batch_stride + i * plan.out.token_stride;
        // An index outside [0, N') cannot be reported without a host synchronisation: zero row.
        if (source < 0 || source >= plan.merged_tokens) {
            for (int64_t v = threadIdx.x; v < channel_vectors; v += blockDim.x)
                store_word<T, V>(out_row + v * V, zero_word<T, V>());
            continue;
        }
        const T* y_row = y + b * plan.y.batch_stride + source * plan.y.token_stride;
        for (int64_t v = threadIdx.x; v < channel_vectors; v += blockDim.x)
            store_word<T, V>(out_row + v * V, load_word<T, V>(y_row + v * V));
    }
}

// ---- Launchers ---------------------------------------------------------------------------------

constexpr int kNormThreads = 256;

// Inverse norms then matching, results to best / best_position with the given strides.
void launch_match(const MergePlan& plan, float* inverse_norm, MatchArgs args, cudaStream_t stream) {
    const int64_t rows = plan.batch * plan.tokens;
    args.metric = plan.metric;
    args.tokens = plan.tokens;
    args.sources = merge_source_count(plan.tokens);
    args.destinations = merge_destination_count(plan.tokens);
    args.channels = plan.metric_channels;
    args.vector_loads = dispatch_float(plan.metric.dtype, [&](auto tag) {
        using T = typename StorageOf<decltype(tag)::value>::type;
        const int64_t v = kLoadVector<T>;
        return reinterpret_cast<uintptr_t>(plan.metric.data) % 16 == 0 && plan.metric_channels % v == 0 &&
               (plan.tokens <= 1 || plan.metric.token_stride % v == 0) &&
               (plan.batch <= 1 || plan.metric.batch_stride % v == 0);
    });
    args.inverse_norm = inverse_norm;
    args.protect_first = plan.protect_first;
    args.protect_second = plan.protect_second;
    const dim3 match_grid(static_cast<unsigned>((args.sources + kSourceTile - 1) / kSourceTile),
                          static_cast<unsigned>(plan.batch));
    dispatch_float(plan.metric.dtype, [&](auto tag) {
        using T = typename StorageOf<decltype(tag)::value>::type;
        inverse_norms_kernel<T><<<element_grid(rows * 32, kNormThreads), kNormThreads, 0, stream>>>(
            plan.metric, plan.tokens, plan.metric_channels, rows, inverse_norm);
        check(cudaGetLastError(), "merge inverse_norms_kernel launch");
        match_kernel<T><<<match_grid, kMatchThreads, 0, stream>>>(args);
        check(cudaGetLastError(), "merge match_kernel launch");
    });
}

template <class T, int V = kMaxVector<T>>
void launch_merge_rows(const MergePlan& plan, MergeRowsArgs args, cudaStream_t stream) {
    if constexpr (V > 1) {
        if (!vectors_fit<T>(V, plan.channels, plan.x, plan.tokens, plan.out, plan.output_tokens, plan.batch))
            return launch_merge_rows<T, 1>(plan, args, stream);
    }
    args.channel_vectors = plan.channels / V;
    const LaunchShape shape = row_launch_shape(plan.batch * plan.output_tokens, args.channel_vectors);
    merge_rows_kernel<T, V><<<shape.grid, shape.block, 0, stream>>>(args);
    check(cudaGetLastError(), "merge merge_rows_kernel launch");
}

template <class T, class Index, int V = kMaxVector<T>>
void launch_unmerge(const UnmergePlan& plan, cudaStream_t stream) {
    if constexpr (V > 1) {
        if (!vectors_fit<T>(V, plan.channels, plan.y, plan.merged_tokens, plan.out, plan.tokens, plan.batch))
            return launch_unmerge<T, Index, 1>(plan, stream);
    }
    const int64_t channel_vectors = plan.channels / V;
    const LaunchShape shape = row_launch_shape(plan.batch * plan.tokens, channel_vectors);
    unmerge_kernel<T, V, Index><<<shape.grid, shape.block, 0, stream>>>(plan, channel_vectors);
    check(cudaGetLastError(), "unmerge kernel launch");
}

}  // namespace

uint64_t merge_workspace_bytes(const MergePlan& plan) {
    DeviceGuard guard(plan.device_ordinal);
    return workspace_layout(plan).total;
}

void merge_match(const MergePlan& plan, void* workspace, void* stream_handle) {
    DeviceGuard guard(plan.device_ordinal);
    const auto stream = static_cast<cudaStream_t>(stream_handle);
    const WorkspaceLayout layout = workspace_layout(plan);
    Scratch scratch(workspace, layout.match_bytes, stream, "merge workspace");
    MatchArgs args{};
    args.best = static_cast<float*>(plan.match_best.data);
    args.best_batch_stride = plan.match_best.batch_stride;
    args.best_stride = plan.match_best.token_stride;
    args.best_position = static_cast<int32_t*>(plan.match_dst.data);
    args.position_batch_stride = plan.match_dst.batch_stride;
    args.position_stride = plan.match_dst.token_stride;
    launch_match(plan, at_offset<float>(scratch.data(), layout.inverse_norm), args, stream);
}

void merge(const MergePlan& plan, void* workspace, void* stream_handle) {
    DeviceGuard guard(plan.device_ordinal);
    const auto stream = static_cast<cudaStream_t>(stream_handle);
    if (plan.tokens == 0) {  // nothing to merge; only the counts (0) are written
        if (plan.merge_count.data != nullptr)
            check(cudaMemset2DAsync(plan.merge_count.data, static_cast<size_t>(plan.merge_count.batch_stride) * sizeof(int32_t),
                                    0, sizeof(int32_t), static_cast<size_t>(plan.batch), stream),
                  "cudaMemset2DAsync (merge_count)");
        return;
    }
    const WorkspaceLayout layout = workspace_layout(plan);
    Scratch scratch(workspace, layout.total, stream, "merge workspace");
    void* base = scratch.data();
    const int64_t sources = merge_source_count(plan.tokens);
    const int64_t destinations = merge_destination_count(plan.tokens);
    const int64_t items = plan.batch * sources;
    float* best = at_offset<float>(base, layout.best);
    int32_t* best_position = at_offset<int32_t>(base, layout.best_position);
    uint64_t* kth_key = at_offset<uint64_t>(base, layout.kth_key);
    int32_t* count = at_offset<int32_t>(base, layout.count);
    const bool rank_by_score = plan.order == TK_MERGE_ORDER_TOME && !plan.protect_first;

    MatchArgs match{};
    match.best = best;
    match.best_batch_stride = sources;
    match.best_stride = 1;
    match.best_position = best_position;
    match.position_batch_stride = sources;
    match.position_stride = 1;
    launch_match(plan, at_offset<float>(base, layout.inverse_norm), match, stream);

    SelectArgs select{};
    select.best = best;
    select.sources = sources;
    select.r = plan.r;
    select.use_threshold = plan.use_threshold;
    select.threshold = plan.threshold;
    select.protect_first = plan.protect_first;
    select.kth_key = kth_key;
    select.count = count;
    select.merge_count = static_cast<int32_t*>(plan.merge_count.data);
    select.merge_count_stride = plan.merge_count.batch_stride;
    select_kernel<<<static_cast<unsigned>(plan.batch), kItemThreads, 0, stream>>>(select);
    check(cudaGetLastError(), "merge select_kernel launch");

    ClassifyArgs classify{};
    classify.best = best;
    classify.best_position = best_position;
    classify.kth_key = kth_key;
    classify.sources = sources;
    classify.destinations = destinations;
    classify.protect_first = plan.protect_first;
    classify.items = items;
    classify.source_id = at_offset<int32_t>(base, layout.source_id);
    classify.group_key = at_offset<uint64_t>(base, layout.group_key);
    classify.order_key = rank_by_score ? at_offset<uint64_t>(base, layout.order_key) : nullptr;
    classify_kernel<<<element_grid(items, kElementThreads), kElementThreads, 0, stream>>>(classify);
    check(cudaGetLastError(), "merge classify_kernel launch");

    const int end_bit = sort_end_bit(plan.batch);
    void* sort_temp = at_offset<void>(base, layout.sort_temp);
    size_t sort_temp_bytes = layout.sort_temp_bytes;
    uint64_t* sorted_key = at_offset<uint64_t>(base, layout.sorted_key);
    int32_t* ordered_source = at_offset<int32_t>(base, layout.ordered_source);
    if (rank_by_score)  // sorted_key is only scratch here; the group sort below overwrites it
        check(cub::DeviceRadixSort::SortPairs(sort_temp, sort_temp_bytes, classify.order_key, sorted_key,
                                              classify.source_id, ordered_source, static_cast<int>(items), 0, end_bit,
                                              stream),
              "cub::DeviceRadixSort::SortPairs (ToMe order)");
    int32_t* group_source = at_offset<int32_t>(base, layout.group_source);
    check(cub::DeviceRadixSort::SortPairs(sort_temp, sort_temp_bytes, classify.group_key, sorted_key, classify.source_id,
                                          group_source, static_cast<int>(items), 0, end_bit, stream),
          "cub::DeviceRadixSort::SortPairs (groups)");

    AssignArgs assign{};
    assign.best = best;
    assign.best_position = best_position;
    assign.kth_key = kth_key;
    assign.count = count;
    assign.ordered_source = ordered_source;
    assign.tokens = plan.tokens;
    assign.sources = sources;
    assign.destinations = destinations;
    assign.output_tokens = plan.output_tokens;
    assign.protect_first = plan.protect_first;
    assign.protect_second = plan.protect_second;
    assign.order = plan.order;
    assign.token_row = at_offset<int32_t>(base, layout.token_row);
    assign.row_token = at_offset<int32_t>(base, layout.row_token);
    assign.source_map = plan.source_map;
    assign_rows_kernel<<<static_cast<unsigned>(plan.batch), kItemThreads, 0, stream>>>(assign);
    check(cudaGetLastError(), "merge assign_rows_kernel launch");

    MergeRowsArgs rows{};
    rows.x = plan.x;
    rows.size = plan.size;
    rows.out = plan.out;
    rows.out_size = plan.out_size;
    rows.batch = plan.batch;
    rows.tokens = plan.tokens;
    rows.output_tokens = plan.output_tokens;
    rows.mode = plan.mode;
    rows.row_token = assign.row_token;
    rows.sorted_key = sorted_key;
    rows.group_source = group_source;
    rows.sorted_items = items;
    dispatch_float(plan.x.dtype, [&](auto tag) {
        using T = typename StorageOf<decltype(tag)::value>::type;
        launch_merge_rows<T>(plan, rows, stream);
    });
}

void unmerge(const UnmergePlan& plan, void* stream_handle) {
    DeviceGuard guard(plan.device_ordinal);
    const auto stream = static_cast<cudaStream_t>(stream_handle);
    dispatch_float(plan.y.dtype, [&](auto tag) {
        using T = typename StorageOf<decltype(tag)::value>::type;
        if (plan.source_map.dtype == TK_DTYPE_I64)
            launch_unmerge<T, int64_t>(plan, stream);
        else
            launch_unmerge<T, int32_t>(plan, stream);
    });
}

}  // namespace tk::cuda
