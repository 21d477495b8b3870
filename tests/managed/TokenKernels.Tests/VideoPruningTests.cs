using System;
using System.Collections.Generic;
using System.Linq;
using NUnit.Framework;
using TokenKernels.Tests.Reference;

namespace TokenKernels.Tests;

/// <summary>
/// EVS and the same-position temporal similarity on host tensors, against a double-precision reference written here from
/// vLLM's compute_retention_mask, for every element type and awkward sizes.
/// </summary>
public class VideoPruningTests
{
    public static IEnumerable<TestCaseData> Videos()
    {
        // (B, T, H, W, C, q): T = 1, one token per frame, q = 0 and rates near 1 among them.
        yield return new TestCaseData(2, 5, 3, 7, 37, 0.5);
        yield return new TestCaseData(1, 1, 4, 4, 16, 0.9);
        yield return new TestCaseData(3, 9, 1, 1, 5, 0.3);
        yield return new TestCaseData(1, 8, 6, 5, 130, 0.0);
        yield return new TestCaseData(2, 12, 4, 3, 23, 0.75);
        yield return new TestCaseData(1, 6, 2, 2, 9, 0.999);
    }

    [TestCaseSource(nameof(Videos))]
    public void EvsFloat32MatchesReference(int b, int t, int h, int w, int c, double q) => CheckEvs<float>(b, t, h, w, c, q);

    [TestCaseSource(nameof(Videos))]
    public void EvsFloat16MatchesReference(int b, int t, int h, int w, int c, double q) => CheckEvs<Float16>(b, t, h, w, c, q);

    [TestCaseSource(nameof(Videos))]
    public void EvsBFloat16MatchesReference(int b, int t, int h, int w, int c, double q) => CheckEvs<BFloat16>(b, t, h, w, c, q);

    [TestCaseSource(nameof(Videos))]
    public void DyCokeFloat32MatchesReference(int b, int t, int h, int w, int c, double q) => CheckDyCoke<float>(b, t, h, w, c, q);

    [TestCaseSource(nameof(Videos))]
    public void DyCokeBFloat16MatchesReference(int b, int t, int h, int w, int c, double q) => CheckDyCoke<BFloat16>(b, t, h, w, c, q);

    [TestCaseSource(nameof(Videos))]
    public void TemporalSimilarityMatchesReference(int b, int t, int h, int w, int c, double q)
    {
        _ = q;
        var random = new Random(b * 1000 + t * 100 + c);
        (float[] values, double[] exact) = Elements.Random<float>((long)b * t * h * w * c, random);
        var video = new ReadOnlyHostTensor<float>(values, new TensorShape(b, t, h * w, c));
        // DyCoke's references: 2i + 1 -> 2i, 4i + 2 -> 4i, the window starts none.
        int[] dycoke = Enumerable.Range(0, t).Select(f => f % 2 == 1 ? f - 1 : f % 4 == 2 ? f - 2 : -1).ToArray();
        foreach (int[]? reference in new[] { null, dycoke })
        {
            (float[] similarity, TensorShape shape) = reference == null
                ? VideoPruning.TemporalSimilarity(video)
                : VideoPruning.TemporalSimilarity(video, new ReadOnlyHostTensor<int>(reference, new TensorShape(t)));
            Assert.That(shape, Is.EqualTo(new TensorShape(b, t, h * w)));
            double[] expected = ReferenceSimilarity(exact, b, t, h * w, c, reference);
            for (int i = 0; i < expected.Length; i++)
            {
                if (double.IsNegativeInfinity(expected[i]))
                {
                    Assert.That(similarity[i], Is.EqualTo(float.NegativeInfinity), "token " + i);
                }
                else
                {
                    Assert.That(similarity[i], Is.EqualTo(expected[i]).Within(3e-6), "token " + i);
                }
            }
        }
    }

    [Test]
    public void RetainedCountIsVllmsFormula()
    {
        // max(P, int(T * P * (1 - q))): 64 frames of 27 x 27 at q = 0.75, one frame left at q = 0.999, everything at q = 0.
        Assert.That(VideoPruning.EvsRetainedTokens(64, 27, 27, 0.75), Is.EqualTo(11664));
        Assert.That(VideoPruning.EvsRetainedTokens(8, 13, 13, 0.999), Is.EqualTo(169));
        Assert.That(VideoPruning.EvsRetainedTokens(5, 3, 7, 0.0), Is.EqualTo(105));
        Assert.That(VideoPruning.EvsRetainedTokens(13, 4, 7, 0.6), Is.EqualTo(145));
    }

    [TestCase(1, 5, 3, 4, 20, -1)]
    [TestCase(2, 7, 2, 3, 33, -1)]
    [TestCase(3, 4, 1, 1, 9, 2)]
    [TestCase(1, 9, 4, 4, 17, 10)]
    public void FrameFusionMatchesReference(int b, int t, int h, int w, int c, int maxMerges)
    {
        // Each token either repeats its predecessor with a little noise (cosine near 1) or is drawn afresh
        // (cosine near 0), so every decision is far from the 0.6 threshold.
        int p = h * w;
        var random = new Random(b * 101 + t * 13 + c + maxMerges);
        var exact = new double[(long)b * t * p * c];
        var repeats = new bool[b * t * p];
        for (int item = 0; item < b; item++)
        {
            for (int frame = 0; frame < t; frame++)
            {
                for (int cell = 0; cell < p; cell++)
                {
                    int token = (item * t + frame) * p + cell;
                    repeats[token] = frame > 0 && random.NextDouble() < 0.6;
                    for (int ch = 0; ch < c; ch++)
                    {
                        long at = (long)token * c + ch;
                        exact[at] = repeats[token] ? exact[at - (long)p * c] + 0.01 * (random.NextDouble() - 0.5) : random.NextDouble() * 2 - 1;
                    }
                }
            }
        }
        float[] values = exact.Select(v => (float)v).ToArray();
        var video = new ReadOnlyHostTensor<float>(values, new TensorShape(b, t, p, c));
        MergeResult<float> result = VideoPruning.FrameFusion(video, maxMerges: maxMerges);

        double[] similarity = ReferenceSimilarity(values.Select(v => (double)v).ToArray(), b, t, p, c, null);
        for (int item = 0; item < b; item++)
        {
            int tokens = t * p;
            // The merges: cosine >= 0.6, and with a cap only the highest (stable: ties to the lower position).
            var candidates = Enumerable.Range(0, tokens).OrderByDescending(i => similarity[item * tokens + i]).ToList();
            if (maxMerges >= 0)
            {
                candidates = candidates.Take(maxMerges).ToList();
            }
            var merged = new bool[tokens];
            foreach (int i in candidates)
            {
                merged[i] = similarity[item * tokens + i] >= 0.6;
            }
            var rows = new int[tokens];
            int kept = 0;
            for (int i = 0; i < tokens; i++)
            {
                rows[i] = merged[i] ? rows[i - p] : kept++;
            }
            Assert.That(result.MergeCounts[item], Is.EqualTo(tokens - kept), "merge count");
            Assert.That(result.SourceMap.Skip(item * tokens).Take(tokens), Is.EqualTo(rows), "source map");
            for (int row = 0; row < tokens; row++)
            {
                int[] members = Enumerable.Range(0, tokens).Where(i => rows[i] == row).ToArray();
                Assert.That(result.Sizes[item * tokens + row], Is.EqualTo(row < kept ? members.Length : 0), "size of row " + row);
                for (int ch = 0; ch < c; ch++)
                {
                    double want = row < kept ? members.Average(i => (double)values[((long)item * tokens + i) * c + ch]) : 0.0;
                    Assert.That(result.X[((long)item * tokens + row) * c + ch], Is.EqualTo(want).Within(1e-6 * (1 + Math.Abs(want))), $"row {row} channel {ch}");
                }
            }
        }

        // The source map gives every token its run's mean back.
        (float[] restored, _) = TokenMerging.Unmerge(new ReadOnlyHostTensor<float>(result.X, result.Shape),
            new ReadOnlyHostTensor<int>(result.SourceMap, new TensorShape(b, t * p)));
        for (int token = 0; token < b * t * p; token++)
        {
            int item = token / (t * p);
            int row = result.SourceMap[token];
            Assert.That(restored.Skip(token * c).Take(c), Is.EqualTo(result.X.Skip((item * t * p + row) * c).Take(c)), "unmerged token " + token);
        }
    }

    [Test]
    public void DyCokeRetainedCountIsItsFormula()
    {
        // 16 frames of 14 x 14 at the default 0.7: 4 window starts whole, 12 frames keep int(0.3 * 196) = 58.
        Assert.That(VideoPruning.DyCokeRetainedTokens(16, 14, 14), Is.EqualTo(4 * 196 + 12 * 58));
        Assert.That(VideoPruning.DyCokeRetainedTokens(5, 2, 2, 1.0), Is.EqualTo(8));
        Assert.That(VideoPruning.DyCokeRetainedTokens(7, 3, 1, 0.0), Is.EqualTo(21));
        Assert.That(Assert.Throws<TokenKernelsException>(() => VideoPruning.DyCokeRetainedTokens(4, 2, 2, 1.5))!.NativeMessage, Does.Contain("params->merging_ratio"));
    }

    [Test]
    public void IntoBufferOverloadEqualsTheAllocatingOne()
    {
        const int b = 2, t = 7, h = 3, w = 5, c = 11;
        var random = new Random(5);
        (float[] values, _) = Elements.Random<float>((long)b * t * h * w * c, random);
        var video = new ReadOnlyHostTensor<float>(values, new TensorShape(b, t, h * w, c));
        VideoSelectionResult<float> result = VideoPruning.Evs(video, h, w, 0.6);
        long k = result.Retained;
        var tokens = new float[b * k * c];
        var indices = new int[b * k];
        var positions = new int[b * k * 3];
        var mask = new int[b * t * h * w];
        VideoPruning.Evs(video, h, w, 0.6, new HostTensor<float>(tokens, new TensorShape(b, k, c)),
            new HostTensor<int>(indices, new TensorShape(b, k)), new HostTensor<int>(positions, new TensorShape(b, k, 3)),
            new HostTensor<int>(mask, new TensorShape(b, t * h * w)));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(result.TokensShape, Is.EqualTo(new TensorShape(b, k, c)));
            Assert.That(result.Tokens, Is.EqualTo(tokens));
            Assert.That(result.Indices, Is.EqualTo(indices));
            Assert.That(result.Positions, Is.EqualTo(positions));
            Assert.That(mask.Sum(), Is.EqualTo(b * k));
            for (int item = 0; item < b; item++)
            {
                for (int i = 0; i < k; i++)
                {
                    Assert.That(mask[item * t * h * w + indices[item * k + i]], Is.EqualTo(1));
                }
            }
        }
    }

    [Test]
    public void BadArgumentsAreNamed()
    {
        var data = new float[2 * 3 * 6 * 4];
        var shape = new TensorShape(2, 3, 6, 4);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(NativeMessage(() => VideoPruning.Evs(new ReadOnlyHostTensor<float>(data, shape), 2, 3, 1.0)), Does.Contain("params->pruning_rate"));
            Assert.That(NativeMessage(() => VideoPruning.Evs(new ReadOnlyHostTensor<float>(data, shape), 2, 3, -0.5)), Does.Contain("params->pruning_rate"));
            Assert.That(NativeMessage(() => VideoPruning.Evs(new ReadOnlyHostTensor<float>(data, shape), 3, 3, 0.5)), Does.Contain("x.shape[2]"));
            Assert.That(NativeMessage(() => VideoPruning.EvsRetainedTokens(0, 3, 3, 0.5)), Does.Contain("frames"));
            Assert.That(
                Assert.Throws<ArgumentException>(() => VideoPruning.Evs(new ReadOnlyHostTensor<float>(data, new TensorShape(2, 18, 4)), 2, 3, 0.5))!.ParamName,
                Is.EqualTo("video"));
            Assert.That(
                NativeMessage(() => VideoPruning.TemporalSimilarity(
                    new ReadOnlyHostTensor<float>(data, shape), new ReadOnlyHostTensor<int>(new[] { -1, 0, 3 }, new TensorShape(3)))),
                Does.Contain("reference[2]"));
        }
    }

    private static string NativeMessage(Action call) => Assert.Throws<TokenKernelsException>(() => call())!.NativeMessage;

    private static void CheckEvs<T>(int b, int t, int h, int w, int c, double q)
        where T : unmanaged
    {
        var random = new Random(b * 7919 + t * 131 + h * 17 + w * 3 + c + (int)(q * 1000));
        (T[] values, double[] exact) = Elements.Random<T>((long)b * t * h * w * c, random);
        var video = new ReadOnlyHostTensor<T>(values, new TensorShape(b, t, h * w, c));
        VideoSelectionResult<T> result = VideoPruning.Evs(video, h, w, q);

        int p = h * w;
        long k = Math.Max(p, (long)((double)(t * p) * (1.0 - q)));
        Assert.That(result.Retained, Is.EqualTo(k));
        double[] similarity = ReferenceSimilarity(exact, b, t, p, c, null);
        for (int item = 0; item < b; item++)
        {
            // argsort(1 - cos, descending, stable), frame 0 first (+inf), the first K in increasing position.
            double[] score = Enumerable.Range(0, t * p).Select(i => 1.0 - similarity[item * t * p + i]).ToArray();
            int[] want = Enumerable.Range(0, t * p).OrderByDescending(i => score[i]).Take((int)k).OrderBy(i => i).ToArray();
            int[] got = result.Indices.Skip((int)(item * k)).Take((int)k).ToArray();
            double boundary = want.Min(i => score[i]);
            foreach (int differs in got.Except(want).Concat(want.Except(got)))
            {
                // float32 against float64 scores: only a token within rounding of the boundary may swap.
                Assert.That(score[differs], Is.EqualTo(boundary).Within(1e-5), $"item {item}: token {differs} kept by one side only");
            }
            for (int i = 0; i < k; i++)
            {
                int token = got[i];
                int[] at = result.Positions.Skip((int)((item * k + i) * 3)).Take(3).ToArray();
                Assert.That(at, Is.EqualTo(new[] { token / p, token % p / w, token % w }), "positions of slot " + i);
                for (int ch = 0; ch < c; ch++)
                {
                    Assert.That(Elements.ToDouble(result.Tokens[(item * k + i) * c + ch]), Is.EqualTo(exact[((long)item * t * p + token) * c + ch]), "kept row " + i);
                }
            }
        }
    }

    private static void CheckDyCoke<T>(int b, int t, int h, int w, int c, double q)
        where T : unmanaged
    {
        // The rate column doubles as DyCoke's merging ratio here.
        double ratio = q;
        var random = new Random(b * 6007 + t * 37 + h * 11 + w * 5 + c + (int)(q * 1000));
        (T[] values, double[] exact) = Elements.Random<T>((long)b * t * h * w * c, random);
        var video = new ReadOnlyHostTensor<T>(values, new TensorShape(b, t, h * w, c));
        VideoSelectionResult<T> result = VideoPruning.DyCoke(video, h, w, ratio);

        int p = h * w;
        // Window starts (t % 4 == 0) whole; frames 4i + 1, 4i + 3 against the frame before, 4i + 2 against 4i.
        int[] reference = Enumerable.Range(0, t).Select(f => f % 2 == 1 ? f - 1 : f % 4 == 2 ? f - 2 : -1).ToArray();
        int compared = (int)((1.0 - ratio) * p);
        long k = reference.Sum(r => r < 0 ? p : compared);
        Assert.That(result.Retained, Is.EqualTo(k));
        double[] similarity = ReferenceSimilarity(exact, b, t, p, c, reference);
        for (int item = 0; item < b; item++)
        {
            var want = new List<int>();
            var boundary = new Dictionary<int, double>();
            for (int frame = 0; frame < t; frame++)
            {
                int count = reference[frame] < 0 ? p : compared;
                // The least similar first (stable: ties to the lower position).
                int[] order = Enumerable.Range(frame * p, p).OrderBy(i => similarity[item * t * p + i]).ToArray();
                double edge = count > 0 ? similarity[item * t * p + order[count - 1]] : 0;
                foreach (int token in order)
                {
                    boundary[token] = edge;
                }
                want.AddRange(order.Take(count).OrderBy(i => i));
            }
            int[] got = result.Indices.Skip((int)(item * k)).Take((int)k).ToArray();
            Assert.That(got, Is.Ordered, "frame after frame, in increasing position");
            foreach (int differs in got.Except(want).Concat(want.Except(got)))
            {
                Assert.That(similarity[item * t * p + differs], Is.EqualTo(boundary[differs]).Within(1e-5), $"item {item}: token {differs} kept by one side only");
            }
            for (int i = 0; i < k; i++)
            {
                int token = got[i];
                for (int ch = 0; ch < c; ch++)
                {
                    Assert.That(Elements.ToDouble(result.Tokens[(item * k + i) * c + ch]), Is.EqualTo(exact[((long)item * t * p + token) * c + ch]), "kept row " + i);
                }
            }
        }
    }

    // cos(x[b, t, p], x[b, r(t), p]) with each norm clamped at 1e-8; -inf without a reference frame.
    private static double[] ReferenceSimilarity(double[] x, int b, int t, int p, int c, int[]? reference)
    {
        var result = new double[b * t * p];
        for (int item = 0; item < b; item++)
        {
            for (int frame = 0; frame < t; frame++)
            {
                int r = reference == null ? frame - 1 : reference[frame];
                for (int cell = 0; cell < p; cell++)
                {
                    int at = (item * t + frame) * p + cell;
                    if (r < 0)
                    {
                        result[at] = double.NegativeInfinity;
                        continue;
                    }
                    double dot = 0, uu = 0, vv = 0;
                    for (int ch = 0; ch < c; ch++)
                    {
                        double u = x[(long)at * c + ch];
                        double v = x[((long)(item * t + r) * p + cell) * c + ch];
                        dot += u * v;
                        uu += u * u;
                        vv += v * v;
                    }
                    result[at] = dot / (Math.Max(Math.Sqrt(uu), 1e-8) * Math.Max(Math.Sqrt(vv), 1e-8));
                }
            }
        }
        return result;
    }
}
