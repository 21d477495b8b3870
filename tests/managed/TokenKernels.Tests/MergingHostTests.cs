using System;
using System.Linq;
using NUnit.Framework;
using TokenKernels.Tests.Reference;

namespace TokenKernels.Tests;

/// <summary>Token merging on host memory against <see cref="MergingReference"/> and against worked examples.</summary>
public class MergingHostTests
{
    private static readonly MergeMode[] Modes = Enum.GetValues<MergeMode>();
    private static readonly MergeOrder[] Orders = Enum.GetValues<MergeOrder>();

    [TestCase(16, 197, false, false, 16, 181)]
    [TestCase(16, 197, true, false, 16, 181)]
    [TestCase(1000, 197, true, false, 98, 99)]
    [TestCase(1000, 198, true, true, 98, 100)]
    [TestCase(1000, 7, false, false, 3, 4)]
    [TestCase(5, 1, false, false, 0, 1)]
    [TestCase(5, 0, false, false, 0, 0)]
    [TestCase(5, 3, false, true, 0, 3)]  // one destination, and it is protected: no candidate
    [TestCase(5, 4, false, true, 1, 3)]
    [TestCase(0, 50, false, false, 0, 50)]
    public void OutputTokensFollowToMesClamp(int r, long tokens, bool first, bool second, long effectiveR, long outputTokens)
    {
        var options = new MergeOptions(r) { ProtectFirst = first, ProtectSecond = second };
        using (Assert.EnterMultipleScope())
        {
            Assert.That(TokenMerging.GetOutputTokens(tokens, options), Is.EqualTo((effectiveR, outputTokens)));
            Assert.That(MergingReference.OutputTokens(tokens, options), Is.EqualTo((effectiveR, outputTokens)), "reference");
            Assert.That(TokenMerging.GetOutputTokens(tokens, options with { Threshold = 0.5f }), Is.EqualTo((effectiveR, tokens)), "threshold mode keeps N rows");
            Assert.That(TokenMerging.GetOutputShape(new TensorShape(3, tokens, 5), options), Is.EqualTo(new TensorShape(3, outputTokens, 5)));
        }
    }

    [Test]
    public void OptionsHaveTheSpecDefaults()
    {
        var options = new MergeOptions(8);
        var threshold = MergeOptions.ByThreshold(0.9f, maxMerges: 30);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(options.R, Is.EqualTo(8));
            Assert.That(options.Threshold, Is.Null);
            Assert.That(options.UseThreshold, Is.False);
            Assert.That(options.Mode, Is.EqualTo(MergeMode.WeightedMean));
            Assert.That(options.Order, Is.EqualTo(MergeOrder.Positional));
            Assert.That(options.ProtectFirst || options.ProtectSecond, Is.False);
            Assert.That(default(MergeOptions), Is.EqualTo(new MergeOptions(0)));
            Assert.That(threshold.UseThreshold, Is.True);
            Assert.That(threshold.Threshold, Is.EqualTo(0.9f));
            Assert.That(threshold.R, Is.EqualTo(30));
            Assert.That(MergeOptions.ByThreshold(0.5f).R, Is.EqualTo(int.MaxValue));
            Assert.That(threshold, Is.Not.EqualTo(new MergeOptions(30)));
            Assert.That(threshold with { Threshold = null }, Is.EqualTo(new MergeOptions(30)));
            Assert.That(options.ToString(), Is.EqualTo("r 8, WeightedMean, Positional"));
            Assert.That((threshold with { ProtectFirst = true, Mode = MergeMode.Drop, Order = MergeOrder.ToMe }).ToString(),
                Is.EqualTo("threshold 0.9 (at most 30), Drop, ToMe, protect first"));
        }
    }

    [Test]
    public void WithMethodsAdjustACopyAsWithDoes()
    {
        // The C# 9 (Unity) spelling of `options with { ... }`: each method sets one property of a copy.
        MergeOptions threshold = MergeOptions.ByThreshold(0.9f, maxMerges: 30);
        var options = new MergeOptions(8);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(options.WithR(12), Is.EqualTo(options with { R = 12 }));
            Assert.That(options.WithThreshold(0.75f), Is.EqualTo(options with { Threshold = 0.75f }));
            Assert.That(threshold.WithThreshold(null), Is.EqualTo(new MergeOptions(30)));
            Assert.That(options.WithProtectFirst(true), Is.EqualTo(options with { ProtectFirst = true }));
            Assert.That(options.WithProtectFirst(true).WithProtectFirst(false), Is.EqualTo(options));
            Assert.That(options.WithProtectSecond(true), Is.EqualTo(options with { ProtectSecond = true }));
            Assert.That(options.WithMode(MergeMode.Amax), Is.EqualTo(options with { Mode = MergeMode.Amax }));
            Assert.That(options.WithOrder(MergeOrder.ToMe), Is.EqualTo(options with { Order = MergeOrder.ToMe }));
            Assert.That(threshold.WithProtectFirst(true).WithMode(MergeMode.Drop).WithOrder(MergeOrder.ToMe),
                Is.EqualTo(threshold with { ProtectFirst = true, Mode = MergeMode.Drop, Order = MergeOrder.ToMe }));
            Assert.That(options, Is.EqualTo(new MergeOptions(8)), "the original is unchanged");
        }
    }

    [TestCaseSource(typeof(MergeCase), nameof(MergeCase.All))]
    public void Float32MatchesTheReference(MergeCase c) => CheckAgainstReference<float, float>(c, strided: false);

    [TestCaseSource(typeof(MergeCase), nameof(MergeCase.Some))]
    public void StridedViewsMatchTheReference(MergeCase c) => CheckAgainstReference<float, float>(c, strided: true);

    [TestCaseSource(typeof(MergeCase), nameof(MergeCase.Some))]
    public void Float16TokensWithABFloat16MetricMatchTheReference(MergeCase c) => CheckAgainstReference<BFloat16, Float16>(c, strided: true);

    [TestCaseSource(typeof(MergeCase), nameof(MergeCase.Some))]
    public void BFloat16TokensWithAFloat32MetricMatchTheReference(MergeCase c) => CheckAgainstReference<float, BFloat16>(c, strided: false);

    [TestCaseSource(typeof(MergeCase), nameof(MergeCase.All))]
    public void MatchingMatchesTheReference(MergeCase c)
    {
        (float[] metric, double[] exact) = Elements.Random<float>(c.Batch * c.Tokens * c.MetricChannels, new Random(Seed(c.Name)));
        var options = new MergeOptions(c.R) { ProtectFirst = c.ProtectFirst, ProtectSecond = c.ProtectSecond };
        var view = new Strided3<float>(new long[] { c.Batch, c.Tokens, c.MetricChannels }, channelPad: 5, tokenStep: 1, offset: 2, fill: float.NaN);
        view.Write(metric);
        (int[] dst, float[] best, TensorShape shape) = TokenMerging.Match(view.ReadOnly, options);
        (int[] wantDst, double[] wantBest) = MergingReference.Match(exact, c.Batch, c.Tokens, c.MetricChannels, options);

        Assert.That(shape, Is.EqualTo(new TensorShape(c.Batch, (c.Tokens + 1) / 2)));
        for (int i = 0; i < wantBest.Length; i++)
        {
            if (double.IsNegativeInfinity(wantBest[i]))
            {
                Assert.That(best[i], Is.EqualTo(float.NegativeInfinity), $"best[{i}] of a protected or destination-less source");
                continue;
            }
            Assert.That(best[i], Is.EqualTo(wantBest[i]).Within(1e-5), $"best[{i}]");
            Assert.That(dst[i], Is.EqualTo(wantDst[i]), $"dst[{i}]");
        }
    }

    /// <summary>
    /// Six tokens, one channel, worked by hand: s2 (token 4) is closest to token 1, s0 and s1 tie exactly (cos
    /// 1/sqrt(1.01)) for tokens 1 and 3. With r = 2, tokens 4 and 0 merge into token 1 (the tie goes to s0).
    /// </summary>
    [TestCase(MergeMode.WeightedMean, new[] { 80 / 3.0, 30, 40, 60 }, new[] { 3f, 1, 1, 1 })]
    [TestCase(MergeMode.Mean, new[] { 80 / 3.0, 30, 40, 60 }, new[] { 3f, 1, 1, 1 })]
    [TestCase(MergeMode.Sum, new[] { 80.0, 30, 40, 60 }, new[] { 3f, 1, 1, 1 })]
    [TestCase(MergeMode.Amax, new[] { 50.0, 30, 40, 60 }, new[] { 3f, 1, 1, 1 })]
    [TestCase(MergeMode.Drop, new[] { 20.0, 30, 40, 60 }, new[] { 1f, 1, 1, 1 })]
    public void AWorkedExample(MergeMode mode, double[] positional, float[] sizes)
    {
        float[] metric = { 1, 0, 1, 0.1f, 0, 1, 0.1f, 1, 1, 0.05f, -1, 0 };
        float[] x = { 10, 20, 30, 40, 50, 60 };
        var m = new ReadOnlyHostTensor<float>(metric, new TensorShape(1, 6, 2));
        var xt = new ReadOnlyHostTensor<float>(x, new TensorShape(1, 6, 1));

        MergeResult<float> inOrder = TokenMerging.Merge(m, xt, new MergeOptions(2) { Mode = mode });
        MergeResult<float> tome = TokenMerging.Merge(m, xt, new MergeOptions(2) { Mode = mode, Order = MergeOrder.ToMe });

        using (Assert.EnterMultipleScope())
        {
            Assert.That(inOrder.Shape, Is.EqualTo(new TensorShape(1, 4, 1)));
            Assert.That(inOrder.X, Is.EqualTo(positional).Within(1e-5), "positional: tokens 1, 2, 3, 5");
            Assert.That(inOrder.Sizes, Is.EqualTo(sizes));
            Assert.That(inOrder.SourceMap, Is.EqualTo(new[] { 0, 0, 1, 2, 0, 3 }));
            Assert.That(inOrder.MergeCounts, Is.EqualTo(new[] { 2 }));
            Assert.That(inOrder.EffectiveR, Is.EqualTo(2));
            Assert.That(tome.X, Is.EqualTo(new[] { positional[1], positional[0], positional[2], positional[3] }).Within(1e-5), "ToMe: unmerged token 2, then tokens 1, 3, 5");
            Assert.That(tome.Sizes, Is.EqualTo(new[] { sizes[1], sizes[0], sizes[2], sizes[3] }));
            Assert.That(tome.SourceMap, Is.EqualTo(new[] { 1, 1, 0, 2, 1, 3 }));
        }
    }

    [Test]
    public void TheWorkedExampleWithAClassToken()
    {
        float[] metric = { 1, 0, 1, 0.1f, 0, 1, 0.1f, 1, 1, 0.05f, -1, 0 };
        float[] x = { 10, 20, 30, 40, 50, 60 };
        var m = new ReadOnlyHostTensor<float>(metric, new TensorShape(1, 6, 2));
        var xt = new ReadOnlyHostTensor<float>(x, new TensorShape(1, 6, 1));

        // r 3 clamps to (6 - 1) / 2 = 2; token 0 cannot merge, so tokens 4 and 2 do (into 1 and 3).
        MergeResult<float> result = TokenMerging.Merge(m, xt, new MergeOptions(3) { ProtectFirst = true });
        (int[] dst, float[] best, _) = TokenMerging.Match(m, new MergeOptions(3) { ProtectFirst = true });

        using (Assert.EnterMultipleScope())
        {
            Assert.That(result.EffectiveR, Is.EqualTo(2));
            Assert.That(result.X, Is.EqualTo(new[] { 10, 35, 35, 60 }).Within(1e-5));
            Assert.That(result.SourceMap, Is.EqualTo(new[] { 0, 1, 2, 2, 1, 3 }));
            Assert.That(best[0], Is.EqualTo(float.NegativeInfinity));
            Assert.That(dst.Skip(1), Is.EqualTo(new[] { 3, 1 }));
            Assert.That(best.Skip(1), Is.EqualTo(new[] { 1 / Math.Sqrt(1.01), 1.005 / Math.Sqrt(1.0025 * 1.01) }).Within(1e-6));
        }
    }

    /// <summary>
    /// Axis-aligned metrics give exact scores: ties in the best destination and in the ranking go to the lower
    /// position, and a score equal to the threshold does not pass it.
    /// </summary>
    [Test]
    public void TiesGoToTheLowerPositionAndTheThresholdIsStrict()
    {
        // Tokens: e0, e0, e1, 2 e1, 3 e0, e2, e3, e0. Sources 0, 2, 4 score 1 (into 1, 3, 1), source 6 scores 0 (into 1).
        float[] metric = new float[8 * 4];
        (int Token, int Axis, float Scale)[] rows = { (0, 0, 1), (1, 0, 1), (2, 1, 1), (3, 1, 2), (4, 0, 3), (5, 2, 1), (6, 3, 1), (7, 0, 1) };
        foreach ((int token, int axis, float scale) in rows)
        {
            metric[token * 4 + axis] = scale;
        }
        float[] x = Enumerable.Range(0, 8).Select(i => (float)i).ToArray();
        var m = new ReadOnlyHostTensor<float>(metric, new TensorShape(1, 8, 4));
        var xt = new ReadOnlyHostTensor<float>(x, new TensorShape(1, 8, 1));

        (int[] dst, float[] best, _) = TokenMerging.Match(m, default);
        MergeResult<float> two = TokenMerging.Merge(m, xt, new MergeOptions(2) { Mode = MergeMode.Sum });
        MergeResult<float> above0 = TokenMerging.Merge(m, xt, MergeOptions.ByThreshold(0f) with { Mode = MergeMode.Sum });
        MergeResult<float> above0Cap2 = TokenMerging.Merge(m, xt, MergeOptions.ByThreshold(0f, 2) with { Mode = MergeMode.Sum });
        MergeResult<float> aboveHalfToMe = TokenMerging.Merge(m, xt, MergeOptions.ByThreshold(0.5f) with { Order = MergeOrder.ToMe, Mode = MergeMode.Sum });

        using (Assert.EnterMultipleScope())
        {
            Assert.That(dst, Is.EqualTo(new[] { 1, 3, 1, 1 }), "ties to the lower destination");
            Assert.That(best, Is.EqualTo(new[] { 1f, 1, 1, 0 }));
            Assert.That(two.X, Is.EqualTo(new[] { 1f, 5, 4, 5, 6, 7 }), "r 2: sources 0 and 2 (lowest of the three tied at 1)");
            Assert.That(above0.MergeCounts, Is.EqualTo(new[] { 3 }), "score 0 does not pass threshold 0");
            Assert.That(above0.X, Is.EqualTo(new[] { 1f + 0 + 4, 5, 5, 6, 7, 0, 0, 0 }), "rows past N - count are zero");
            Assert.That(above0.Sizes, Is.EqualTo(new[] { 3f, 2, 1, 1, 1, 0, 0, 0 }));
            Assert.That(above0.SourceMap, Is.EqualTo(new[] { 0, 0, 1, 1, 0, 2, 3, 4 }));
            Assert.That(above0.ValidRows(0), Is.EqualTo(5));
            Assert.That(above0Cap2.MergeCounts, Is.EqualTo(new[] { 2 }), "cap r_max");
            Assert.That(above0Cap2.X, Is.EqualTo(new[] { 1f, 5, 4, 5, 6, 7, 0, 0 }));
            Assert.That(aboveHalfToMe.X, Is.EqualTo(new[] { 6f, 5, 5, 5, 7, 0, 0, 0 }), "ToMe order: unmerged source 6, then destinations 1, 3, 5, 7");
            Assert.That(aboveHalfToMe.SourceMap, Is.EqualTo(new[] { 1, 1, 2, 2, 1, 3, 0, 4 }));
        }
    }

    [Test]
    public void ASourceWithANaNMetricRanksLast()
    {
        var c = new MergeCase("nan", 2, 12, 6, 3, false, false, 5, false);
        (float[] metric, double[] exact) = Elements.Random<float>(2 * 12 * 6, new Random(5));
        metric[(12 + 4) * 6 + 2] = float.NaN; // item 1, token 4 (source 2)
        exact[(12 + 4) * 6 + 2] = double.NaN;
        (float[] x, double[] xExact) = Elements.Random<float>(2 * 12 * 3, new Random(6));
        var options = new MergeOptions(5);

        (int[] _, float[] best, _) = TokenMerging.Match(new ReadOnlyHostTensor<float>(metric, new TensorShape(2, 12, 6)), options);
        MergeResult<float> result = TokenMerging.Merge(new ReadOnlyHostTensor<float>(metric, new TensorShape(2, 12, 6)), new ReadOnlyHostTensor<float>(x, new TensorShape(2, 12, 3)), options);
        MergingReference.Result expected = MergingReference.Merge(exact, 6, xExact, 3, null, 2, 12, options);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(best[6 + 2], Is.NaN);
            Assert.That(result.SourceMap, Is.EqualTo(expected.SourceMap));
            Assert.That(result.X, Is.EqualTo(expected.X).Within(1e-5));
            Assert.That(result.X.Skip((7 + expected.SourceMap[12 + 4]) * 3).Take(3), Is.EqualTo(x.Skip((12 + 4) * 3).Take(3)), "token 4 of item 1 survives unchanged");
        }
    }

    [TestCaseSource(typeof(MergeCase), nameof(MergeCase.Some))]
    public void UnmergeSpreadsMergedRowsBack(MergeCase c)
    {
        (float[] x, _) = Elements.Random<float>(c.Batch * c.Tokens * c.Channels, new Random(Seed(c.Name)));
        var xt = new ReadOnlyHostTensor<float>(x, new TensorShape(c.Batch, c.Tokens, c.Channels));
        var options = new MergeOptions(c.R)
        {
            ProtectFirst = c.ProtectFirst, ProtectSecond = c.ProtectSecond, Mode = MergeMode.Drop, Order = MergeOrder.ToMe, Threshold = c.Threshold ? 0f : null,
        };

        MergeResult<float> merged = TokenMerging.Merge(xt, xt, options);
        var y = new ReadOnlyHostTensor<float>(merged.X, merged.Shape);
        var map = new ReadOnlyHostTensor<int>(merged.SourceMap, new TensorShape(c.Batch, c.Tokens));
        (float[] back, TensorShape shape) = TokenMerging.Unmerge(y, map);
        var back64 = new float[back.Length];
        TokenMerging.Unmerge(y, new ReadOnlyHostTensor<long>(merged.SourceMap.Select(v => (long)v).ToArray(), map.Shape), new HostTensor<float>(back64, shape));
        var strided = new Strided3<float>(shape.ToArray(), channelPad: 3, tokenStep: 1, offset: 1, fill: 7f);
        TokenMerging.Unmerge(y, map, strided.Tensor);

        double[] expected = MergingReference.Unmerge(merged.X.Select(v => (double)v).ToArray(), merged.SourceMap, c.Batch, merged.Shape[1], c.Tokens, c.Channels);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(shape, Is.EqualTo(xt.Shape));
            Assert.That(back, Is.EqualTo(expected), "a gather is exact");
            Assert.That(back64, Is.EqualTo(back), "int64 source map");
            Assert.That(strided.Read(), Is.EqualTo(back), "strided output");
            Assert.That(strided.CountChangedOutside(7f), Is.Zero);
            // With DROP every surviving token keeps its row: unmerge(merge(x)) is x except at the merged sources,
            // which share their row with a destination (an odd position).
            for (int b = 0; b < c.Batch; b++)
            {
                int[] rows = merged.SourceMap.Skip(b * c.Tokens).Take(c.Tokens).ToArray();
                int kept = 0;
                for (int i = 0; i < c.Tokens; i++)
                {
                    int row = rows[i];
                    bool mergedAway = i % 2 == 0 && Enumerable.Range(0, c.Tokens).Any(j => j % 2 == 1 && rows[j] == row);
                    if (!mergedAway)
                    {
                        kept++;
                        Assert.That(back.Skip((b * c.Tokens + i) * c.Channels).Take(c.Channels), Is.EqualTo(x.Skip((b * c.Tokens + i) * c.Channels).Take(c.Channels)), $"item {b} token {i}");
                    }
                }
                Assert.That(kept, Is.EqualTo(c.Tokens - merged.MergeCounts[b]), $"item {b}: tokens kept");
            }
        }
    }

    [Test]
    public void TheMetricMayBeTheTokensThemselves()
    {
        (float[] x, double[] exact) = Elements.Random<float>(2 * 9 * 6, new Random(3));
        var xt = new ReadOnlyHostTensor<float>(x, new TensorShape(2, 9, 6));
        var options = new MergeOptions(3) { ProtectFirst = true };
        MergeResult<float> result = TokenMerging.Merge(xt, xt, options);
        MergingReference.Result expected = MergingReference.Merge(exact, 6, exact, 6, null, 2, 9, options);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(result.X, Is.EqualTo(expected.X).Within(1e-5));
            Assert.That(result.SourceMap, Is.EqualTo(expected.SourceMap));
        }
    }

    [Test]
    public void AnEmptyBatchIsAccepted()
    {
        MergeResult<float> result = TokenMerging.Merge(
            new ReadOnlyHostTensor<float>(Array.Empty<float>(), new TensorShape(0, 10, 4)),
            new ReadOnlyHostTensor<float>(Array.Empty<float>(), new TensorShape(0, 10, 3)),
            new MergeOptions(2));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(result.Shape, Is.EqualTo(new TensorShape(0, 8, 3)));
            Assert.That(result.X, Is.Empty);
        }
    }

    [Test]
    public void AllocatingOverloadEqualsCallerOutputs()
    {
        (float[] metric, _) = Elements.Random<float>(3 * 11 * 5, new Random(11));
        (float[] x, _) = Elements.Random<float>(3 * 11 * 4, new Random(12));
        float[] sizes = Enumerable.Range(0, 33).Select(i => 1f + i % 3).ToArray();
        var m = new ReadOnlyHostTensor<float>(metric, new TensorShape(3, 11, 5));
        var xt = new ReadOnlyHostTensor<float>(x, new TensorShape(3, 11, 4));
        var s = new ReadOnlyHostTensor<float>(sizes, new TensorShape(3, 11));
        foreach (MergeOptions options in new[] { new MergeOptions(4), MergeOptions.ByThreshold(0.2f, 4) with { Order = MergeOrder.ToMe } })
        {
            MergeResult<float> result = TokenMerging.Merge(m, xt, options, s);
            var y = new float[result.X.Length];
            var ys = new float[result.Sizes.Length];
            var map = new int[33];
            var counts = new int[3];
            TokenMerging.Merge(m, xt, new HostTensor<float>(y, result.Shape), options, s,
                new HostTensor<float>(ys, new TensorShape(3, result.Shape[1])), new HostTensor<int>(map, new TensorShape(3, 11)), new HostTensor<int>(counts, new TensorShape(3)));
            var yOnly = new float[result.X.Length];
            var countsOnly = new int[3];
            TokenMerging.Merge(m, xt, new HostTensor<float>(yOnly, result.Shape), options, s, mergeCounts: new HostTensor<int>(countsOnly, new TensorShape(3)));

            using (Assert.EnterMultipleScope())
            {
                Assert.That(y, Is.EqualTo(result.X), options.ToString());
                Assert.That(ys, Is.EqualTo(result.Sizes));
                Assert.That(map, Is.EqualTo(result.SourceMap));
                Assert.That(counts, Is.EqualTo(result.MergeCounts));
                Assert.That(yOnly, Is.EqualTo(result.X), "without the optional outputs");
                Assert.That(countsOnly, Is.EqualTo(result.MergeCounts));
            }
        }
    }

    [Test]
    public void NonAllocatingMergeAllocatesNothing()
    {
        var metric = new float[2 * 40 * 16];
        var x = new Float16[2 * 40 * 12];
        var sizes = new float[2 * 40];
        var output = new Float16[2 * 40 * 12];
        var outputSizes = new float[2 * 40];
        var map = new int[2 * 40];
        var counts = new int[2];
        for (int i = 0; i < metric.Length; i++)
        {
            metric[i] = (i * 7919 % 13) - 6;
        }
        sizes.AsSpan().Fill(1);
        var fixedR = new MergeOptions(12) { ProtectFirst = true, Order = MergeOrder.ToMe };
        MergeOptions threshold = MergeOptions.ByThreshold(0.1f);
        void MergeOnce()
        {
            var m = new ReadOnlyHostTensor<float>(metric, new TensorShape(2, 40, 16));
            var xt = new ReadOnlyHostTensor<Float16>(x, new TensorShape(2, 40, 12));
            TokenMerging.Merge(m, xt, new HostTensor<Float16>(output.AsSpan(0, 2 * 28 * 12), new TensorShape(2, 28, 12)), fixedR);
            TokenMerging.Merge(m, xt, new HostTensor<Float16>(output, new TensorShape(2, 40, 12)), threshold,
                new ReadOnlyHostTensor<float>(sizes, new TensorShape(2, 40)), new HostTensor<float>(outputSizes, new TensorShape(2, 40)),
                new HostTensor<int>(map, new TensorShape(2, 40)), new HostTensor<int>(counts, new TensorShape(2)));
            TokenMerging.Unmerge(new ReadOnlyHostTensor<Float16>(output, new TensorShape(2, 40, 12)), new ReadOnlyHostTensor<int>(map, new TensorShape(2, 40)), new HostTensor<Float16>(x, new TensorShape(2, 40, 12)));
        }
        MergeOnce();

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
        {
            MergeOnce();
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.That(allocated, Is.Zero);
    }

    internal static int Seed(string name)
    {
        int seed = 17;
        foreach (char ch in name)
        {
            seed = unchecked(seed * 31 + ch);
        }
        return seed;
    }

    private static void CheckAgainstReference<TMetric, T>(MergeCase c, bool strided)
        where TMetric : unmanaged
        where T : unmanaged
    {
        var random = new Random(Seed(c.Name));
        (TMetric[] metric, double[] metricExact) = Elements.Random<TMetric>(c.Batch * c.Tokens * c.MetricChannels, random);
        (T[] x, double[] xExact) = Elements.Random<T>(c.Batch * c.Tokens * c.Channels, random);
        float[] sizes = Enumerable.Range(0, c.Batch * c.Tokens).Select(_ => (float)(1 + 3 * random.NextDouble())).ToArray();
        double[] sizesExact = sizes.Select(v => (double)v).ToArray();

        var metricView = new Strided3<TMetric>(new long[] { c.Batch, c.Tokens, c.MetricChannels }, strided ? 5 : 0, 1, strided ? 2 : 0, default);
        metricView.Write(metric);
        var xView = new Strided3<T>(new long[] { c.Batch, c.Tokens, c.Channels }, 0, strided ? 2 : 1, strided ? 3 : 0, default);
        xView.Write(x);
        T sentinel = Elements.FromDouble<T>(7.0);

        foreach (MergeMode mode in Modes)
        {
            foreach (MergeOrder order in Orders)
            {
                MergeOptions options = c.Options(metricExact, mode, order);
                bool withSizes = ((int)mode + (int)order) % 2 == 0;
                string what = options + (withSizes ? ", with sizes" : "");
                MergingReference.Result expected = MergingReference.Merge(metricExact, c.MetricChannels, xExact, c.Channels, withSizes ? sizesExact : null, c.Batch, c.Tokens, options);

                var output = new Strided3<T>(new long[] { c.Batch, expected.Rows, c.Channels }, strided ? 3 : 0, 1, strided ? 1 : 0, sentinel);
                float[] outputSizes = Enumerable.Repeat(-7f, (int)(c.Batch * expected.Rows)).ToArray();
                int[] sourceMap = Enumerable.Repeat(-7, c.Batch * c.Tokens).ToArray();
                int[] counts = Enumerable.Repeat(-7, c.Batch).ToArray();
                TokenMerging.Merge(
                    metricView.ReadOnly, xView.ReadOnly, output.Tensor, options,
                    withSizes ? new ReadOnlyHostTensor<float>(sizes, new TensorShape(c.Batch, c.Tokens)) : default,
                    new HostTensor<float>(outputSizes, new TensorShape(c.Batch, expected.Rows)),
                    new HostTensor<int>(sourceMap, new TensorShape(c.Batch, c.Tokens)),
                    new HostTensor<int>(counts, new TensorShape(c.Batch)));

                Assert.That(counts, Is.EqualTo(expected.Counts), what + ": merge counts");
                Assert.That(sourceMap, Is.EqualTo(expected.SourceMap), what + ": source map");
                Assert.That(output.CountChangedOutside(sentinel), Is.Zero, what + ": elements outside the output view were written");
                T[] actual = output.Read();
                for (int i = 0; i < expected.X.Length; i++)
                {
                    double got = Elements.ToDouble(actual[i]);
                    if (!(Math.Abs(got - expected.X[i]) <= Elements.Tolerance<T>(expected.X[i])))
                    {
                        Assert.Fail($"{what}: x'[{i / c.Channels / expected.Rows}, {i / c.Channels % expected.Rows}, {i % c.Channels}] expected {expected.X[i]:R}, got {got:R}");
                    }
                }
                for (int i = 0; i < expected.Sizes.Length; i++)
                {
                    if (!(Math.Abs(outputSizes[i] - expected.Sizes[i]) <= 1e-6 * expected.Sizes[i] + 1e-6))
                    {
                        Assert.Fail($"{what}: size'[{i / expected.Rows}, {i % expected.Rows}] expected {expected.Sizes[i]:R}, got {outputSizes[i]:R}");
                    }
                }
            }
        }
    }
}
