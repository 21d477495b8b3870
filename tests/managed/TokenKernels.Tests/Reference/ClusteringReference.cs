using System;
using System.Collections.Generic;
using System.Linq;

namespace TokenKernels.Tests.Reference;

/// <summary>
/// Float64 DPC-kNN and cluster aggregation, written from docs/SPEC.md section 6: distances |x_i - x_j| / sqrt(C), density
/// exp(-mean of the k smallest squared distances), delta to the nearest token ranked before (density descending, ties to
/// the lower index), centres the top K of delta x density, each other token to its nearest centre.
/// </summary>
internal static class ClusteringReference
{
    internal sealed record DpcResult(int[] Centres, int[] Assignment, double[] Density, double[] Delta, bool NearTie);

    /// <summary>x [B, N, C] row-major; NearTie when a decision's relative margin is below tolerance (float32 may decide it otherwise).</summary>
    internal static DpcResult DpcKnn(double[] x, int batch, int tokens, int channels, int clusters, int neighbours, double tolerance = 1e-5)
    {
        var centres = Enumerable.Repeat(-1, batch * clusters).ToArray();
        var assignment = Enumerable.Repeat(-1, batch * tokens).ToArray();
        var density = new double[batch * tokens];
        var delta = new double[batch * tokens];
        bool nearTie = false;
        bool Close(double a, double b) => a != b && Math.Abs(a - b) <= tolerance * Math.Max(Math.Abs(a), Math.Abs(b));
        for (int b = 0; b < batch; b++)
        {
            var d = new double[tokens, tokens];
            double largest = 0;
            for (int i = 0; i < tokens; i++)
            {
                for (int j = 0; j < tokens; j++)
                {
                    double s = 0;
                    for (int c = 0; c < channels; c++)
                    {
                        double diff = x[(b * tokens + i) * channels + c] - x[(b * tokens + j) * channels + c];
                        s += diff * diff;
                    }
                    d[i, j] = Math.Sqrt(s) / Math.Sqrt(channels);
                    largest = Math.Max(largest, d[i, j]);
                }
            }
            int k = Math.Min(neighbours, tokens);
            var rho = new double[tokens];
            for (int i = 0; i < tokens; i++)
            {
                double[] row = Enumerable.Range(0, tokens).Select(j => d[i, j]).OrderBy(v => v).Take(k).ToArray();
                rho[i] = Math.Exp(-row.Sum(v => v * v) / k);
            }
            bool Before(int j, int i) => rho[j] > rho[i] || (rho[j] == rho[i] && j < i);
            var dl = new double[tokens];
            for (int i = 0; i < tokens; i++)
            {
                dl[i] = largest;
                for (int j = 0; j < tokens; j++)
                {
                    if (Before(j, i)) dl[i] = Math.Min(dl[i], d[i, j]);
                }
            }
            for (int i = 0; i < tokens; i++)
            {
                for (int j = 0; j < tokens; j++)
                {
                    if (i != j && Before(i, j) && Close(rho[i], rho[j]) && (d[i, j] <= dl[j] * (1 + tolerance) || d[i, j] < dl[i] * (1 + tolerance)))
                        nearTie = true;
                }
            }
            var score = Enumerable.Range(0, tokens).Select(i => dl[i] * rho[i]).ToArray();
            int[] order = Enumerable.Range(0, tokens).OrderByDescending(i => score[i]).ThenBy(i => i).ToArray();
            int kb = Math.Min(clusters, tokens);
            for (int t = 0; t < kb && t + 1 < tokens; t++)
            {
                if (Close(score[order[t]], score[order[t + 1]])) nearTie = true;
            }
            for (int j = 0; j < kb; j++) centres[b * clusters + j] = order[j];
            for (int i = 0; i < tokens; i++)
            {
                density[b * tokens + i] = rho[i];
                delta[b * tokens + i] = dl[i];
                if (kb == 0) continue;
                int own = Array.IndexOf(order, i, 0, kb);
                if (own >= 0)
                {
                    assignment[b * tokens + i] = own;
                    continue;
                }
                int best = 0;
                for (int j = 1; j < kb; j++)
                {
                    if (d[i, order[j]] < d[i, order[best]]) best = j;
                }
                for (int j = 0; j < kb; j++)
                {
                    if (j != best && Close(d[i, order[j]], d[i, order[best]])) nearTie = true;
                }
                assignment[b * tokens + i] = best;
            }
        }
        return new DpcResult(centres, assignment, density, delta, nearTie);
    }

    /// <summary>out [B, K, C] and out_size [B, K] of each mode; empty clusters zeros and size 0.</summary>
    internal static (double[] Out, double[] Size) Merge(
        double[] x, int[] assignment, double[]? sizes, int[]? centres, int batch, int tokens, int channels, int clusters, ClusterMergeMode mode, double beta)
    {
        var output = new double[batch * clusters * channels];
        var outSize = new double[batch * clusters];
        for (int b = 0; b < batch; b++)
        {
            for (int j = 0; j < clusters; j++)
            {
                int centre = centres == null ? -1 : centres[b * clusters + j];
                bool blend = mode == ClusterMergeMode.CentreBlend;
                var sum = new double[channels];
                double weight = 0, size = 0;
                for (int i = 0; i < tokens; i++)
                {
                    if (assignment[b * tokens + i] != j) continue;
                    double s = sizes == null ? 1 : sizes[b * tokens + i];
                    size += s;
                    if (blend && i == centre) continue;
                    double w = mode == ClusterMergeMode.SizeWeighted ? s : 1;
                    for (int c = 0; c < channels; c++) sum[c] += w * x[(b * tokens + i) * channels + c];
                    weight += w;
                }
                int row = (b * clusters + j) * channels;
                if (blend)
                {
                    if (centre < 0) continue;
                    for (int c = 0; c < channels; c++)
                    {
                        double v = x[(b * tokens + centre) * channels + c];
                        output[row + c] = weight > 0 ? beta * v + (1 - beta) * sum[c] / weight : v;
                    }
                }
                else if (weight != 0)
                {
                    for (int c = 0; c < channels; c++) output[row + c] = sum[c] / weight;
                }
                outSize[b * clusters + j] = size;
            }
        }
        return (output, outSize);
    }
}
