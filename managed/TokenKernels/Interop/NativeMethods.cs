using System;
using System.Runtime.InteropServices;

namespace TokenKernels.Interop;

/// <summary>
/// One declaration per function of <c>native/include/tokenkernels/tokenkernels.h</c>, with the C names and
/// blittable signatures only (pointers and fixed-width integers, <c>const char*</c> as <c>byte*</c>), so the
/// same declarations serve .NET 8+ and Unity's netstandard2.1 without any runtime marshalling.
/// Callers go through <see cref="NativeLibraryLoader.EnsureLoaded"/> first and pass every status to
/// <see cref="NativeStatus.Check"/>.
/// </summary>
internal static unsafe class NativeMethods
{
    /// <summary>The name every DllImport uses; the loader maps it to the platform's file name.</summary>
    public const string LibraryName = "tokenkernels";

    // ---- Version (the header these bindings were written against) ----
    public const int TK_VERSION_MAJOR = 0;
    public const int TK_VERSION_MINOR = 1;
    public const int TK_VERSION_PATCH = 0;
    public const int TK_VERSION = TK_VERSION_MAJOR * 10000 + TK_VERSION_MINOR * 100 + TK_VERSION_PATCH;

    // ---- tk_status ----
    public const int TK_STATUS_OK = 0;
    public const int TK_STATUS_INVALID_ARGUMENT = 1;
    public const int TK_STATUS_BACKEND_UNAVAILABLE = 2;
    public const int TK_STATUS_CUDA_ERROR = 3;
    public const int TK_STATUS_OUT_OF_MEMORY = 4;
    public const int TK_STATUS_INTERNAL = 5;

    // ---- tk_dtype ----
    public const int TK_DTYPE_F32 = 0;
    public const int TK_DTYPE_F16 = 1;
    public const int TK_DTYPE_BF16 = 2;
    public const int TK_DTYPE_I32 = 3;
    public const int TK_DTYPE_I64 = 4;

    // ---- tk_device_kind ----
    public const int TK_DEVICE_CPU = 0;
    public const int TK_DEVICE_CUDA = 1;

    public const int TK_MAX_RANK = 8;

    // ---- DLPack (tk_dlpack_device_type, type codes, version, flags) ----
    public const int TK_DLPACK_CPU = 1;
    public const int TK_DLPACK_CUDA = 2;
    public const int TK_DLPACK_CUDA_HOST = 3;
    public const int TK_DLPACK_CUDA_MANAGED = 13;
    public const int TK_DLPACK_INT = 0;
    public const int TK_DLPACK_FLOAT = 2;
    public const int TK_DLPACK_BFLOAT = 4;
    public const int TK_DLPACK_VERSION_MAJOR = 1;
    public const int TK_DLPACK_VERSION_MINOR = 0;
    public const ulong TK_DLPACK_FLAG_READ_ONLY = 1;

    // ---- tk_pool_mode ----
    public const int TK_POOL_WINDOW_AVG = 0;
    public const int TK_POOL_WINDOW_MAX = 1;
    public const int TK_POOL_ADAPTIVE_AVG = 2;
    public const int TK_POOL_ADAPTIVE_MAX = 3;
    public const int TK_POOL_BILINEAR = 4;

    // ---- tk_merge_mode ----
    public const int TK_MERGE_WEIGHTED_MEAN = 0;
    public const int TK_MERGE_MEAN = 1;
    public const int TK_MERGE_SUM = 2;
    public const int TK_MERGE_AMAX = 3;
    public const int TK_MERGE_DROP = 4;

    // ---- tk_merge_order ----
    public const int TK_MERGE_ORDER_POSITIONAL = 0;
    public const int TK_MERGE_ORDER_TOME = 1;

    // ---- tk_reduce ----
    public const int TK_REDUCE_MEAN = 0;
    public const int TK_REDUCE_SUM = 1;

    // ---- tk_distance ----
    public const int TK_DISTANCE_COSINE = 0;
    public const int TK_DISTANCE_L2 = 1;

    // ---- tk_first_center ----
    public const int TK_FIRST_MOST_ISOLATED = 0;
    public const int TK_FIRST_INDEX = 1;
    public const int TK_FIRST_SCORE = 2;

    // ---- tk_diversity_objective ----
    public const int TK_DIVERSITY_MAX_MIN = 0;
    public const int TK_DIVERSITY_MAX_SUM = 1;

    // ---- tk_dpp_weighting ----
    public const int TK_DPP_WEIGHT_RELEVANCE = 0;
    public const int TK_DPP_WEIGHT_EXP = 1;

    // ---- tk_kmeans_init ----
    public const int TK_KMEANS_INIT_PLUS_PLUS = 0;
    public const int TK_KMEANS_INIT_GIVEN = 1;

    // ---- Version ----

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_version();

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern byte* tk_version_string();

    // ---- Status and errors ----

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern byte* tk_status_name(int status);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern byte* tk_last_error();

    // ---- Tensors ----

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_dtype_size(int dtype);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_struct_layout(byte* struct_name, byte* field, ulong* value);

    // ---- CPU threads ----

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_set_num_threads(int num_threads);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_get_num_threads();

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern byte* tk_cpu_isa();

    // ---- CUDA devices, streams and memory ----

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_cuda_is_built();

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_cuda_device_count(int* count);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_cuda_device_name(int ordinal, byte* buffer, int capacity);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_cuda_device_capability(int ordinal, int* major, int* minor);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern byte* tk_cuda_architectures();

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_cuda_capability_supported(int major, int minor, int* supported);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_cuda_stream_create(int ordinal, IntPtr* stream);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_cuda_stream_destroy(IntPtr stream);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_cuda_stream_synchronize(IntPtr stream);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_cuda_malloc(int ordinal, ulong bytes, void** ptr);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_cuda_free(int ordinal, void* ptr);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_cuda_memcpy_async(void* dst, void* src, ulong bytes, IntPtr stream);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_cuda_memset_async(void* dst, int value, ulong bytes, IntPtr stream);

    // ---- DLPack ----

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_tensor_from_dlpack(TkDlpackTensor* dl_tensor, TkTensor* tensor);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_tensor_from_dlpack_managed(TkDlpackManagedTensor* managed, TkTensor* tensor);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_tensor_from_dlpack_versioned(TkDlpackManagedTensorVersioned* managed, int writable, TkTensor* tensor);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_tensor_to_dlpack(TkTensor* tensor, TkDlpackManagedTensor** managed);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_tensor_to_dlpack_versioned(TkTensor* tensor, int read_only, TkDlpackManagedTensorVersioned** managed);

    // ---- 1. Spatio-temporal pooling ----

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_pool_output_shape(TkPoolParams* @params, long* input_shape, long* output_shape);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_pool_workspace_size(TkPoolParams* @params, TkTensor* x, TkTensor* @out, ulong* bytes);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_pool(TkPoolParams* @params, TkTensor* x, TkTensor* @out, void* workspace, ulong workspace_bytes, IntPtr stream);

    // ---- 2. Bipartite token merging ----

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_merge_output_tokens(TkMergeParams* @params, long tokens, long* effective_r, long* output_tokens);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_merge_match(TkMergeParams* @params, TkTensor* metric, TkTensor* dst, TkTensor* best, void* workspace, ulong workspace_bytes, IntPtr stream);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_merge_workspace_size(TkMergeParams* @params, TkTensor* metric, TkTensor* x, ulong* bytes);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_merge(TkMergeParams* @params, TkTensor* metric, TkTensor* x, TkTensor* size, TkTensor* @out, TkTensor* out_size, TkTensor* source_map, TkTensor* merge_count, void* workspace, ulong workspace_bytes, IntPtr stream);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_unmerge(TkTensor* y, TkTensor* source_map, TkTensor* @out, IntPtr stream);

    // ---- 3. Attention-based pruning ----

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_attention_importance(TkImportanceParams* @params, TkTensor* attn, TkTensor* @out, IntPtr stream);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_qk_importance_workspace_size(TkImportanceParams* @params, TkTensor* q, TkTensor* k, TkTensor* lse, ulong* bytes);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_qk_importance(TkImportanceParams* @params, TkTensor* q, TkTensor* k, TkTensor* lse, TkTensor* @out, void* workspace, ulong workspace_bytes, IntPtr stream);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_topk_workspace_size(TkTopkParams* @params, TkTensor* scores, ulong* bytes);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_topk(TkTopkParams* @params, TkTensor* scores, TkTensor* lengths, TkTensor* item_k, TkTensor* indices, TkTensor* ranked, void* workspace, ulong workspace_bytes, IntPtr stream);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_gather(TkTensor* x, TkTensor* indices, TkTensor* @out, IntPtr stream);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_visionzip_contextual_workspace_size(int contextual, TkTensor* metric, TkTensor* x, TkTensor* kept, ulong* bytes);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_visionzip_contextual(int contextual, TkTensor* metric, TkTensor* x, TkTensor* kept, TkTensor* @out, void* workspace, ulong workspace_bytes, IntPtr stream);

    // ---- 4. Diversity selection ----

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_diversity_workspace_size(TkDiversityParams* @params, TkTensor* x, ulong* bytes);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_diversity_select(TkDiversityParams* @params, TkTensor* x, TkTensor* lengths, TkTensor* item_k, TkTensor* first_index, TkTensor* first_score, TkTensor* order, TkTensor* sorted, void* workspace, ulong workspace_bytes, IntPtr stream);

    // ---- 7. Query relevance ----

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_query_relevance(TkRelevanceParams* @params, TkTensor* visual, TkTensor* text, TkTensor* lengths, TkTensor* text_lengths, TkTensor* relevance, IntPtr stream);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_conditional_dpp_workspace_size(TkDppParams* @params, TkTensor* x, ulong* bytes);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_conditional_dpp_select(TkDppParams* @params, TkTensor* x, TkTensor* relevance, TkTensor* lengths, TkTensor* item_k, TkTensor* order, TkTensor* sorted, void* workspace, ulong workspace_bytes, IntPtr stream);

    // ---- 6. Clustering: k-means ----

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_kmeans_workspace_size(TkKmeansParams* @params, TkTensor* x, ulong* bytes);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_kmeans(TkKmeansParams* @params, TkTensor* x, TkTensor* lengths, TkTensor* item_clusters, TkTensor* initial_centres, TkTensor* centres, TkTensor* assignment, TkTensor* sizes, TkTensor* iterations, void* workspace, ulong workspace_bytes, IntPtr stream);

    // ---- 5. Temporal redundancy in video ----

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_temporal_similarity(TkTensor* x, TkTensor* reference, TkTensor* @out, IntPtr stream);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_segment_similarity(TkTensor* x, TkTensor* segment_lengths, TkTensor* @out, IntPtr stream);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_evs_retained_tokens(TkEvsParams* @params, long frames, long* retained);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_evs_workspace_size(TkEvsParams* @params, TkTensor* x, ulong* bytes);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_evs(TkEvsParams* @params, TkTensor* x, TkTensor* @out, TkTensor* indices, TkTensor* positions, TkTensor* mask, void* workspace, ulong workspace_bytes, IntPtr stream);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_dycoke_retained_tokens(TkDycokeParams* @params, long frames, long* retained);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_dycoke_workspace_size(TkDycokeParams* @params, TkTensor* x, ulong* bytes);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_dycoke_ttm(TkDycokeParams* @params, TkTensor* x, TkTensor* @out, TkTensor* indices, TkTensor* positions, TkTensor* mask, void* workspace, ulong workspace_bytes, IntPtr stream);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_vidcom2_retained_tokens(TkVidcom2Params* @params, long frames, long* retained);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_vidcom2_workspace_size(TkVidcom2Params* @params, TkTensor* x, ulong* bytes);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_vidcom2(TkVidcom2Params* @params, TkTensor* x, TkTensor* @out, TkTensor* indices, TkTensor* positions, TkTensor* mask, void* workspace, ulong workspace_bytes, IntPtr stream);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_framefusion_workspace_size(TkFramefusionParams* @params, TkTensor* x, ulong* bytes);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_framefusion_merge(TkFramefusionParams* @params, TkTensor* x, TkTensor* @out, TkTensor* out_size, TkTensor* source_map, TkTensor* merge_count, void* workspace, ulong workspace_bytes, IntPtr stream);

    // ---- 6. Clustering and aggregation ----

    // ---- tk_cluster_merge_mode ----
    public const int TK_CLUSTER_MERGE_MEAN = 0;
    public const int TK_CLUSTER_MERGE_SIZE_WEIGHTED = 1;
    public const int TK_CLUSTER_MERGE_CENTRE_BLEND = 2;
    public const int TK_CLUSTER_MERGE_CENTRE_COUNT_BLEND = 3;

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_dpc_knn_workspace_size(TkDpcKnnParams* @params, TkTensor* x, ulong* bytes);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_dpc_knn(TkDpcKnnParams* @params, TkTensor* x, TkTensor* lengths, TkTensor* item_clusters, TkTensor* centres, TkTensor* assignment, TkTensor* density, TkTensor* delta, void* workspace, ulong workspace_bytes, IntPtr stream);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_cluster_merge(TkClusterMergeParams* @params, TkTensor* x, TkTensor* assignment, TkTensor* sizes, TkTensor* centres, TkTensor* @out, TkTensor* out_size, IntPtr stream);

    [DllImport(LibraryName, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
    public static extern int tk_cluster_assign(TkClusterAssignParams* @params, TkTensor* x, TkTensor* lengths, TkTensor* centres, TkTensor* assignment, IntPtr stream);
}
