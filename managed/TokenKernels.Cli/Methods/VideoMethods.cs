using System;
using System.Collections.Generic;
using TokenKernels;

namespace TokenKernels.Cli.Methods;

/// <summary>A video method that keeps a subset of the tokens (EVS, DyCoke, VidCom2).</summary>
internal abstract class VideoSelectionMethod : TokenMethod
{
    public sealed override MethodFamily Family => MethodFamily.Video;

    public sealed override bool IsVideo => true;

    /// <summary>K, the tokens each item keeps, known before the data (the library's count function).</summary>
    protected abstract long Retained(TokenGrid grid, MethodSettings settings);

    /// <summary>
    /// The library's device call on the video <c>[B, T, H x W, C]</c>, into <paramref name="output"/> <c>[B, K, C]</c> and
    /// <paramref name="indices"/> <c>[B, K]</c>, with its workspace from <paramref name="outputs"/>.
    /// </summary>
    protected abstract void SelectOnCuda(DeviceTensor video, TokenGrid grid, MethodSettings settings, DeviceTensor output, DeviceTensor indices,
                                         DeviceOutputs outputs, CudaStream stream);

    public sealed override bool RunsOnCuda => true;

    public sealed override DeviceRun EnqueueOnCuda(DeviceInputs inputs, MethodSettings settings, DeviceOutputs outputs, CudaStream stream)
    {
        int kept = checked((int)Retained(inputs.Grid, settings));
        var shape = new TensorShape(inputs.Batch, kept, inputs.Channels);
        SelectOnCuda(inputs.View(new TensorShape(inputs.Batch, inputs.Grid.Frames, inputs.Grid.FrameTokens, inputs.Channels)), inputs.Grid, settings,
            outputs.Get("tokens", shape, inputs.Tokens.DataType), outputs.Get("positions", new TensorShape(inputs.Batch, kept), TensorDataType.Int32), outputs, stream);
        return new DeviceRun(shape);
    }

    /// <summary>The library's call on the video <c>[B, T, H x W, C]</c>, into <paramref name="output"/> <c>[B, K, C]</c> and <paramref name="indices"/> <c>[B, K]</c>.</summary>
    protected abstract void Select<T>(ReadOnlyHostTensor<T> video, TokenGrid grid, MethodSettings settings, HostTensor<T> output, HostTensor<int> indices)
        where T : unmanaged;

    public sealed override MethodOutcome<T> Run<T>(MethodInputs<T> inputs, MethodSettings settings, MethodOutcome<T>? previous = null)
    {
        int kept = checked((int)Retained(inputs.Grid, settings));
        var shape = new TensorShape(inputs.Batch, kept, inputs.Channels);
        T[] tokens = Reuse(previous?.Tokens, shape.ElementCount);
        int[] indices = Reuse(previous?.Positions, (long)inputs.Batch * kept);
        Select(inputs.VideoView, inputs.Grid, settings, new HostTensor<T>(tokens, shape), new HostTensor<int>(indices, new TensorShape(inputs.Batch, kept)));
        int[] map = SourceMapOfSelection(inputs.Batch, inputs.Length, indices, kept);
        return new MethodOutcome<T>(tokens, shape, map, new TensorShape(inputs.Batch, inputs.Length), indices);
    }
}

/// <summary>EVS: tokens scored by 1 - cos to the same position of the previous frame; the top fraction kept, frame 0 whole.</summary>
internal sealed class EvsMethod : VideoSelectionMethod
{
    private static readonly MethodParameter Q = MethodParameter.Real("q", "video_pruning_rate: the fraction of tokens dropped (vLLM has no default; 0.75 here)", 0.75, 0, 1, maximumIsExclusive: true);

    public override string Name => "evs";

    public override string Title => "EVS (Efficient Video Sampling, as vLLM / SGLang / TensorRT-LLM apply it): temporal redundancy pruning";

    public override IReadOnlyList<MethodParameter> Parameters { get; } = new[] { Q };

    protected override long Retained(TokenGrid grid, MethodSettings settings) => VideoPruning.EvsRetainedTokens(grid.Frames, grid.Height, grid.Width, settings.Real(Q));

    protected override void Select<T>(ReadOnlyHostTensor<T> video, TokenGrid grid, MethodSettings settings, HostTensor<T> output, HostTensor<int> indices)
        => VideoPruning.Evs(video, grid.Height, grid.Width, settings.Real(Q), output, indices);

    protected override void SelectOnCuda(DeviceTensor video, TokenGrid grid, MethodSettings settings, DeviceTensor output, DeviceTensor indices,
                                         DeviceOutputs outputs, CudaStream stream)
    {
        (IntPtr workspace, long bytes) = outputs.Workspace(VideoPruning.GetEvsWorkspaceSize(video, grid.Height, grid.Width, settings.Real(Q)));
        VideoPruning.Evs(video, grid.Height, grid.Width, settings.Real(Q), output, indices, stream: stream, workspace: workspace, workspaceBytes: bytes);
    }
}

/// <summary>DyCoke's temporal token merging: in each window, tokens similar to the anchor frame's are dropped.</summary>
internal sealed class DyCokeMethod : VideoSelectionMethod
{
    private static readonly MethodParameter Ratio = MethodParameter.Real("merging-ratio", "DyCoke's TTM merging ratio: the fraction of a compared frame's tokens dropped", VideoPruning.DyCokeDefaultMergingRatio, 0, 1);

    public override string Name => "dycoke";

    public override string Title => "DyCoke (Tao et al., CVPR 2025): temporal token merging (TTM) across frame windows";

    public override IReadOnlyList<MethodParameter> Parameters { get; } = new[] { Ratio };

    protected override long Retained(TokenGrid grid, MethodSettings settings) => VideoPruning.DyCokeRetainedTokens(grid.Frames, grid.Height, grid.Width, settings.Real(Ratio));

    protected override void Select<T>(ReadOnlyHostTensor<T> video, TokenGrid grid, MethodSettings settings, HostTensor<T> output, HostTensor<int> indices)
        => VideoPruning.DyCoke(video, grid.Height, grid.Width, settings.Real(Ratio), output, indices);

    protected override void SelectOnCuda(DeviceTensor video, TokenGrid grid, MethodSettings settings, DeviceTensor output, DeviceTensor indices,
                                         DeviceOutputs outputs, CudaStream stream)
    {
        (IntPtr workspace, long bytes) = outputs.Workspace(VideoPruning.GetDyCokeWorkspaceSize(video, grid.Height, grid.Width, settings.Real(Ratio)));
        VideoPruning.DyCoke(video, grid.Height, grid.Width, settings.Real(Ratio), output, indices, stream: stream, workspace: workspace, workspaceBytes: bytes);
    }
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

    protected override long Retained(TokenGrid grid, MethodSettings settings) => VideoPruning.VidCom2RetainedTokens(grid.Frames, grid.Height, grid.Width, settings.Real(Retention));

    protected override void Select<T>(ReadOnlyHostTensor<T> video, TokenGrid grid, MethodSettings settings, HostTensor<T> output, HostTensor<int> indices)
        => VideoPruning.VidCom2(video, grid.Height, grid.Width, settings.Real(Retention), output, indices,
                                channelRatio: settings.Real(Channels), temperature: settings.Real(Temperature));

    protected override void SelectOnCuda(DeviceTensor video, TokenGrid grid, MethodSettings settings, DeviceTensor output, DeviceTensor indices,
                                         DeviceOutputs outputs, CudaStream stream)
    {
        (IntPtr workspace, long bytes) = outputs.Workspace(VideoPruning.GetVidCom2WorkspaceSize(
            video, grid.Height, grid.Width, settings.Real(Retention), settings.Real(Channels), settings.Real(Temperature)));
        VideoPruning.VidCom2(video, grid.Height, grid.Width, settings.Real(Retention), output, indices,
                             channelRatio: settings.Real(Channels), temperature: settings.Real(Temperature), stream: stream, workspace: workspace, workspaceBytes: bytes);
    }
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

    public override bool RunsOnCuda => true;

    public override DeviceRun EnqueueOnCuda(DeviceInputs inputs, MethodSettings settings, DeviceOutputs outputs, CudaStream stream)
    {
        var shape = new TensorShape(inputs.Batch, inputs.Length, inputs.Channels);
        var mapShape = new TensorShape(inputs.Batch, inputs.Length);
        DeviceTensor video = inputs.View(new TensorShape(inputs.Batch, inputs.Grid.Frames, inputs.Grid.FrameTokens, inputs.Channels));
        float threshold = (float)settings.Real(Threshold);
        int maxMerges = settings.Integer(MaxMerges, derived: -1);
        (IntPtr workspace, long bytes) = outputs.Workspace(VideoPruning.GetFrameFusionWorkspaceSize(video, threshold, maxMerges));
        VideoPruning.FrameFusion(
            video, outputs.Get("tokens", shape, inputs.Tokens.DataType), outputs.Get("counts", new TensorShape(inputs.Batch), TensorDataType.Int32),
            threshold, maxMerges, outputs.Get("sizes", mapShape, TensorDataType.Float32), outputs.Get("source_map", mapShape, TensorDataType.Int32),
            stream, workspace, bytes);
        return new DeviceRun(shape, CountsAreMerges: true);
    }

    public override MethodOutcome<T> Run<T>(MethodInputs<T> inputs, MethodSettings settings, MethodOutcome<T>? previous = null)
    {
        // Threshold merging: every item keeps N rows, zero past its N - merges.
        int rows = inputs.Length;
        var shape = new TensorShape(inputs.Batch, rows, inputs.Channels);
        var mapShape = new TensorShape(inputs.Batch, rows);
        T[] tokens = Reuse(previous?.Tokens, shape.ElementCount);
        float[] sizes = Reuse(previous?.Sizes, mapShape.ElementCount);
        int[] map = Reuse(previous?.SourceMap, mapShape.ElementCount);
        int[] counts = Reuse(previous?.TokensPerItem, inputs.Batch);
        VideoPruning.FrameFusion(inputs.VideoView, new HostTensor<T>(tokens, shape), new HostTensor<int>(counts, new TensorShape(inputs.Batch)),
            (float)settings.Real(Threshold), settings.Integer(MaxMerges, derived: -1), new HostTensor<float>(sizes, mapShape), new HostTensor<int>(map, mapShape));
        for (int b = 0; b < inputs.Batch; b++)
        {
            counts[b] = inputs.Length - counts[b];
        }
        return new MethodOutcome<T>(tokens, shape, map, mapShape, PositionsOfSingletons(inputs.Batch, inputs.Length, rows, map), sizes, counts);
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

    public override MethodOutcome<T> Run<T>(MethodInputs<T> inputs, MethodSettings settings, MethodOutcome<T>? previous = null)
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
