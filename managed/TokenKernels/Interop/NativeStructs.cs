using System.Runtime.InteropServices;

namespace TokenKernels.Interop;

/// <summary>
/// Mirror of <c>tk_tensor</c>: a view of memory the caller owns. Field names are the C names in
/// PascalCase; the conformance tests compare every offset with <c>tk_struct_layout</c>.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct TkTensor
{
    public void* Data;
    public int Dtype;
    public int DeviceKind;
    public int DeviceOrdinal;
    public int Rank;
    public fixed long Shape[NativeMethods.TK_MAX_RANK];
    public fixed long Strides[NativeMethods.TK_MAX_RANK];
}

/// <summary>Mirror of <c>tk_pool_params</c>; each array is (time, height, width).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct TkPoolParams
{
    public int Mode;
    public fixed int Kernel[3];
    public fixed int Stride[3];
    public fixed int OutputSize[3];
}

/// <summary>Mirror of <c>tk_merge_params</c>; the flags are 0 or 1, mode and order the <c>tk_merge_mode</c> / <c>tk_merge_order</c> values.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TkMergeParams
{
    public int R;
    public int UseThreshold;
    public float Threshold;
    public int ProtectFirst;
    public int ProtectSecond;
    public int Mode;
    public int Order;
}

/// <summary>
/// Mirror of <c>tk_importance_params</c>: half-open query and key ranges, the <c>tk_reduce</c> values of both
/// reductions, and the softmax scale and causal flag (0 or 1) that only <c>tk_qk_importance</c> reads.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TkImportanceParams
{
    public long QueryBegin;
    public long QueryEnd;
    public long KeyBegin;
    public long KeyEnd;
    public int HeadReduce;
    public int QueryReduce;
    public float Scale;
    public int Causal;
}

/// <summary>Mirror of <c>tk_topk_params</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TkTopkParams
{
    public int K;
}

/// <summary>Mirror of <c>tk_diversity_params</c>: k and the <c>tk_distance</c>, <c>tk_first_center</c> and <c>tk_diversity_objective</c> values.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TkDiversityParams
{
    public int K;
    public int Distance;
    public int First;
    public int Objective;
}

/// <summary>Mirror of <c>tk_relevance_params</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TkRelevanceParams
{
    public int Negate;
}

/// <summary>Mirror of <c>tk_dpp_params</c>: k, the <c>tk_dpp_weighting</c> value and theta.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TkDppParams
{
    public int K;
    public int Weighting;
    public float Theta;
}

/// <summary>Mirror of <c>tk_kmeans_params</c>: the seed, sklearn's tol, K, max_iter and the <c>tk_kmeans_init</c> value.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TkKmeansParams
{
    public ulong Seed;
    public double Tolerance;
    public int Clusters;
    public int MaxIterations;
    public int Init;
}

/// <summary>Mirror of <c>tk_evs_params</c>: q and the frame grid.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TkEvsParams
{
    public double PruningRate;
    public int Height;
    public int Width;
}

/// <summary>Mirror of <c>tk_dycoke_params</c>: the merging ratio and the frame grid.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TkDycokeParams
{
    public double MergingRatio;
    public int Height;
    public int Width;
}

/// <summary>Mirror of <c>tk_vidcom2_params</c>: the retention ratio, channel ratio, softmax temperature and the frame grid.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TkVidcom2Params
{
    public double RetentionRatio;
    public double ChannelRatio;
    public double Temperature;
    public int Height;
    public int Width;
}

/// <summary>Mirror of <c>tk_dpc_knn_params</c>: the centres per item and the k of the kNN density.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TkDpcKnnParams
{
    public int Clusters;
    public int Neighbours;
}

/// <summary>Mirror of <c>tk_cluster_merge_params</c>: the clusters per item, a <c>tk_cluster_merge_mode</c> and the centre's weight.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TkClusterMergeParams
{
    public int Clusters;
    public int Mode;
    public float Beta;
}

/// <summary>Mirror of <c>tk_cluster_assign_params</c>: the centre columns per item.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TkClusterAssignParams
{
    public int Clusters;
}

/// <summary>Mirror of <c>tk_framefusion_params</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TkFramefusionParams
{
    public float SimilarityThreshold;
    public int MaxMerges;
}

/// <summary>
/// Room for <c>TK_MAX_RANK</c> sizes, for the shape arguments of native calls. A local of this type is used rather
/// than <c>stackalloc</c> because a method that stackallocs makes its P/Invoke calls several times slower
/// (measured: 190 ns against 30 ns per <c>tk_pool_output_shape</c> call on .NET 10).
/// </summary>
internal unsafe struct NativeDims
{
    public fixed long Values[NativeMethods.TK_MAX_RANK];
}
