// The program CI's fresh apps run (tests/packaging/run.sh): installed from the NuGet packages only, it calls
// every op family once on a small input whose answer is known and checks one value each. Exit code 0 when
// every check holds, 1 otherwise. Compiles as C# 9 and later (net8.0, net10.0, Native AOT).
using System;
using System.Collections.Generic;
using TokenKernels;

var failures = new List<string>();
void Check(string what, double actual, double expected)
{
    bool ok = Math.Abs(actual - expected) <= 1e-6 * Math.Max(1.0, Math.Abs(expected));
    Console.WriteLine((ok ? "ok    " : "FAIL  ") + what + ": " + actual + (ok ? "" : " (expected " + expected + ")"));
    if (!ok)
    {
        failures.Add(what);
    }
}

Console.WriteLine("Runtime: " + System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription
    + ", " + System.Runtime.InteropServices.RuntimeInformation.RuntimeIdentifier);
Console.WriteLine("TokenKernels " + TokenKernelsLibrary.VersionString + " from " + TokenKernelsLibrary.LoadedFrom);
Console.WriteLine("CUDA built: " + TokenKernelsLibrary.IsCudaBuilt + ", devices: " + Cuda.DeviceCount + ", CPU threads: " + TokenKernelsLibrary.NumThreads);

// Pooling: the 2x2 average of one 2x2 frame of one channel.
var frame = new ReadOnlyHostTensor<float>(new float[] { 1, 2, 3, 4 }, new TensorShape(1, 1, 2, 2, 1));
var pooled = new float[1];
Pooling.WindowAvg(frame, new HostTensor<float>(pooled, new TensorShape(1, 1, 1, 1, 1)), kernel: (1, 2, 2));
Check("pooling: 2x2 average of 1, 2, 3, 4", pooled[0], 2.5);

// Merging: 4 tokens, r = 1. Source 2 is closest to destination 3 (cosine 1), so they merge into one row of
// size 2, the weighted mean of their values; unmerge copies it back to both positions.
var keys = new ReadOnlyHostTensor<float>(new float[] { 1, 0, 0, 1, 1, 1, 2, 2 }, new TensorShape(1, 4, 2));
var values = new ReadOnlyHostTensor<float>(new float[] { 10, 20, 30, 50 }, new TensorShape(1, 4, 1));
MergeResult<float> merged = TokenMerging.Merge(keys, values, new MergeOptions(r: 1));
Check("merging: rows after merging 4 tokens with r = 1", merged.Shape[1], 3);
Check("merging: the merged row (30 and 50, sizes 1 and 1)", merged.X[2], 40);
Check("merging: its size", merged.Sizes[2], 2);
var (restored, _) = TokenMerging.Unmerge(new ReadOnlyHostTensor<float>(merged.X, merged.Shape),
                                         new ReadOnlyHostTensor<int>(merged.SourceMap, new TensorShape(1, 4)));
Check("unmerging: token 2 gets the merged row", restored[2], 40);

// Attention pruning: FastV's last-row scores over 3 image tokens, the top 2 in order, gathered.
var attention = new ReadOnlyHostTensor<float>(new float[]
{
    1.0f, 0.0f, 0.0f, 0.0f,
    0.5f, 0.5f, 0.0f, 0.0f,
    0.3f, 0.3f, 0.4f, 0.0f,
    0.1f, 0.6f, 0.1f, 0.2f,
}, new TensorShape(1, 1, 4, 4));
var (scores, scoresShape) = TokenPruning.AttentionImportance(attention, ImportanceOptions.FastV(imageStart: 1, imageEnd: 4, queries: 4));
Check("importance: FastV score of image token 0 (key 1)", scores[0], 0.6);
var (kept, keptShape) = TokenPruning.TopK(new ReadOnlyHostTensor<float>(scores, scoresShape), k: 2);
Check("top-k: the second kept image token (scores 0.6, 0.1, 0.2)", kept[1], 2);
var imageTokens = new ReadOnlyHostTensor<float>(new float[] { 7, 8, 9 }, new TensorShape(1, 3, 1));
var (gathered, _) = TokenPruning.Gather(imageTokens, new ReadOnlyHostTensor<int>(kept, keptShape));
Check("gather: the second kept token's value", gathered[1], 9);

// Diversity: DivPrune keeps the most isolated token (2, orthogonal to the others) first, then the one farthest
// from it (0, ties to the lower index).
var features = new ReadOnlyHostTensor<float>(new float[] { 1, 0, 1, 0.1f, 0, 1 }, new TensorShape(1, 3, 2));
var (order, sorted, _) = DiversitySelection.Select(features, DiversityOptions.DivPrune(k: 2));
Check("diversity: the first token DivPrune keeps", order[0], 2);
Check("diversity: the second", order[1], 0);

// k-means: tokens 0, 1, 10, 11 from the centres 0 and 10 settle at 0.5 and 10.5.
var points = new ReadOnlyHostTensor<float>(new float[] { 0, 1, 10, 11 }, new TensorShape(1, 4, 1));
var starts = new ReadOnlyHostTensor<float>(new float[] { 0, 10 }, new TensorShape(1, 2, 1));
var (centres, assignment, _, _) = KMeans.Cluster(points, new KMeansOptions(clusters: 2) { Init = KMeansInit.Given }, starts);
Check("k-means: the second centre", centres[1], 10.5);
Check("k-means: the label of token 1", assignment[1], 0);

// DPC-kNN and aggregation: two pairs of nearby tokens make two clusters of two; their means sum to 10.1.
var pairs = new ReadOnlyHostTensor<float>(new float[] { 0, 0.1f, 10, 10.1f }, new TensorShape(1, 4, 1));
ClusterAggregateResult<float> clustered = ClusterRecipes.ClusterAndAggregate(pairs, clusters: 2, neighbours: 2);
Check("cluster-and-aggregate: the two means' sum", clustered.Merged[0] + clustered.Merged[1], 10.1);
Check("cluster-and-aggregate: the first cluster's size", clustered.Sizes[0], 2);
Check("cluster-and-aggregate: tokens 0 and 1 share a cluster", clustered.SourceMap[0] == clustered.SourceMap[1] ? 1 : 0, 1);

// Query relevance: the visual token along the text's direction is the most relevant (min-max to 1 + 1e-6).
var visual = new ReadOnlyHostTensor<float>(new float[] { 1, 0, 0, 1, 1, 1 }, new TensorShape(1, 3, 2));
var text = new ReadOnlyHostTensor<float>(new float[] { 1, 0 }, new TensorShape(1, 1, 2));
var (relevance, _) = QueryRelevance.Compute(visual, text, negate: false);
Check("query relevance: token 0", relevance[0], 1.000001);

// Conditional DPP without relevance: equal weights pick token 0 first, then the one least like it (2).
var (dppOrder, _, _) = ConditionalDpp.Select(new ReadOnlyHostTensor<float>(new float[] { 1, 0, 1, 0.1f, 0, 1 }, new TensorShape(1, 3, 2)),
                                             default, k: 2);
Check("conditional DPP: the second token chosen", dppOrder[1], 2);

Console.WriteLine(failures.Count == 0 ? "every check passed" : failures.Count + " checks failed");
return failures.Count == 0 ? 0 : 1;
