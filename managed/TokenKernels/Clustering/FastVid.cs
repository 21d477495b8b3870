using System;
using System.Collections.Generic;
using static TokenKernels.Interop.OpArguments;

namespace TokenKernels;

/// <summary>What <see cref="FastVid.DensityTokenMerge{T}"/> returns.</summary>
/// <typeparam name="T">The tokens' element type.</typeparam>
public sealed class FastVidDtmResult<T>
    where T : unmanaged
{
    internal FastVidDtmResult(T[] contextual, int[] positions, int[] sourceMap, int channels)
    {
        Contextual = contextual;
        Positions = positions;
        SourceMap = sourceMap;
        ContextualShape = new TensorShape(positions.Length, channels);
    }

    /// <summary><c>[M, C]</c>: the contextual tokens in the order of their anchors' positions (frame, then token).</summary>
    public T[] Contextual { get; }

    /// <summary><c>[M]</c>: each contextual token's anchor, as frame x L + token, increasing (FastVID's keep indices).</summary>
    public int[] Positions { get; }

    /// <summary>
    /// <c>[T x L]</c>: for each token, the row of <see cref="Contextual"/> it merged into at the anchor frame that covers its frame:
    /// the first anchor frame with contextual tokens at or after it in its segment (DTM also merges it into one anchor of every
    /// other anchor frame of the segment); -1 for excluded (salient) tokens and where no such frame follows. As <c>[1, T x L]</c>
    /// a source map for <see cref="TokenMerging"/>'s unmerge of <see cref="Contextual"/> as <c>[1, M, C]</c>.
    /// </summary>
    public int[] SourceMap { get; }

    /// <summary>The shape of <see cref="Contextual"/>.</summary>
    public TensorShape ContextualShape { get; }
}

/// <summary>
/// FastVID's clustering steps (Shen et al., "FastVID: Dynamic Density Pruning for Fast Video Large Language Models";
/// LunarShen/FastVID, <c>fastvid_llavavideo/LLaVA-NeXT/llava/model/language_model/modeling_qwen2.py</c>, <c>Qwen2Model.forward</c>),
/// composed from <see cref="VideoPruning.TemporalSimilarity{T}(ReadOnlyHostTensor{T}, HostTensor{float}, ReadOnlyHostTensor{int})"/>,
/// <see cref="DensityPeaksClustering"/>, <see cref="ClusterAssignment"/> and <see cref="ClusterAggregation"/>. Parameters carry the
/// official names and defaults (<c>scripts/eval.sh</c>).
/// </summary>
public static class FastVid
{
    /// <summary><c>fastvid_DySeg_c</c>: segments at least at the c - 1 lowest transitions.</summary>
    public const int DefaultDySegC = 8;

    /// <summary><c>fastvid_DySeg_tau</c>: a segment boundary at every transition below it.</summary>
    public const double DefaultDySegTau = 0.9;

    /// <summary><c>fastvid_STPrune_d</c>: the fraction of each segment's retained tokens that DTM makes (the rest are ATS's salient tokens).</summary>
    public const double DefaultStPruneD = 0.4;

    /// <summary><c>fastvid_DTM_p</c>: every p-th frame of a segment, counted from its last, is an anchor frame.</summary>
    public const int DefaultDtmP = 4;

    /// <summary><c>fastvid_DTM_beta</c> (the paper's and some ports' alpha): the least weight of an anchor in its contextual token.</summary>
    public const float DefaultDtmBeta = 0.6f;

    /// <summary>The k of the per-frame DPC-kNN density (4 in the official code).</summary>
    public const int DefaultNeighbours = 4;

    /// <summary>
    /// DySeg, dynamic temporal segmentation: the cosine of each pair of adjacent frames' global features; a segment ends at the
    /// <paramref name="dysegC"/> - 1 lowest transitions (ties to the earlier, NaN last) and at every transition below
    /// <paramref name="dysegTau"/>.
    /// </summary>
    /// <remarks>The cosine is the library's temporal similarity, whose norms are clamped at 1e-8 (FastVID divides by the norm, so a
    /// zero feature gives NaN there). With fewer transitions than c - 1 all are boundaries (FastVID's topk would raise).</remarks>
    /// <param name="globalFeatures">One feature per frame <c>[T, D]</c> (float32, float16 or bfloat16), channels contiguous.</param>
    /// <param name="dysegC">c, 1 or more.</param>
    /// <param name="dysegTau">tau; not NaN.</param>
    /// <returns>The segment lengths in frame order, summing to T (empty when T = 0).</returns>
    /// <exception cref="ArgumentException">A wrong rank, element type or strides, c below 1 or tau NaN.</exception>
    public static int[] DySeg<T>(ReadOnlyHostTensor<T> globalFeatures, int dysegC = DefaultDySegC, double dysegTau = DefaultDySegTau)
        where T : unmanaged
    {
        RequireRankOf("FastVID's DySeg", globalFeatures.Shape, 2, "[T, D]", nameof(globalFeatures));
        if (dysegC < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(dysegC), dysegC, "dysegC must be at least 1.");
        }
        if (double.IsNaN(dysegTau))
        {
            throw new ArgumentOutOfRangeException(nameof(dysegTau), dysegTau, "dysegTau must not be NaN.");
        }
        int frames = checked((int)globalFeatures.Shape[0]);
        int channels = checked((int)globalFeatures.Shape[1]);
        if (frames == 0) return Array.Empty<int>();
        // Frames as [1, T, 1, D]: the same-position similarity of the one position is the adjacent frames' cosine.
        long frameStride = globalFeatures.Strides[0], channelStride = globalFeatures.Strides[1];
        var video = new ReadOnlyHostTensor<T>(globalFeatures.Data, new TensorShape(1, frames, 1, channels),
                                              new TensorStrides(frameStride * frames, frameStride, channels * channelStride, channelStride));
        (float[] similarity, _) = VideoPruning.TemporalSimilarity(video);
        int transitions = frames - 1;  // transition t: frames t and t + 1
        var order = new int[transitions];
        for (int t = 0; t < transitions; t++) order[t] = t;
        Array.Sort(order, (a, b) =>
        {
            float sa = similarity[a + 1], sb = similarity[b + 1];
            bool na = float.IsNaN(sa), nb = float.IsNaN(sb);
            if (na != nb) return na ? 1 : -1;
            if (!na && sa != sb) return sa < sb ? -1 : 1;
            return a.CompareTo(b);
        });
        var cut = new bool[transitions];
        for (int r = 0; r < Math.Min(dysegC - 1, transitions); r++) cut[order[r]] = true;
        for (int t = 0; t < transitions; t++) cut[t] |= similarity[t + 1] < dysegTau;
        var lengths = new List<int>();
        int start = 0;
        for (int t = 0; t < transitions; t++)
        {
            if (!cut[t]) continue;
            lengths.Add(t + 1 - start);
            start = t + 1;
        }
        lengths.Add(frames - start);
        return lengths.ToArray();
    }

    /// <summary>
    /// The number of contextual tokens FastVID gives each frame of one segment: <c>int(retainedPerFrame x length x stpruneD)</c> for
    /// the segment, shared by its anchor frames, frames length - 1, length - 1 - p, ... (the first of them in that order taking the
    /// remainder first); the other frames get 0.
    /// </summary>
    /// <param name="segmentLength">The segment's frames, 1 or more.</param>
    /// <param name="retainedPerFrame">FastVID's frame_retain_num, int(L x fastvid_retention_ratio).</param>
    /// <param name="stpruneD">fastvid_STPrune_d.</param>
    /// <param name="dtmP">fastvid_DTM_p, 1 or more.</param>
    /// <returns><c>[length]</c>: each frame's contextual tokens.</returns>
    public static int[] ContextualTokensPerFrame(int segmentLength, int retainedPerFrame, double stpruneD = DefaultStPruneD, int dtmP = DefaultDtmP)
    {
        if (segmentLength < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(segmentLength), segmentLength, "A segment has at least one frame.");
        }
        if (dtmP < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(dtmP), dtmP, "dtmP must be at least 1.");
        }
        // Python: seg_context_num = int(frame_retain_num * cur_seg_len * d), the product in float64.
        int total = (int)((double)((long)retainedPerFrame * segmentLength) * stpruneD);
        int anchors = (segmentLength + dtmP - 1) / dtmP;
        var counts = new int[segmentLength];
        for (int a = 0; a < anchors; a++)
        {
            counts[segmentLength - 1 - dtmP * a] = total / anchors + (a < total % anchors ? 1 : 0);
        }
        return counts;
    }

    /// <summary>
    /// DTM, density-based token merging, on each segment of a video: each anchor frame's contextual count of tokens of largest
    /// DPC-kNN score (density x distance to the nearest denser token, per frame over its tokens outside <paramref name="salient"/>,
    /// k = <paramref name="neighbours"/>) are its anchors, in position order; every other non-salient token of the segment joins
    /// the anchor of that frame it is most cosine-similar to; each anchor becomes w x anchor + (1 - w) x the mean of its tokens,
    /// w = max(1 / (n + 1), <paramref name="dtmBeta"/>) (the anchor alone when n = 0). Each anchor frame clusters the whole segment
    /// on its own, as FastVID's loop over <c>cur_context_indexs</c> does.
    /// </summary>
    /// <remarks>
    /// <para>Differences from the official code: the DPC-kNN density gets no random noise (ties go to the lower index); an anchor
    /// frame with fewer tokens than its count keeps them all (FastVID's topk would raise); arithmetic is float32 (FastVID's
    /// merge runs in the model's bfloat16); tokens are converted to x's type once at the end.</para>
    /// </remarks>
    /// <param name="x">Tokens <c>[T, L, C]</c> (float32, float16 or bfloat16), one frame per row block.</param>
    /// <param name="segmentLengths">Consecutive segments' frames (e.g. from <see cref="DySeg{T}"/>), each 1 or more, summing to T.</param>
    /// <param name="retainedPerFrame">FastVID's frame_retain_num, in [0, L]: int(L x fastvid_retention_ratio).</param>
    /// <param name="stpruneD">fastvid_STPrune_d, in [0, 1].</param>
    /// <param name="dtmP">fastvid_DTM_p, 1 or more.</param>
    /// <param name="dtmBeta">fastvid_DTM_beta, finite.</param>
    /// <param name="neighbours">k of the density, 1 or more.</param>
    /// <param name="salient">Optional <c>[T x L]</c>: tokens kept by ATS, left out of DTM. Empty: none.</param>
    /// <returns>The contextual tokens, their anchors' positions and a source map.</returns>
    /// <exception cref="ArgumentException">A wrong rank or element type, segment lengths that do not tile T, or a parameter out of range.</exception>
    public static FastVidDtmResult<T> DensityTokenMerge<T>(
        ReadOnlyHostTensor<T> x,
        ReadOnlySpan<int> segmentLengths,
        int retainedPerFrame,
        double stpruneD = DefaultStPruneD,
        int dtmP = DefaultDtmP,
        float dtmBeta = DefaultDtmBeta,
        int neighbours = DefaultNeighbours,
        ReadOnlySpan<bool> salient = default)
        where T : unmanaged
    {
        RequireRankOf("FastVID's DTM", x.Shape, 3, "[T, L, C]", nameof(x));
        int frames = checked((int)x.Shape[0]), tokens = checked((int)x.Shape[1]), channels = checked((int)x.Shape[2]);
        long frameCells = (long)frames * tokens;
        if (frameCells > int.MaxValue)
        {
            throw new ArgumentException("x has more than int.MaxValue tokens.", nameof(x));
        }
        long sum = 0;
        foreach (int length in segmentLengths)
        {
            if (length < 1)
            {
                throw new ArgumentException("Every segment has at least one frame; got " + length + ".", nameof(segmentLengths));
            }
            sum += length;
        }
        if (sum != frames)
        {
            throw new ArgumentException("The segment lengths sum to " + sum + " but x has T = " + frames + " frames.", nameof(segmentLengths));
        }
        if (retainedPerFrame < 0 || retainedPerFrame > tokens)
        {
            throw new ArgumentOutOfRangeException(nameof(retainedPerFrame), retainedPerFrame, "retainedPerFrame must lie in [0, L] = [0, " + tokens + "].");
        }
        if (!(stpruneD >= 0 && stpruneD <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(stpruneD), stpruneD, "stpruneD must lie in [0, 1].");
        }
        if (dtmP < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(dtmP), dtmP, "dtmP must be at least 1.");
        }
        if (!float.IsFinite(dtmBeta))
        {
            throw new ArgumentOutOfRangeException(nameof(dtmBeta), dtmBeta, "dtmBeta must be finite.");
        }
        if (neighbours < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(neighbours), neighbours, "neighbours must be at least 1.");
        }
        if (!salient.IsEmpty && salient.Length != frameCells)
        {
            throw new ArgumentException("salient has " + salient.Length + " entries but must have T x L = " + frameCells + ".", nameof(salient));
        }

        // Each frame's tokens outside the salient set, in order.
        var remaining = new int[frames][];
        for (int f = 0; f < frames; f++)
        {
            var kept = new List<int>(tokens);
            for (int t = 0; t < tokens; t++)
            {
                if (salient.IsEmpty || !salient[f * tokens + t]) kept.Add(t);
            }
            remaining[f] = kept.ToArray();
        }

        // The anchor frames with their contextual counts, in frame order.
        var anchorFrames = new List<int>();
        var anchorCounts = new List<int>();
        var segmentOf = new int[frames];
        int offset = 0, segmentIndex = 0;
        foreach (int length in segmentLengths)
        {
            int[] counts = ContextualTokensPerFrame(length, retainedPerFrame, stpruneD, dtmP);
            for (int f = 0; f < length; f++)
            {
                segmentOf[offset + f] = segmentIndex;
                if (counts[f] > 0 && remaining[offset + f].Length > 0)
                {
                    anchorFrames.Add(offset + f);
                    anchorCounts.Add(counts[f]);
                }
            }
            offset += length;
            segmentIndex++;
        }

        // DPC-kNN over every anchor frame's remaining tokens at once: item a holds frame anchorFrames[a].
        int items = anchorFrames.Count, widest = 0, mostAnchors = 0;
        for (int a = 0; a < items; a++)
        {
            widest = Math.Max(widest, remaining[anchorFrames[a]].Length);
            mostAnchors = Math.Max(mostAnchors, anchorCounts[a]);
        }
        int clusters = Math.Min(mostAnchors, widest);
        var frameRows = new T[(long)items * widest * channels];
        var lengths = new int[items];
        var itemClusters = new int[items];
        for (int a = 0; a < items; a++)
        {
            int[] kept = remaining[anchorFrames[a]];
            lengths[a] = kept.Length;
            itemClusters[a] = Math.Min(anchorCounts[a], clusters);
            for (int r = 0; r < kept.Length; r++)
            {
                CopyRow(x, anchorFrames[a], kept[r], frameRows.AsSpan((int)(((long)a * widest + r) * channels), channels));
            }
        }
        int[] centres = Array.Empty<int>();
        if (items > 0 && widest > 0)
        {
            (centres, _) = DensityPeaksClustering.Cluster(
                new ReadOnlyHostTensor<T>(frameRows, new TensorShape(items, widest, channels)), clusters, neighbours,
                new ReadOnlyHostTensor<int>(lengths, new TensorShape(items)), new ReadOnlyHostTensor<int>(itemClusters, new TensorShape(items)));
        }

        // Per segment: its remaining tokens packed in frame order; each anchor frame assigns and merges all of them.
        var contextual = new List<T>();
        var positions = new List<int>();
        var sourceMap = new int[frameCells];
        Array.Fill(sourceMap, -1);
        int anchor = 0;
        offset = 0;
        foreach (int length in segmentLengths)
        {
            var rowStart = new int[length + 1];
            for (int f = 0; f < length; f++) rowStart[f + 1] = rowStart[f] + remaining[offset + f].Length;
            int segmentTokens = rowStart[length];
            var segmentRows = new T[(long)segmentTokens * channels];
            for (int f = 0; f < length; f++)
            {
                int[] kept = remaining[offset + f];
                for (int r = 0; r < kept.Length; r++)
                {
                    CopyRow(x, offset + f, kept[r], segmentRows.AsSpan((rowStart[f] + r) * channels, channels));
                }
            }
            var segment = new ReadOnlyHostTensor<T>(segmentRows, new TensorShape(1, segmentTokens, channels));
            int coveredFrom = 0;  // the first frame of the segment not yet covered by an earlier anchor frame
            for (; anchor < items && segmentOf[anchorFrames[anchor]] == segmentOf[offset]; anchor++)
            {
                int frame = anchorFrames[anchor], local = frame - offset;
                var chosen = new List<int>();
                for (int j = 0; j < clusters; j++)
                {
                    int token = centres[anchor * clusters + j];
                    if (token >= 0) chosen.Add(token);
                }
                chosen.Sort();  // FastVID: sampled_indexs.sort()
                int count = chosen.Count;
                var centreRows = new int[count];
                for (int j = 0; j < count; j++)
                {
                    centreRows[j] = rowStart[local] + chosen[j];
                    positions.Add(frame * tokens + remaining[frame][chosen[j]]);
                }
                var centreTensor = new ReadOnlyHostTensor<int>(centreRows, new TensorShape(1, count));
                int[] assignment = ClusterAssignment.Assign(segment, centreTensor);
                (T[] merged, _) = ClusterAggregation.Merge(segment, new ReadOnlyHostTensor<int>(assignment, new TensorShape(1, segmentTokens)),
                                                           count, ClusterMergeMode.CentreCountBlend, dtmBeta, centres: centreTensor);
                int firstRow = positions.Count - count;
                contextual.AddRange(merged);
                for (int f = coveredFrom; f <= local; f++)
                {
                    int[] kept = remaining[offset + f];
                    for (int r = 0; r < kept.Length; r++)
                    {
                        sourceMap[(offset + f) * tokens + kept[r]] = firstRow + assignment[rowStart[f] + r];
                    }
                }
                coveredFrom = local + 1;
            }
            offset += length;
        }
        return new FastVidDtmResult<T>(contextual.ToArray(), positions.ToArray(), sourceMap, channels);
    }

    private static void CopyRow<T>(ReadOnlyHostTensor<T> x, int frame, int token, Span<T> destination)
        where T : unmanaged
    {
        long start = frame * x.Strides[0] + token * x.Strides[1], step = x.Strides[2];
        for (int c = 0; c < destination.Length; c++) destination[c] = x.Data[(int)(start + c * step)];
    }
}
