using System;
using System.Linq;
using System.Runtime.InteropServices;

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

    /// <summary>
    /// HoliTom's density merging of one frame's tokens (LightCompress <c>holitom.py</c>, <c>merge_tokens_by_density</c>):
    /// K = round(N x <paramref name="retainRatio"/>) DPC-kNN centres with k = min(<paramref name="neighbours"/>, K), taken in
    /// position order; every other token joins its nearest centre; each cluster becomes beta x its centre + (1 - beta) x the
    /// mean of its other tokens (the centre alone when it has none). Returns the merged tokens in position order, the
    /// centres' positions, the cluster sizes and the source map.
    /// </summary>
    /// <remarks>HoliTom breaks density ties with random noise (here: the lower index) and assigns a token equidistant from two
    /// centres to the one of lower position (here: the one of higher score); both differ only on exact ties.</remarks>
    /// <param name="x">Tokens <c>[B, N, C]</c> (float32, float16 or bfloat16), one frame per item.</param>
    /// <param name="retainRatio">The fraction of tokens kept, in (0, 1].</param>
    /// <param name="beta">HoliTom's Beta, the centre's weight.</param>
    /// <param name="neighbours">HoliTom's K, the k of the density before the min with the cluster count (7 in its code).</param>
    /// <returns>The merged tokens <c>[B, K, C]</c> in position order, with the centres' positions as <see cref="ClusterAggregateResult{T}.Centres"/>.</returns>
    /// <exception cref="ArgumentException">A wrong rank or element type, or a ratio that keeps no token or more than N.</exception>
    public static ClusterAggregateResult<T> HoliTomMerge<T>(ReadOnlyHostTensor<T> x, double retainRatio, float beta, int neighbours = 7)
        where T : unmanaged
    {
        if (x.Shape.Rank != 3)
        {
            throw new ArgumentException("HoliTom's merging takes x [B, N, C] (rank 3), got shape " + x.Shape + ".", nameof(x));
        }
        int batch = checked((int)x.Shape[0]), tokens = checked((int)x.Shape[1]);
        int clusters = (int)Math.Round(tokens * retainRatio, MidpointRounding.ToEven);  // Python's round
        if (!(retainRatio > 0) || clusters < 1 || clusters > tokens)
        {
            throw new ArgumentOutOfRangeException(nameof(retainRatio), retainRatio, "round(N x retainRatio) must lie in [1, N] = [1, " + tokens + "].");
        }
        (int[] centres, int[] assignment) = DensityPeaksClustering.Cluster(x, clusters, Math.Min(neighbours, clusters));
        // HoliTom sorts the centres by position: renumber the clusters in that order.
        var renumber = new int[clusters];
        for (int b = 0; b < batch; b++)
        {
            int[] byPosition = Enumerable.Range(0, clusters).OrderBy(j => centres[b * clusters + j]).ToArray();
            var sorted = new int[clusters];
            for (int rank = 0; rank < clusters; rank++)
            {
                renumber[byPosition[rank]] = rank;
                sorted[rank] = centres[b * clusters + byPosition[rank]];
            }
            Array.Copy(sorted, 0, centres, b * clusters, clusters);
            for (int i = 0; i < tokens; i++)
            {
                assignment[b * tokens + i] = renumber[assignment[b * tokens + i]];
            }
        }
        var assignmentTensor = new ReadOnlyHostTensor<int>(assignment, new TensorShape(batch, tokens));
        var centresTensor = new ReadOnlyHostTensor<int>(centres, new TensorShape(batch, clusters));
        (T[] merged, float[] sizes) = ClusterAggregation.Merge(x, assignmentTensor, clusters, ClusterMergeMode.CentreBlend, beta, centres: centresTensor);
        return new ClusterAggregateResult<T>(merged, sizes, assignment, centres, new TensorShape(batch, clusters, x.Shape[2]));
    }

    /// <summary>
    /// k-means seeded by density peaks, as the issue of batched clustering asks beside k-means++: each item's K DPC-kNN centres
    /// (LightCompress's algorithm, <paramref name="neighbours"/> nearest) become its initial centres (scikit-learn's <c>init</c>
    /// array), then Lloyd's iterations run with the options' cap and tolerance. Deterministic without a seed; the DPC-kNN centres
    /// start k-means at the density peaks instead of random draws.
    /// </summary>
    /// <param name="x">Tokens <c>[B, N, C]</c> (float32, float16 or bfloat16).</param>
    /// <param name="options">K, the iteration cap and the tolerance (its initialisation and seed are not read).</param>
    /// <param name="neighbours">k of the DPC-kNN density (LightCompress's default 5).</param>
    /// <returns>The centres <c>[B, K, C]</c>, the assignment <c>[B, N]</c>, the sizes <c>[B, K]</c> and the iterations <c>[B]</c>, as <see cref="KMeans"/> gives them.</returns>
    /// <exception cref="ArgumentException">A wrong rank or element type, or K outside [1, N].</exception>
    public static (float[] Centres, int[] Assignment, float[] Sizes, int[] Iterations) KMeansFromDensityPeaks<T>(
        ReadOnlyHostTensor<T> x, in KMeansOptions options, int neighbours = DensityPeaksClustering.DefaultNeighbours)
        where T : unmanaged
    {
        if (options.Clusters < 1)
        {
            throw new ArgumentException("options asks for K = " + options.Clusters + " clusters; k-means seeded by density peaks needs at least one.", nameof(options));
        }
        (int[] centres, _) = DensityPeaksClustering.Cluster(x, options.Clusters, neighbours);
        (T[] seeds, TensorShape seedShape) = TokenPruning.Gather(x, new ReadOnlyHostTensor<int>(centres, new TensorShape(x.Shape[0], options.Clusters)));
        var seeded = new KMeansOptions(options.Clusters) { MaxIterations = options.MaxIterations, Tolerance = options.Tolerance, Init = KMeansInit.Given };
        return KMeans.Cluster(x, seeded, new ReadOnlyHostTensor<float>(ToSingles(seeds), seedShape));
    }

    private static float[] ToSingles<T>(T[] values)
        where T : unmanaged
    {
        if (typeof(T) == typeof(float))
        {
            return (float[])(object)values;
        }
        var singles = new float[values.Length];
        if (typeof(T) == typeof(Float16))
        {
            ReadOnlySpan<Float16> halves = MemoryMarshal.Cast<T, Float16>(values);
            for (int i = 0; i < singles.Length; i++) singles[i] = halves[i];
        }
        else
        {
            ReadOnlySpan<BFloat16> halves = MemoryMarshal.Cast<T, BFloat16>(values);
            for (int i = 0; i < singles.Length; i++) singles[i] = halves[i];
        }
        return singles;
    }
}
