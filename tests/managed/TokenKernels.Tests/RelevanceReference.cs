using System;
using System.Linq;

namespace TokenKernels.Tests;

/// <summary>
/// Query relevance and the conditional DPP (docs/SPEC.md, section 7) in float64, written from the contract the way CDPruner
/// computes it: the whole kernel matrix of each item, and the greedy MAP loop over it (cis, di2s).
/// </summary>
internal static class RelevanceReference
{
    private static double[] Unit(double[] x, int offset, int channels)
    {
        double sum = 0;
        for (int c = 0; c < channels; c++) sum += x[offset + c] * x[offset + c];
        double norm = Math.Max(Math.Sqrt(sum), 1e-12);
        var u = new double[channels];
        for (int c = 0; c < channels; c++) u[c] = x[offset + c] / norm;
        return u;
    }

    private static double Dot(double[] a, double[] b)
    {
        double s = 0;
        for (int c = 0; c < a.Length; c++) s += a[c] * b[c];
        return s;
    }

    /// <summary>relevance [B, N] of visual [B, N, C] to text [B, T, C] (contiguous).</summary>
    public static double[] Relevance(double[] visual, double[] text, int batch, int tokens, int textTokens, int channels, bool negate)
    {
        var output = new double[batch * tokens];
        for (int b = 0; b < batch; b++)
        {
            var queries = Enumerable.Range(0, textTokens).Select(t => Unit(text, (b * textTokens + t) * channels, channels)).ToArray();
            var score = new double[tokens];
            for (int i = 0; i < tokens; i++)
            {
                double[] u = Unit(visual, (b * tokens + i) * channels, channels);
                double mean = queries.Sum(q => Dot(u, q)) / textTokens;
                score[i] = negate ? -mean : mean;
            }
            double lo = score.Min(), hi = score.Max();
            for (int i = 0; i < tokens; i++)
            {
                output[b * tokens + i] = hi - lo > 0 ? (score[i] - lo + 1e-6) / (hi - lo) : 1.0;
            }
        }
        return output;
    }

    /// <summary>The selection order of every item of x [B, N, C] (contiguous), -1 padded to k, and the smallest gap met
    /// between the chosen residual and the best other one, relative to the largest initial residual.</summary>
    public static (int[] Order, double Margin) Select(double[] x, double[]? relevance, int batch, int tokens, int channels, int k,
                                                      DppWeighting weighting, double theta)
    {
        var order = Enumerable.Repeat(-1, batch * k).ToArray();
        double margin = double.PositiveInfinity;
        double alpha = theta / (2 * (1 - theta));
        for (int b = 0; b < batch; b++)
        {
            var u = Enumerable.Range(0, tokens).Select(i => Unit(x, (b * tokens + i) * channels, channels)).ToArray();
            var w = new double[tokens];
            for (int i = 0; i < tokens; i++)
            {
                double r = relevance?[b * tokens + i] ?? 1.0;
                w[i] = relevance == null ? 1.0 : weighting == DppWeighting.Exponential ? Math.Exp(alpha * r) : r;
            }
            var kernel = new double[tokens, tokens];
            for (int i = 0; i < tokens; i++)
            {
                for (int j = 0; j < tokens; j++)
                {
                    double s = i == j ? (Dot(u[i], u[i]) > 0 ? 1.0 : 0.0) : Dot(u[i], u[j]);
                    kernel[i, j] = w[i] * s * w[j];
                }
            }
            var residual = Enumerable.Range(0, tokens).Select(i => kernel[i, i]).ToArray();
            double scale = Math.Max(residual.Max(), 1e-30);
            var cis = new double[k, tokens];
            var chosen = new bool[tokens];
            for (int t = 0; t < k; t++)
            {
                int j = -1;
                for (int n = 0; n < tokens; n++)
                {
                    if (!chosen[n] && (j < 0 || residual[n] > residual[j])) j = n;
                }
                for (int n = 0; n < tokens; n++)
                {
                    if (n != j && !chosen[n] && residual[n] != residual[j]) margin = Math.Min(margin, Math.Abs(residual[j] - residual[n]) / scale);
                }
                chosen[j] = true;
                order[b * k + t] = j;
                double d = residual[j];
                if (!(d > 0)) continue;
                for (int n = 0; n < tokens; n++)
                {
                    if (chosen[n]) continue;
                    double projection = 0;
                    for (int s = 0; s < t; s++) projection += cis[s, j] * cis[s, n];
                    double e = (kernel[j, n] - projection) / Math.Sqrt(d);
                    cis[t, n] = e;
                    residual[n] -= e * e;
                }
            }
        }
        return (order, margin);
    }
}
