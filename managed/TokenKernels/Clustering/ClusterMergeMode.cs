namespace TokenKernels;

/// <summary>How <see cref="ClusterAggregation"/> makes one row of a cluster's members (<c>tk_cluster_merge_mode</c>).</summary>
public enum ClusterMergeMode
{
    /// <summary>The members' mean: the cluster-level aggregation of "Token Sequence Compression for Efficient Multimodal Computing".</summary>
    Mean = 0,

    /// <summary>The mean weighted by the token sizes (ToMe's sizes); needs sizes.</summary>
    SizeWeighted = 1,

    /// <summary>HoliTom's beta x x[centre] + (1 - beta) x the mean of the other members (x[centre] alone without any); needs centres.</summary>
    CentreBlend = 2,

    /// <summary>
    /// FastVID's DTM (<c>fastvid_llavavideo</c> <c>modeling_qwen2.py</c>): w x x[centre] + (1 - w) x the mean of the other members,
    /// w = max(1 / (n + 1), beta) with n their count (x[centre] alone without any); needs centres.
    /// </summary>
    CentreCountBlend = 3,
}
