using System;
using System.Collections.Generic;
using System.Linq;

namespace TokenKernels.Tests;

/// <summary>
/// Diversity selection (docs/SPEC.md, section 4 and the comments of tokenkernels.h) in float64, written from the contract alone
/// and the way DivPrune computes it: the full distance matrix of each item, and each step recomputed from scratch
/// over the tokens chosen so far (no running minimum or sum).
/// </summary>
internal static class DiversityReference
{
    /// <summary>The selection of every item of <c>x [B, N, C]</c> (contiguous), with the smallest decision margin met.</summary>
    public static DiversityResult Select(
        double[] x, int batch, int tokens, int channels, DiversityOptions options,
        int[]? lengths = null, int[]? itemK = null, int[]? firstIndex = null, double[]? firstScore = null)
    {
        int k = options.K;
        var order = new int[batch * k];
        var sorted = new int[batch * k];
        order.AsSpan().Fill(-1);
        sorted.AsSpan().Fill(-1);
        double margin = double.PositiveInfinity;
        for (int b = 0; b < batch; b++)
        {
            int length = lengths?[b] ?? tokens;
            int count = Math.Min(itemK?[b] ?? k, length);
            if (count == 0)
            {
                continue;
            }
            double[,] d = Distances(x, b * tokens, length, channels, options.Distance);
            var chosen = new List<int> { First(d, length, options.First, firstIndex?[b], firstScore, b * tokens, ref margin) };
            while (chosen.Count < count)
            {
                var scores = new double[length];
                for (int j = 0; j < length; j++)
                {
                    scores[j] = options.Objective == DiversityObjective.MaxMin ? MinOver(d, j, chosen) : chosen.Sum(c => d[j, c]);
                }
                chosen.Add(ArgMax(scores, j => !chosen.Contains(j), ref margin));
            }
            for (int i = 0; i < count; i++)
            {
                order[b * k + i] = chosen[i];
            }
            chosen.Sort();
            for (int i = 0; i < count; i++)
            {
                sorted[b * k + i] = chosen[i];
            }
        }
        return new DiversityResult(order, sorted, margin);
    }

    /// <summary>
    /// The distance matrix of tokens [row, row + length): cosine 1 - dot(u_i, u_j) with u = x / max(|x|, 1e-12), or the
    /// squared Euclidean distance. Each entry is computed once, so the matrix is exactly symmetric.
    /// </summary>
    public static double[,] Distances(double[] x, int row, int length, int channels, Distance distance)
    {
        var units = new double[length * channels];
        for (int i = 0; i < length; i++)
        {
            double norm = 0;
            for (int c = 0; c < channels; c++)
            {
                norm += x[(row + i) * channels + c] * x[(row + i) * channels + c];
            }
            double scale = 1 / Math.Max(Math.Sqrt(norm), 1e-12);
            for (int c = 0; c < channels; c++)
            {
                units[i * channels + c] = x[(row + i) * channels + c] * scale;
            }
        }
        var d = new double[length, length];
        for (int i = 0; i < length; i++)
        {
            for (int j = i; j < length; j++)
            {
                double value = 0;
                for (int c = 0; c < channels; c++)
                {
                    if (distance == Distance.Cosine)
                    {
                        value += units[i * channels + c] * units[j * channels + c];
                    }
                    else
                    {
                        double diff = x[(row + i) * channels + c] - x[(row + j) * channels + c];
                        value += diff * diff;
                    }
                }
                d[i, j] = d[j, i] = distance == Distance.Cosine ? 1 - value : value;
            }
        }
        return d;
    }

    private static int First(double[,] d, int length, FirstCenter policy, int? index, double[]? score, int scoreRow, ref double margin)
    {
        switch (policy)
        {
            case FirstCenter.Index:
                return index!.Value;
            case FirstCenter.Score:
                return ArgMax(score!.Skip(scoreRow).Take(length).ToArray(), _ => true, ref margin);
            default:
                if (length == 1)
                {
                    return 0;
                }
                var isolation = new double[length];
                for (int i = 0; i < length; i++)
                {
                    isolation[i] = MinOver(d, i, Enumerable.Range(0, length).Where(j => j != i));
                }
                return ArgMax(isolation, _ => true, ref margin);
        }
    }

    /// <summary>
    /// The minimum of d[j, c] over <paramref name="others"/> as C's fmin takes it: NaN entries are skipped, and only when
    /// every entry is NaN is the minimum NaN, so a token whose row holds NaN ranks last rather than most isolated.
    /// </summary>
    private static double MinOver(double[,] d, int j, IEnumerable<int> others)
    {
        double min = double.NaN;
        foreach (int c in others)
        {
            if (double.IsNaN(min) || d[j, c] < min)
            {
                min = d[j, c];
            }
        }
        return min;
    }

    /// <summary>
    /// The highest of the eligible scores, NaN below every number, ties to the lower index. Lowers
    /// <paramref name="margin"/> to the relative gap between the winner and the nearest different eligible score, so a
    /// caller can tell a decision that float32 rounding could flip from an exact tie.
    /// </summary>
    private static int ArgMax(double[] scores, Func<int, bool> eligible, ref double margin)
    {
        int best = -1;
        for (int j = 0; j < scores.Length; j++)
        {
            if (eligible(j) && (best < 0 || Before(scores[j], scores[best])))
            {
                best = j;
            }
        }
        double top = scores[best];
        for (int j = 0; j < scores.Length; j++)
        {
            double other = scores[j];
            if (eligible(j) && !double.IsNaN(top) && !double.IsNaN(other) && !double.IsInfinity(top) && other != top)
            {
                margin = Math.Min(margin, (top - other) / Math.Max(1, Math.Abs(top)));
            }
        }
        return best;
    }

    private static bool Before(double a, double b) => !double.IsNaN(a) && (double.IsNaN(b) || a > b);
}

/// <summary>The selection order and the sorted selection, both <c>[B, k]</c> padded with -1, and the smallest relative decision margin.</summary>
internal readonly record struct DiversityResult(int[] Order, int[] Sorted, double Margin);
