using System;
using System.Collections.Generic;
using TokenKernels;

namespace TokenKernels.Cli.Methods;

/// <summary>ToMe: r bipartite merges per item by the tokens' cosine similarity, size-weighted means.</summary>
internal sealed class ToMeMethod : TokenMethod
{
    private static readonly MethodParameter R = MethodParameter.Integer("r", "ToMe's r: tokens merged away per item (clamped to half the mergeable tokens)", 16, 0);

    public override string Name => "tome";

    public override string Title => "ToMe (Bolya et al., ICLR 2023): bipartite soft matching, r merges, the tokens as the metric";

    public override MethodFamily Family => MethodFamily.Merging;

    public override IReadOnlyList<MethodParameter> Parameters { get; } = new[] { R };

    // A class token (prefix 1), and a distillation token after it (prefix 2), never merge away.
    public override int? Prefix => null;

    public override bool RunsOnCuda => true;

    public override DeviceRun EnqueueOnCuda(DeviceInputs inputs, MethodSettings settings, DeviceOutputs outputs, CudaStream stream)
    {
        MergeOptions options = Options(inputs.Grid, settings);
        int rows = checked((int)TokenMerging.GetOutputTokens(inputs.Length, options).OutputTokens);
        var shape = new TensorShape(inputs.Batch, rows, inputs.Channels);
        (IntPtr workspace, long bytes) = outputs.Workspace(TokenMerging.GetWorkspaceSize(inputs.Tokens, options, inputs.Tokens));
        TokenMerging.Merge(inputs.Tokens, inputs.Tokens, outputs.Get("tokens", shape, inputs.Tokens.DataType), options,
            outputSizes: outputs.Get("sizes", new TensorShape(inputs.Batch, rows), TensorDataType.Float32),
            sourceMap: outputs.Get("source_map", new TensorShape(inputs.Batch, inputs.Length), TensorDataType.Int32), stream: stream,
            workspace: workspace, workspaceBytes: bytes);
        return new DeviceRun(shape);
    }

    private static MergeOptions Options(TokenGrid grid, MethodSettings settings)
    {
        if (grid.Prefix > 2)
        {
            throw new ArgumentException($"tome protects at most 2 prefix tokens (class and distillation); the input has {grid.Prefix}.");
        }
        return new MergeOptions(settings.Integer(R)) { ProtectFirst = grid.Prefix >= 1, ProtectSecond = grid.Prefix == 2 };
    }

    public override MethodOutcome<T> Run<T>(MethodInputs<T> inputs, MethodSettings settings, MethodOutcome<T>? previous = null)
    {
        MergeOptions options = Options(inputs.Grid, settings);
        int rows = checked((int)TokenMerging.GetOutputTokens(inputs.Length, options).OutputTokens);
        var shape = new TensorShape(inputs.Batch, rows, inputs.Channels);
        T[] merged = Reuse(previous?.Tokens, shape.ElementCount);
        float[] sizes = Reuse(previous?.Sizes, (long)inputs.Batch * rows);
        int[] map = Reuse(previous?.SourceMap, (long)inputs.Batch * inputs.Length);
        TokenMerging.Merge(inputs.View, inputs.View, new HostTensor<T>(merged, shape), options,
            outputSizes: new HostTensor<float>(sizes, new TensorShape(inputs.Batch, rows)),
            sourceMap: new HostTensor<int>(map, new TensorShape(inputs.Batch, inputs.Length)));
        return new MethodOutcome<T>(merged, shape, map, new TensorShape(inputs.Batch, inputs.Length),
            PositionsOfSingletons(inputs.Batch, inputs.Length, rows, map), sizes);
    }
}

/// <summary>VisionZip: the dominant tokens the class token attends to most, plus contextual merges of the rest.</summary>
internal sealed class VisionZipMethod : TokenMethod
{
    private static readonly MethodParameter Dominant = MethodParameter.Integer("dominant", "dominant tokens kept, the class token included (54 of VisionZip's 64)", 54, 1);
    private static readonly MethodParameter Contextual = MethodParameter.Integer("contextual", "contextual tokens merged from the rest (10 of VisionZip's 64)", 10, 0);

    public override string Name => "visionzip";

    public override string Title => "VisionZip (Yang et al., CVPR 2025): dominant tokens by class-token attention + contextual merges";

    public override MethodFamily Family => MethodFamily.Attention;

    public override IReadOnlyList<MethodParameter> Parameters { get; } = new[] { Dominant, Contextual };

    public override IReadOnlyList<AuxiliaryRole> Requires { get; } = new[] { AuxiliaryRole.Attention };

    public override IReadOnlyList<AuxiliaryRole> Accepts { get; } = new[] { AuxiliaryRole.Attention, AuxiliaryRole.Metric };

    public override int? Prefix => 1;

    public override MethodOutcome<T> Run<T>(MethodInputs<T> inputs, MethodSettings settings, MethodOutcome<T>? previous = null)
    {
        int dominant = settings.Integer(Dominant), contextual = settings.Integer(Contextual);
        AuxiliaryTensor attention = inputs.Find(AuxiliaryRole.Attention)!;
        int rows = dominant + contextual;
        var shape = new TensorShape(inputs.Batch, rows, inputs.Channels);
        T[] tokens = Reuse(previous?.Tokens, shape.ElementCount);
        var kept = new int[(long)inputs.Batch * dominant];
        var output = new HostTensor<T>(tokens, shape);
        var keptTensor = new HostTensor<int>(kept, new TensorShape(inputs.Batch, dominant));
        if (inputs.Find(AuxiliaryRole.Metric) is AuxiliaryTensor metric)
        {
            PruningMethods.VisionZip(attention.View, metric.View, inputs.View, dominant, contextual, output, keptTensor);
        }
        else
        {
            PruningMethods.VisionZip(attention.View, inputs.View, inputs.View, dominant, contextual, output, keptTensor);
        }
        var positions = new int[(long)inputs.Batch * rows];
        Array.Fill(positions, -1);
        for (int b = 0; b < inputs.Batch; b++)
        {
            Array.Copy(kept, (long)b * dominant, positions, (long)b * rows, dominant);
        }
        // The source map knows the dominant tokens only: VisionZip does not report which tokens each contextual token merged.
        int[] map = SourceMapOfSelection(inputs.Batch, inputs.Length, kept, dominant);
        return new MethodOutcome<T>(tokens, shape, map, new TensorShape(inputs.Batch, inputs.Length), positions);
    }
}

/// <summary>FastV: after layer K, the image tokens receiving the least attention are dropped.</summary>
internal sealed class FastVMethod : TokenMethod
{
    private static readonly MethodParameter R = MethodParameter.Real("r", "FastV's R: the fraction of image tokens pruned", PruningMethods.FastVDefaultR, 0, 1);

    public override string Name => "fastv";

    public override string Title => "FastV (Chen et al., ECCV 2024): image tokens ranked by the attention they receive in layer K - 1";

    public override MethodFamily Family => MethodFamily.Attention;

    public override IReadOnlyList<MethodParameter> Parameters { get; } = new[] { R };

    public override IReadOnlyList<AuxiliaryRole> Requires { get; } = new[] { AuxiliaryRole.Attention };

    // The grid is the image span of the LLM's sequence: the text before it is the prefix, the text after it trails.
    public override int? Prefix => null;

    public override bool AllowsTrailingTokens => true;

    public override MethodOutcome<T> Run<T>(MethodInputs<T> inputs, MethodSettings settings, MethodOutcome<T>? previous = null)
    {
        long imageStart = inputs.Grid.Prefix, imageEnd = imageStart + inputs.Grid.PatchTokens;
        double r = settings.Real(R);
        int rows = checked((int)(inputs.Length - (imageEnd - imageStart) + PruningMethods.FastVKeptImageTokens(imageEnd - imageStart, r)));
        var shape = new TensorShape(inputs.Batch, rows, inputs.Channels);
        T[] tokens = Reuse(previous?.Tokens, shape.ElementCount);
        int[] positions = Reuse(previous?.Positions, (long)inputs.Batch * rows);
        PruningMethods.FastV(inputs.Find(AuxiliaryRole.Attention)!.View, inputs.View, imageStart, imageEnd, r,
            new HostTensor<T>(tokens, shape), new HostTensor<int>(positions, new TensorShape(inputs.Batch, rows)));
        int[] map = SourceMapOfSelection(inputs.Batch, inputs.Length, positions, rows);
        return new MethodOutcome<T>(tokens, shape, map, new TensorShape(inputs.Batch, inputs.Length), positions);
    }
}

/// <summary>DivPrune: greedy k-center selection under the cosine distance.</summary>
internal sealed class DivPruneMethod : TokenMethod
{
    private static readonly MethodParameter Ratio = MethodParameter.Real("ratio", "DivPrune's threshold_ratio: the fraction of tokens kept (0.098: 56 of 576)", 0.098, 0, 1);

    public override string Name => "divprune";

    public override string Title => "DivPrune (Alvar et al., CVPR 2025): the most diverse tokens, greedy max-min under the cosine distance";

    public override MethodFamily Family => MethodFamily.Diversity;

    public override IReadOnlyList<MethodParameter> Parameters { get; } = new[] { Ratio };

    public override bool RunsOnCuda => true;

    public override DeviceRun EnqueueOnCuda(DeviceInputs inputs, MethodSettings settings, DeviceOutputs outputs, CudaStream stream)
    {
        int k = PruningMethods.DivPruneKeptTokens(inputs.Length, settings.Real(Ratio));
        var shape = new TensorShape(inputs.Batch, k, inputs.Channels);
        var rowShape = new TensorShape(inputs.Batch, k);
        PruningMethods.DivPrune(inputs.Tokens, outputs.Get("tokens", shape, inputs.Tokens.DataType), outputs.Get("positions", rowShape, TensorDataType.Int32),
            outputs.Get("order", rowShape, TensorDataType.Int32), stream);
        return new DeviceRun(shape);
    }

    public override MethodOutcome<T> Run<T>(MethodInputs<T> inputs, MethodSettings settings, MethodOutcome<T>? previous = null)
    {
        int k = PruningMethods.DivPruneKeptTokens(inputs.Length, settings.Real(Ratio));
        var shape = new TensorShape(inputs.Batch, k, inputs.Channels);
        T[] tokens = Reuse(previous?.Tokens, shape.ElementCount);
        int[] positions = Reuse(previous?.Positions, (long)inputs.Batch * k);
        PruningMethods.DivPrune(inputs.View, new HostTensor<T>(tokens, shape), new HostTensor<int>(positions, new TensorShape(inputs.Batch, k)));
        int[] map = SourceMapOfSelection(inputs.Batch, inputs.Length, positions, k);
        return new MethodOutcome<T>(tokens, shape, map, new TensorShape(inputs.Batch, inputs.Length), positions);
    }
}

/// <summary>CDPruner: a conditional DPP over the tokens, weighted by their relevance to the text.</summary>
internal sealed class CDPrunerMethod : TokenMethod
{
    private static readonly MethodParameter K = MethodParameter.Integer("k", "CDPruner's visual_token_num: tokens kept per item", 64, 0);

    public override string Name => "cdpruner";

    public override string Title => "CDPruner (Zhang et al., 2025): conditional DPP, diversity weighted by relevance to the instruction";

    public override MethodFamily Family => MethodFamily.Relevance;

    public override IReadOnlyList<MethodParameter> Parameters { get; } = new[] { K };

    public override IReadOnlyList<AuxiliaryRole> Requires { get; } = new[] { AuxiliaryRole.TextEmbeddings };

    public override IReadOnlyList<AuxiliaryRole> Accepts { get; } = new[] { AuxiliaryRole.TextEmbeddings, AuxiliaryRole.VisualEmbeddings };

    public override MethodOutcome<T> Run<T>(MethodInputs<T> inputs, MethodSettings settings, MethodOutcome<T>? previous = null)
    {
        int k = settings.Integer(K);
        ReadOnlyHostTensor<float> visual = inputs.Find(AuxiliaryRole.VisualEmbeddings) is AuxiliaryTensor embeds
            ? embeds.View
            : new ReadOnlyHostTensor<float>(ElementConversion.ToFloat32(inputs.Tokens), inputs.Shape);
        (T[] kept, int[] positions, _, TensorShape keptShape) = CDPruner.Prune(inputs.View, visual, inputs.Find(AuxiliaryRole.TextEmbeddings)!.View, k);
        int[] map = SourceMapOfSelection(inputs.Batch, inputs.Length, positions, k);
        return new MethodOutcome<T>(kept, keptShape, map, new TensorShape(inputs.Batch, inputs.Length), positions);
    }
}

/// <summary>Cluster-and-aggregate: DPC-kNN clusters, each replaced by its mean.</summary>
internal sealed class DpcKnnMethod : TokenMethod
{
    private static readonly MethodParameter Clusters = MethodParameter.Integer("clusters", "K: clusters, i.e. tokens kept per item", 64, 1);
    private static readonly MethodParameter Neighbours = MethodParameter.Integer("neighbours", "k of the DPC-kNN density (LightCompress: 5)", DensityPeaksClustering.DefaultNeighbours, 1);

    public override string Name => "dpc-knn";

    public override string Title => "Cluster-and-aggregate (Omri et al., 2025): DPC-kNN clusters of the tokens, each replaced by its mean";

    public override MethodFamily Family => MethodFamily.Clustering;

    public override IReadOnlyList<MethodParameter> Parameters { get; } = new[] { Clusters, Neighbours };

    public override MethodOutcome<T> Run<T>(MethodInputs<T> inputs, MethodSettings settings, MethodOutcome<T>? previous = null)
    {
        ClusterAggregateResult<T> result = ClusterRecipes.ClusterAndAggregate(inputs.View, settings.Integer(Clusters), settings.Integer(Neighbours));
        int rows = checked((int)result.MergedShape[1]);
        return new MethodOutcome<T>(result.Merged, result.MergedShape, result.SourceMap, new TensorShape(inputs.Batch, inputs.Length),
            PositionsOfSingletons(inputs.Batch, inputs.Length, rows, result.SourceMap), result.Sizes);
    }
}

/// <summary>k-means: Lloyd's iterations from k-means++ seeds; the centres are the output tokens.</summary>
internal sealed class KMeansMethod : TokenMethod
{
    private static readonly MethodParameter Clusters = MethodParameter.Integer("clusters", "n_clusters: the centres kept per item", 16, 1);
    private static readonly MethodParameter MaxIterations = MethodParameter.Integer("max-iter", "scikit-learn's max_iter", 300, 1);
    private static readonly MethodParameter Seed = MethodParameter.Integer("seed", "the k-means++ seed (random_state)", 0, 0);

    public override string Name => "kmeans";

    public override string Title => "k-means (scikit-learn's Lloyd, n_init = 1, k-means++): the centres replace the tokens";

    public override MethodFamily Family => MethodFamily.Clustering;

    public override IReadOnlyList<MethodParameter> Parameters { get; } = new[] { Clusters, MaxIterations, Seed };

    public override MethodOutcome<T> Run<T>(MethodInputs<T> inputs, MethodSettings settings, MethodOutcome<T>? previous = null)
    {
        var options = new KMeansOptions(settings.Integer(Clusters)) { MaxIterations = settings.Integer(MaxIterations), Seed = (ulong)settings.Integer(Seed) };
        (float[] centres, int[] assignment, float[] sizes, _) = KMeans.Cluster(inputs.View, options);
        var shape = new TensorShape(inputs.Batch, options.Clusters, inputs.Channels);
        return new MethodOutcome<T>(ElementConversion.FromFloat32<T>(centres), shape, assignment, new TensorShape(inputs.Batch, inputs.Length), sizes: sizes);
    }
}
