using System;
using System.Collections.Generic;
using TokenKernels.Interop;
using static TokenKernels.Interop.OpArguments;

namespace TokenKernels;

/// <summary>What <see cref="PruneVid.MergeFrames{T}(ReadOnlyHostTensor{T}, double, double, float, int)"/> returns, in the published method's order.</summary>
/// <typeparam name="T">The tokens' element type.</typeparam>
public sealed class PruneVidResult<T>
    where T : unmanaged
{
    internal PruneVidResult(T[] merged, int channels, int[] staticSizes, int[] dynamicSizes, int[] windowSizes, int[] sourceMap, int[] frameClusters)
    {
        Merged = merged;
        MergedShape = new TensorShape(merged.Length / Math.Max(channels, 1), channels);
        StaticSizes = staticSizes;
        DynamicSizes = dynamicSizes;
        WindowSizes = windowSizes;
        SourceMap = sourceMap;
        FrameClusters = frameClusters;
    }

    /// <summary><c>[M, C]</c>: per segment, its static tokens, then each of its frames' dynamic tokens.</summary>
    public T[] Merged { get; }

    /// <summary>The shape of <see cref="Merged"/>, <c>[M, C]</c>.</summary>
    public TensorShape MergedShape { get; }

    /// <summary><c>[S]</c>: the static tokens of each segment (PruneVid's <c>static_sizes</c>).</summary>
    public int[] StaticSizes { get; }

    /// <summary><c>[S]</c>: the dynamic tokens of each segment, all its frames together (PruneVid's <c>dynamic_sizes</c>).</summary>
    public int[] DynamicSizes { get; }

    /// <summary><c>[S]</c>: the frames of each segment (PruneVid's <c>window_sizes</c>), summing to T.</summary>
    public int[] WindowSizes { get; }

    /// <summary><c>[T, L]</c>: the row of <see cref="Merged"/> each input token went into (for <see cref="TokenMerging"/>'s unmerge).</summary>
    public int[] SourceMap { get; }

    /// <summary><c>[T]</c>: each frame's temporal cluster after refinement (the labels the segments are the runs of).</summary>
    public int[] FrameClusters { get; }
}

/// <summary>
/// PruneVid's token merging of one video (Huang et al., "PruneVid: Visual Token Pruning for Efficient Video Large Language
/// Models"; code: Visual-AI/PruneVid, <c>models/pllava/modeling_pllava.py</c>, <c>merge_frames_dynamic</c>), composed from the
/// library's ops: the frame means (<see cref="ClusterAggregation"/>), DPC-kNN over them (<see cref="DensityPeaksClustering"/>), the
/// refinement of the frame clusters into segments (<see cref="RefineClusters"/>, a host function on T labels), the static test
/// (<see cref="SegmentSimilarity{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{int}, HostTensor{float})"/>, <c>tk_segment_similarity</c>),
/// the static means (<see cref="ClusterAggregation"/>), and DPC-kNN with cluster means over the larger token sets, all of them in one
/// batched call with per-item lengths and cluster counts.
/// </summary>
/// <remarks>
/// <para>PruneVid's <c>cluster_dpc_knn</c> adds <c>torch.rand * 1e-6</c> to the densities; the library's DPC-kNN does not (ties go to
/// the lower index), so results are reproducible and equal the published method's wherever that noise decides nothing.</para>
/// <para>Where the published code fails (fewer than one temporal cluster, a k above the frame count passed to <c>torch.topk</c>),
/// this one throws <see cref="ArgumentOutOfRangeException"/> or, for k, clamps k to the tokens of the item (docs/SPEC.md, DPC-kNN).</para>
/// </remarks>
public static unsafe class PruneVid
{
    /// <summary>PruneVid's <c>temporal_segment_ratio</c>: int(T x ratio) temporal clusters.</summary>
    public const double DefaultTemporalSegmentRatio = 0.25;

    /// <summary>PruneVid's <c>cluster_ratio</c>: a token set of n is clustered into int(n x ratio) tokens.</summary>
    public const double DefaultClusterRatio = 0.5;

    /// <summary>PruneVid's <c>tau</c>: a position is static in a segment when its mean pairwise similarity exceeds it.</summary>
    public const float DefaultTau = 0.8f;

    /// <summary>The k of every DPC-kNN density in PruneVid (7 in <c>merge_frames_dynamic</c> and <c>spatial_merge_tokens</c>).</summary>
    public const int DefaultNeighbours = 7;

    /// <summary>A token set is clustered only when it holds more than this many tokens (PruneVid's literal 14).</summary>
    public const int ClusteringMinimum = 14;

    private const int Cpu = NativeMethods.TK_DEVICE_CPU;
    private const string Family = "PruneVid";

    // ---- The static test: tk_segment_similarity ----

    /// <summary>
    /// <c>output[s, p]</c> = the mean over the pairs of distinct frames t &lt; t' of segment s of cos(frames[t, p], frames[t', p])
    /// (<c>tk_segment_similarity</c>), each norm clamped at 1e-12 as <c>F.normalize</c> does: PruneVid's <c>frames_sim</c>. A segment
    /// of one frame gives NaN (PruneVid's 0 / 0: the position is never static); a zero row has cosine 0, a NaN row gives NaN.
    /// </summary>
    /// <param name="frames">Tokens <c>[T, L, C]</c> of one video (float32, float16 or bfloat16); channels contiguous, the other strides free.</param>
    /// <param name="segmentLengths">Int32 <c>[S]</c>: the frames of each segment, each at least 1, summing to T.</param>
    /// <param name="output">Receives float32 <c>[S, L]</c>.</param>
    /// <exception cref="ArgumentException">A wrong rank or element type.</exception>
    /// <exception cref="TokenKernelsException">The native library rejected the arguments (lengths not summing to T, a shape, overlapping tensors); nothing was written.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void SegmentSimilarity<T>(ReadOnlyHostTensor<T> frames, ReadOnlyHostTensor<int> segmentLengths, HostTensor<float> output)
        where T : unmanaged
    {
        RequireFrames(frames.Shape, frames.DataType, nameof(frames));
        RequireRankOf(Family, segmentLengths.Shape, 1, "[S]", nameof(segmentLengths));
        RequireRankOf(Family, output.Shape, 2, "[S, L]", nameof(output));
        NativeLibraryLoader.EnsureLoaded();
        fixed (T* xp = frames.Data)
        fixed (int* lp = segmentLengths.Data)
        fixed (float* op = output.Data)
        {
            TkTensor x = TensorLayout.Descriptor(xp, frames.DataType, Cpu, 0, frames.Shape, frames.Strides);
            TkTensor l = TensorLayout.Descriptor(lp, TensorDataType.Int32, Cpu, 0, segmentLengths.Shape, segmentLengths.Strides);
            TkTensor o = TensorLayout.Descriptor(op, TensorDataType.Float32, Cpu, 0, output.Shape, output.Strides);
            NativeStatus.Check(NativeMethods.tk_segment_similarity(&x, &l, &o, IntPtr.Zero));
        }
    }

    /// <summary>The segment similarity into a new array <c>[S, L]</c>.</summary>
    /// <inheritdoc cref="SegmentSimilarity{T}(ReadOnlyHostTensor{T}, ReadOnlyHostTensor{int}, HostTensor{float})"/>
    public static float[] SegmentSimilarity<T>(ReadOnlyHostTensor<T> frames, ReadOnlyHostTensor<int> segmentLengths)
        where T : unmanaged
    {
        RequireFrames(frames.Shape, frames.DataType, nameof(frames));
        RequireRankOf(Family, segmentLengths.Shape, 1, "[S]", nameof(segmentLengths));
        var shape = new TensorShape(segmentLengths.Shape[0], frames.Shape[1]);
        RequireArraySize(shape, nameof(frames));
        var similarity = new float[shape.ElementCount];
        SegmentSimilarity(frames, segmentLengths, new HostTensor<float>(similarity, shape));
        return similarity;
    }

    /// <summary>The segment similarity on the frames' CUDA device, enqueued on <paramref name="stream"/>. Device lengths are not checked: a negative one counts as 0 and frames past T are dropped.</summary>
    /// <param name="frames">Tokens <c>[T, L, C]</c> in device memory.</param>
    /// <param name="segmentLengths">Int32 <c>[S]</c> on the same device.</param>
    /// <param name="output">Receives float32 <c>[S, L]</c> on the same device.</param>
    /// <param name="stream">The stream to enqueue on; null means the legacy default stream.</param>
    /// <exception cref="ArgumentException">A wrong rank, element type or device.</exception>
    /// <exception cref="TokenKernelsException">CUDA is unavailable, or the native library rejected the arguments.</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static void SegmentSimilarity(DeviceTensor frames, DeviceTensor segmentLengths, DeviceTensor output, CudaStream? stream = null)
    {
        RequireFrames(frames.Shape, frames.DataType, nameof(frames));
        RequireRankOf(Family, segmentLengths.Shape, 1, "[S]", nameof(segmentLengths));
        RequireRankOf(Family, output.Shape, 2, "[S, L]", nameof(output));
        RequireSameDevice(segmentLengths, frames, nameof(segmentLengths), nameof(frames));
        RequireSameDevice(output, frames, nameof(output), nameof(frames));
        NativeLibraryLoader.EnsureLoaded();
        TkTensor x = DeviceDescriptor(frames);
        TkTensor l = DeviceDescriptor(segmentLengths);
        TkTensor o = DeviceDescriptor(output);
        NativeStatus.Check(NativeMethods.tk_segment_similarity(&x, &l, &o, stream?.Handle ?? IntPtr.Zero));
    }

    // ---- Segments from frame clusters ----

    /// <summary>
    /// PruneVid's <c>refine_clusters</c> on one video's frame labels: every cluster keeps its longest runs of consecutive frames (all
    /// runs of that length; none when its longest run is one frame); each maximal run of the frames left, from the first frame on,
    /// takes the label of the longer of the runs beside it (as relabelled so far), the left one on a tie, cluster 0 when it has no
    /// neighbour.
    /// </summary>
    /// <param name="labels">Each frame's cluster, <c>[T]</c>.</param>
    /// <returns>The refined labels <c>[T]</c>; their runs are the segments (<see cref="SegmentLengths"/>).</returns>
    public static int[] RefineClusters(ReadOnlySpan<int> labels)
    {
        const int Unassigned = -1;
        int frames = labels.Length;
        int[] refined = labels.ToArray();
        // Each label's longest run.
        var longest = new Dictionary<int, int>();
        for (int start = 0; start < frames;)
        {
            int end = RunEnd(labels, start);
            longest[labels[start]] = Math.Max(longest.TryGetValue(labels[start], out int l) ? l : 0, end - start);
            start = end;
        }
        for (int start = 0; start < frames;)
        {
            int end = RunEnd(labels, start);
            int best = longest[labels[start]];
            if (best == 1 || end - start != best)
            {
                refined.AsSpan(start, end - start).Fill(Unassigned);
            }
            start = end;
        }
        for (int start = 0; start < frames;)
        {
            if (refined[start] != Unassigned)
            {
                start++;
                continue;
            }
            int end = RunEnd(refined, start);
            int leftLength = start > 0 ? start - RunStart(refined, start - 1) : 0;
            int rightLength = end < frames ? RunEnd(refined, end) - end : 0;
            int label = leftLength == 0 && rightLength == 0 ? 0
                : leftLength >= rightLength && leftLength > 0 ? refined[start - 1]
                : refined[end];
            refined.AsSpan(start, end - start).Fill(label);
            start = end;
        }
        return refined;
    }

    /// <summary>PruneVid's <c>segment_lengths</c>: the lengths of the runs of equal consecutive labels.</summary>
    /// <param name="labels">Labels <c>[T]</c>.</param>
    /// <returns>The run lengths <c>[S]</c>, summing to T.</returns>
    public static int[] SegmentLengths(ReadOnlySpan<int> labels)
    {
        var lengths = new List<int>();
        for (int start = 0; start < labels.Length;)
        {
            int end = RunEnd(labels, start);
            lengths.Add(end - start);
            start = end;
        }
        return lengths.ToArray();
    }

    private static int RunEnd(ReadOnlySpan<int> labels, int start)
    {
        int end = start + 1;
        while (end < labels.Length && labels[end] == labels[start]) end++;
        return end;
    }

    private static int RunStart(ReadOnlySpan<int> labels, int last)
    {
        int start = last;
        while (start > 0 && labels[start - 1] == labels[last]) start--;
        return start;
    }

    // ---- The method ----

    /// <summary>
    /// PruneVid's <c>merge_frames_dynamic</c> on one video's tokens <paramref name="frames"/> <c>[T, L, C]</c>:
    /// <list type="number">
    /// <item>the frame means <c>[T, C]</c> are clustered by DPC-kNN (k = <paramref name="k"/>) into int(T x
    /// <paramref name="temporalSegmentRatio"/>) clusters, refined into runs of frames (<see cref="RefineClusters"/>): the segments;</item>
    /// <item>in each segment of W frames, position p is static when the mean cosine similarity of its W rows over the pairs of
    /// distinct frames exceeds <paramref name="tau"/> (never for W = 1: PruneVid's 0 / 0 is NaN);</item>
    /// <item>the static positions' means over the segment's frames, and each frame's dynamic tokens, are each clustered by DPC-kNN
    /// (k = <paramref name="k"/>) into int(n x <paramref name="clusterRatio"/>) clusters and replaced by the clusters' means when there
    /// are more than 14 of them (<see cref="ClusteringMinimum"/>), kept as they are otherwise;</item>
    /// <item>the output holds, per segment, its static tokens, then each frame's dynamic tokens, in cluster order (or position order
    /// when not clustered).</item>
    /// </list>
    /// Means are float32 sums rounded once to the element type, as <see cref="ClusterAggregation"/>'s. PruneVid's DPC-kNN adds
    /// random noise of 1e-6 to its densities; this one does not (ties to the lower index).
    /// </summary>
    /// <param name="frames">Tokens <c>[T, L, C]</c> of one video (float32, float16 or bfloat16), channels contiguous, the other strides free.</param>
    /// <param name="temporalSegmentRatio">PruneVid's <c>temporal_segment_ratio</c>, in (0, 1]; int(T x ratio) must be at least 1.</param>
    /// <param name="clusterRatio">PruneVid's <c>cluster_ratio</c>, in (0, 1]; int(15 x ratio) must be at least 1.</param>
    /// <param name="tau">PruneVid's <c>tau</c>, the static threshold (not NaN).</param>
    /// <param name="k">The k of every DPC-kNN density, 1 or more (7 in PruneVid); clamped to each token set's size.</param>
    /// <returns>The merged tokens <c>[M, C]</c> with the static, dynamic and window sizes of each segment and the source map <c>[T, L]</c>.</returns>
    /// <exception cref="ArgumentException">A wrong rank or element type, an empty video, or a parameter out of range (named).</exception>
    /// <exception cref="TokenKernelsLoadException">The native library could not be loaded.</exception>
    public static PruneVidResult<T> MergeFrames<T>(
        ReadOnlyHostTensor<T> frames,
        double temporalSegmentRatio = DefaultTemporalSegmentRatio,
        double clusterRatio = DefaultClusterRatio,
        float tau = DefaultTau,
        int k = DefaultNeighbours)
        where T : unmanaged
    {
        RequireFrames(frames.Shape, frames.DataType, nameof(frames));
        int frameCount = checked((int)frames.Shape[0]), positions = checked((int)frames.Shape[1]), channels = checked((int)frames.Shape[2]);
        if (frameCount < 1 || positions < 1)
        {
            throw new ArgumentException("PruneVid needs at least one frame of at least one token, got shape " + frames.Shape + ".", nameof(frames));
        }
        int temporalClusters = (int)(frameCount * temporalSegmentRatio);
        if (!(temporalSegmentRatio > 0 && temporalSegmentRatio <= 1) || temporalClusters < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(temporalSegmentRatio), temporalSegmentRatio,
                "temporalSegmentRatio must lie in (0, 1] with int(T x ratio) >= 1 temporal clusters (T = " + frameCount + ").");
        }
        if (!(clusterRatio > 0 && clusterRatio <= 1) || (int)((ClusteringMinimum + 1) * clusterRatio) < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(clusterRatio), clusterRatio,
                "clusterRatio must lie in (0, 1] and leave at least one cluster of 15 tokens: int(15 x ratio) >= 1.");
        }
        if (float.IsNaN(tau))
        {
            throw new ArgumentOutOfRangeException(nameof(tau), tau, "tau must be a number.");
        }
        if (k < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(k), k, "k, the neighbours of the DPC-kNN density, must be at least 1.");
        }
        TensorStrides strides = frames.Strides.Rank == 0 ? frames.Shape.ContiguousStrides() : frames.Strides;
        long frameStride = strides[0], positionStride = strides[1];

        // 1. The frame means, as one cluster per frame, and their DPC-kNN clusters refined into segments.
        var oneCluster = new int[frameCount * positions];
        (T[] frameMeans, _) = ClusterAggregation.Merge(frames, new ReadOnlyHostTensor<int>(oneCluster, new TensorShape(frameCount, positions)), 1);
        (_, int[] labels) = DensityPeaksClustering.Cluster(new ReadOnlyHostTensor<T>(frameMeans, new TensorShape(1, frameCount, channels)), temporalClusters, k);
        int[] frameClusters = RefineClusters(labels);
        int[] windows = SegmentLengths(frameClusters);
        int segments = windows.Length;
        var firstFrame = new int[segments + 1];
        for (int s = 0; s < segments; s++) firstFrame[s + 1] = firstFrame[s] + windows[s];

        // 2. The static test.
        float[] similarity = SegmentSimilarity(frames, new ReadOnlyHostTensor<int>(windows, new TensorShape(segments)));
        var staticPositions = new List<int>[segments];
        var dynamicPositions = new List<int>[segments];
        for (int s = 0; s < segments; s++)
        {
            staticPositions[s] = new List<int>();
            dynamicPositions[s] = new List<int>();
            for (int p = 0; p < positions; p++)
            {
                (similarity[s * positions + p] > tau ? staticPositions[s] : dynamicPositions[s]).Add(p);
            }
        }

        // 3. The static means: the video seen position-major [L, T, C], frame t of a static position in cluster s.
        var byPosition = new ReadOnlyHostTensor<T>(frames.Data, new TensorShape(positions, frameCount, channels), new TensorStrides(positionStride, frameStride, 1));
        var staticAssignment = new int[positions * frameCount];
        staticAssignment.AsSpan().Fill(-1);
        for (int s = 0; s < segments; s++)
        {
            foreach (int p in staticPositions[s])
            {
                staticAssignment.AsSpan(p * frameCount + firstFrame[s], windows[s]).Fill(s);
            }
        }
        (T[] staticMeans, _) = ClusterAggregation.Merge(byPosition, new ReadOnlyHostTensor<int>(staticAssignment, new TensorShape(positions, frameCount)), segments);

        // 4. The token sets: each segment's static means, then each of its frames' dynamic tokens. Those over the minimum are
        // clustered together, one item each, padded to the largest.
        var sets = new List<TokenSet>();
        for (int s = 0; s < segments; s++)
        {
            sets.Add(new TokenSet(s, -1, staticPositions[s]));
            for (int t = firstFrame[s]; t < firstFrame[s + 1]; t++) sets.Add(new TokenSet(s, t, dynamicPositions[s]));
        }
        var clustered = new List<int>();
        int widest = 0;
        for (int i = 0; i < sets.Count; i++)
        {
            if (sets[i].Positions.Count > ClusteringMinimum)
            {
                clustered.Add(i);
                widest = Math.Max(widest, sets[i].Positions.Count);
            }
        }
        var rows = new SetRows<T>(staticMeans, segments, channels, frameStride, positionStride);
        int items = clustered.Count;
        var itemLengths = new int[items];
        var itemClusters = new int[items];
        int mostClusters = 0;
        var packed = new T[items * widest * channels];
        for (int b = 0; b < items; b++)
        {
            TokenSet set = sets[clustered[b]];
            itemLengths[b] = set.Positions.Count;
            itemClusters[b] = (int)(set.Positions.Count * clusterRatio);
            mostClusters = Math.Max(mostClusters, itemClusters[b]);
            for (int j = 0; j < set.Positions.Count; j++) rows.Of(frames.Data, set, j).CopyTo(packed.AsSpan((b * widest + j) * channels, channels));
        }
        int[] itemAssignment = Array.Empty<int>();
        T[] clusterMeans = Array.Empty<T>();
        if (items > 0)
        {
            var packedTensor = new ReadOnlyHostTensor<T>(packed, new TensorShape(items, widest, channels));
            (_, itemAssignment) = DensityPeaksClustering.Cluster(packedTensor, mostClusters, k,
                new ReadOnlyHostTensor<int>(itemLengths, new TensorShape(items)), new ReadOnlyHostTensor<int>(itemClusters, new TensorShape(items)));
            (clusterMeans, _) = ClusterAggregation.Merge(packedTensor, new ReadOnlyHostTensor<int>(itemAssignment, new TensorShape(items, widest)), mostClusters);
        }

        // 5. The output in PruneVid's order, and where every input token went.
        int total = 0;
        var itemOf = new int[sets.Count];
        itemOf.AsSpan().Fill(-1);
        for (int b = 0; b < items; b++) itemOf[clustered[b]] = b;
        for (int i = 0; i < sets.Count; i++) total += itemOf[i] >= 0 ? itemClusters[itemOf[i]] : sets[i].Positions.Count;
        var merged = new T[total * channels];
        var sourceMap = new int[frameCount * positions];
        var staticSizes = new int[segments];
        var dynamicSizes = new int[segments];
        int row = 0;
        for (int i = 0; i < sets.Count; i++)
        {
            TokenSet set = sets[i];
            int b = itemOf[i];
            int count = b >= 0 ? itemClusters[b] : set.Positions.Count;
            if (b >= 0)
            {
                clusterMeans.AsSpan(b * mostClusters * channels, count * channels).CopyTo(merged.AsSpan(row * channels));
            }
            else
            {
                for (int j = 0; j < count; j++) rows.Of(frames.Data, set, j).CopyTo(merged.AsSpan((row + j) * channels, channels));
            }
            for (int j = 0; j < set.Positions.Count; j++)
            {
                int target = row + (b >= 0 ? itemAssignment[b * widest + j] : j);
                int p = set.Positions[j];
                if (set.Frame >= 0)
                {
                    sourceMap[set.Frame * positions + p] = target;
                }
                else
                {
                    for (int t = firstFrame[set.Segment]; t < firstFrame[set.Segment + 1]; t++) sourceMap[t * positions + p] = target;
                }
            }
            (set.Frame < 0 ? staticSizes : dynamicSizes)[set.Segment] += count;
            row += count;
        }
        return new PruneVidResult<T>(merged, channels, staticSizes, dynamicSizes, windows, sourceMap, frameClusters);
    }

    /// <summary>A segment's static positions (Frame -1: their means) or one frame's dynamic tokens.</summary>
    private sealed record TokenSet(int Segment, int Frame, List<int> Positions);

    /// <summary>Where a token set's rows are: a static position's mean in the [L, S, C] means, or a frame's token in the video.</summary>
    private readonly struct SetRows<T>
        where T : unmanaged
    {
        private readonly T[] _staticMeans;
        private readonly int _segments, _channels;
        private readonly long _frameStride, _positionStride;

        internal SetRows(T[] staticMeans, int segments, int channels, long frameStride, long positionStride)
        {
            _staticMeans = staticMeans;
            _segments = segments;
            _channels = channels;
            _frameStride = frameStride;
            _positionStride = positionStride;
        }

        internal ReadOnlySpan<T> Of(ReadOnlySpan<T> video, TokenSet set, int j)
        {
            int p = set.Positions[j];
            return set.Frame < 0
                ? _staticMeans.AsSpan((p * _segments + set.Segment) * _channels, _channels)
                : video.Slice(checked((int)(set.Frame * _frameStride + p * _positionStride)), _channels);
        }
    }

    private static void RequireFrames(TensorShape shape, TensorDataType dataType, string parameter)
    {
        RequireRankOf(Family, shape, 3, "[T, L, C]", parameter);
        RequireFloatOf(Family, dataType, parameter);
    }
}
