/* TokenKernels: fused kernels for compressing the token sequences of multimodal models.
 *
 * The whole C ABI lives in this header. Only blittable types cross it (fixed-width integers,
 * pointers, plain structs of those), so one C# declaration serves .NET and Unity. No C++ exception
 * ever crosses it: every function that can fail returns a tk_status, and the thread-local
 * tk_last_error() says what went wrong, naming the argument and the value that was expected.
 * A call that returns an error has written nothing to any output.
 *
 * Tensors are described by tk_tensor (pointer, dtype, device, shape and strides in elements).
 * Feature channels (the last dimension) must be contiguous; every other dimension may have any
 * positive stride, so a slice of a larger buffer is accepted without a copy.
 *
 * CUDA work is enqueued on the caller's stream (tk_stream is a cudaStream_t; NULL is the legacy
 * default stream) and never synchronises with the host. Ops that need scratch memory report its
 * size through a *_workspace_size query and accept a caller-owned workspace.
 */
#ifndef TOKENKERNELS_H
#define TOKENKERNELS_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#  if defined(TOKENKERNELS_BUILDING)
#    define TK_API __declspec(dllexport)
#  else
#    define TK_API __declspec(dllimport)
#  endif
#else
#  define TK_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Version -------------------------------------------------------------------------------- */

#define TK_VERSION_MAJOR 0
#define TK_VERSION_MINOR 1
#define TK_VERSION_PATCH 0
/* MAJOR * 10000 + MINOR * 100 + PATCH. */
#define TK_VERSION (TK_VERSION_MAJOR * 10000 + TK_VERSION_MINOR * 100 + TK_VERSION_PATCH)

/* The version the library was built as (TK_VERSION of its header). */
TK_API int32_t tk_version(void);
/* "MAJOR.MINOR.PATCH", static storage. */
TK_API const char* tk_version_string(void);

/* ---- Status and errors ---------------------------------------------------------------------- */

typedef int32_t tk_status;
enum {
    TK_STATUS_OK = 0,
    TK_STATUS_INVALID_ARGUMENT = 1,   /* an argument is wrong; the message names it */
    TK_STATUS_BACKEND_UNAVAILABLE = 2,/* CUDA not built into this library, or no driver/device */
    TK_STATUS_CUDA_ERROR = 3,         /* the CUDA runtime reported an error */
    TK_STATUS_OUT_OF_MEMORY = 4,      /* host or device allocation failed */
    TK_STATUS_INTERNAL = 5            /* a bug in TokenKernels; please report it */
};

/* Name of a status code ("TK_STATUS_INVALID_ARGUMENT"), static storage. */
TK_API const char* tk_status_name(tk_status status);
/* Message of the last call on this thread that returned a status: "" after a success. The pointer
 * stays valid until the next TokenKernels call on this thread. */
TK_API const char* tk_last_error(void);

/* ---- Tensors -------------------------------------------------------------------------------- */

typedef int32_t tk_dtype;
enum {
    TK_DTYPE_F32 = 0,
    TK_DTYPE_F16 = 1,
    TK_DTYPE_BF16 = 2,
    TK_DTYPE_I32 = 3,
    TK_DTYPE_I64 = 4
};

typedef int32_t tk_device_kind;
enum {
    TK_DEVICE_CPU = 0,
    TK_DEVICE_CUDA = 1
};

#define TK_MAX_RANK 8

/* A view of memory the caller owns. shape[i] and strides[i] (in elements, not bytes) are read for
 * i < rank; the rest are ignored. */
typedef struct tk_tensor {
    void* data;
    tk_dtype dtype;
    tk_device_kind device_kind;
    int32_t device_ordinal;   /* CUDA device index; 0 for the CPU */
    int32_t rank;
    int64_t shape[TK_MAX_RANK];
    int64_t strides[TK_MAX_RANK];
} tk_tensor;

/* Size in bytes of one element of dtype, or 0 for an unknown dtype. */
TK_API int32_t tk_dtype_size(tk_dtype dtype);

/* Layout of the ABI structs as this library was compiled, for binding checks: with field NULL the
 * sizeof of struct_name, else the offsetof of field in it. Names are the C names ("tk_tensor",
 * "shape"). */
TK_API tk_status tk_struct_layout(const char* struct_name, const char* field, uint64_t* value);

/* ---- CPU threads ---------------------------------------------------------------------------- */

/* Threads used by CPU ops, process-wide. 0 restores the default (the hardware concurrency). */
TK_API tk_status tk_set_num_threads(int32_t num_threads);
TK_API int32_t tk_get_num_threads(void);

/* ---- CUDA devices, streams and memory ------------------------------------------------------- */

/* An opaque stream handle: a cudaStream_t. NULL is the legacy default stream. */
typedef struct tk_stream_opaque* tk_stream;

/* 1 when the CUDA backend was compiled into this library, else 0. Never fails. */
TK_API int32_t tk_cuda_is_built(void);
/* Number of usable CUDA devices: 0 (and TK_STATUS_OK) without a driver or a device, or when CUDA
 * is not built. */
TK_API tk_status tk_cuda_device_count(int32_t* count);
/* Device name into buffer (NUL-terminated, truncated to capacity). */
TK_API tk_status tk_cuda_device_name(int32_t ordinal, char* buffer, int32_t capacity);
/* Compute capability, e.g. 9 and 0 for an H100. */
TK_API tk_status tk_cuda_device_capability(int32_t ordinal, int32_t* major, int32_t* minor);

TK_API tk_status tk_cuda_stream_create(int32_t ordinal, tk_stream* stream);
TK_API tk_status tk_cuda_stream_destroy(tk_stream stream);
TK_API tk_status tk_cuda_stream_synchronize(tk_stream stream);

/* Device memory on ordinal. bytes == 0 gives *ptr == NULL. */
TK_API tk_status tk_cuda_malloc(int32_t ordinal, uint64_t bytes, void** ptr);
/* Frees what tk_cuda_malloc returned; NULL is a no-op. */
TK_API tk_status tk_cuda_free(int32_t ordinal, void* ptr);
/* Copies bytes between any two of host and device memory (direction inferred), ordered on stream.
 * With pageable host memory the source may be reused when the call returns; the copy itself is
 * complete only after tk_cuda_stream_synchronize. */
TK_API tk_status tk_cuda_memcpy_async(void* dst, const void* src, uint64_t bytes, tk_stream stream);
/* Sets bytes of device memory to value, ordered on stream. */
TK_API tk_status tk_cuda_memset_async(void* dst, int32_t value, uint64_t bytes, tk_stream stream);

/* ---- 1. Spatio-temporal pooling (SPEC section 1) ---------------------------------------------
 *
 * x [B, T, H, W, C] -> out [B, T', H', W', C], channels last, f32/f16/bf16, both tensors on the same
 * device and of the same dtype, accumulation in float32. Audio or any 1-D stream is H = W = 1.
 *
 *   TK_POOL_WINDOW_AVG / _MAX   kernel (kt, kh, kw), stride (st, sh, sw), no padding, floor output
 *                               size T' = (T - kt) / st + 1 (avg_pool3d / max_pool3d). LLaVA-Video:
 *                               kernel (1, 2, 2), stride (1, 2, 2): 27x27 -> 13x13.
 *   TK_POOL_ADAPTIVE_AVG / _MAX output_size (T', H', W'); bin i covers
 *                               [floor(i * In / Out), ceil((i + 1) * In / Out)) (adaptive_avg_pool3d).
 *                               PLLaVA: (16, 24, 24) -> (16, 12, 12).
 *   TK_POOL_BILINEAR            per frame (H, W) -> (H', W'), align_corners = False, no antialias
 *                               (F.interpolate(mode='bilinear')); output_size (T, H', W') with T' == T.
 *                               LLaVA-OneVision: 27x27 -> 14x14.
 *
 * Max pooling propagates NaN (a window holding a NaN gives NaN), as PyTorch does. Needs no
 * workspace. */
typedef int32_t tk_pool_mode;
enum {
    TK_POOL_WINDOW_AVG = 0,
    TK_POOL_WINDOW_MAX = 1,
    TK_POOL_ADAPTIVE_AVG = 2,
    TK_POOL_ADAPTIVE_MAX = 3,
    TK_POOL_BILINEAR = 4
};

typedef struct tk_pool_params {
    tk_pool_mode mode;
    int32_t kernel[3];      /* window modes: (kt, kh, kw), each >= 1 */
    int32_t stride[3];      /* window modes: (st, sh, sw), each >= 1 */
    int32_t output_size[3]; /* adaptive: (T', H', W'), each >= 1; bilinear: (T, H', W') */
} tk_pool_params;

/* Output shape [B, T', H', W', C] for an input of shape input_shape[5]. */
TK_API tk_status tk_pool_output_shape(const tk_pool_params* params, const int64_t* input_shape,
                                      int64_t* output_shape);
/* Scratch bytes tk_pool needs for these arguments (0 for every pooling mode). */
TK_API tk_status tk_pool_workspace_size(const tk_pool_params* params, const tk_tensor* x,
                                        const tk_tensor* out, uint64_t* bytes);
/* Pools x into out. workspace may be NULL when workspace_bytes is 0. On CUDA the work is enqueued on
 * stream and the call returns without waiting for it. */
TK_API tk_status tk_pool(const tk_pool_params* params, const tk_tensor* x, const tk_tensor* out,
                         void* workspace, uint64_t workspace_bytes, tk_stream stream);

/* ---- 2. Bipartite token merging, ToMe family (SPEC section 2) ---------------------------------
 *
 * metric [B, N, Cm] (any floating dtype) chooses what merges; x [B, N, C] (any floating dtype,
 * independent of metric's; metric may be the same tensor as x) is what is merged. Channels
 * contiguous, other strides free. Sizes (`size`, `out_size`) are f32; indices are i32.
 *
 * Matching: metric rows are normalised (cosine, |v| clamped to 1e-12). Sources are the tokens at
 * even positions 0, 2, 4, ...; destinations those at odd positions 1, 3, .... Each source takes its
 * most similar destination (ties to the lower position) and that score, best(a). protect_first:
 * token 0 never becomes a source (best = -inf, ranked below everything); protect_second: nothing
 * merges into token 1 (it is no candidate destination). A destination whose metric holds NaN is never
 * chosen; a source whose metric holds NaN gets best = NaN, which ranks below -inf.
 * The sources with the highest best (ties to the lower position) merge:
 *   fixed mode:     r of them, r clamped to (N - protected) / 2 (ToMe); 0 when no destination is
 *                   a candidate. The effective r depends only on N and params (tk_merge_output_tokens).
 *   threshold mode: (DyMU) every source with best > threshold (strict), at most r (r_max) and the
 *                   clamp; the count varies per item and is written to merge_count [B]; outputs
 *                   have N rows, the rows past N - count[b] are zero (out_size too).
 *
 * Merging into each destination d with merged sources S(d):
 *   TK_MERGE_WEIGHTED_MEAN (default, ToMe merge_wavg): (size_d x_d + sum size_a x_a) / (size_d + sum size_a)
 *   TK_MERGE_MEAN  (ToMe mode="mean"): (x_d + sum x_a) / (1 + |S(d)|)
 *   TK_MERGE_SUM, TK_MERGE_AMAX: x_d + sum x_a, elementwise max (NaN propagates)
 *   TK_MERGE_DROP: merged sources vanish, destinations unchanged
 * accumulated in float32 (separate multiply and add, true division) starting from the destination's
 * own term, then S(d) in increasing source position, so the result is bit-identical run to run and
 * across backends. A token nothing merged into is copied bit for bit. out_size = size_d + sum size_a
 * (size_d for DROP), with size all ones when absent.
 *
 * Output order:
 *   TK_MERGE_ORDER_POSITIONAL (default): surviving tokens in increasing original position.
 *   TK_MERGE_ORDER_TOME: ToMe's own order, for parity with its code: unmerged sources by descending
 *   best (in original order with protect_first), then all destinations in original order; with
 *   protect_second ToMe's [unm[0], dst[0], unm[1:], dst[1:]]. In fixed mode with an effective r of
 *   0 the output is x in its original order, as ToMe returns x untouched then.
 * source_map [B, N] (i32): the output row every input token ended up in; tk_unmerge uses it. */
typedef int32_t tk_merge_mode;
enum {
    TK_MERGE_WEIGHTED_MEAN = 0,
    TK_MERGE_MEAN = 1,
    TK_MERGE_SUM = 2,
    TK_MERGE_AMAX = 3,
    TK_MERGE_DROP = 4
};

typedef int32_t tk_merge_order;
enum {
    TK_MERGE_ORDER_POSITIONAL = 0,
    TK_MERGE_ORDER_TOME = 1
};

typedef struct tk_merge_params {
    int32_t r;              /* merges per item (fixed mode) or the cap r_max (threshold mode); >= 0 */
    int32_t use_threshold;  /* 0: fixed r (ToMe); 1: threshold (DyMU) */
    float threshold;        /* threshold mode: sources with best > threshold merge */
    int32_t protect_first;  /* 0 or 1: token 0 is a class token */
    int32_t protect_second; /* 0 or 1: token 1 is a distillation token */
    tk_merge_mode mode;
    tk_merge_order order;
} tk_merge_params;

/* For N = tokens: the effective r of fixed mode (the cap in threshold mode) and the number of
 * output rows (N - r in fixed mode, N in threshold mode). */
TK_API tk_status tk_merge_output_tokens(const tk_merge_params* params, int64_t tokens, int64_t* effective_r,
                                        int64_t* output_tokens);
/* Matching only: for every source (token 2i) the position of its best destination, dst [B, ceil(N/2)]
 * i32, and its score, best [B, ceil(N/2)] f32. A protected source, or one with no finite score, gets
 * best = -inf (NaN when its metric holds NaN) and dst = the first candidate destination (1, or 3 with
 * protect_second; 1 when there is none). */
TK_API tk_status tk_merge_match(const tk_merge_params* params, const tk_tensor* metric, const tk_tensor* dst,
                                const tk_tensor* best, void* workspace, uint64_t workspace_bytes, tk_stream stream);
/* Scratch bytes tk_merge_match / tk_merge need for these shapes (0 on the CPU). */
TK_API tk_status tk_merge_workspace_size(const tk_merge_params* params, const tk_tensor* metric, const tk_tensor* x,
                                         uint64_t* bytes);
/* Merges x [B, N, C] into out [B, N', C] (N' from tk_merge_output_tokens). size [B, N] f32 may be NULL
 * (all ones); out_size [B, N'] f32, source_map [B, N] i32 and merge_count [B] i32 may be NULL, except
 * merge_count in threshold mode (in fixed mode it receives the effective r). On CUDA without a workspace (NULL, 0) the op allocates its scratch
 * stream-ordered. */
TK_API tk_status tk_merge(const tk_merge_params* params, const tk_tensor* metric, const tk_tensor* x,
                          const tk_tensor* size, const tk_tensor* out, const tk_tensor* out_size,
                          const tk_tensor* source_map, const tk_tensor* merge_count, void* workspace,
                          uint64_t workspace_bytes, tk_stream stream);
/* out[b, i] = y[b, source_map[b, i]]: y [B, N', C], source_map [B, N] i32 (or i64), out [B, N, C] of
 * y's dtype. Indices outside [0, N') are an error reported by status on the CPU; on CUDA (where
 * checking would need a host synchronisation) the row is written as zeros. */
TK_API tk_status tk_unmerge(const tk_tensor* y, const tk_tensor* source_map, const tk_tensor* out, tk_stream stream);

#ifdef __cplusplus
}
#endif

#endif /* TOKENKERNELS_H */
