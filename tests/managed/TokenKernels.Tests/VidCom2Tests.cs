using System;
using System.Collections.Generic;
using System.Linq;
using NUnit.Framework;
using TokenKernels.Tests.Reference;

namespace TokenKernels.Tests;

/// <summary>
/// VidCom2 on host tensors against the double-precision reference written from docs/SPEC.md's steps
/// (<see cref="VidCom2Reference"/>), for float32 and bfloat16, the published defaults and other knobs, and awkward sizes.
/// </summary>
public class VidCom2Tests
{
    public static IEnumerable<TestCaseData> Videos()
    {
        // (B, T, H, W, C, r, channel ratio, temperature): the published defaults, a flatter softmax, every channel
        // scored, one frame, one token per frame, K = T (r tiny), everything kept (r = 1), a frame's share clamped at 1.
        yield return new TestCaseData(2, 5, 3, 7, 37, 0.25, 0.5, 0.01);
        yield return new TestCaseData(1, 8, 4, 4, 16, 0.25, 0.5, 0.1);
        yield return new TestCaseData(3, 6, 2, 5, 12, 0.4, 1.0, 1.0);
        yield return new TestCaseData(1, 1, 5, 6, 20, 0.3, 0.25, 0.01);
        yield return new TestCaseData(2, 16, 1, 1, 9, 0.5, 0.5, 0.01);
        yield return new TestCaseData(1, 12, 3, 4, 24, 0.01, 0.5, 0.05);
        yield return new TestCaseData(2, 7, 3, 3, 10, 1.0, 0.5, 0.01);
        yield return new TestCaseData(1, 9, 6, 5, 64, 0.15, 0.3, 0.5);
        yield return new TestCaseData(2, 4, 3, 3, 16, 0.6, 0.5, 0.01);
    }

    [TestCaseSource(nameof(Videos))]
    public void VidCom2Float32MatchesReference(int b, int t, int h, int w, int c, double r, double channelRatio, double temperature)
        => CheckVidCom2<float>(b, t, h, w, c, r, channelRatio, temperature);

    [TestCaseSource(nameof(Videos))]
    public void VidCom2BFloat16MatchesReference(int b, int t, int h, int w, int c, double r, double channelRatio, double temperature)
        => CheckVidCom2<BFloat16>(b, t, h, w, c, r, channelRatio, temperature);

    [Test]
    public void VidCom2RetainedCountIsItsFormula()
    {
        // max(T, int(T * P * r)): 64 frames of 27 x 27 at the default 0.25, one token per frame at r = 0.01, everything at 1.
        using (Assert.EnterMultipleScope())
        {
            Assert.That(VideoPruning.VidCom2RetainedTokens(64, 27, 27), Is.EqualTo(11664));
            Assert.That(VideoPruning.VidCom2RetainedTokens(8, 13, 13, 0.01), Is.EqualTo(13));
            Assert.That(VideoPruning.VidCom2RetainedTokens(10, 2, 2, 0.1), Is.EqualTo(10));
            Assert.That(VideoPruning.VidCom2RetainedTokens(5, 3, 7, 1.0), Is.EqualTo(105));
            Assert.That(VideoPruning.VidCom2RetainedTokens(13, 4, 7, 0.3), Is.EqualTo(109));
            Assert.That(VideoPruning.VidCom2RetainedTokens(13, 4, 7, 0.3), Is.EqualTo(VidCom2Reference.RetainedTokens(13, 28, 0.3)));
        }
    }

    [Test]
    public void VidCom2IntoBufferOverloadEqualsTheAllocatingOne()
    {
        const int b = 2, t = 7, h = 3, w = 5, c = 11;
        const double r = 0.3, channelRatio = 0.7, temperature = 0.05;
        (float[] values, _) = Video<float>(b, t, h * w, c, channelRatio, new Random(5));
        var video = new ReadOnlyHostTensor<float>(values, new TensorShape(b, t, h * w, c));
        VideoSelectionResult<float> result = VideoPruning.VidCom2(video, h, w, r, channelRatio, temperature);
        long k = result.Retained;
        var tokens = new float[b * k * c];
        var indices = new int[b * k];
        var positions = new int[b * k * 3];
        var mask = new int[b * t * h * w];
        VideoPruning.VidCom2(video, h, w, r, new HostTensor<float>(tokens, new TensorShape(b, k, c)),
            new HostTensor<int>(indices, new TensorShape(b, k)), new HostTensor<int>(positions, new TensorShape(b, k, 3)),
            new HostTensor<int>(mask, new TensorShape(b, t * h * w)), channelRatio, temperature);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(k, Is.EqualTo(VideoPruning.VidCom2RetainedTokens(t, h, w, r)));
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

        // The knobs reach the op: the defaults (the published 0.5 and 0.01) keep another set here.
        VideoSelectionResult<float> defaults = VideoPruning.VidCom2(video, h, w, r);
        Assert.That(defaults.Indices, Is.Not.EqualTo(result.Indices));
    }

    [Test]
    public void VideoIntoBufferOverloadsAllocateNothing()
    {
        const int t = 4, h = 2, w = 3, c = 8;
        var input = new float[t * h * w * c];
        for (int i = 0; i < input.Length; i++)
        {
            input[i] = MathF.Sin(i * 0.37f) * (1 + i % c);
        }
        long k = VideoPruning.VidCom2RetainedTokens(t, h, w, 0.5);
        long evsK = VideoPruning.EvsRetainedTokens(t, h, w, 0.5);
        long dycokeK = VideoPruning.DyCokeRetainedTokens(t, h, w, 0.5);
        var kept = new float[Math.Max(k, Math.Max(evsK, dycokeK)) * c];
        var positions = new int[Math.Max(k, Math.Max(evsK, dycokeK)) * 3];
        var mask = new int[t * h * w];

        void SelectOnce()
        {
            var video = new ReadOnlyHostTensor<float>(input, new TensorShape(1, t, h * w, c));
            VideoPruning.VidCom2(video, h, w, 0.5, new HostTensor<float>(kept, new TensorShape(1, k, c)),
                positions: new HostTensor<int>(positions, new TensorShape(1, k, 3)), mask: new HostTensor<int>(mask, new TensorShape(1, t * h * w)));
            VideoPruning.Evs(video, h, w, 0.5, new HostTensor<float>(kept, new TensorShape(1, evsK, c)));
            VideoPruning.DyCoke(video, h, w, 0.5, new HostTensor<float>(kept, new TensorShape(1, dycokeK, c)));
        }
        SelectOnce();

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
        {
            SelectOnce();
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.That(allocated, Is.Zero);
    }

    [Test]
    public void VidCom2BadArgumentsAreNamed()
    {
        var data = new float[2 * 3 * 6 * 4];
        var shape = new TensorShape(2, 3, 6, 4);
        ReadOnlyHostTensor<float> Video() => new ReadOnlyHostTensor<float>(data, shape);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(NativeMessage(() => VideoPruning.VidCom2(Video(), 2, 3, retentionRatio: 0)), Does.Contain("params->retention_ratio"));
            Assert.That(NativeMessage(() => VideoPruning.VidCom2(Video(), 2, 3, retentionRatio: 1.5)), Does.Contain("params->retention_ratio"));
            Assert.That(NativeMessage(() => VideoPruning.VidCom2(Video(), 2, 3, retentionRatio: double.NaN)), Does.Contain("params->retention_ratio"));
            Assert.That(NativeMessage(() => VideoPruning.VidCom2(Video(), 2, 3, channelRatio: 0)), Does.Contain("params->channel_ratio"));
            Assert.That(NativeMessage(() => VideoPruning.VidCom2(Video(), 2, 3, channelRatio: 1.01)), Does.Contain("params->channel_ratio"));
            Assert.That(NativeMessage(() => VideoPruning.VidCom2(Video(), 2, 3, temperature: 0)), Does.Contain("params->temperature"));
            Assert.That(NativeMessage(() => VideoPruning.VidCom2(Video(), 2, 3, temperature: double.PositiveInfinity)), Does.Contain("params->temperature"));
            Assert.That(NativeMessage(() => VideoPruning.VidCom2(Video(), 2, 3, 0.5, output: default, temperature: -1)), Does.Contain("params->temperature"));
            Assert.That(NativeMessage(() => VideoPruning.VidCom2(Video(), 3, 3)), Does.Contain("x.shape[2]"));
            Assert.That(NativeMessage(() => VideoPruning.VidCom2(new ReadOnlyHostTensor<float>(Array.Empty<float>(), new TensorShape(2, 3, 6, 0)), 2, 3)),
                Does.Contain("x.shape[3]"));
            Assert.That(NativeMessage(() => VideoPruning.VidCom2RetainedTokens(0, 3, 3)), Does.Contain("frames"));
            Assert.That(NativeMessage(() => VideoPruning.VidCom2RetainedTokens(4, 0, 3)), Does.Contain("params->height"));
            Assert.That(NativeMessage(() => VideoPruning.VidCom2(Video(), 2, 3, 0.5,
                new HostTensor<float>(new float[2 * 5 * 4], new TensorShape(2, 5, 4)))), Does.Contain("out"));
            Assert.That(
                Assert.Throws<ArgumentException>(() => VideoPruning.VidCom2(new ReadOnlyHostTensor<float>(data, new TensorShape(2, 18, 4)), 2, 3))!.ParamName,
                Is.EqualTo("video"));
        }
    }

    private static string NativeMessage(Action call) => Assert.Throws<TokenKernelsException>(() => call())!.NativeMessage;

    /// <summary>
    /// A random video whose channel variances are well apart at the C' boundary: each item gives its channels a random
    /// rank, the C' lowest a scale near 1 and the others one near 4, so float32 and float64 pick the same channels. The
    /// frames are shifted apart by different amounts so that their budgets differ.
    /// </summary>
    private static (T[] Values, double[] Exact) Video<T>(int b, int t, int p, int c, double channelRatio, Random random)
        where T : unmanaged
    {
        int scored = VidCom2Reference.ScoredChannels(c, channelRatio);
        var values = new T[(long)b * t * p * c];
        var exact = new double[values.LongLength];
        for (int item = 0; item < b; item++)
        {
            int[] rank = Enumerable.Range(0, c).OrderBy(_ => random.Next()).ToArray();
            double[] scale = rank.Select(k => (k < scored ? 1.0 : 4.0) + 0.05 * k).ToArray();
            for (int frame = 0; frame < t; frame++)
            {
                double magnitude = random.NextDouble();
                double[] shift = Enumerable.Range(0, c).Select(_ => magnitude * (random.NextDouble() * 2 - 1)).ToArray();
                for (int cell = 0; cell < p; cell++)
                {
                    for (int ch = 0; ch < c; ch++)
                    {
                        long at = (((long)item * t + frame) * p + cell) * c + ch;
                        values[at] = Elements.FromDouble<T>(scale[ch] * (random.NextDouble() * 2 - 1 + shift[ch]));
                        exact[at] = Elements.ToDouble(values[at]);
                    }
                }
            }
        }
        return (values, exact);
    }

    private static void CheckVidCom2<T>(int b, int t, int h, int w, int c, double r, double channelRatio, double temperature)
        where T : unmanaged
    {
        int p = h * w;
        var random = new Random(b * 7907 + t * 131 + h * 17 + w * 3 + c + (int)(r * 1000) + (int)(temperature * 100));
        (T[] values, double[] exact) = Video<T>(b, t, p, c, channelRatio, random);
        var video = new ReadOnlyHostTensor<T>(values, new TensorShape(b, t, p, c));
        VideoSelectionResult<T> result = VideoPruning.VidCom2(video, h, w, r, channelRatio, temperature);

        long k = VidCom2Reference.RetainedTokens(t, p, r);
        Assert.That(result.Retained, Is.EqualTo(k));
        // float32 against float64: the softmax divides the importance's rounding by the temperature, and step 6 compares
        // ideal counts rounded down to multiples of 2^-20; scores carry float32 sums of exponentials.
        double idealTolerance = r * p * 1e-5 * (1 + 1 / temperature) + 1e-5;
        const double scoreTolerance = 2e-5;
        for (int item = 0; item < b; item++)
        {
            VidCom2Reference.Item want = VidCom2Reference.Compute(exact, item, t, p, c, r, channelRatio, temperature);
            double[] sorted = want.Variances.OrderBy(v => v).ToArray();
            if (want.Channels.Length < c)
            {
                // The precondition the data is built for: the scored channels are unambiguous.
                Assert.That(sorted[want.Channels.Length], Is.GreaterThan(sorted[want.Channels.Length - 1] * 1.5), "channel variances apart at C'");
            }

            int[] got = result.Indices.Skip((int)(item * k)).Take((int)k).ToArray();
            Assert.That(got, Is.Ordered.Ascending, "frame after frame, in increasing position");
            Assert.That(got.Distinct().Count(), Is.EqualTo(got.Length), "each token once");
            int[] counts = Enumerable.Range(0, t).Select(frame => got.Count(i => i / p == frame)).ToArray();

            // Step 6: every frame at least one token, at most P; the counts the K - T highest slot priorities
            // ideal_t - j give, up to float32 near-ties: every granted slot at least every refused one.
            Assert.That(counts.Sum(), Is.EqualTo(k));
            for (int frame = 0; frame < t; frame++)
            {
                Assert.That(counts[frame], Is.InRange(1, p), $"item {item}: frame {frame}'s count");
            }
            if (!counts.SequenceEqual(want.Counts))
            {
                for (int granted = 0; granted < t; granted++)
                {
                    for (int refused = 0; refused < t; refused++)
                    {
                        if (counts[granted] > 1 && counts[refused] < p)
                        {
                            double lowestGranted = want.Ideal[granted] - (counts[granted] - 1);
                            double highestRefused = want.Ideal[refused] - counts[refused];
                            Assert.That(lowestGranted, Is.GreaterThanOrEqualTo(highestRefused - idealTolerance),
                                $"item {item}: frame {granted} keeps {counts[granted]} and frame {refused} {counts[refused]} (reference {string.Join(",", want.Counts)}; ideal {string.Join(",", want.Ideal)})");
                        }
                    }
                }
            }

            // Step 7: each frame keeps its lowest scores, ties to the lower position.
            for (int frame = 0; frame < t; frame++)
            {
                int[] order = Enumerable.Range(frame * p, p).OrderBy(i => want.Scores[i]).ToArray();
                int[] wantFrame = order.Take(counts[frame]).ToArray();
                int[] gotFrame = got.Where(i => i / p == frame).ToArray();
                double boundary = want.Scores[order[counts[frame] - 1]];
                foreach (int differs in gotFrame.Except(wantFrame).Concat(wantFrame.Except(gotFrame)))
                {
                    Assert.That(want.Scores[differs], Is.EqualTo(boundary).Within(scoreTolerance), $"item {item}: token {differs} kept by one side only");
                }
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
}
