using System;
using System.Collections.Generic;
using System.Linq;

namespace TokenKernels.Tests;

/// <summary>What <see cref="KMeansReference.Cluster"/> returns: the outputs and the smallest decision margin met.</summary>
internal sealed record KMeansReferenceResult(double[] Centres, int[] Assignment, double[] Sizes, int[] Iterations, double Margin);

/// <summary>
/// Batched k-means (docs/SPEC.md, section 6, "k-means") in float64, written from the contract: scikit-learn's Lloyd
/// iterations with its relocation of empty clusters and its stopping rule, and greedy k-means++ on the SPEC's splitmix64
/// stream. Records the relative gap of every decision, so that tests redraw inputs where float32 could decide otherwise.
/// </summary>
internal static class KMeansReference
{
    /// <summary>splitmix64's step: the increment added, then its finaliser.</summary>
    internal static ulong Mix(ulong z)
    {
        unchecked
        {
            z += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }

    /// <summary>Draw <paramref name="draw"/> of item <paramref name="item"/>'s stream, in [0, 1).</summary>
    public static double Uniform(ulong seed, ulong item, ulong draw)
        => (Mix(unchecked(Mix(seed ^ Mix(item)) + draw)) >> 11) / 9007199254740992.0;

    private static double Gap(double a, double b)
    {
        double scale = Math.Max(Math.Abs(a), Math.Abs(b));
        return scale == 0 ? double.PositiveInfinity : Math.Abs(a - b) / scale;
    }

    /// <summary>k-means of every item of <c>x [B, N, C]</c> (contiguous).</summary>
    public static KMeansReferenceResult Cluster(
        double[] x, int batch, int tokens, int channels, KMeansOptions options, double[]? initialCentres = null, int[]? lengths = null, int[]? itemClusters = null)
    {
        int bigK = options.Clusters;
        var centresOut = new double[batch * bigK * channels];
        var assignmentOut = Enumerable.Repeat(-1, batch * tokens).ToArray();
        var sizesOut = new double[batch * bigK];
        var iterationsOut = new int[batch];
        double margin = double.PositiveInfinity;
        for (int b = 0; b < batch; b++)
        {
            int length = lengths?[b] ?? tokens;
            int k = Math.Min(itemClusters?[b] ?? bigK, length);
            if (k == 0)
            {
                continue;
            }
            double[] Row(int i) => x.AsSpan((b * tokens + i) * channels, channels).ToArray();
            double Distance(double[] a, double[] c)
            {
                double sum = 0;
                for (int j = 0; j < channels; j++)
                {
                    sum += (a[j] - c[j]) * (a[j] - c[j]);
                }
                return sum;
            }
            double[][] rows = Enumerable.Range(0, length).Select(Row).ToArray();
            var centres = new double[k][];
            if (options.Init == KMeansInit.Given)
            {
                for (int j = 0; j < k; j++)
                {
                    centres[j] = initialCentres!.AsSpan((b * bigK + j) * channels, channels).ToArray();
                }
            }
            else
            {
                ulong draw = 0;
                int first = Math.Min((int)Math.Floor(Uniform(options.Seed, (ulong)b, draw++) * length), length - 1);
                centres[0] = rows[first];
                double[] closest = rows.Select(r => Distance(r, centres[0])).ToArray();
                int trials = 2 + (int)Math.Floor(Math.Log(k));
                for (int j = 1; j < k; j++)
                {
                    var prefix = new double[length];
                    double running = 0;
                    for (int i = 0; i < length; i++)
                    {
                        prefix[i] = running += closest[i];
                    }
                    double best = double.PositiveInfinity, second = double.PositiveInfinity;
                    int bestToken = -1;
                    double[]? bestClosest = null;
                    for (int t = 0; t < trials; t++)
                    {
                        double target = Uniform(options.Seed, (ulong)b, draw++) * running;
                        int chosen = 0;
                        while (chosen < length - 1 && prefix[chosen] < target)
                        {
                            chosen++;
                        }
                        margin = Math.Min(margin, Gap(target, prefix[chosen]));
                        if (chosen > 0)
                        {
                            margin = Math.Min(margin, Gap(target, prefix[chosen - 1]));
                        }
                        double[] candidate = closest.Select((c, i) => Math.Min(c, Distance(rows[i], rows[chosen]))).ToArray();
                        double potential = candidate.Sum();
                        if (potential < best)
                        {
                            second = best;
                            best = potential;
                            bestToken = chosen;
                            bestClosest = candidate;
                        }
                        else if (potential < second && potential != best)
                        {
                            second = potential;
                        }
                    }
                    if (second < double.PositiveInfinity)
                    {
                        margin = Math.Min(margin, Gap(best, second));
                    }
                    closest = bestClosest!;
                    centres[j] = rows[bestToken];
                }
            }
            double tolerance = 0;
            if (options.Tolerance > 0)
            {
                double total = 0;
                for (int c = 0; c < channels; c++)
                {
                    double mean = rows.Average(r => r[c]);
                    total += rows.Sum(r => (r[c] - mean) * (r[c] - mean)) / length;
                }
                tolerance = options.Tolerance * total / Math.Max(channels, 1);
            }
            var labels = new int[length];
            var previous = Enumerable.Repeat(-1, length).ToArray();
            var nearest = new double[length];
            void Assign()
            {
                for (int i = 0; i < length; i++)
                {
                    double best = double.PositiveInfinity, second = double.PositiveInfinity;
                    int label = 0;
                    for (int j = 0; j < k; j++)
                    {
                        double d = Distance(rows[i], centres[j]);
                        if (d < best)
                        {
                            second = best;
                            best = d;
                            label = j;
                        }
                        else if (d < second)
                        {
                            second = d;
                        }
                    }
                    labels[i] = label;
                    nearest[i] = best;
                    if (second < double.PositiveInfinity)
                    {
                        margin = Math.Min(margin, Gap(best, second));
                    }
                }
            }
            bool strict = false, relocated = false;
            int iteration = 0;
            while (iteration < options.MaxIterations)
            {
                iteration++;
                Assign();
                var sums = new double[k][];
                var counts = new long[k];
                for (int j = 0; j < k; j++)
                {
                    sums[j] = new double[channels];
                }
                for (int i = 0; i < length; i++)
                {
                    for (int c = 0; c < channels; c++)
                    {
                        sums[labels[i]][c] += rows[i][c];
                    }
                    counts[labels[i]]++;
                }
                int[] farthest = Enumerable.Range(0, length).OrderByDescending(i => nearest[i]).ThenBy(i => i).ToArray();
                int e = 0;
                int[] empty = Enumerable.Range(0, k).Where(j => counts[j] == 0).ToArray();  // before any relocation
                foreach (int j in empty)
                {
                    int far = farthest[e++];
                    relocated = true;
                    int old = labels[far];
                    for (int c = 0; c < channels; c++)
                    {
                        sums[old][c] -= rows[far][c];
                        sums[j][c] = rows[far][c];
                    }
                    counts[j] = 1;
                    if (--counts[old] == 0)
                    {
                        Array.Clear(sums[old], 0, channels);
                    }
                }
                double shift = 0, energy = 0;
                for (int j = 0; j < k; j++)
                {
                    var updated = sums[j].Select(v => counts[j] > 0 ? v / counts[j] : v).ToArray();
                    shift += updated.Select((v, c) => (v - centres[j][c]) * (v - centres[j][c])).Sum();
                    energy += updated.Sum(v => v * v);
                    centres[j] = updated;
                }
                if (labels.SequenceEqual(previous))
                {
                    strict = true;
                    break;
                }
                // The shift against the tolerance, and a zero-ish shift that float32 sums may round either way.
                if ((tolerance > 0 && Math.Abs(shift - tolerance) <= 1e-4 * tolerance) ||
                    ((relocated || shift > 0) && shift <= tolerance + 1e-9 * energy))
                {
                    margin = 0;
                }
                if (shift <= tolerance)
                {
                    break;
                }
                Array.Copy(labels, previous, length);
            }
            if (!strict)
            {
                Assign();
            }
            iterationsOut[b] = iteration;
            for (int j = 0; j < k; j++)
            {
                Array.Copy(centres[j], 0, centresOut, (b * bigK + j) * channels, channels);
            }
            for (int i = 0; i < length; i++)
            {
                assignmentOut[b * tokens + i] = labels[i];
                sizesOut[b * bigK + labels[i]] += 1;
            }
        }
        return new KMeansReferenceResult(centresOut, assignmentOut, sizesOut, iterationsOut, margin);
    }
}
