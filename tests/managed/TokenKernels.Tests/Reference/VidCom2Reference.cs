using System;
using System.Collections.Generic;
using System.Linq;

namespace TokenKernels.Tests.Reference;

/// <summary>
/// VidCom2 (docs/SPEC.md section 5, "VidCom2, Video Compression Commander") written from the SPEC's steps for clarity, in
/// double, on one item of a contiguous <c>[B, T, P, C]</c> video: the channel statistics, the token scores, the frame
/// budgets and their exact apportionment. The library computes the same in float32, so a caller compares with a
/// tolerance at the boundaries.
/// </summary>
internal static class VidCom2Reference
{
    /// <summary>One item's intermediate values.</summary>
    public sealed class Item
    {
        public Item(double[] variances, int[] channels, double[] videoScores, double[] scores, double[] ideal, int[] counts)
        {
            Variances = variances;
            Channels = channels;
            VideoScores = videoScores;
            Scores = scores;
            Ideal = ideal;
            Counts = counts;
        }

        /// <summary>Each channel's population variance over the item's T * P tokens.</summary>
        public double[] Variances { get; }

        /// <summary>The C' scored channels, in increasing channel order.</summary>
        public int[] Channels { get; }

        /// <summary>v_n = g(|f_n - c|^2), <c>[T * P]</c>.</summary>
        public double[] VideoScores { get; }

        /// <summary>v_n + w_n, <c>[T * P]</c>: the lowest of each frame are kept.</summary>
        public double[] Scores { get; }

        /// <summary>ideal_t = min(r ((1 + p_t) - mean p), 1) * P, <c>[T]</c>.</summary>
        public double[] Ideal { get; }

        /// <summary>k_t, the tokens frame t keeps (summing to K), <c>[T]</c>.</summary>
        public int[] Counts { get; }
    }

    /// <summary>K = max(T, floor(T * P * r)) in double, as Python's int().</summary>
    public static long RetainedTokens(long frames, long positions, double retentionRatio)
        => Math.Max(frames, (long)((double)(frames * positions) * retentionRatio));

    /// <summary>C' = max(1, floor(C * channelRatio)).</summary>
    public static int ScoredChannels(int channels, double channelRatio) => Math.Max(1, (int)((double)channels * channelRatio));

    /// <summary>g(d): exp(-d / (2a)) for a = 2^-3 .. 2^1.</summary>
    public static double Kernel(double d)
    {
        double sum = 0;
        for (int e = -3; e <= 1; e++)
        {
            sum += Math.Exp(-d / (2 * Math.Pow(2, e)));
        }
        return sum;
    }

    public static Item Compute(double[] x, int item, int t, int p, int c, double retentionRatio, double channelRatio, double temperature)
    {
        int n = t * p;
        long origin = (long)item * n * c;
        double At(int token, int channel) => x[origin + (long)token * c + channel];

        // 1. Population variance of each channel; the C' lowest (ties to the lower channel), in increasing channel order.
        var variances = new double[c];
        for (int ch = 0; ch < c; ch++)
        {
            double mean = 0;
            for (int i = 0; i < n; i++)
            {
                mean += At(i, ch);
            }
            mean /= n;
            double variance = 0;
            for (int i = 0; i < n; i++)
            {
                variance += (At(i, ch) - mean) * (At(i, ch) - mean);
            }
            variances[ch] = variance / n;
        }
        int scored = ScoredChannels(c, channelRatio);
        int[] channels = Enumerable.Range(0, c).OrderBy(ch => variances[ch]).Take(scored).OrderBy(ch => ch).ToArray();

        // 2. Each token's scored channels, normalised (F.normalize: the norm clamped at 1e-12).
        var f = new double[n][];
        for (int i = 0; i < n; i++)
        {
            double[] u = channels.Select(ch => At(i, ch)).ToArray();
            double norm = Math.Max(Math.Sqrt(u.Sum(v => v * v)), 1e-12);
            f[i] = u.Select(v => v / norm).ToArray();
        }

        // 3. The frame centres and the video centre.
        var frameCentres = new double[t][];
        var videoCentre = new double[scored];
        for (int frame = 0; frame < t; frame++)
        {
            var sum = new double[scored];
            for (int cell = 0; cell < p; cell++)
            {
                for (int j = 0; j < scored; j++)
                {
                    sum[j] += f[frame * p + cell][j];
                }
            }
            frameCentres[frame] = sum.Select(v => v / p).ToArray();
            for (int j = 0; j < scored; j++)
            {
                videoCentre[j] += sum[j];
            }
        }
        for (int j = 0; j < scored; j++)
        {
            videoCentre[j] /= n;
        }

        // 4. Distinctiveness: low for a token unlike both centres.
        var videoScores = new double[n];
        var scores = new double[n];
        for (int i = 0; i < n; i++)
        {
            double[] frameCentre = frameCentres[i / p];
            double toVideo = 0, toFrame = 0;
            for (int j = 0; j < scored; j++)
            {
                toVideo += (f[i][j] - videoCentre[j]) * (f[i][j] - videoCentre[j]);
                toFrame += (f[i][j] - frameCentre[j]) * (f[i][j] - frameCentre[j]);
            }
            videoScores[i] = Kernel(toVideo);
            scores[i] = videoScores[i] + Kernel(toFrame);
        }

        // 5. Frame budgets: a softmax of frame importance -mean(v) at the temperature, shifted around r.
        double[] importance = Enumerable.Range(0, t).Select(frame => -videoScores.Skip(frame * p).Take(p).Average()).ToArray();
        double top = importance.Max();
        double[] e = importance.Select(s => Math.Exp((s - top) / temperature)).ToArray();
        double z = e.Sum();
        double[] share = e.Select(v => v / z).ToArray();
        double meanShare = share.Average();
        double[] ideal = share.Select(s => Math.Min(retentionRatio * ((1 + s) - meanShare), 1) * p).ToArray();

        // 6. The exact count.
        int[] counts = Apportion(ideal, p, RetainedTokens(t, p, retentionRatio));
        return new Item(variances, channels, videoScores, scores, ideal, counts);
    }

    /// <summary>
    /// SPEC step 6: every frame keeps one token; of the slots j = 1 .. P - 1 of each frame, of priority ideal_t - j, the
    /// K - T highest are granted, ties to the lower frame.
    /// </summary>
    public static int[] Apportion(double[] ideal, int p, long retained)
    {
        int t = ideal.Length;
        var slots = new List<(double Priority, int Frame)>();
        for (int frame = 0; frame < t; frame++)
        {
            for (int j = 1; j < p; j++)
            {
                slots.Add((ideal[frame] - j, frame));
            }
        }
        var counts = Enumerable.Repeat(1, t).ToArray();
        foreach ((double _, int frame) in slots.OrderByDescending(s => s.Priority).ThenBy(s => s.Frame).Take((int)(retained - t)))
        {
            counts[frame]++;
        }
        return counts;
    }
}
