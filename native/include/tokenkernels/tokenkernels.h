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
 * size through a *_workspace_size query and accept a caller-owned workspace, which must not overlap
 * any tensor of the call.
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
 * i < rank; the rest are ignored. The bytes from the lowest to the highest element must fit in
 * PTRDIFF_MAX and lie within the address space (no wrap-around from data); a descriptor whose strides
 * break that is refused, naming its strides. */
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

/* Threads used by CPU ops, process-wide: 0 restores the default (the hardware concurrency, at most
 * 1024); 1 to 1024 sets the count; other values are TK_STATUS_INVALID_ARGUMENT (the count stays).
 * The threads are the library's own pool (no OpenMP runtime), started on first need (where the system
 * refuses a thread, calls run on those it has): a call runs on its calling thread and up to
 * num_threads - 1 workers; one call at a time uses the workers, so a call made while another host
 * thread's call holds them runs on its own thread alone, and CPU ops never run on more than
 * num_threads threads in all. Idle workers poll for at most 50 microseconds after a call, then sleep.
 * A child process made by fork() starts new workers on its first call. */
TK_API tk_status tk_set_num_threads(int32_t num_threads);
TK_API int32_t tk_get_num_threads(void);
/* The vector variant the CPU kernels run, static storage: "avx512", "avx2" or "portable" (arm64 and
 * other CPUs: the compiler's own vectorisation). The widest this CPU has, at most the one the
 * environment variable TK_CPU_ISA names, read once per process. Never fails. */
TK_API const char* tk_cpu_isa(void);

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
/* The CUDA architectures this library holds code for, as CMake's CUDA_ARCHITECTURES list
 * ("80-real;90": sm_80 and sm_90 machine code and compute_90 PTX); "" when CUDA is not built. Static
 * storage; never fails. */
TK_API const char* tk_cuda_architectures(void);
/* *supported = 1 when a device of compute capability major.minor (major 1 to 99, minor 0 to 9) can run
 * this library's CUDA code: machine code for sm_XY runs on X.Y and later minors of X (sm_XYa on X.Y
 * only), PTX for compute_XY on X.Y and every later capability. Also 1 when the list names no fixed code ("all", "native"), where
 * the driver decides. 0 without CUDA. Ops on a device that cannot run the code fail with
 * TK_STATUS_BACKEND_UNAVAILABLE naming the device and this list, before anything is written. */
TK_API tk_status tk_cuda_capability_supported(int32_t major, int32_t minor, int32_t* supported);

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

/* ---- DLPack ----------------------------------------------------------------------------------
 *
 * Tensors of PyTorch, CuPy, JAX, NumPy or ONNX Runtime come in without a copy through DLPack
 * (github.com/dmlc/dlpack), and a tk_tensor goes out the same way. The tk_dlpack_* structs are
 * layout-compatible mirrors of dlpack.h's DLDevice, DLDataType, DLTensor, DLManagedTensor (the legacy
 * struct, which torch.utils.dlpack.to_dlpack returns), DLPackVersion and
 * DLManagedTensorVersioned (DLPack 1.x), with the same fields in the same order: a caller holding a
 * DLTensor* passes (const tk_dlpack_tensor*)dl_tensor, a DLManagedTensor* as a tk_dlpack_managed_tensor*,
 * and so on (tk_struct_layout gives their sizes and offsets). docs/SPEC.md, "DLPack".
 *
 * Into a tk_tensor (tk_tensor_from_dlpack*): a view, nothing copied. The memory stays the producer's: the
 * caller keeps the DLPack tensor alive while the view is used and calls its deleter itself (the library
 * never calls a deleter it was given).
 *   data      data + byte_offset;
 *   dtype     kDLFloat 32 and 16 bits: F32, F16; kDLBfloat 16 bits: BF16; kDLInt 32 and 64 bits: I32, I64;
 *             one lane; every other type is refused;
 *   device    kDLCPU and kDLCUDAHost (page-locked host memory): TK_DEVICE_CPU, ordinal 0, device_id not
 *             read; kDLCUDA and kDLCUDAManaged: TK_DEVICE_CUDA, ordinal device_id (0 or more); every other
 *             device type is refused;
 *   shape     ndim 1 to TK_MAX_RANK (a 0-d tensor is refused: reshape a scalar to [1]);
 *   strides   in elements; NULL means compact row-major. A stride that addresses nothing (that of a
 *             dimension of size 1, or any stride of a tensor without elements) is replaced by the
 *             compact row-major one, whatever the producer wrote there (PyTorch writes odd ones); every
 *             other stride must be positive (zero and negative strides are refused);
 * then the checks of every tk_tensor that need no device (sizes, element count, data non-NULL and aligned
 * and the extent within the address space, for a non-empty tensor). Whether a CUDA device exists, runs
 * this library's code and can address data is checked by each op the view is passed to, as for any
 * tk_tensor. A versioned tensor must have version.major TK_DLPACK_VERSION_MAJOR; one flagged
 * TK_DLPACK_FLAG_READ_ONLY is refused when writable is 1 (the view will be written: an op's output).
 *
 * Out of a tk_tensor (tk_tensor_to_dlpack*): a DLManagedTensor (Versioned) allocated by the library,
 * describing the tensor's memory with byte_offset 0 and the tk_tensor's strides (never NULL); CPU is
 * kDLCPU (device_id 0), CUDA kDLCUDA (device_id the ordinal). Its deleter, called once by whoever owns it
 * last (a consumer such as torch.utils.dlpack.from_dlpack, or the caller), frees what the library
 * allocated (the struct, its shape and strides) and never the data: the memory must outlive every
 * consumer's use of it. The tensor gets the checks of every tk_tensor that need no device.
 *
 * Every refusal is TK_STATUS_INVALID_ARGUMENT naming the field and what was expected; nothing is written
 * to *tensor or *managed then. */

/* DLDeviceType values the library takes. */
typedef int32_t tk_dlpack_device_type;
enum {
    TK_DLPACK_CPU = 1,           /* kDLCPU */
    TK_DLPACK_CUDA = 2,          /* kDLCUDA */
    TK_DLPACK_CUDA_HOST = 3,     /* kDLCUDAHost: page-locked host memory, read as CPU memory */
    TK_DLPACK_CUDA_MANAGED = 13  /* kDLCUDAManaged: managed memory, read as the device's */
};

/* DLDataTypeCode values the library takes (tk_dlpack_dtype's code). */
enum {
    TK_DLPACK_INT = 0,   /* kDLInt */
    TK_DLPACK_FLOAT = 2, /* kDLFloat */
    TK_DLPACK_BFLOAT = 4 /* kDLBfloat */
};

/* The DLPack major version a versioned tensor must have, and the version the library's versioned
 * tensors report. */
#define TK_DLPACK_VERSION_MAJOR 1
#define TK_DLPACK_VERSION_MINOR 0
/* DLPACK_FLAG_BITMASK_READ_ONLY: the versioned tensor's memory must not be written. */
#define TK_DLPACK_FLAG_READ_ONLY 1

/* DLDevice. */
typedef struct tk_dlpack_device {
    tk_dlpack_device_type device_type; /* a DLDeviceType, a C enum: 4 bytes */
    int32_t device_id;
} tk_dlpack_device;

/* DLDataType. */
typedef struct tk_dlpack_dtype {
    uint8_t code;   /* a DLDataTypeCode */
    uint8_t bits;
    uint16_t lanes;
} tk_dlpack_dtype;

/* DLTensor. */
typedef struct tk_dlpack_tensor {
    void* data;
    tk_dlpack_device device;
    int32_t ndim;
    tk_dlpack_dtype dtype;
    int64_t* shape;
    int64_t* strides;      /* in elements; NULL: compact row-major */
    uint64_t byte_offset;  /* bytes from data to the first element */
} tk_dlpack_tensor;

struct tk_dlpack_managed_tensor;
struct tk_dlpack_managed_tensor_versioned;
/* The deleters of DLManagedTensor and DLManagedTensorVersioned. */
typedef void (*tk_dlpack_deleter)(struct tk_dlpack_managed_tensor* self);
typedef void (*tk_dlpack_versioned_deleter)(struct tk_dlpack_managed_tensor_versioned* self);

/* DLManagedTensor. */
typedef struct tk_dlpack_managed_tensor {
    tk_dlpack_tensor dl_tensor;
    void* manager_ctx;          /* the producer's; NULL in the library's own */
    tk_dlpack_deleter deleter;  /* frees the tensor; may be NULL */
} tk_dlpack_managed_tensor;

/* DLPackVersion. */
typedef struct tk_dlpack_version {
    uint32_t major;
    uint32_t minor;
} tk_dlpack_version;

/* DLManagedTensorVersioned. */
typedef struct tk_dlpack_managed_tensor_versioned {
    tk_dlpack_version version;
    void* manager_ctx;
    tk_dlpack_versioned_deleter deleter;
    uint64_t flags;  /* DLPACK_FLAG_BITMASK_*: TK_DLPACK_FLAG_READ_ONLY is the one the library reads */
    tk_dlpack_tensor dl_tensor;
} tk_dlpack_managed_tensor_versioned;

/* A view of a DLTensor (a DLManagedTensor's dl_tensor, say) into *tensor. */
TK_API tk_status tk_tensor_from_dlpack(const tk_dlpack_tensor* dl_tensor, tk_tensor* tensor);
/* A view of managed->dl_tensor; managed stays the caller's. */
TK_API tk_status tk_tensor_from_dlpack_managed(const tk_dlpack_managed_tensor* managed, tk_tensor* tensor);
/* A view of managed->dl_tensor after the version check; writable 0 or 1: 1 refuses a read-only tensor. */
TK_API tk_status tk_tensor_from_dlpack_versioned(const tk_dlpack_managed_tensor_versioned* managed, int32_t writable,
                                                 tk_tensor* tensor);
/* A new DLManagedTensor describing tensor's memory into *managed; its deleter frees it. */
TK_API tk_status tk_tensor_to_dlpack(const tk_tensor* tensor, tk_dlpack_managed_tensor** managed);
/* The same as a DLManagedTensorVersioned of version TK_DLPACK_VERSION_MAJOR.TK_DLPACK_VERSION_MINOR;
 * read_only 0 or 1 sets TK_DLPACK_FLAG_READ_ONLY in its flags (no other flag is set). */
TK_API tk_status tk_tensor_to_dlpack_versioned(const tk_tensor* tensor, int32_t read_only,
                                               tk_dlpack_managed_tensor_versioned** managed);

/* ---- 1. Spatio-temporal pooling (docs/SPEC.md, section 1) -------------------------------
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

/* ---- 2. Bipartite token merging, ToMe family (docs/SPEC.md, section 2) -------------------
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
 * (all ones); its values are the numbers of original tokens each token stands for, positive and
 * finite: on the CPU any other value is an error naming it; on CUDA (where checking would need a host
 * synchronisation) values are used as given, so a zero, negative or non-finite size gives non-finite
 * or meaningless values in its destination's row of out and out_size, and nothing else. out_size
 * [B, N'] f32, source_map [B, N] i32 and merge_count [B] i32 may be NULL, except merge_count in
 * threshold mode (in fixed mode it receives the effective r). On CUDA without a workspace (NULL, 0)
 * the op allocates its scratch stream-ordered. */
TK_API tk_status tk_merge(const tk_merge_params* params, const tk_tensor* metric, const tk_tensor* x,
                          const tk_tensor* size, const tk_tensor* out, const tk_tensor* out_size,
                          const tk_tensor* source_map, const tk_tensor* merge_count, void* workspace,
                          uint64_t workspace_bytes, tk_stream stream);
/* out[b, i] = y[b, source_map[b, i]]: y [B, N', C], source_map [B, N] i32 (or i64), out [B, N, C] of
 * y's dtype. Indices outside [0, N') are an error reported by status on the CPU; on CUDA (where
 * checking would need a host synchronisation) the row is written as zeros. */
TK_API tk_status tk_unmerge(const tk_tensor* y, const tk_tensor* source_map, const tk_tensor* out, tk_stream stream);

/* ---- 3. Attention-based pruning (docs/SPEC.md, section 3) --------------------------------
 *
 * Pruning = importance (from attention probabilities, or from Q and K without the attention matrix),
 * then top-k, then gather. Importance and scores are f32; index outputs are i32, index inputs i32 or
 * i64. Feature tensors are f32/f16/bf16 with contiguous last dimension, other strides free.
 *
 * Importance of key j (j in [key_begin, key_end)), out[b, j - key_begin]:
 *     reduce over heads h and queries i in [query_begin, query_end) of P[b, h, i, j]
 * where P is the attention probability matrix (softmax over all Nk keys of each query row). Both
 * reductions are sums, divided once at the end by H (head_reduce MEAN) times the query count
 * (query_reduce MEAN). In tk_attention_importance the float32 sum runs over h, then i, in increasing
 * order, so the CPU and CUDA results are bit-identical.
 *   FastV:     layer K-1's attention, head MEAN, the last query row (query range [Nq-1, Nq)), keys =
 *              the image span.
 *   VisionZip: the CLS row (query range [0, 1)), head SUM, keys [1, N).
 */
typedef int32_t tk_reduce;
enum {
    TK_REDUCE_MEAN = 0,
    TK_REDUCE_SUM = 1
};

typedef struct tk_importance_params {
    int64_t query_begin;     /* 0 <= query_begin < query_end <= Nq */
    int64_t query_end;
    int64_t key_begin;       /* 0 <= key_begin <= key_end <= Nk; out has key_end - key_begin columns */
    int64_t key_end;
    tk_reduce head_reduce;
    tk_reduce query_reduce;
    float scale;             /* tk_qk_importance only: softmax scale (1/sqrt(d) for SDPA), finite, > 0 */
    int32_t causal;          /* tk_qk_importance only: 0 or 1; query i (queries right-aligned to the
                              * keys) sees keys j <= i + Nk - Nq; a query that sees no key adds 0 */
} tk_importance_params;

/* attn [B, H, Nq, Nk] (f32/f16/bf16) -> out [B, key_end - key_begin] f32. Needs no workspace. */
TK_API tk_status tk_attention_importance(const tk_importance_params* params, const tk_tensor* attn,
                                         const tk_tensor* out, tk_stream stream);

/* The same importance from q [B, H, Nq, d] and k [B, Hk, Nk, d] (one float dtype, H a multiple of
 * Hk: query head h reads key head h / (H / Hk), grouped-query attention), with
 * P[b, h, i, j] = exp(scale * q_i . k_j - lse[b, h, i]), computed in tiles without the Nq x Nk matrix.
 * lse [B, H, Nq] f32 (the natural-log log-sum-exp of each row over the keys it sees, as FlashAttention
 * returns it) may be NULL: the op then computes it in a first pass over the query range. Sums are in
 * float32 in a fixed order (deterministic run to run); CPU and CUDA agree within float32 rounding.
 * CUDA: d in {64, 80, 96, 128} (any d >= 1 on the CPU); workspace from tk_qk_importance_workspace_size,
 * or NULL/0 to allocate stream-ordered. */
TK_API tk_status tk_qk_importance_workspace_size(const tk_importance_params* params, const tk_tensor* q,
                                                 const tk_tensor* k, const tk_tensor* lse, uint64_t* bytes);
TK_API tk_status tk_qk_importance(const tk_importance_params* params, const tk_tensor* q, const tk_tensor* k,
                                  const tk_tensor* lse, const tk_tensor* out, void* workspace,
                                  uint64_t workspace_bytes, tk_stream stream);

/* Top-k: scores [B, N] (f32/f16/bf16) -> the k highest of each item, ties to the lower index, NaN
 * below every number (-inf included) and chosen last, lower index first among NaNs.
 *   lengths [B] (i32, may be NULL): item b ranks only positions [0, lengths[b]);
 *   item_k [B] (i32, may be NULL): item b keeps item_k[b] <= k tokens.
 * Item b keeps count_b = min(item_k[b] or k, lengths[b] or N) tokens.
 *   indices [B, k] i32: the kept positions in increasing order, then -1 in the k - count_b slots left;
 *   ranked [B, k] i32 (may be NULL): the same positions by descending score, then -1.
 * lengths outside [0, N] or item_k outside [0, k] are an error on the CPU; on CUDA (where checking would
 * need a host synchronisation) they are clamped to those ranges. */
typedef struct tk_topk_params {
    int32_t k;               /* 0 <= k <= N: the columns of indices and ranked */
} tk_topk_params;

TK_API tk_status tk_topk_workspace_size(const tk_topk_params* params, const tk_tensor* scores, uint64_t* bytes);
TK_API tk_status tk_topk(const tk_topk_params* params, const tk_tensor* scores, const tk_tensor* lengths,
                         const tk_tensor* item_k, const tk_tensor* indices, const tk_tensor* ranked,
                         void* workspace, uint64_t workspace_bytes, tk_stream stream);

/* out[b, i] = x[b, indices[b, i]]: x [B, N, C] (any dtype), indices [B, k] i32 or i64, out [B, k, C]
 * of x's dtype. Index -1 (top-k's padding) writes a zero row. Other indices outside [0, N) are an
 * error on the CPU; on CUDA the row is written as zeros. */
TK_API tk_status tk_gather(const tk_tensor* x, const tk_tensor* indices, const tk_tensor* out, tk_stream stream);

/* VisionZip's contextual tokens. kept [B, K] (i32 or i64, K distinct positions in [0, N), any order)
 * are the dominant tokens; the M = N - K others, in increasing position, are what remains. Targets:
 * remaining tokens 0, step, 2 step, ... (the first `contextual` of them), step = max(1, M / contextual)
 * (integer division). Every other remaining token is assigned to the target of highest cosine
 * similarity of metric [B, N, Cm] (|v| clamped to 1e-12; ties and all-NaN rows to the lower target).
 * out[b, t] = x[target t] + mean of x over the tokens assigned to target t (0 when none), summed in
 * float32 in increasing position. x [B, N, C], out [B, contextual, C] of x's dtype; metric and x may
 * differ in dtype and may be the same tensor. contextual <= N - K. On the CPU, duplicate or
 * out-of-range kept positions are an error; on CUDA out-of-range ones are ignored and a duplicate
 * counts once (M is then larger).
 * Workspace from tk_visionzip_contextual_workspace_size, or NULL/0. */
TK_API tk_status tk_visionzip_contextual_workspace_size(int32_t contextual, const tk_tensor* metric,
                                                        const tk_tensor* x, const tk_tensor* kept, uint64_t* bytes);
TK_API tk_status tk_visionzip_contextual(int32_t contextual, const tk_tensor* metric, const tk_tensor* x,
                                         const tk_tensor* kept, const tk_tensor* out, void* workspace,
                                         uint64_t workspace_bytes, tk_stream stream);

/* ---- 4. Diversity selection (docs/SPEC.md, section 4) ------------------------------------
 *
 * Greedy k-center (max-min) or max-sum selection of k diverse tokens from x [B, N, C] (f32/f16/bf16,
 * channels contiguous, other strides free), as DivPrune and ToDRE prune visual tokens.
 *
 * Distance d(i, j) in float32:
 *   TK_DISTANCE_COSINE: 1 - dot(u_i, u_j), u = x / max(|x|, 1e-12) (zero-safe; DivPrune divides by the
 *                       raw norm);
 *   TK_DISTANCE_L2:     the squared Euclidean distance sum over c of (x_i[c] - x_j[c])^2 (the
 *                       nearest-neighbour pass of TK_FIRST_MOST_ISOLATED evaluates it as
 *                       |x_i|^2 + |x_j|^2 - 2 x_i . x_j, clamped at 0, which rounds differently).
 * Item b ranks only tokens [0, L_b), L_b = lengths[b] (or N), and keeps count_b = min(item_k[b] (or k),
 * L_b) tokens. Minima follow fmin: a NaN distance never lowers one (a token whose row holds NaN is
 * nobody's nearest neighbour), and a minimum over NaN alone is NaN. A NaN score is chosen last (below
 * every number, -inf included); ties go to the lower index everywhere.
 *   1. First center: TK_FIRST_MOST_ISOLATED (DivPrune): argmax over i of min over j != i of d(i, j)
 *      (token 0 when L_b = 1); TK_FIRST_INDEX: first_index[b]; TK_FIRST_SCORE: argmax of
 *      first_score[b, 0:L_b) (e.g. CLS attention).
 *   2. Then, until count_b are chosen: score[j] = min (TK_DIVERSITY_MAX_MIN, k-center) or sum
 *      (TK_DIVERSITY_MAX_SUM; a NaN distance makes the sum NaN) over the chosen c of d(j, c); next =
 *      argmax of score over the tokens not yet chosen (a token is never chosen twice, even among exact
 *      duplicates).
 * order [B, k] i32: the tokens in the order chosen, then -1; sorted [B, k] i32 (may be NULL): the same
 * ascending, then -1. Memory O(N) per item: a running score per token, never an N x N matrix; the
 * result equals DivPrune's, which builds the matrix, because min and sum are updated exactly.
 * lengths and item_k [B] i32 may be NULL; first_index [B] i32 is given with TK_FIRST_INDEX and
 * first_score [B, N] (f32/f16/bf16) with TK_FIRST_SCORE, each NULL otherwise. lengths outside [0, N],
 * item_k outside [0, k] or first_index outside [0, L_b) (L_b > 0) are an error on the CPU; on CUDA
 * (where checking would need a host synchronisation) they are clamped to those ranges.
 * Workspace from tk_diversity_workspace_size, or NULL/0: on CUDA the op then allocates it
 * stream-ordered; on the CPU it is one item's packed copy of the tokens (with TK_FIRST_MOST_ISOLATED
 * also the search's GEMM panels, and a tile of scores for each of tk_get_num_threads() threads at the
 * query, up to one per micro-kernel panel of N tokens), which the op otherwise allocates per item: with it nothing large is allocated and the items
 * run one after another, each over all threads. A CPU workspace below its query's size is accepted
 * down to the size queried with one thread; the most isolated search then runs on as many threads as
 * it holds buffers for. */
typedef int32_t tk_distance;
enum {
    TK_DISTANCE_COSINE = 0,
    TK_DISTANCE_L2 = 1
};

typedef int32_t tk_first_center;
enum {
    TK_FIRST_MOST_ISOLATED = 0,
    TK_FIRST_INDEX = 1,
    TK_FIRST_SCORE = 2
};

typedef int32_t tk_diversity_objective;
enum {
    TK_DIVERSITY_MAX_MIN = 0,
    TK_DIVERSITY_MAX_SUM = 1
};

typedef struct tk_diversity_params {
    int32_t k;                        /* 0 <= k <= N: the columns of order and sorted */
    tk_distance distance;
    tk_first_center first;
    tk_diversity_objective objective;
} tk_diversity_params;

TK_API tk_status tk_diversity_workspace_size(const tk_diversity_params* params, const tk_tensor* x, uint64_t* bytes);
TK_API tk_status tk_diversity_select(const tk_diversity_params* params, const tk_tensor* x, const tk_tensor* lengths,
                                     const tk_tensor* item_k, const tk_tensor* first_index,
                                     const tk_tensor* first_score, const tk_tensor* order, const tk_tensor* sorted,
                                     void* workspace, uint64_t workspace_bytes, tk_stream stream);

/* ---- 5. Temporal redundancy in video (docs/SPEC.md, section 5) ---------------------------
 *
 * x [B, T, P, C]: T frames of P tokens each (P = H * W of the frame grid, row-major), f32/f16/bf16,
 * channels contiguous, other strides free.
 *
 * Same-position similarity: out[b, t, p] = cos(x[b, t, p], x[b, r(t), p]) in float32, where
 * cos(u, v) = u.v / (max(|u|, 1e-8) max(|v|, 1e-8)) (torch.nn.functional.cosine_similarity's clamp) and
 * the reference frame r(t) is t - 1 (reference NULL: the previous frame, as EVS and FrameFusion) or
 * reference[t] (reference [T] i32 on x's device: DyCoke compares frame 2i+1 with 2i and 4i+2 with 4i).
 * A frame with no reference (t = 0, or reference[t] = -1) gets -inf: nothing is less similar. The
 * three sums (u.v, |u|^2, |v|^2) run in 16 interleaved lanes, so both backends give the same bits.
 * Host reference values outside [-1, T) are an error; on CUDA (where checking would need a host
 * synchronisation) such a frame has no reference. out [B, T, P] f32. Needs no workspace. */
TK_API tk_status tk_temporal_similarity(const tk_tensor* x, const tk_tensor* reference, const tk_tensor* out,
                                        tk_stream stream);

/* Segment similarity (PruneVid's static-token test): x [T, N, C] (one video, f32/f16/bf16, channels
 * contiguous) cut into S runs of consecutive frames by segment_lengths [S] i32 (on x's device, each
 * >= 1, summing to T); out [S, N] f32: for segment s of W frames, at each position p, the mean over
 * the W (W - 1) / 2 pairs of distinct frames of cos(x[t, p], x[t', p]), where
 * cos(u, v) = u.v / (max(|u|, 1e-12) max(|v|, 1e-12)) (F.normalize's clamp). W = 1 gives NaN
 * (PruneVid's 0 / 0: never static). A zero row has cosine 0; a row holding NaN or Inf gives NaN. The
 * sums run in 16 interleaved lanes and the pairs in order, so both backends give the same bits. Host
 * lengths are checked; on CUDA (no host synchronisation) a negative length counts as 0 and frames past
 * T are dropped. Needs no workspace. */
TK_API tk_status tk_segment_similarity(const tk_tensor* x, const tk_tensor* segment_lengths, const tk_tensor* out,
                                       tk_stream stream);

/* EVS, Efficient Video Sampling (vLLM vllm/multimodal/evs.py, compute_retention_mask): each token
 * scores d[t, p] = 1 - cos(x[t, p], x[t - 1, p]) (frame 0: +inf, always kept); the item keeps exactly
 *     K = max(P, floor(T * P * (1 - q)))      (tk_evs_retained_tokens)
 * tokens: the first K of the stable descending order of d over all T * P tokens (ties to the lower
 * position; a NaN score ranks below every number, -inf included). Outputs, each optional (NULL):
 *   out [B, K, C] (x's dtype): the kept tokens in original order (needs x's frames one after another:
 *       x.strides[1] == P * x.strides[2], as any [B, T * P, C] view reshaped has them);
 *   indices [B, K] i32: their flat positions t * P + p, increasing;
 *   positions [B, K, 3] i32: their grid coordinates (t, h, w), p = h * W + w (the model adds its own
 *       offsets and temporal scale, as vLLM's recompute_mrope_positions does);
 *   mask [B, T * P] i32: 1 where a token is kept, else 0.
 * K depends only on T, P and q, so the outputs have fixed shapes and CUDA never synchronises.
 * Workspace from tk_evs_workspace_size (the scores and the kept positions), or NULL/0: the op then
 * allocates it (stream-ordered on CUDA). */
typedef struct tk_evs_params {
    double pruning_rate;  /* q in [0, 1): vLLM's video_pruning_rate */
    int32_t height;       /* H, W of the frame grid (after any spatial merge), each >= 1; P = H * W */
    int32_t width;
} tk_evs_params;

/* K for a video of `frames` (>= 1) frames of height * width tokens. */
TK_API tk_status tk_evs_retained_tokens(const tk_evs_params* params, int64_t frames, int64_t* retained);
TK_API tk_status tk_evs_workspace_size(const tk_evs_params* params, const tk_tensor* x, uint64_t* bytes);
TK_API tk_status tk_evs(const tk_evs_params* params, const tk_tensor* x, const tk_tensor* out, const tk_tensor* indices,
                        const tk_tensor* positions, const tk_tensor* mask, void* workspace, uint64_t workspace_bytes,
                        tk_stream stream);

/* DyCoke's temporal token merging, TTM (KD-TAO/DyCoke, dycole_ttm): in each window of 4 frames, frame 0
 * is kept whole; frames 1 and 3 are compared with frames 0 and 2, and frame 2 with frame 0, token by
 * token at the same position (the cosine above); each compared frame keeps its
 *     k = floor((1 - merging_ratio) * P)
 * least similar tokens (ties to the lower position; a NaN similarity is kept last), so each item keeps
 *     K = P * ceil(T / 4) + k * (T - ceil(T / 4))      (tk_dycoke_retained_tokens)
 * tokens, frame after frame, each frame's in increasing position. A trailing partial window is handled
 * as a whole one (its frames 1 to 3 that exist are compared). Outputs as tk_evs's. Workspace from
 * tk_dycoke_workspace_size, or NULL/0. */
typedef struct tk_dycoke_params {
    double merging_ratio; /* in [0, 1]: the fraction of a compared frame's tokens dropped; DyCoke's default 0.7 */
    int32_t height;       /* H, W of the frame grid, each >= 1; P = H * W (LLaVA-OneVision after pooling: 14 x 14) */
    int32_t width;
} tk_dycoke_params;

TK_API tk_status tk_dycoke_retained_tokens(const tk_dycoke_params* params, int64_t frames, int64_t* retained);
TK_API tk_status tk_dycoke_workspace_size(const tk_dycoke_params* params, const tk_tensor* x, uint64_t* bytes);
TK_API tk_status tk_dycoke_ttm(const tk_dycoke_params* params, const tk_tensor* x, const tk_tensor* out,
                               const tk_tensor* indices, const tk_tensor* positions, const tk_tensor* mask, void* workspace,
                               uint64_t workspace_bytes, tk_stream stream);

/* VidCom2, Video Compression Commander (xuyang-liu16/VidCom2, vidcom2.py vidcom2_compression; vLLM's
 * --video-retention-ratio): per item, the C' = max(1, floor(C * channel_ratio)) lowest-variance
 * channels of the T * P tokens are scored; each token, normalised over those channels, scores
 * g(|f - video centre|^2) + g(|f - frame centre|^2) with g(d) = sum over a = 2^-3 .. 2^1 of
 * exp(-d / (2a)); each frame's budget follows VidCom2's softmax of frame distinctiveness (temperature),
 * apportioned by largest remainder so that the item keeps exactly
 *     K = max(T, floor(T * P * retention_ratio))      (tk_vidcom2_retained_tokens)
 * tokens, at least one per frame; each frame keeps its lowest-scoring tokens (ties to the lower position,
 * NaN last). docs/SPEC.md defines every step and its float32 order: CPU and CUDA keep the same tokens.
 * Outputs as tk_evs's. Workspace from tk_vidcom2_workspace_size, or NULL/0. */
typedef struct tk_vidcom2_params {
    double retention_ratio; /* r in (0, 1]: the fraction of tokens kept; VidCom2's base_scale (default 0.25) */
    double channel_ratio;   /* in (0, 1]: the fraction of channels scored, the lowest-variance ones; VidCom2's 0.5 */
    double temperature;     /* in (0, FLT_MAX], not 0 as a float32: the frame-budget softmax temperature; VidCom2's 0.01 */
    int32_t height;         /* H, W of the frame grid, each >= 1; P = H * W */
    int32_t width;
} tk_vidcom2_params;

TK_API tk_status tk_vidcom2_retained_tokens(const tk_vidcom2_params* params, int64_t frames, int64_t* retained);
TK_API tk_status tk_vidcom2_workspace_size(const tk_vidcom2_params* params, const tk_tensor* x, uint64_t* bytes);
TK_API tk_status tk_vidcom2(const tk_vidcom2_params* params, const tk_tensor* x, const tk_tensor* out,
                            const tk_tensor* indices, const tk_tensor* positions, const tk_tensor* mask, void* workspace,
                            uint64_t workspace_bytes, tk_stream stream);

/* FrameFusion's token merging (thu-nics/FrameFusion, FrameFusion.merge_tokens_and_get_mask): a token
 * merges into the same position of the previous frame when their cosine (the one above) is at least
 * similarity_threshold (NaN never merges, frame 0 never does); with max_merges >= 0 only the max_merges
 * highest cosines of an item may merge (ties to the lower position), as FrameFusion caps a layer at its
 * budget. A run of merged tokens joins the token before it at that position (its head, a token that
 * did not merge): the head's output row is the mean of the run, head first, summed in frame order in
 * float32 and divided once (a head nothing merged into is copied bit for bit).
 *   out [B, T * P, C] (x's dtype): the heads in original order (t, then p), then zero rows: the count
 *       varies per item, so out keeps a fixed capacity of T * P rows;
 *   merge_count [B] i32: the tokens merged, so item b has T * P - merge_count[b] rows;
 *   out_size [B, T * P] f32 (may be NULL): each row's run length (ToMe's size; zero past the count);
 *   source_map [B, T * P] i32 (may be NULL): the output row each token ended up in (tk_unmerge reads it).
 * Workspace from tk_framefusion_workspace_size, or NULL/0. */
typedef struct tk_framefusion_params {
    float similarity_threshold; /* merge when cos >= this; FrameFusion's similarity_lower_bound 0.6; not NaN */
    int32_t max_merges;         /* -1: no cap; else at most this many merge per item */
} tk_framefusion_params;

TK_API tk_status tk_framefusion_workspace_size(const tk_framefusion_params* params, const tk_tensor* x, uint64_t* bytes);
TK_API tk_status tk_framefusion_merge(const tk_framefusion_params* params, const tk_tensor* x, const tk_tensor* out,
                                      const tk_tensor* out_size, const tk_tensor* source_map, const tk_tensor* merge_count,
                                      void* workspace, uint64_t workspace_bytes, tk_stream stream);

/* ---- 6. Clustering and aggregation (docs/SPEC.md, section 6) --------------------------- */

/* -- DPC-kNN -- */
/* Density-peaks clustering with k nearest neighbours (LightCompress holitom.py::cluster_dpc_knn, as
 * HoliTom, FastVID and PruneVid use it), per item of x [B, N, C]: d_ij = |x_i - x_j| / sqrt(C), the
 * square in torch.cdist's GEMM form |x_i|^2 + |x_j|^2 - 2 x_i.x_j clamped at 0; density_i = exp(-mean of the `neighbours` smallest d_ij^2, the token itself included); delta_i =
 * the distance to the nearest denser token (the item's largest distance for the densest); the
 * `clusters` tokens of largest delta x density are the centres, cluster j being the j-th of them;
 * every other token joins its nearest centre. Ties go to the lower index (LightCompress's random
 * noise on the density is not reproduced). Exact rules: docs/SPEC.md section 6, DPC-kNN.
 *   lengths [B] i32 or NULL: item b's first L_b tokens; item_clusters [B] i32 or NULL: K_b <= clusters
 *   (clamped to L_b). centres [B, clusters] i32: token of cluster j, -1 from K_b; assignment [B, N]
 *   i32: cluster of each token, -1 from L_b (a source map for tk_unmerge); density, delta [B, N] f32
 *   or NULL (0 from L_b). Workspace: tk_dpc_knn_workspace_size, or NULL/0 (allocated; on CUDA
 *   stream-ordered, B x N x N floats). On CUDA, lengths and item_clusters are clamped, not checked. */
typedef struct tk_dpc_knn_params {
    int32_t clusters;   /* K, the columns of centres; 0 <= K <= N */
    int32_t neighbours; /* k of the kNN density, the token itself included; >= 1 (LightCompress 5, HoliTom 7) */
} tk_dpc_knn_params;

TK_API tk_status tk_dpc_knn_workspace_size(const tk_dpc_knn_params* params, const tk_tensor* x, uint64_t* bytes);
TK_API tk_status tk_dpc_knn(const tk_dpc_knn_params* params, const tk_tensor* x, const tk_tensor* lengths,
                            const tk_tensor* item_clusters, const tk_tensor* centres, const tk_tensor* assignment,
                            const tk_tensor* density, const tk_tensor* delta, void* workspace, uint64_t workspace_bytes,
                            tk_stream stream);


/* -- k-means -- */

/* Batched Lloyd k-means (docs/SPEC.md, section 6, "k-means"): one independent problem per item of
 * x [B, N, C] (f32/f16/bf16, channels contiguous, other strides free; B = frames x items), item b
 * clustering its tokens [0, L_b), L_b = lengths[b] (or N), into count_b = min(item_clusters[b] (or
 * clusters), L_b) clusters, as scikit-learn's KMeans(algorithm="lloyd", n_init=1) does:
 *   distance: squared Euclidean, in float32; assignment: argmin over clusters, ties to the lower
 *       cluster, a NaN distance never the minimum (a row of NaN distances goes to cluster 0);
 *   update: each centre the float32 sum of its points in increasing token order times
 *       float(1.0 / count) (sklearn's _average_centers); a cluster left empty takes the point farthest
 *       from its centre (the e-th empty cluster, in increasing order, the e-th farthest point, ties
 *       to the lower token), which leaves its own cluster's sum, as sklearn's relocation does;
 *   stop after max_iterations iterations, or when the labels of an iteration equal the previous
 *       iteration's (strict convergence), or when the squared centre shift, summed over clusters, is
 *       at most tolerance x the mean over channels of the item's per-channel variance (float64);
 *       without strict convergence the labels are recomputed from the final centres.
 * init TK_KMEANS_INIT_PLUS_PLUS: greedy k-means++ (sklearn's _kmeans_plusplus: 2 + floor(ln count_b)
 *   candidates a step, sampled by the squared distance to the chosen centres, the one that lowers the
 *   potential most kept) drawing from a counter-based stream: draw d of item b is
 *   u = (splitmix64(splitmix64(seed ^ splitmix64(b)) + d) >> 11) * 2^-53 in [0, 1), so every backend
 *   and thread count seeds alike; TK_KMEANS_INIT_GIVEN: initial_centres [B, clusters, C] f32 (rows
 *   [0, count_b) read), e.g. DPC-kNN centres or the array given to sklearn's init.
 * Outputs: centres [B, clusters, C] f32 (rows past count_b zero); assignment [B, N] i32 (-1 past L_b,
 * and everywhere when count_b = 0; a source map for tk_unmerge); sizes [B, clusters] f32 (may be
 * NULL): the points of each cluster in assignment (ToMe's proportional attention takes f32 sizes);
 * iterations [B] i32 (may be NULL): the Lloyd iterations run. lengths and item_clusters [B] i32 may be
 * NULL; host values outside [0, N] and [0, clusters] are an error; on CUDA (where checking would need a
 * host synchronisation) they are clamped to those ranges. Workspace from tk_kmeans_workspace_size (one
 * item's scratch per CPU thread or CUDA block), or NULL/0: the op then allocates it (stream-ordered on
 * CUDA). CUDA runs each item in one block with the CPU's summation orders, so given the same labels
 * its centres, sizes and iterations are the CPU's bits. */
typedef int32_t tk_kmeans_init;
enum {
    TK_KMEANS_INIT_PLUS_PLUS = 0,
    TK_KMEANS_INIT_GIVEN = 1
};

typedef struct tk_kmeans_params {
    uint64_t seed;           /* k-means++'s random stream */
    double tolerance;        /* >= 0 and finite: sklearn's tol (default 1e-4), scaled per item by the mean variance */
    int32_t clusters;        /* K, 0 <= K <= N: the rows of centres */
    int32_t max_iterations;  /* >= 1: sklearn's max_iter (default 300) */
    tk_kmeans_init init;
} tk_kmeans_params;

TK_API tk_status tk_kmeans_workspace_size(const tk_kmeans_params* params, const tk_tensor* x, uint64_t* bytes);
TK_API tk_status tk_kmeans(const tk_kmeans_params* params, const tk_tensor* x, const tk_tensor* lengths,
                           const tk_tensor* item_clusters, const tk_tensor* initial_centres, const tk_tensor* centres,
                           const tk_tensor* assignment, const tk_tensor* sizes, const tk_tensor* iterations,
                           void* workspace, uint64_t workspace_bytes, tk_stream stream);


/* -- Aggregation of clusters -- */
/* One row per cluster from x [B, N, C] and an assignment [B, N] i32 (cluster in [0, K), -1: in none;
 * from tk_dpc_knn, k-means or the caller): out [B, K, C] (x's dtype) and out_size [B, K] f32 (the
 * members' summed sizes, or their count without sizes). Members are added in increasing token
 * index, in float32, on every backend. Modes: the mean of the members; the size-weighted mean
 * (sizes [B, N] f32 needed); HoliTom's beta x x[centre] + (1 - beta) x the mean of the other members
 * (centres [B, K] i32 needed; x[centre] alone when it has none); FastVID's DTM blend, the same with the
 * centre's weight max(1 / (n + 1), beta), n the other members. An empty cluster (no member, or
 * centre -1 in a centre mode) gets zeros and size 0. Host assignment and centre values out of range
 * are rejected; on CUDA such an assignment matches no cluster and such a centre counts as -1. Exact
 * rules: docs/SPEC.md section 6. */
typedef int32_t tk_cluster_merge_mode;
enum {
    TK_CLUSTER_MERGE_MEAN = 0,
    TK_CLUSTER_MERGE_SIZE_WEIGHTED = 1,
    TK_CLUSTER_MERGE_CENTRE_BLEND = 2,
    /* FastVID's DTM: w x[centre] + (1 - w) x the mean of the other members, w = max(1 / (n + 1), beta)
     * with n their count (centres needed; x[centre] alone when n = 0) */
    TK_CLUSTER_MERGE_CENTRE_COUNT_BLEND = 3
};

typedef struct tk_cluster_merge_params {
    int32_t clusters; /* K, the rows of out per item; >= 0 */
    tk_cluster_merge_mode mode;
    float beta;       /* the centre's weight in TK_CLUSTER_MERGE_CENTRE_BLEND (HoliTom's Beta), its least
                         weight in TK_CLUSTER_MERGE_CENTRE_COUNT_BLEND (FastVID's DTM_beta); finite */
} tk_cluster_merge_params;

TK_API tk_status tk_cluster_merge(const tk_cluster_merge_params* params, const tk_tensor* x, const tk_tensor* assignment,
                                  const tk_tensor* sizes, const tk_tensor* centres, const tk_tensor* out,
                                  const tk_tensor* out_size, tk_stream stream);

/* -- Assignment to given centres -- */
/* Each token of item b of x [B, N, C] (f32/f16/bf16, channels contiguous) joins the centre it is most
 * cosine-similar to, the centres being tokens of the same item (FastVID's DTM assigns every token of a
 * segment to an anchor token). centres [B, clusters] i32: a token in [0, L_b), or -1 (no centre in that
 * column). In float32, u = x / sqrt(|x|^2) per channel (a zero row stays zero: similarity 0 to every
 * centre), |x|^2 and the dot product summed in ops/lane_sum.hpp's order; a centre token joins its own
 * column (the lowest one if repeated); every other token i < L_b the column of largest similarity,
 * ties to the lower column, NaN never the largest (the first valid column when every similarity is
 * NaN). assignment [B, N] i32: -1 from L_b and everywhere without a valid centre (a source map for
 * tk_unmerge after tk_cluster_merge). lengths [B] i32 or NULL. Host lengths and centres out of range
 * are rejected; on CUDA lengths are clamped to [0, N] and a centre outside [0, L_b) counts as -1. */
typedef struct tk_cluster_assign_params {
    int32_t clusters; /* K, the columns of centres; >= 0 */
} tk_cluster_assign_params;

TK_API tk_status tk_cluster_assign(const tk_cluster_assign_params* params, const tk_tensor* x, const tk_tensor* lengths,
                                   const tk_tensor* centres, const tk_tensor* assignment, tk_stream stream);


/* ---- 7. Query relevance (docs/SPEC.md, section 7) ----------------------------------------- */
/*
 * CDPruner (Zhang et al. 2025, "Beyond Attention or Similarity: Maximizing Conditional Diversity for
 * Token Pruning in MLLMs"; github.com/Theia-4869/CDPruner, llava_arch.py): keep the visual tokens that
 * are both relevant to the text query and diverse, by greedy MAP inference of a conditional DPP.
 *
 * tk_query_relevance: visual [B, N, C] and text [B, T, C] (f32/f16/bf16, channels contiguous, other
 * strides free) -> relevance [B, N] f32. Item b uses tokens [0, L_b) (lengths, or N) and text tokens
 * [0, T_b) (text_lengths, or T). In float32, u = x / max(sqrt(dot(x, x)), 1e-12) for both, where
 * dot(a, b) runs 16 lanes, lane l accumulating fma(a[c], b[c], acc) over c = l (mod 16) in increasing c,
 * then adds the lanes in order; m_i = (sum over t < T_b of dot(u_i, q_t)) / T_b (the sum in the order
 * of ops/lane_sum.hpp); s_i = -m_i with
 * params->negate (CLIP-style towers, as CDPruner's LLaVA code), else m_i; then per item
 * r_i = ((s_i - min) + 1e-6) / (max - min) over i < L_b (CDPruner's min-max; min and max ignore NaN);
 * r_i = 1 where max - min is 0 or NaN (one token, T_b = 0, all equal). r = 0 for i >= L_b.
 */
typedef struct tk_relevance_params {
    int32_t negate; /* 0 or 1: relevance from the negated mean cosine (CLIP-style, CDPruner's LLaVA code) */
} tk_relevance_params;

TK_API tk_status tk_query_relevance(const tk_relevance_params* params, const tk_tensor* visual, const tk_tensor* text,
                                    const tk_tensor* lengths, const tk_tensor* text_lengths, const tk_tensor* relevance,
                                    tk_stream stream);

/*
 * tk_conditional_dpp_select: greedy MAP inference (Chen et al. 2018, incremental Cholesky) of the DPP
 * with kernel L_ij = (w_i s_ij) w_j, s_ij = dot(u_i, u_j) with u and dot as above (s_ii = 1 for a
 * nonzero row, 0 for a zero row, NaN for a NaN row), from x [B, N, C]
 * (f32/f16/bf16) and relevance [B, N] f32 (may be NULL: w = 1, plain DPP). Weights by params->weighting:
 * TK_DPP_WEIGHT_RELEVANCE w_i = r_i (CDPruner's released code); TK_DPP_WEIGHT_EXP w_i = exp(a r_i),
 * a = theta / (2 (1 - theta)) (the paper's formula), 0 <= theta < 1. Item b ranks tokens [0, L_b) and
 * keeps count_b = min(item_k[b] (or k), L_b). Residuals d_n = L_nn; each step j = argmax of d over the
 * tokens not chosen (a number above NaN, lower index on ties); if d_j > 0,
 * e_n = (L_jn - sum_{s<t} c_s[j] c_s[n]) / sqrt(d_j) (the sum in increasing s), else e = 0 (the residual
 * is exhausted: CDPruner divides by zero there); c_t = e; d_n -= e_n^2. order [B, k] i32: the tokens in
 * the order chosen, then -1; sorted [B, k] i32 (may be NULL): the same ascending, then -1. Memory
 * O(N C + k N) per item, rows of L computed on the fly, never an N x N matrix. lengths and item_k [B]
 * i32 may be NULL; out of range they are an error on the CPU, clamped on CUDA (as are text_lengths).
 * Workspace from tk_conditional_dpp_workspace_size (CPU: one item's packed tokens and Cholesky rows;
 * CUDA: every item's) or NULL/0 (then allocated; on CUDA stream-ordered). tk_query_relevance needs no
 * scratch. Both backends give the same bits (TK_DPP_WEIGHT_EXP's exp included: SPEC section 7).
 */
typedef int32_t tk_dpp_weighting;
enum {
    TK_DPP_WEIGHT_RELEVANCE = 0,
    TK_DPP_WEIGHT_EXP = 1
};

typedef struct tk_dpp_params {
    int32_t k;                  /* 0 <= k <= N: the columns of order and sorted */
    tk_dpp_weighting weighting; /* how relevance becomes the quality weight w */
    float theta;                /* TK_DPP_WEIGHT_EXP: 0 <= theta < 1 (CDPruner's default 0.5); ignored otherwise */
} tk_dpp_params;

TK_API tk_status tk_conditional_dpp_workspace_size(const tk_dpp_params* params, const tk_tensor* x, uint64_t* bytes);
TK_API tk_status tk_conditional_dpp_select(const tk_dpp_params* params, const tk_tensor* x, const tk_tensor* relevance,
                                           const tk_tensor* lengths, const tk_tensor* item_k, const tk_tensor* order,
                                           const tk_tensor* sorted, void* workspace, uint64_t workspace_bytes,
                                           tk_stream stream);


#ifdef __cplusplus
}
#endif

#endif /* TOKENKERNELS_H */
