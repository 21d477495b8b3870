using System;
using System.Collections.Generic;
using System.Linq;
using NUnit.Framework;
using TokenKernels.Tests.Reference;

namespace TokenKernels.Tests;

/// <summary>
/// PruneVid's merging (<see cref="PruneVid"/>) and its segment similarity op against <see cref="PruneVidReference"/>, the published
/// merge_frames_dynamic in float64, on random videos with planted static regions and several scene changes.
/// </summary>
public class PruneVidTests
{
    /// <summary>
    /// A video of <paramref name="scenes"/> scenes of random lengths: in each scene about half the positions are static (a row of the
    /// scene plus small noise in every frame, around a scene-wide offset, so the scenes' frame means lie apart), the others random in
    /// every frame. Row-major [T, L, C], values exact in the element type.
    /// </summary>
    private static double[] Video<T>(Random random, int frames, int positions, int channels, int scenes)
        where T : unmanaged
    {
        var cuts = Enumerable.Range(1, frames - 1).OrderBy(_ => random.Next()).Take(scenes - 1).OrderBy(t => t).ToList();
        cuts.Add(frames);
        var x = new double[frames * positions * channels];
        int begin = 0;
        foreach (int end in cuts)
        {
            var offset = Enumerable.Range(0, channels).Select(_ => 3 * (random.NextDouble() * 2 - 1)).ToArray();
            var isStatic = Enumerable.Range(0, positions).Select(_ => random.Next(2) == 0).ToArray();
            var rows = Enumerable.Range(0, positions * channels).Select(i => offset[i % channels] + random.NextDouble() * 2 - 1).ToArray();
            for (int t = begin; t < end; t++)
                for (int p = 0; p < positions; p++)
                    for (int c = 0; c < channels; c++)
                    {
                        double noise = random.NextDouble() * 2 - 1;
                        double value = isStatic[p] ? rows[p * channels + c] + 0.05 * noise : noise;
                        x[(t * positions + p) * channels + c] = Elements.ToDouble(Elements.FromDouble<T>(value));
                    }
            begin = end;
        }
        return x;
    }

    private static double Round<T>(double value)
        where T : unmanaged => Elements.ToDouble(Elements.FromDouble<T>(value));

    public static IEnumerable<TestCaseData> Videos()
    {
        // (T, L, C, scenes, row padding): token sets above and below the clustering minimum of 14, T not a multiple of 4, C = 1.
        yield return new TestCaseData(16, 37, 19, 4, 0);
        yield return new TestCaseData(13, 20, 8, 3, 3);
        yield return new TestCaseData(9, 31, 33, 2, 0);
        yield return new TestCaseData(16, 50, 5, 5, 1);
        yield return new TestCaseData(7, 17, 1, 2, 0);
    }

    [TestCaseSource(nameof(Videos))]
    public void Float32MatchesThePublishedAlgorithm(int frames, int positions, int channels, int scenes, int pad) =>
        Check<float>(frames, positions, channels, scenes, pad, 1e-5);

    [TestCaseSource(nameof(Videos))]
    public void BFloat16MatchesThePublishedAlgorithm(int frames, int positions, int channels, int scenes, int pad) =>
        Check<BFloat16>(frames, positions, channels, scenes, pad, 1e-2);

    [TestCaseSource(nameof(Videos))]
    public void Float16MatchesThePublishedAlgorithm(int frames, int positions, int channels, int scenes, int pad) =>
        Check<Float16>(frames, positions, channels, scenes, pad, 1.5e-3);

    // The means of float16 and bfloat16 tokens are rounded to the type where the published code holds them in it; the float32
    // sums rounded once give the reference's float64 ones rounded, but for the rare sum at a rounding midpoint: one unit in the
    // last place (valueTolerance). Decisions are then taken on the same values, so their near-ties are float32's.
    private static void Check<T>(int frames, int positions, int channels, int scenes, int pad, double valueTolerance)
        where T : unmanaged
    {
        var random = new Random(frames * 1000 + positions * 10 + channels);
        for (int attempt = 0; attempt < 40; attempt++)
        {
            double[] exact = Video<T>(random, frames, positions, channels, scenes);
            PruneVidReference.Result expected = PruneVidReference.MergeFrames(exact, frames, positions, channels, Round<T>, 0.25, 0.5, 0.8, 7, 1e-5);
            if (expected.NearTie) continue;
            // Rows padded by `pad` elements: strided input.
            int rowStride = channels + pad;
            var data = new T[frames * positions * rowStride];
            for (int t = 0; t < frames; t++)
                for (int p = 0; p < positions; p++)
                    for (int c = 0; c < channels; c++)
                        data[(t * positions + p) * rowStride + c] = Elements.FromDouble<T>(exact[(t * positions + p) * channels + c]);
            var x = new ReadOnlyHostTensor<T>(data, new TensorShape(frames, positions, channels), new TensorStrides(positions * rowStride, rowStride, 1));
            PruneVidResult<T> got = PruneVid.MergeFrames(x);

            Assert.That(got.FrameClusters, Is.EqualTo(expected.Refined), "refined frame clusters");
            Assert.That(got.WindowSizes, Is.EqualTo(expected.WindowSizes), "window sizes");
            Assert.That(got.StaticSizes, Is.EqualTo(expected.StaticSizes), "static sizes");
            Assert.That(got.DynamicSizes, Is.EqualTo(expected.DynamicSizes), "dynamic sizes");
            Assert.That(got.SourceMap, Is.EqualTo(expected.SourceMap), "source map");
            Assert.That(got.MergedShape, Is.EqualTo(new TensorShape(expected.Merged.Length / channels, channels)));
            for (int i = 0; i < expected.Merged.Length; i++)
            {
                double value = Elements.ToDouble(got.Merged[i]);
                Assert.That(value, Is.EqualTo(expected.Merged[i]).Within(valueTolerance * (1 + Math.Abs(expected.Merged[i]))), "merged element " + i);
            }
            // The planted structure is found: some static tokens, fewer tokens than the input, every output row some token's.
            Assert.That(got.StaticSizes.Sum(), Is.GreaterThan(0));
            Assert.That(got.MergedShape[0], Is.LessThan(frames * positions));
            Assert.That(got.SourceMap.Distinct().Count(), Is.EqualTo((int)got.MergedShape[0]));
            return;
        }
        Assert.Fail("no draw without a near-tie in 40 attempts");
    }

    [Test]
    public void RefineClustersFollowsThePublishedRules()
    {
        // (labels, refined): shorter runs join a neighbour; one-frame clusters vanish; the left run wins ties; equal longest runs stay.
        var cases = new (int[] Labels, int[] Refined)[]
        {
            (new[] { 0, 0, 1, 0, 0, 0, 2, 2 }, new[] { 0, 0, 0, 0, 0, 0, 2, 2 }),
            (new[] { 1, 2, 1, 2 }, new[] { 0, 0, 0, 0 }),
            (new[] { 0, 0, 1, 2, 2, 2, 1, 1 }, new[] { 0, 0, 2, 2, 2, 2, 1, 1 }),
            (new[] { 0, 0, 1, 2, 2 }, new[] { 0, 0, 0, 2, 2 }),
            (new[] { 3, 3, 1, 1, 3, 3 }, new[] { 3, 3, 1, 1, 3, 3 }),
            (new[] { 0, 0, 0, 5, 1, 1, 5 }, new[] { 0, 0, 0, 0, 1, 1, 1 }),
            (new[] { 4 }, new[] { 0 }),
        };
        foreach ((int[] labels, int[] refined) in cases)
        {
            Assert.That(PruneVid.RefineClusters(labels), Is.EqualTo(refined), string.Join(",", labels));
            Assert.That(PruneVidReference.Refine(labels), Is.EqualTo(refined), "reference " + string.Join(",", labels));
        }
        Assert.That(PruneVid.SegmentLengths(new[] { 3, 3, 1, 1, 3, 3, 0 }), Is.EqualTo(new[] { 2, 2, 2, 1 }));
        // Random labels: the same as the step-by-step reference, and runs that give the segments.
        var random = new Random(5);
        for (int trial = 0; trial < 300; trial++)
        {
            int[] labels = Enumerable.Range(0, 1 + random.Next(20)).Select(_ => random.Next(1 + random.Next(5))).ToArray();
            Assert.That(PruneVid.RefineClusters(labels), Is.EqualTo(PruneVidReference.Refine(labels)), string.Join(",", labels));
        }
    }

    [Test]
    public void SegmentSimilarityIsThePairwiseMeanAndNanForOneFrame()
    {
        var random = new Random(11);
        int frames = 6, positions = 9, channels = 21;
        double[] exact = Video<float>(random, frames, positions, channels, 2);
        float[] data = exact.Select(v => (float)v).ToArray();
        int[] lengths = { 2, 1, 3 };
        float[] got = PruneVid.SegmentSimilarity(
            new ReadOnlyHostTensor<float>(data, new TensorShape(frames, positions, channels)), new ReadOnlyHostTensor<int>(lengths, new TensorShape(3)));
        int start = 0;
        for (int s = 0; s < lengths.Length; s++)
        {
            for (int p = 0; p < positions; p++)
            {
                if (lengths[s] == 1)
                {
                    Assert.That(float.IsNaN(got[s * positions + p]), "one frame: NaN");
                    continue;
                }
                double sum = 0;
                int pairs = 0;
                for (int w = start; w < start + lengths[s]; w++)
                    for (int t = w + 1; t < start + lengths[s]; t++)
                    {
                        double dot = 0, uu = 0, vv = 0;
                        for (int c = 0; c < channels; c++)
                        {
                            double u = exact[(w * positions + p) * channels + c], v = exact[(t * positions + p) * channels + c];
                            dot += u * v;
                            uu += u * u;
                            vv += v * v;
                        }
                        sum += dot / Math.Sqrt(uu * vv);
                        pairs++;
                    }
                Assert.That(got[s * positions + p], Is.EqualTo(sum / pairs).Within(1e-5), "segment " + s + " position " + p);
            }
            start += lengths[s];
        }
        var error = Assert.Throws<TokenKernelsException>(() => PruneVid.SegmentSimilarity(
            new ReadOnlyHostTensor<float>(data, new TensorShape(frames, positions, channels)), new ReadOnlyHostTensor<int>(new[] { 2, 3 }, new TensorShape(2))));
        Assert.That(error!.Message, Does.Contain("segment_lengths"));
    }

    [Test]
    public void ArgumentErrorsAreNamed()
    {
        var frames = new float[16 * 5 * 3];
        ReadOnlyHostTensor<float> Video() => new(frames, new TensorShape(16, 5, 3));
        Assert.That(Assert.Throws<ArgumentException>(() => PruneVid.MergeFrames(new ReadOnlyHostTensor<float>(frames, new TensorShape(80, 3))))!.ParamName, Is.EqualTo("frames"));
        Assert.That(Assert.Throws<ArgumentException>(() => PruneVid.MergeFrames(new ReadOnlyHostTensor<int>(new int[6], new TensorShape(2, 1, 3))))!.ParamName, Is.EqualTo("frames"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => PruneVid.MergeFrames(new ReadOnlyHostTensor<float>(frames, new TensorShape(3, 5, 3))))!.ParamName,
                    Is.EqualTo("temporalSegmentRatio"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => PruneVid.MergeFrames(Video(), temporalSegmentRatio: 1.5))!.ParamName, Is.EqualTo("temporalSegmentRatio"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => PruneVid.MergeFrames(Video(), clusterRatio: 0))!.ParamName, Is.EqualTo("clusterRatio"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => PruneVid.MergeFrames(Video(), clusterRatio: 0.05))!.ParamName, Is.EqualTo("clusterRatio"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => PruneVid.MergeFrames(Video(), tau: float.NaN))!.ParamName, Is.EqualTo("tau"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => PruneVid.MergeFrames(Video(), k: 0))!.ParamName, Is.EqualTo("k"));
        Assert.That(Assert.Throws<ArgumentException>(() => PruneVid.SegmentSimilarity(Video(), new ReadOnlyHostTensor<int>(new[] { 16 }, new TensorShape(1, 1))))!.ParamName,
                    Is.EqualTo("segmentLengths"));
    }
}
