using System;
using System.Linq;
using NUnit.Framework;
using TokenKernels.Tests.Reference;

namespace TokenKernels.Tests;

/// <summary>DPC-kNN, cluster aggregation and the cluster-and-aggregate recipe on host memory against <see cref="ClusteringReference"/>.</summary>
public class ClusteringHostTests
{
    /// <summary>Tokens around a few random points with a spread per token (float32 values, also as doubles).</summary>
    private static (float[] X, double[] Exact) Clustered(Random random, int batch, int tokens, int channels)
    {
        var x = new float[batch * tokens * channels];
        for (int b = 0; b < batch; b++)
        {
            int groups = 1 + random.Next(6);
            var points = Enumerable.Range(0, groups * channels).Select(_ => random.NextDouble() * 4 - 2).ToArray();
            for (int i = 0; i < tokens; i++)
            {
                int g = random.Next(groups);
                double spread = 0.05 + random.NextDouble();
                for (int c = 0; c < channels; c++)
                {
                    double normal = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
                    x[(b * tokens + i) * channels + c] = (float)(points[g * channels + c] + spread * normal);
                }
            }
        }
        return (x, x.Select(v => (double)v).ToArray());
    }

    private static (float[] X, ClusteringReference.DpcResult Reference) Draw(Random random, int batch, int tokens, int channels, int clusters, int neighbours)
    {
        for (int attempt = 0; attempt < 40; attempt++)
        {
            (float[] x, double[] exact) = Clustered(random, batch, tokens, channels);
            ClusteringReference.DpcResult reference = ClusteringReference.DpcKnn(exact, batch, tokens, channels, clusters, neighbours);
            if (!reference.NearTie) return (x, reference);
        }
        throw new InvalidOperationException("no draw without a near-tie in 40 attempts");
    }

    [TestCase(3, 37, 1, 5, 5)]
    [TestCase(2, 50, 19, 7, 3)]
    [TestCase(4, 64, 48, 8, 7)]
    [TestCase(2, 29, 7, 29, 1)]
    [TestCase(2, 41, 33, 1, 5)]
    public void DpcKnnMatchesTheReference(int batch, int tokens, int channels, int clusters, int neighbours)
    {
        var random = new Random(PruningHostTests.HashSeed($"dpc {batch} {tokens} {channels} {clusters} {neighbours}"));
        (float[] x, ClusteringReference.DpcResult reference) = Draw(random, batch, tokens, channels, clusters, neighbours);
        var xTensor = new ReadOnlyHostTensor<float>(x, new TensorShape(batch, tokens, channels));
        var centres = new int[batch * clusters];
        var assignment = new int[batch * tokens];
        var density = new float[batch * tokens];
        var delta = new float[batch * tokens];
        var workspace = new byte[DensityPeaksClustering.GetWorkspaceSize(xTensor, clusters, neighbours)];
        DensityPeaksClustering.Cluster(xTensor, new HostTensor<int>(centres, new TensorShape(batch, clusters)),
            new HostTensor<int>(assignment, new TensorShape(batch, tokens)), clusters, neighbours,
            new HostTensor<float>(density, new TensorShape(batch, tokens)), new HostTensor<float>(delta, new TensorShape(batch, tokens)),
            workspace: workspace);
        (int[] allocatedCentres, int[] allocatedAssignment) = DensityPeaksClustering.Cluster(xTensor, clusters, neighbours);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(centres, Is.EqualTo(reference.Centres));
            Assert.That(assignment, Is.EqualTo(reference.Assignment));
            Assert.That(allocatedCentres, Is.EqualTo(reference.Centres));
            Assert.That(allocatedAssignment, Is.EqualTo(reference.Assignment));
            for (int i = 0; i < density.Length; i++)
            {
                Assert.That(density[i], Is.EqualTo(reference.Density[i]).Within(1e-5 + 1e-4 * reference.Density[i]), $"density {i}");
                Assert.That(delta[i], Is.EqualTo(reference.Delta[i]).Within(1e-5 + 1e-4 * reference.Delta[i]), $"delta {i}");
            }
        }
    }

    [Test]
    public void LengthsAndItemClustersLimitEachItem()
    {
        var random = new Random(PruningHostTests.HashSeed("dpc lengths"));
        (float[] x, _) = Clustered(random, 2, 20, 5);
        var xTensor = new ReadOnlyHostTensor<float>(x, new TensorShape(2, 20, 5));
        (int[] centres, int[] assignment) = DensityPeaksClustering.Cluster(xTensor, 4, 5,
            lengths: new ReadOnlyHostTensor<int>(new[] { 20, 7 }, new TensorShape(2)),
            itemClusters: new ReadOnlyHostTensor<int>(new[] { 4, 2 }, new TensorShape(2)));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(centres.Skip(4).Skip(2), Is.EqualTo(new[] { -1, -1 }));
            Assert.That(assignment.Skip(20 + 7), Is.All.EqualTo(-1));
            Assert.That(assignment.Skip(20).Take(7), Is.All.InRange(0, 1));
            Assert.That(centres.Skip(4).Take(2), Is.All.InRange(0, 6));
        }
    }

    [TestCase(ClusterMergeMode.Mean)]
    [TestCase(ClusterMergeMode.SizeWeighted)]
    [TestCase(ClusterMergeMode.CentreBlend)]
    public void MergeMatchesTheReference(ClusterMergeMode mode)
    {
        const int batch = 3, tokens = 23, channels = 17, clusters = 6;
        var random = new Random(PruningHostTests.HashSeed("merge " + mode));
        float[] x = Enumerable.Range(0, batch * tokens * channels).Select(_ => (float)(random.NextDouble() * 6 - 3)).ToArray();
        float[] sizes = Enumerable.Range(0, batch * tokens).Select(_ => (float)(0.5 + random.NextDouble() * 3)).ToArray();
        int[] assignment = Enumerable.Range(0, batch * tokens).Select(_ => random.Next(-1, clusters - 1)).ToArray();  // the last cluster stays empty
        var centres = new int[batch * clusters];
        for (int b = 0; b < batch; b++)
        {
            for (int j = 0; j < clusters; j++)
            {
                int[] members = Enumerable.Range(0, tokens).Where(i => assignment[b * tokens + i] == j).ToArray();
                centres[b * clusters + j] = members.Length == 0 ? -1 : members[random.Next(members.Length)];
            }
        }
        bool withSizes = mode != ClusterMergeMode.Mean;
        (double[] expected, double[] expectedSize) = ClusteringReference.Merge(
            x.Select(v => (double)v).ToArray(), assignment, withSizes ? sizes.Select(v => (double)v).ToArray() : null,
            centres, batch, tokens, channels, clusters, mode, 0.6f);
        (float[] merged, float[] outSize) = ClusterAggregation.Merge(
            new ReadOnlyHostTensor<float>(x, new TensorShape(batch, tokens, channels)),
            new ReadOnlyHostTensor<int>(assignment, new TensorShape(batch, tokens)), clusters, mode, 0.6f,
            withSizes ? new ReadOnlyHostTensor<float>(sizes, new TensorShape(batch, tokens)) : default,
            new ReadOnlyHostTensor<int>(centres, new TensorShape(batch, clusters)));
        using (Assert.EnterMultipleScope())
        {
            for (int i = 0; i < merged.Length; i++)
                Assert.That(merged[i], Is.EqualTo(expected[i]).Within(1e-5 * (1 + Math.Abs(expected[i]))), $"out {i}");
            for (int i = 0; i < outSize.Length; i++)
                Assert.That(outSize[i], Is.EqualTo(expectedSize[i]).Within(1e-5 * (1 + expectedSize[i])), $"size {i}");
            Assert.That(Enumerable.Range(0, batch).Select(b => outSize[b * clusters + clusters - 1]), Is.All.EqualTo(0f), "the empty cluster");
        }
    }

    [TestCase(2, 45, 9, 5)]
    [TestCase(3, 61, 16, 8)]
    public void KMeansFromDensityPeaksIsKMeansStartedAtTheDpcCentres(int batch, int tokens, int channels, int clusters)
    {
        var random = new Random(PruningHostTests.HashSeed($"kmeans from dpc {batch} {tokens} {channels} {clusters}"));
        var options = new KMeansOptions(clusters) { MaxIterations = 20 };
        for (int attempt = 0; ; attempt++)
        {
            Assert.That(attempt, Is.LessThan(40), "no draw without a near-tie in 40 attempts");
            (float[] x, ClusteringReference.DpcResult dpc) = Draw(random, batch, tokens, channels, clusters, 5);
            double[] exact = x.Select(v => (double)v).ToArray();
            var seeds = new double[batch * clusters * channels];
            for (int b = 0; b < batch; b++)
                for (int j = 0; j < clusters; j++)
                    Array.Copy(exact, (b * tokens + dpc.Centres[b * clusters + j]) * channels, seeds, (b * clusters + j) * channels, channels);
            KMeansReferenceResult expected = KMeansReference.Cluster(exact, batch, tokens, channels, options with { Init = KMeansInit.Given }, seeds);
            if (expected.Margin < 1e-4)
            {
                continue;
            }
            (float[] centres, int[] assignment, float[] sizes, int[] iterations) =
                ClusterRecipes.KMeansFromDensityPeaks(new ReadOnlyHostTensor<float>(x, new TensorShape(batch, tokens, channels)), options);
            using (Assert.EnterMultipleScope())
            {
                Assert.That(assignment, Is.EqualTo(expected.Assignment), "assignment");
                Assert.That(iterations, Is.EqualTo(expected.Iterations), "iterations");
                Assert.That(sizes.Select(v => (double)v), Is.EqualTo(expected.Sizes), "sizes");
                for (int i = 0; i < centres.Length; i++)
                    Assert.That(centres[i], Is.EqualTo(expected.Centres[i]).Within(2e-4 * (1 + Math.Abs(expected.Centres[i]))), "centre " + i);
            }
            return;
        }
    }

    [Test]
    public void KMeansFromDensityPeaksTakesHalfPrecisionTokens()
    {
        const int batch = 2, tokens = 33, channels = 6, clusters = 4;
        var random = new Random(PruningHostTests.HashSeed("kmeans from dpc half"));
        (float[] x, _) = Draw(random, batch, tokens, channels, clusters, 5);
        var shape = new TensorShape(batch, tokens, channels);
        BFloat16[] rounded = x.Select(v => (BFloat16)v).ToArray();
        var options = new KMeansOptions(clusters) { MaxIterations = 5 };
        (float[] centres, int[] assignment, _, _) = ClusterRecipes.KMeansFromDensityPeaks(new ReadOnlyHostTensor<BFloat16>(rounded, shape), options);
        (int[] dpcCentres, _) = DensityPeaksClustering.Cluster(new ReadOnlyHostTensor<BFloat16>(rounded, shape), clusters);
        var seeds = new float[batch * clusters * channels];
        for (int b = 0; b < batch; b++)
            for (int j = 0; j < clusters; j++)
                for (int c = 0; c < channels; c++)
                    seeds[(b * clusters + j) * channels + c] = rounded[(b * tokens + dpcCentres[b * clusters + j]) * channels + c];
        (float[] direct, int[] directAssignment, _, _) = KMeans.Cluster(new ReadOnlyHostTensor<BFloat16>(rounded, shape), options with { Init = KMeansInit.Given },
            new ReadOnlyHostTensor<float>(seeds, new TensorShape(batch, clusters, channels)));
        Assert.That((centres, assignment), Is.EqualTo((direct, directAssignment)));
        Assert.Throws<ArgumentException>(() => ClusterRecipes.KMeansFromDensityPeaks(new ReadOnlyHostTensor<BFloat16>(rounded, shape), new KMeansOptions(0)));
    }

    [Test]
    public void ClusterAndAggregateGivesEachClustersMeanAndASourceMap()
    {
        const int batch = 2, tokens = 40, channels = 12, clusters = 6;
        var random = new Random(PruningHostTests.HashSeed("cluster and aggregate"));
        (float[] x, ClusteringReference.DpcResult reference) = Draw(random, batch, tokens, channels, clusters, 5);
        var xTensor = new ReadOnlyHostTensor<float>(x, new TensorShape(batch, tokens, channels));
        ClusterAggregateResult<float> result = ClusterRecipes.ClusterAndAggregate(xTensor, clusters);
        (double[] expected, double[] expectedSize) = ClusteringReference.Merge(
            x.Select(v => (double)v).ToArray(), reference.Assignment, null, null, batch, tokens, channels, clusters, ClusterMergeMode.Mean, 0);
        var unmerged = new float[x.Length];
        TokenMerging.Unmerge(new ReadOnlyHostTensor<float>(result.Merged, result.MergedShape),
            new ReadOnlyHostTensor<int>(result.SourceMap, new TensorShape(batch, tokens)),
            new HostTensor<float>(unmerged, new TensorShape(batch, tokens, channels)));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(result.SourceMap, Is.EqualTo(reference.Assignment));
            Assert.That(result.Centres, Is.EqualTo(reference.Centres));
            Assert.That(result.Sizes.Select(v => (double)v), Is.EqualTo(expectedSize));
            for (int i = 0; i < expected.Length; i++)
                Assert.That(result.Merged[i], Is.EqualTo(expected[i]).Within(1e-5 * (1 + Math.Abs(expected[i]))), $"merged {i}");
            int token = 17, cluster = result.SourceMap[token];
            Assert.That(unmerged.Skip(token * channels).Take(channels), Is.EqualTo(result.Merged.Skip(cluster * channels).Take(channels)));
        }
    }

    [Test]
    public void HoliTomMergeBlendsEachCentreWithItsClusterInPositionOrder()
    {
        const int batch = 2, tokens = 36, channels = 10;
        const double ratio = 0.25;  // 9 clusters, k = min(7, 9)
        var random = new Random(PruningHostTests.HashSeed("holitom"));
        (float[] x, ClusteringReference.DpcResult reference) = Draw(random, batch, tokens, channels, 9, 7);
        ClusterAggregateResult<float> result = ClusterRecipes.HoliTomMerge(new ReadOnlyHostTensor<float>(x, new TensorShape(batch, tokens, channels)), ratio, 0.6f);
        // The reference's clusters renumbered by centre position, then HoliTom's blend.
        var centres = new int[batch * 9];
        var assignment = new int[batch * tokens];
        for (int b = 0; b < batch; b++)
        {
            int[] byPosition = Enumerable.Range(0, 9).OrderBy(j => reference.Centres[b * 9 + j]).ToArray();
            for (int rank = 0; rank < 9; rank++) centres[b * 9 + rank] = reference.Centres[b * 9 + byPosition[rank]];
            for (int i = 0; i < tokens; i++) assignment[b * tokens + i] = Array.IndexOf(byPosition, reference.Assignment[b * tokens + i]);
        }
        (double[] expected, double[] expectedSize) = ClusteringReference.Merge(
            x.Select(v => (double)v).ToArray(), assignment, null, centres, batch, tokens, channels, 9, ClusterMergeMode.CentreBlend, 0.6f);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(result.Centres, Is.EqualTo(centres));
            Assert.That(result.SourceMap, Is.EqualTo(assignment));
            Assert.That(result.Sizes.Select(v => (double)v), Is.EqualTo(expectedSize));
            for (int i = 0; i < expected.Length; i++)
                Assert.That(result.Merged[i], Is.EqualTo(expected[i]).Within(1e-5 * (1 + Math.Abs(expected[i]))), $"merged {i}");
        }
    }

    [Test]
    public void ArgumentsAreCheckedBeforeTheNativeCall()
    {
        var x = new float[2 * 5 * 3];
        var shape = new TensorShape(2, 5, 3);
        var zeros = new int[10];
        var twos = Enumerable.Repeat(2, 10).ToArray();
        var itemShape = new TensorShape(2, 5);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => DensityPeaksClustering.Cluster(new ReadOnlyHostTensor<float>(x, shape), 6),
                Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("clusters"));
            Assert.That(() => DensityPeaksClustering.Cluster(new ReadOnlyHostTensor<float>(x, shape), 2, 0),
                Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("neighbours"));
            Assert.That(() => ClusterAggregation.Merge(new ReadOnlyHostTensor<float>(x, shape), new ReadOnlyHostTensor<int>(zeros, itemShape), 2, ClusterMergeMode.CentreBlend, 0.5f),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("centres"));
            Assert.That(() => ClusterAggregation.Merge(new ReadOnlyHostTensor<float>(x, shape), new ReadOnlyHostTensor<int>(zeros, itemShape), 2, ClusterMergeMode.SizeWeighted),
                Throws.ArgumentException.With.Property("ParamName").EqualTo("sizes"));
            Assert.That(() => ClusterAggregation.Merge(new ReadOnlyHostTensor<float>(x, shape), new ReadOnlyHostTensor<int>(twos, itemShape), 2),
                Throws.InstanceOf<TokenKernelsException>().With.Message.Contains("assignment[0, 0]"));
        }
    }
}
