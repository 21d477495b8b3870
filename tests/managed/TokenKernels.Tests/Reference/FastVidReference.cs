using System;
using System.Collections.Generic;
using System.Linq;

namespace TokenKernels.Tests.Reference;

/// <summary>
/// Float64 FastVID, written from the official code (LunarShen/FastVID, fastvid_llavavideo modeling_qwen2.py, Qwen2Model.forward)
/// step by step: DySeg's cut indices; per segment the salient/contextual split, the anchor frames (tmp_i % p == 0, then the list
/// reversed), per anchor frame DPC-kNN over its non-salient tokens (cdist / sqrt(D), the 4 smallest, exp(-mean of squares),
/// distance to the nearest denser token or the largest distance, score = dist x density, topk, sorted), and the merge of every
/// other non-salient token of the segment (unit rows, argmax, the mean of raw rows, avg_weights = clamp(1 / (n + 1), min=beta)).
/// The density's random noise is left out: ties rank to the lower index, as in the library.
/// </summary>
internal static class FastVidReference
{
    internal static int[] DySeg(double[] features, int frames, int channels, int c, double tau)
    {
        var unit = new double[frames * channels];
        for (int f = 0; f < frames; f++)
        {
            double norm = Math.Sqrt(Enumerable.Range(0, channels).Sum(k => features[f * channels + k] * features[f * channels + k]));
            for (int k = 0; k < channels; k++) unit[f * channels + k] = features[f * channels + k] / norm;
        }
        var similarity = new double[frames - 1];
        for (int t = 0; t < frames - 1; t++)
            similarity[t] = Enumerable.Range(0, channels).Sum(k => unit[t * channels + k] * unit[(t + 1) * channels + k]);
        // topk(similarity, c - 1, largest=False) and where(similarity < tau), unique and sorted.
        var cuts = new SortedSet<int>(Enumerable.Range(0, frames - 1).OrderBy(t => similarity[t]).ThenBy(t => t).Take(c - 1));
        for (int t = 0; t < frames - 1; t++)
            if (similarity[t] < tau) cuts.Add(t);
        var sizes = new List<int>();
        int previous = -1;
        foreach (int cut in cuts)
        {
            sizes.Add(cut - previous);
            previous = cut;
        }
        sizes.Add(frames - previous - 1);
        return sizes.ToArray();
    }

    internal sealed record DtmResult(double[] Contextual, int[] Positions, bool NearTie);

    /// <summary>x [T, L, C] row-major; salient [T x L] or null.</summary>
    internal static DtmResult Dtm(double[] x, int frames, int tokens, int channels, int[] segmentSizes, int frameRetainNum, double stpruneD,
                                  int p, double beta, int k, bool[]? salient, double tolerance = 1e-5)
    {
        var contextual = new List<double>();
        var positions = new List<int>();
        bool nearTie = false;
        double[] Row(int global) => x.Skip(global * channels).Take(channels).ToArray();
        bool Excluded(int global) => salient != null && salient[global];
        bool Close(double a, double b) => a != b && Math.Abs(a - b) <= tolerance * Math.Max(1e-3, Math.Max(Math.Abs(a), Math.Abs(b)));
        int segmentStart = 0;
        foreach (int segLen in segmentSizes)
        {
            int segRetainNum = frameRetainNum * segLen;
            int segContextNum = (int)(segRetainNum * stpruneD);
            var frmContextNum = new int[segLen];
            if (segLen == 1)
            {
                frmContextNum[0] = segContextNum;
            }
            else
            {
                int tempNum = (segLen + p - 1) / p;
                var temp = Enumerable.Range(0, tempNum).Select(i => segContextNum / tempNum + (i < segContextNum % tempNum ? 1 : 0)).ToArray();
                var list = new List<int>();
                int next = 0;
                for (int i = 0; i < segLen; i++) list.Add(i % p == 0 ? temp[next++] : 0);
                list.Reverse();
                frmContextNum = list.ToArray();
            }
            // Every non-salient token of the segment, by global index.
            var segmentTokens = Enumerable.Range(segmentStart * tokens, segLen * tokens).Where(g => !Excluded(g)).ToList();
            for (int f = 0; f < segLen; f++)
            {
                if (frmContextNum[f] <= 0) continue;
                int frame = segmentStart + f;
                var remaining = Enumerable.Range(frame * tokens, tokens).Where(g => !Excluded(g)).ToArray();
                int n = remaining.Length;
                if (n == 0) continue;
                var dist = new double[n, n];
                double max = 0;
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < n; j++)
                    {
                        double s = 0;
                        for (int ch = 0; ch < channels; ch++)
                        {
                            double diff = x[remaining[i] * channels + ch] - x[remaining[j] * channels + ch];
                            s += diff * diff;
                        }
                        dist[i, j] = Math.Sqrt(s) / Math.Sqrt(channels);
                        max = Math.Max(max, dist[i, j]);
                    }
                int kk = Math.Min(k, n);
                var density = new double[n];
                for (int i = 0; i < n; i++)
                    density[i] = Math.Exp(-Enumerable.Range(0, n).Select(j => dist[i, j]).OrderBy(v => v).Take(kk).Select(v => v * v).Average());
                var score = new double[n];
                for (int i = 0; i < n; i++)
                {
                    double nearest = max;
                    for (int j = 0; j < n; j++)
                    {
                        if (density[j] > density[i] || (density[j] == density[i] && j < i)) nearest = Math.Min(nearest, dist[i, j]);
                        // Densities lie in (0, 1]; float32 gets them to about 1e-7 absolute.
                        if (j != i && density[j] != density[i] && Math.Abs(density[j] - density[i]) <= 1e-6) nearTie = true;
                    }
                    score[i] = nearest * density[i];
                }
                int count = Math.Min(frmContextNum[f], n);
                var ranked = Enumerable.Range(0, n).OrderByDescending(i => score[i]).ThenBy(i => i).ToArray();
                if (count < n && Close(score[ranked[count - 1]], score[ranked[count]])) nearTie = true;
                var anchors = ranked.Take(count).OrderBy(i => i).Select(i => remaining[i]).ToArray();
                var anchorSet = new HashSet<int>(anchors);
                double[] Unit(int g)
                {
                    double[] r = Row(g);
                    double norm = Math.Sqrt(r.Sum(v => v * v));
                    return r.Select(v => norm == 0 ? 0 : v / norm).ToArray();
                }
                var anchorUnits = anchors.Select(Unit).ToArray();
                var sums = new double[count, channels];
                var counts = new int[count];
                foreach (int g in segmentTokens)
                {
                    if (anchorSet.Contains(g)) continue;
                    double[] u = Unit(g);
                    var sims = anchorUnits.Select(a => a.Zip(u, (l, r) => l * r).Sum()).ToArray();
                    int best = 0;
                    for (int j = 1; j < count; j++)
                        if (sims[j] > sims[best]) best = j;
                    for (int j = 0; j < count; j++)
                        if (j != best && Close(sims[j], sims[best])) nearTie = true;
                    counts[best]++;
                    for (int ch = 0; ch < channels; ch++) sums[best, ch] += x[g * channels + ch];
                }
                for (int j = 0; j < count; j++)
                {
                    double w = Math.Max(1.0 / (counts[j] + 1), beta);
                    for (int ch = 0; ch < channels; ch++)
                    {
                        double anchor = x[anchors[j] * channels + ch];
                        contextual.Add(counts[j] == 0 ? anchor : w * anchor + (1 - w) * sums[j, ch] / counts[j]);
                    }
                    positions.Add(anchors[j]);
                }
            }
            segmentStart += segLen;
        }
        return new DtmResult(contextual.ToArray(), positions.ToArray(), nearTie);
    }
}
