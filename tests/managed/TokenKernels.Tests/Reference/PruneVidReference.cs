using System;
using System.Collections.Generic;
using System.Linq;

namespace TokenKernels.Tests.Reference;

/// <summary>
/// PruneVid's <c>merge_frames_dynamic</c> (Visual-AI/PruneVid, models/pllava/modeling_pllava.py) in float64, written from the
/// published code: <c>cluster_dpc_knn</c> (here <see cref="ClusteringReference.DpcKnn"/>, without the 1e-6 density noise),
/// <c>refine_clusters</c>, <c>segment_lengths</c>, the normalised pairwise similarity and the static/dynamic split,
/// <c>spatial_merge_tokens</c> and <c>compute_cluster_vectors</c>. <c>round</c> rounds a mean to the element type, where the
/// published code holds its tensors in that type.
/// </summary>
internal static class PruneVidReference
{
    internal sealed record Result(double[] Merged, int[] StaticSizes, int[] DynamicSizes, int[] WindowSizes, int[] SourceMap, int[] Refined, bool NearTie);

    /// <summary>x [T, L, C] row-major.</summary>
    internal static Result MergeFrames(double[] x, int frames, int positions, int channels, Func<double, double> round,
                                       double temporalSegmentRatio, double clusterRatio, double tau, int k, double tieTolerance)
    {
        bool nearTie = false;
        double X(int t, int p, int c) => x[(t * positions + p) * channels + c];

        // frames.mean(dim=2), then cluster_dpc_knn over the frames and refine_clusters.
        var means = new double[frames * channels];
        for (int t = 0; t < frames; t++)
            for (int c = 0; c < channels; c++)
                means[t * channels + c] = round(Enumerable.Range(0, positions).Sum(p => X(t, p, c)) / positions);
        ClusteringReference.DpcResult temporal = ClusteringReference.DpcKnn(means, 1, frames, channels, (int)(frames * temporalSegmentRatio), k, tieTolerance);
        nearTie |= temporal.NearTie;
        int[] refined = Refine(temporal.Assignment);
        var windows = new List<int>();
        for (int t = 0; t < frames; t++)
        {
            if (t == 0 || refined[t] != refined[t - 1]) windows.Add(0);
            windows[^1]++;
        }

        var merged = new List<double>();
        var sourceMap = new int[frames * positions];
        var staticSizes = new List<int>();
        var dynamicSizes = new List<int>();
        int start = 0;
        foreach (int window in windows)
        {
            // F.normalize, all ordered pairs summed, the W self-terms taken off, / (W (W - 1)); W = 1 is 0 / 0.
            var isStatic = new bool[positions];
            for (int p = 0; p < positions; p++)
            {
                double sim = double.NaN;
                if (window > 1)
                {
                    double total = 0;
                    for (int w = 0; w < window; w++)
                        for (int t = 0; t < window; t++)
                        {
                            double dot = 0, uu = 0, vv = 0;
                            for (int c = 0; c < channels; c++)
                            {
                                double u = X(start + w, p, c), v = X(start + t, p, c);
                                dot += u * v;
                                uu += u * u;
                                vv += v * v;
                            }
                            total += dot / (Math.Max(Math.Sqrt(uu), 1e-12) * Math.Max(Math.Sqrt(vv), 1e-12));
                        }
                    sim = (total - window) / (window * (window - 1.0));
                    if (Math.Abs(sim - tau) < 1e-4) nearTie = true;
                }
                isStatic[p] = sim > tau;
            }
            int[] staticPositions = Enumerable.Range(0, positions).Where(p => isStatic[p]).ToArray();
            int[] dynamicPositions = Enumerable.Range(0, positions).Where(p => !isStatic[p]).ToArray();

            // Static: the mean over the window's frames, then spatial_merge_tokens when more than 14.
            var staticFeat = new double[staticPositions.Length * channels];
            for (int j = 0; j < staticPositions.Length; j++)
                for (int c = 0; c < channels; c++)
                    staticFeat[j * channels + c] = round(Enumerable.Range(start, window).Sum(t => X(t, staticPositions[j], c)) / window);
            (int[] rowOf, int staticRows) = Spatial(staticFeat, staticPositions.Length, channels, round, clusterRatio, k, tieTolerance, merged, ref nearTie);
            staticSizes.Add(staticRows);
            for (int j = 0; j < staticPositions.Length; j++)
                for (int t = start; t < start + window; t++) sourceMap[t * positions + staticPositions[j]] = rowOf[j];
            // Dynamic: each frame's tokens, spatial_merge_tokens when more than 14.
            int dynamicRows = 0;
            for (int t = start; t < start + window; t++)
            {
                var feat = new double[dynamicPositions.Length * channels];
                for (int j = 0; j < dynamicPositions.Length; j++)
                    for (int c = 0; c < channels; c++) feat[j * channels + c] = X(t, dynamicPositions[j], c);
                (int[] rows, int count) = Spatial(feat, dynamicPositions.Length, channels, round, clusterRatio, k, tieTolerance, merged, ref nearTie);
                for (int j = 0; j < dynamicPositions.Length; j++) sourceMap[t * positions + dynamicPositions[j]] = rows[j];
                dynamicRows += count;
            }
            dynamicSizes.Add(dynamicRows);
            start += window;
        }
        return new Result(merged.ToArray(), staticSizes.ToArray(), dynamicSizes.ToArray(), windows.ToArray(), sourceMap, refined, nearTie);
    }

    /// <summary>
    /// spatial_merge_tokens when more than 14 tokens (DPC-kNN into int(n x ratio) clusters, then each cluster's mean), else the
    /// tokens as they are; appends the rows to merged and returns each token's row in it and the rows appended.
    /// </summary>
    private static (int[] RowOf, int Rows) Spatial(double[] feat, int n, int channels, Func<double, double> round, double clusterRatio, int k, double tieTolerance,
                                 List<double> merged, ref bool nearTie)
    {
        int first = merged.Count / channels;
        if (n <= 14)
        {
            merged.AddRange(feat);
            return (Enumerable.Range(first, n).ToArray(), n);
        }
        int clusters = (int)(n * clusterRatio);
        ClusteringReference.DpcResult dpc = ClusteringReference.DpcKnn(feat, 1, n, channels, clusters, k, tieTolerance);
        nearTie |= dpc.NearTie;
        for (int j = 0; j < clusters; j++)
        {
            int[] members = Enumerable.Range(0, n).Where(i => dpc.Assignment[i] == j).ToArray();
            for (int c = 0; c < channels; c++)
                merged.Add(members.Length == 0 ? 0 : round(members.Sum(i => feat[i * channels + c]) / members.Length));
        }
        return (dpc.Assignment.Select(a => first + a).ToArray(), clusters);
    }

    /// <summary>refine_clusters on one row of labels, step by step as published.</summary>
    internal static int[] Refine(int[] labels)
    {
        int n = labels.Length;
        int[] refined = (int[])labels.Clone();
        // Step 1: each cluster's runs of consecutive frames.
        var runs = new SortedDictionary<int, List<(int Start, int End)>>();
        foreach (int label in labels.Distinct())
        {
            int[] indices = Enumerable.Range(0, n).Where(i => labels[i] == label).ToArray();
            var segments = new List<(int, int)>();
            int s = indices[0], prev = indices[0];
            foreach (int i in indices.Skip(1))
            {
                if (i == prev + 1)
                {
                    prev = i;
                    continue;
                }
                segments.Add((s, prev));
                s = prev = i;
            }
            segments.Add((s, prev));
            runs[label] = segments;
        }
        // Step 2: keep the longest runs (none if the longest is 1 frame); the others are reassigned.
        foreach (var (_, segments) in runs)
        {
            int longest = segments.Max(r => r.End - r.Start + 1);
            foreach ((int s, int e) in segments)
            {
                if (longest == 1 || e - s + 1 != longest)
                    for (int i = s; i <= e; i++) refined[i] = -1;
            }
        }
        // Step 3: each run of reassigned frames takes the longer neighbouring run's label, the left one on ties, else 0.
        int idx = 0;
        while (idx < n)
        {
            if (refined[idx] != -1)
            {
                idx++;
                continue;
            }
            int start = idx;
            while (idx < n && refined[idx] == -1) idx++;
            int end = idx - 1;
            int? leftLabel = null, rightLabel = null;
            int leftLength = 0, rightLength = 0;
            if (start > 0)
            {
                leftLabel = refined[start - 1];
                int l = start - 1;
                while (l >= 0 && refined[l] == leftLabel) l--;
                leftLength = start - l - 1;
            }
            if (end < n - 1)
            {
                rightLabel = refined[end + 1];
                int r = end + 1;
                while (r < n && refined[r] == rightLabel) r++;
                rightLength = r - end - 1;
            }
            int? label = leftLength > rightLength ? leftLabel : rightLength > leftLength ? rightLabel : leftLabel ?? rightLabel;
            for (int i = start; i <= end; i++) refined[i] = label ?? 0;
        }
        return refined;
    }
}
