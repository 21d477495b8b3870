using System;
using System.Collections.Generic;
using System.Linq;

namespace TokenKernels.Tests.Reference;

/// <summary>
/// Bipartite token merging written for clarity, in double, from the contract in tokenkernels.h (section 2) and
/// section 2 of docs/SPEC.md: tokens [B, N, C] as contiguous doubles. Slow and obvious on purpose.
/// </summary>
internal static class MergingReference
{
    private const double Eps = 1e-12;

    /// <summary>The merged tokens and bookkeeping, all contiguous.</summary>
    public sealed class Result
    {
        public required long Rows { get; init; }

        public required double[] X { get; init; }

        public required double[] Sizes { get; init; }

        public required int[] SourceMap { get; init; }

        public required int[] Counts { get; init; }
    }

    /// <summary>ToMe's clamp r &lt;= (N - protected) / 2, and 0 when no destination is a candidate; N' = N - r (fixed) or N.</summary>
    public static (long EffectiveR, long Rows) OutputTokens(long tokens, MergeOptions options)
    {
        int protectedTokens = (options.ProtectFirst ? 1 : 0) + (options.ProtectSecond ? 1 : 0);
        long clamp = tokens > protectedTokens ? (tokens - protectedTokens) / 2 : 0;
        long candidates = tokens / 2 - (options.ProtectSecond ? 1 : 0);
        long r = candidates <= 0 ? 0 : Math.Min(options.R, clamp);
        return (r, options.UseThreshold ? tokens : tokens - r);
    }

    /// <summary>
    /// For every source s (token 2s): the position of its best candidate destination (ties to the lower position) and
    /// the cosine score; -inf (position -1) when protected or without a candidate, NaN when its metric holds a NaN.
    /// </summary>
    public static (int[] Destination, double[] Best) Match(double[] metric, int batch, int tokens, int channels, MergeOptions options)
    {
        int sources = (tokens + 1) / 2;
        int destinations = tokens / 2;
        int firstCandidate = options.ProtectSecond ? 1 : 0;
        var dst = new int[batch * sources];
        var best = new double[batch * sources];
        for (int b = 0; b < batch; b++)
        {
            for (int s = 0; s < sources; s++)
            {
                int at = b * sources + s;
                dst[at] = -1;
                best[at] = double.NegativeInfinity;
                if ((options.ProtectFirst && s == 0) || destinations <= firstCandidate)
                {
                    continue;
                }
                ReadOnlySpan<double> a = Row(metric, b, 2 * s, tokens, channels);
                if (HasNaN(a))
                {
                    best[at] = double.NaN;
                    continue;
                }
                for (int d = firstCandidate; d < destinations; d++)
                {
                    double score = Cosine(a, Row(metric, b, 2 * d + 1, tokens, channels));
                    if (dst[at] < 0 || score > best[at])
                    {
                        best[at] = score;
                        dst[at] = 2 * d + 1;
                    }
                }
            }
        }
        return (dst, best);
    }

    /// <summary>Sources by descending best, NaN last, ties to the lower position.</summary>
    public static int[] Ranking(double[] best, int item, int sources)
    {
        return Enumerable.Range(0, sources).OrderBy(s => s, Comparer<int>.Create((p, q) =>
        {
            double bp = best[item * sources + p];
            double bq = best[item * sources + q];
            bool np = double.IsNaN(bp);
            bool nq = double.IsNaN(bq);
            if (np != nq)
            {
                return np ? 1 : -1;
            }
            if (!np && bp != bq)
            {
                return bq.CompareTo(bp);
            }
            return p.CompareTo(q);
        })).ToArray();
    }

    public static Result Merge(double[] metric, int metricChannels, double[] x, int channels, double[]? sizes, int batch, int tokens, MergeOptions options)
    {
        (long effectiveR, long rows) = OutputTokens(tokens, options);
        (int[] dst, double[] best) = Match(metric, batch, tokens, metricChannels, options);
        int sources = (tokens + 1) / 2;
        int destinations = tokens / 2;
        var outX = new double[batch * rows * channels];
        var outSizes = new double[batch * rows];
        var sourceMap = new int[batch * tokens];
        var counts = new int[batch];

        for (int b = 0; b < batch; b++)
        {
            int[] ranking = Ranking(best, b, sources);
            int merges = (int)effectiveR;
            if (options.UseThreshold)
            {
                merges = 0;
                while (merges < effectiveR && merges < sources && best[b * sources + ranking[merges]] > options.Threshold!.Value)
                {
                    merges++;
                }
            }
            counts[b] = merges;
            var merged = new bool[sources];
            foreach (int s in ranking.Take(merges))
            {
                merged[s] = true;
            }

            // The surviving tokens (positions) in output order.
            var order = new List<int>();
            // ToMe returns x untouched when its r is 0, so its order is then the original one.
            bool tomeOrder = options.Order == MergeOrder.ToMe && (options.UseThreshold || effectiveR > 0);
            if (!tomeOrder)
            {
                for (int i = 0; i < tokens; i++)
                {
                    if (i % 2 == 1 || !merged[i / 2])
                    {
                        order.Add(i);
                    }
                }
            }
            else
            {
                List<int> unmerged = ranking.Skip(merges).ToList();
                if (options.ProtectFirst)
                {
                    unmerged.Sort();
                }
                List<int> unm = unmerged.Select(s => 2 * s).ToList();
                List<int> dsts = Enumerable.Range(0, destinations).Select(d => 2 * d + 1).ToList();
                if (options.ProtectSecond)
                {
                    order.AddRange(unm.Take(1));
                    order.AddRange(dsts.Take(1));
                    order.AddRange(unm.Skip(1));
                    order.AddRange(dsts.Skip(1));
                }
                else
                {
                    order.AddRange(unm);
                    order.AddRange(dsts);
                }
            }
            if (order.Count != tokens - merges)
            {
                throw new InvalidOperationException("reference: " + order.Count + " surviving tokens, expected " + (tokens - merges));
            }

            var rowOf = new int[tokens];
            for (int row = 0; row < order.Count; row++)
            {
                rowOf[order[row]] = row;
            }
            for (int s = 0; s < sources; s++)
            {
                if (merged[s])
                {
                    rowOf[2 * s] = rowOf[dst[b * sources + s]];
                }
            }
            for (int i = 0; i < tokens; i++)
            {
                sourceMap[b * tokens + i] = rowOf[i];
            }

            for (int row = 0; row < order.Count; row++)
            {
                int position = order[row];
                // The sources merged into this token, in increasing position (none for a source).
                List<int> group = position % 2 == 1
                    ? Enumerable.Range(0, sources).Where(s => merged[s] && dst[b * sources + s] == position).Select(s => 2 * s).ToList()
                    : new List<int>();
                Combine(x, sizes, b, tokens, channels, position, group, options.Mode,
                    outX.AsSpan((int)((b * rows + row) * channels), channels), out outSizes[b * rows + row]);
            }
        }
        return new Result { Rows = rows, X = outX, Sizes = outSizes, SourceMap = sourceMap, Counts = counts };
    }

    /// <summary>out[b, i] = y[b, map[b, i]].</summary>
    public static double[] Unmerge(double[] y, int[] map, int batch, long mergedTokens, int tokens, int channels)
    {
        var result = new double[batch * tokens * channels];
        for (int b = 0; b < batch; b++)
        {
            for (int i = 0; i < tokens; i++)
            {
                long row = map[b * tokens + i];
                Array.Copy(y, (b * mergedTokens + row) * channels, result, ((long)b * tokens + i) * channels, channels);
            }
        }
        return result;
    }

    private static void Combine(double[] x, double[]? sizes, int b, int tokens, int channels, int destination, List<int> group, MergeMode mode, Span<double> output, out double size)
    {
        double Size(int position) => sizes == null ? 1.0 : sizes[b * tokens + position];
        ReadOnlySpan<double> xd = Row(x, b, destination, tokens, channels);
        size = Size(destination);
        if (mode != MergeMode.Drop)
        {
            foreach (int a in group)
            {
                size += Size(a);
            }
        }
        for (int c = 0; c < channels; c++)
        {
            double value;
            switch (mode)
            {
                case MergeMode.WeightedMean:
                    value = Size(destination) * xd[c];
                    foreach (int a in group)
                    {
                        value += Size(a) * x[(b * tokens + a) * channels + c];
                    }
                    value /= size;
                    break;
                case MergeMode.Mean:
                case MergeMode.Sum:
                    value = xd[c];
                    foreach (int a in group)
                    {
                        value += x[(b * tokens + a) * channels + c];
                    }
                    if (mode == MergeMode.Mean)
                    {
                        value /= 1 + group.Count;
                    }
                    break;
                case MergeMode.Amax:
                    value = xd[c];
                    foreach (int a in group)
                    {
                        double v = x[(b * tokens + a) * channels + c];
                        value = double.IsNaN(value) || double.IsNaN(v) ? double.NaN : Math.Max(value, v);
                    }
                    break;
                default:
                    value = xd[c];
                    break;
            }
            output[c] = value;
        }
    }

    private static ReadOnlySpan<double> Row(double[] values, int b, int token, int tokens, int channels)
        => values.AsSpan((b * tokens + token) * channels, channels);

    private static bool HasNaN(ReadOnlySpan<double> row)
    {
        foreach (double v in row)
        {
            if (double.IsNaN(v))
            {
                return true;
            }
        }
        return false;
    }

    private static double Cosine(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        double dot = 0, na = 0, nb = 0;
        for (int c = 0; c < a.Length; c++)
        {
            dot += a[c] * b[c];
            na += a[c] * a[c];
            nb += b[c] * b[c];
        }
        return dot / (Math.Max(Math.Sqrt(na), Eps) * Math.Max(Math.Sqrt(nb), Eps));
    }
}
