using System;

namespace TokenKernels;

/// <summary>What <see cref="ClusterRecipes.ClusterAndAggregate{T}(ReadOnlyHostTensor{T}, int, int)"/> returns.</summary>
/// <typeparam name="T">The tokens' element type.</typeparam>
public sealed class ClusterAggregateResult<T>
    where T : unmanaged
{
    internal ClusterAggregateResult(T[] merged, float[] sizes, int[] sourceMap, int[] centres, TensorShape mergedShape)
    {
        Merged = merged;
        Sizes = sizes;
        SourceMap = sourceMap;
        Centres = centres;
        MergedShape = mergedShape;
    }

    /// <summary><c>[B, K, C]</c>: one mean token per cluster, cluster j's row j.</summary>
    public T[] Merged { get; }

    /// <summary><c>[B, K]</c>: the tokens in each cluster, for proportional attention.</summary>
    public float[] Sizes { get; }

    /// <summary><c>[B, N]</c>: each token's cluster, the row of <see cref="Merged"/> it went into (for <see cref="TokenMerging"/>'s unmerge).</summary>
    public int[] SourceMap { get; }

    /// <summary><c>[B, K]</c>: the token at the density peak of each cluster.</summary>
    public int[] Centres { get; }

    /// <summary>The shape of <see cref="Merged"/>.</summary>
    public TensorShape MergedShape { get; }
}

/// <summary>Clustering methods of the token-compression literature, built from <see cref="DensityPeaksClustering"/> and <see cref="ClusterAggregation"/>.</summary>
public static class ClusterRecipes
{
    /// <summary>
    /// Cluster-level aggregation ("Token Sequence Compression for Efficient Multimodal Computing"): each item's tokens clustered by
    /// DPC-kNN into <paramref name="clusters"/> clusters, and each cluster replaced by the mean of its tokens. Returns the merged
    /// tokens, their sizes and the source map with which unmerging gives every token its cluster's mean.
    /// </summary>
    /// <param name="x">Tokens <c>[B, N, C]</c> (float32, float16 or bfloat16).</param>
    /// <param name="clusters">K, in [1, N]: tokens kept per item.</param>
    /// <param name="neighbours">k of the DPC-kNN density (LightCompress's default 5).</param>
    /// <returns>The merged tokens <c>[B, K, C]</c>, sizes and centres <c>[B, K]</c>, and the source map <c>[B, N]</c>.</returns>
    /// <exception cref="ArgumentException">A wrong rank or element type, or clusters outside [1, N].</exception>
    public static ClusterAggregateResult<T> ClusterAndAggregate<T>(ReadOnlyHostTensor<T> x, int clusters, int neighbours = DensityPeaksClustering.DefaultNeighbours)
        where T : unmanaged
    {
        if (clusters < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(clusters), clusters, "Cluster-and-aggregate keeps at least one token per item.");
        }
        (int[] centres, int[] assignment) = DensityPeaksClustering.Cluster(x, clusters, neighbours);
        var assignmentTensor = new ReadOnlyHostTensor<int>(assignment, new TensorShape(x.Shape[0], x.Shape[1]));
        (T[] merged, float[] sizes) = ClusterAggregation.Merge(x, assignmentTensor, clusters);
        return new ClusterAggregateResult<T>(merged, sizes, assignment, centres, new TensorShape(x.Shape[0], clusters, x.Shape[2]));
    }
}
