using System;
using System.Linq;
using NUnit.Framework;

namespace TokenKernels.Tests;

/// <summary>Batched k-means on host memory against <see cref="KMeansReference"/>, the allocating form, the workspace and the errors.</summary>
public class KMeansHostTests
{
    /// <summary>x [B, N, C] around K random blob centres per item (as floats of T), given initial centres near random tokens, lengths and per-item cluster counts.</summary>
    private sealed record Draw<T>(T[] X, double[] Exact, float[] Initial, int[] Lengths, int[] ItemClusters) where T : unmanaged;

    private static Draw<T> DrawInputs<T>(Random random, int batch, int tokens, int channels, int clusters, Func<float, T> convert, Func<T, double> back)
        where T : unmanaged
    {
        double Normal() => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
        var x = new T[batch * tokens * channels];
        for (int b = 0; b < batch; b++)
        {
            double[] blobs = Enumerable.Range(0, clusters * channels).Select(_ => 3 * Normal()).ToArray();
            for (int i = 0; i < tokens; i++)
            {
                int blob = random.Next(clusters);
                for (int c = 0; c < channels; c++)
                {
                    x[(b * tokens + i) * channels + c] = convert((float)(blobs[blob * channels + c] + Normal()));
                }
            }
        }
        double[] exact = x.Select(back).ToArray();
        var initial = new float[batch * clusters * channels];
        for (int b = 0; b < batch; b++)
        {
            for (int k = 0; k < clusters; k++)
            {
                int from = random.Next(tokens);
                for (int c = 0; c < channels; c++)
                {
                    initial[(b * clusters + k) * channels + c] = (float)(exact[(b * tokens + from) * channels + c] + 0.1 * Normal());
                }
            }
        }
        int[] lengths = Enumerable.Range(0, batch).Select(b => b == 0 ? tokens : random.Next(tokens + 1)).ToArray();
        int[] itemClusters = Enumerable.Range(0, batch).Select(_ => random.Next(clusters + 1)).ToArray();
        return new Draw<T>(x, exact, initial, lengths, itemClusters);
    }

    private static void CheckAgainstReference<T>(KMeansOptions options, int batch, int tokens, int channels, bool perItem, int seed, Func<float, T> convert, Func<T, double> back)
        where T : unmanaged
    {
        var random = new Random(seed);
        for (int attempt = 0; attempt < 50; attempt++)
        {
            Draw<T> d = DrawInputs(random, batch, tokens, channels, options.Clusters, convert, back);
            double[]? initialExact = options.Init == KMeansInit.Given ? d.Initial.Select(v => (double)v).ToArray() : null;
            KMeansReferenceResult expected = KMeansReference.Cluster(d.Exact, batch, tokens, channels, options, initialExact,
                perItem ? d.Lengths : null, perItem ? d.ItemClusters : null);
            if (expected.Margin < 1e-4)
            {
                continue;
            }
            var shape = new TensorShape(batch, tokens, channels);
            var centresShape = new TensorShape(batch, options.Clusters, channels);
            var centres = new float[batch * options.Clusters * channels];
            var assignment = new int[batch * tokens];
            var sizes = new float[batch * options.Clusters];
            var iterations = new int[batch];
            KMeans.Cluster(new ReadOnlyHostTensor<T>(d.X, shape), new HostTensor<float>(centres, centresShape), new HostTensor<int>(assignment, new TensorShape(batch, tokens)),
                options,
                options.Init == KMeansInit.Given ? new ReadOnlyHostTensor<float>(d.Initial, centresShape) : default,
                new HostTensor<float>(sizes, new TensorShape(batch, options.Clusters)), new HostTensor<int>(iterations, new TensorShape(batch)),
                perItem ? new ReadOnlyHostTensor<int>(d.Lengths, new TensorShape(batch)) : default,
                perItem ? new ReadOnlyHostTensor<int>(d.ItemClusters, new TensorShape(batch)) : default);
            using (Assert.EnterMultipleScope())
            {
                Assert.That(assignment, Is.EqualTo(expected.Assignment), "assignment");
                Assert.That(iterations, Is.EqualTo(expected.Iterations), "iterations");
                Assert.That(sizes.Select(v => (double)v).ToArray(), Is.EqualTo(expected.Sizes), "sizes");
                for (int i = 0; i < centres.Length; i++)
                {
                    Assert.That(centres[i], Is.EqualTo(expected.Centres[i]).Within(2e-4 * (1 + Math.Abs(expected.Centres[i]))), "centre " + i);
                }
            }
            return;
        }
        Assert.Fail("no draw without near-ties in 50 attempts");
    }

    [TestCase(KMeansInit.Given, 3, 37, 19, 5, false)]
    [TestCase(KMeansInit.Given, 4, 30, 1, 4, true)]
    [TestCase(KMeansInit.PlusPlus, 3, 37, 19, 5, false)]
    [TestCase(KMeansInit.PlusPlus, 5, 40, 8, 8, true)]
    [TestCase(KMeansInit.PlusPlus, 2, 20, 6, 1, true)]
    public void ClusteringMatchesTheReference(KMeansInit init, int batch, int tokens, int channels, int clusters, bool perItem)
    {
        var options = new KMeansOptions(clusters) { Init = init, Seed = 17 };
        int seed = PruningHostTests.HashSeed(init + "," + batch + "," + tokens + "," + clusters);
        CheckAgainstReference<float>(options, batch, tokens, channels, perItem, seed, v => v, v => v);
        CheckAgainstReference<BFloat16>(options with { Tolerance = 0 }, batch, tokens, channels, perItem, seed + 1, v => (BFloat16)v, v => v);
        CheckAgainstReference<Float16>(options with { MaxIterations = 2 }, batch, tokens, channels, perItem, seed + 2, v => (Float16)v, v => v);
    }

    [Test]
    public void RandomStreamIsTheSpecsSplitMix64()
    {
        using (Assert.EnterMultipleScope())
        {
            // The published first output of SplitMix64 seeded with 0 (Vigna's splitmix64.c), which is this step of 0.
            Assert.That(KMeansReference.Mix(0), Is.EqualTo(0xE220A8397B1DCDAFUL));
            Assert.That(KMeansReference.Uniform(0, 0, 0), Is.InRange(0.0, 1.0));
            Assert.That(KMeansReference.Uniform(1, 0, 0), Is.Not.EqualTo(KMeansReference.Uniform(0, 0, 0)));
            Assert.That(KMeansReference.Uniform(0, 1, 0), Is.Not.EqualTo(KMeansReference.Uniform(0, 0, 0)));
        }
    }

    [Test]
    public void AllocatingFormAndWorkspaceEqualTheCallerBufferForm()
    {
        var random = new Random(3);
        Draw<float> d = DrawInputs(random, 6, 33, 7, 4, v => v, v => v);
        var x = new ReadOnlyHostTensor<float>(d.X, new TensorShape(6, 33, 7));
        var options = new KMeansOptions(4) { Seed = 5 };
        (float[] centres, int[] assignment, float[] sizes, int[] iterations) = KMeans.Cluster(x, options);
        var workspace = new byte[KMeans.GetWorkspaceSize(x, options)];
        var centres2 = new float[centres.Length];
        var assignment2 = new int[assignment.Length];
        KMeans.Cluster(x, new HostTensor<float>(centres2, new TensorShape(6, 4, 7)), new HostTensor<int>(assignment2, new TensorShape(6, 33)), options, workspace: workspace);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(centres2, Is.EqualTo(centres));
            Assert.That(assignment2, Is.EqualTo(assignment));
            Assert.That(sizes.Sum(), Is.EqualTo(6 * 33));
            Assert.That(iterations.All(i => i >= 1), Is.True);
        }
    }

    [Test]
    public void OptionsHaveScikitLearnsDefaults()
    {
        var options = new KMeansOptions(16);
        using (Assert.EnterMultipleScope())
        {
            Assert.That((options.Clusters, options.MaxIterations, options.Tolerance, options.Init, options.Seed), Is.EqualTo((16, 300, 1e-4, KMeansInit.PlusPlus, 0UL)));
            Assert.That(options with { Seed = 1 }, Is.Not.EqualTo(options));
            Assert.Throws<ArgumentOutOfRangeException>(() => _ = new KMeansOptions(-1));
            Assert.Throws<ArgumentOutOfRangeException>(() => _ = options with { MaxIterations = 0 });
            Assert.Throws<ArgumentOutOfRangeException>(() => _ = options with { Tolerance = double.NaN });
            Assert.Throws<ArgumentOutOfRangeException>(() => _ = options with { Tolerance = -1 });
        }
    }

    [Test]
    public void InvalidArgumentsAreNamedAndNothingIsWritten()
    {
        var xData = new float[2 * 6 * 3];
        var centres = new float[2 * 3 * 3];
        var assignment = Enumerable.Repeat(7, 12).ToArray();
        var options = new KMeansOptions(3);
        void Run(KMeansOptions o, int assignmentColumns = 6, int[]? lengths = null) => KMeans.Cluster(
            new ReadOnlyHostTensor<float>(xData, new TensorShape(2, 6, 3)), new HostTensor<float>(centres, new TensorShape(2, 3, 3)),
            new HostTensor<int>(assignment.AsSpan(0, 2 * assignmentColumns), new TensorShape(2, assignmentColumns)), o,
            lengths: lengths is null ? default : new ReadOnlyHostTensor<int>(lengths, new TensorShape(2)));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(Assert.Throws<ArgumentException>(() => Run(new KMeansOptions(7)))!.ParamName, Is.EqualTo("options"));
            Assert.That(Assert.Throws<ArgumentException>(() => Run(options with { Init = KMeansInit.Given }))!.ParamName, Is.EqualTo("initialCentres"));
            Assert.That(Assert.Throws<ArgumentException>(() => Run(options, assignmentColumns: 5))!.ParamName, Is.EqualTo("assignment"));
            TokenKernelsException? native = Assert.Throws<TokenKernelsException>(() => Run(options, lengths: new[] { 6, 9 }));
            Assert.That(native!.Message, Does.Contain("lengths[1]"));
            Assert.That(assignment.All(v => v == 7), Is.True, "nothing written");
        }
    }
}
