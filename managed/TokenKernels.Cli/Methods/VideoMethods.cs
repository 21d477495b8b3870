using System;
using System.Collections.Generic;
using TokenKernels;

namespace TokenKernels.Cli.Methods;

/// <summary>A video method that keeps a subset of the tokens (EVS, DyCoke, VidCom2).</summary>
internal abstract class VideoSelectionMethod : TokenMethod
{
    public sealed override MethodFamily Family => MethodFamily.Video;

    public sealed override bool IsVideo => true;

    /// <summary>The library's call on the video <c>[B, T, H x W, C]</c>.</summary>
    protected abstract VideoSelectionResult<T> Select<T>(ReadOnlyHostTensor<T> video, TokenGrid grid, MethodSettings settings)
        where T : unmanaged;

    public sealed override MethodOutcome<T> Run<T>(MethodInputs<T> inputs, MethodSettings settings)
    {
        VideoSelectionResult<T> result = Select(inputs.VideoView, inputs.Grid, settings);
        int kept = checked((int)result.Retained);
        int[] map = SourceMapOfSelection(inputs.Batch, inputs.Length, result.Indices, kept);
        return new MethodOutcome<T>(result.Tokens, result.TokensShape, map, new TensorShape(inputs.Batch, inputs.Length), result.Indices);
    }
}

/// <summary>EVS: tokens scored by 1 - cos to the same position of the previous frame; the top fraction kept, frame 0 whole.</summary>
internal sealed class EvsMethod : VideoSelectionMethod
{
    private static readonly MethodParameter Q = MethodParameter.Real("q", "video_pruning_rate: the fraction of tokens dropped (vLLM has no default; 0.75 here)", 0.75, 0, 1, maximumIsExclusive: true);

    public override string Name => "evs";

    public override string Title => "EVS (Efficient Video Sampling, as vLLM / SGLang / TensorRT-LLM apply it): temporal redundancy pruning";

    public override IReadOnlyList<MethodParameter> Parameters { get; } = new[] { Q };

    protected override VideoSelectionResult<T> Select<T>(ReadOnlyHostTensor<T> video, TokenGrid grid, MethodSettings settings)
        => VideoPruning.Evs(video, grid.Height, grid.Width, settings.Real(Q));
}

/// <summary>DyCoke's temporal token merging: in each window, tokens similar to the anchor frame's are dropped.</summary>
internal sealed class DyCokeMethod : VideoSelectionMethod
{
    private static readonly MethodParameter Ratio = MethodParameter.Real("merging-ratio", "DyCoke's TTM merging ratio: the fraction of a compared frame's tokens dropped", VideoPruning.DyCokeDefaultMergingRatio, 0, 1);

    public override string Name => "dycoke";

    public override string Title => "DyCoke (Tao et al., CVPR 2025): temporal token merging (TTM) across frame windows";

    public override IReadOnlyList<MethodParameter> Parameters { get; } = new[] { Ratio };

    protected override VideoSelectionResult<T> Select<T>(ReadOnlyHostTensor<T> video, TokenGrid grid, MethodSettings settings)
        => VideoPruning.DyCoke(video, grid.Height, grid.Width, settings.Real(Ratio));
}

/// <summary>VidCom2: per-frame budgets from frame uniqueness, then the most unique tokens of each frame.</summary>
internal sealed class VidCom2Method : VideoSelectionMethod
{
    private static readonly MethodParameter Retention = MethodParameter.Real("retention", "base_scale: the fraction of tokens kept", VideoPruning.VidCom2DefaultRetentionRatio, 0, 1, minimumIsExclusive: true);
    private static readonly MethodParameter Channels = MethodParameter.Real("channel-ratio", "the fraction of channels scored", VideoPruning.VidCom2DefaultChannelRatio, 0, 1, minimumIsExclusive: true);
    private static readonly MethodParameter Temperature = MethodParameter.Real("temperature", "the frame-budget softmax temperature", VideoPruning.VidCom2DefaultTemperature, 0, double.PositiveInfinity, minimumIsExclusive: true, maximumIsExclusive: true);

    public override string Name => "vidcom2";

    public override string Title => "VidCom2 (Liu et al., EMNLP 2025): frame budgets by uniqueness, then the most unique tokens per frame";

    public override IReadOnlyList<MethodParameter> Parameters { get; } = new[] { Retention, Channels, Temperature };

    protected override VideoSelectionResult<T> Select<T>(ReadOnlyHostTensor<T> video, TokenGrid grid, MethodSettings settings)
        => VideoPruning.VidCom2(video, grid.Height, grid.Width, settings.Real(Retention), settings.Real(Channels), settings.Real(Temperature));
}

/// <summary>FrameFusion: tokens merged into the same position of the previous frame when similar enough.</summary>
internal sealed class FrameFusionMethod : TokenMethod
{
    private static readonly MethodParameter Threshold = MethodParameter.Real("threshold", "the cosine similarity at or above which a token merges into the previous frame's", VideoPruning.FrameFusionDefaultThreshold, -1, 1);
    private static readonly MethodParameter MaxMerges = MethodParameter.Integer("max-merges", "at most this many merges per item (no cap when absent)", null, 0);

    public override string Name => "framefusion";

    public override string Title => "FrameFusion (Fu et al., ICCV 2025): similar tokens of consecutive frames merged";

    public override MethodFamily Family => MethodFamily.Video;

    public override bool IsVideo => true;

    public override IReadOnlyList<MethodParameter> Parameters { get; } = new[] { Threshold, MaxMerges };

    public override MethodOutcome<T> Run<T>(MethodInputs<T> inputs, MethodSettings settings)
    {
        MergeResult<T> result = VideoPruning.FrameFusion(inputs.VideoView, (float)settings.Real(Threshold), settings.Integer(MaxMerges, derived: -1));
        var tokensPerItem = new int[inputs.Batch];
        for (int b = 0; b < inputs.Batch; b++)
        {
            tokensPerItem[b] = inputs.Length - result.MergeCounts[b];
        }
        int rows = checked((int)result.Shape[1]);
        return new MethodOutcome<T>(result.X, result.Shape, result.SourceMap, new TensorShape(inputs.Batch, inputs.Length),
            PositionsOfSingletons(inputs.Batch, inputs.Length, rows, result.SourceMap), result.Sizes, tokensPerItem);
    }
}

/// <summary>PruneVid: static tokens of each segment merged over time, the rest clustered per frame.</summary>
internal sealed class PruneVidMethod : TokenMethod
{
    private static readonly MethodParameter SegmentRatio = MethodParameter.Real("temporal-segment-ratio", "temporal_segment_ratio: frame clusters per frame", PruneVid.DefaultTemporalSegmentRatio, 0, 1, minimumIsExclusive: true);
    private static readonly MethodParameter ClusterRatio = MethodParameter.Real("cluster-ratio", "cluster_ratio: token clusters per token", PruneVid.DefaultClusterRatio, 0, 1, minimumIsExclusive: true);
    private static readonly MethodParameter Tau = MethodParameter.Real("tau", "tau: the similarity above which a position is static in a segment", PruneVid.DefaultTau, -1, 1);
    private static readonly MethodParameter K = MethodParameter.Integer("k", "k of every DPC-kNN density", PruneVid.DefaultNeighbours, 1);

    public override string Name => "prunevid";

    public override string Title => "PruneVid (Huang et al., 2024): static tokens merged per segment, dynamic ones clustered per frame";

    public override MethodFamily Family => MethodFamily.Video;

    public override bool IsVideo => true;

    public override IReadOnlyList<MethodParameter> Parameters { get; } = new[] { SegmentRatio, ClusterRatio, Tau, K };

    public override MethodOutcome<T> Run<T>(MethodInputs<T> inputs, MethodSettings settings)
    {
        // One video per call: the items' outputs have their own lengths, padded with zero rows to the longest.
        var results = new PruneVidResult<T>[inputs.Batch];
        int rows = 0;
        for (int b = 0; b < inputs.Batch; b++)
        {
            var frames = new ReadOnlyHostTensor<T>(
                inputs.Tokens.AsMemory(b * inputs.Length * inputs.Channels, inputs.Length * inputs.Channels),
                new TensorShape(inputs.Grid.Frames, inputs.Grid.FrameTokens, inputs.Channels));
            results[b] = PruneVid.MergeFrames(frames, settings.Real(SegmentRatio), settings.Real(ClusterRatio), (float)settings.Real(Tau), settings.Integer(K));
            rows = Math.Max(rows, checked((int)results[b].MergedShape[0]));
        }
        var tokens = new T[(long)inputs.Batch * rows * inputs.Channels];
        var map = new int[(long)inputs.Batch * inputs.Length];
        var tokensPerItem = new int[inputs.Batch];
        for (int b = 0; b < inputs.Batch; b++)
        {
            tokensPerItem[b] = checked((int)results[b].MergedShape[0]);
            results[b].Merged.CopyTo(tokens, (long)b * rows * inputs.Channels);
            results[b].SourceMap.CopyTo(map, (long)b * inputs.Length);
        }
        return new MethodOutcome<T>(tokens, new TensorShape(inputs.Batch, rows, inputs.Channels), map, new TensorShape(inputs.Batch, inputs.Length),
            PositionsOfSingletons(inputs.Batch, inputs.Length, rows, map), tokensPerItem: tokensPerItem);
    }
}
