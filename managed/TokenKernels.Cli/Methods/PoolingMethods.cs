using System;
using System.Collections.Generic;
using TokenKernels;

namespace TokenKernels.Cli.Methods;

/// <summary>The pooling methods: each frame's (or the video's) patch grid pooled to a smaller grid.</summary>
internal abstract class PoolingMethod : TokenMethod
{
    public sealed override MethodFamily Family => MethodFamily.Pooling;

    public sealed override bool AcceptsFrames => true;

    /// <summary>The pooling of <paramref name="grid"/> under <paramref name="settings"/>.</summary>
    protected abstract PoolOptions Options(TokenGrid grid, MethodSettings settings);

    /// <summary>The output cell (t', h', w') whose window covers input patch (t, h, w); null when no window covers it.</summary>
    protected abstract (int Time, int Height, int Width)? Cell(TokenGrid input, TokenGrid output, MethodSettings settings, int t, int h, int w);

    public sealed override bool RunsOnCuda => true;

    public sealed override DeviceRun EnqueueOnCuda(DeviceInputs inputs, MethodSettings settings, DeviceOutputs outputs, CudaStream stream)
    {
        TokenGrid grid = inputs.Grid;
        var inputShape = new TensorShape(inputs.Batch, grid.Frames, grid.Height, grid.Width, inputs.Channels);
        PoolOptions options = Options(grid, settings);
        TensorShape pooledShape = Pooling.GetOutputShape(inputShape, options);
        Pooling.Pool(inputs.View(inputShape), outputs.Get("tokens", pooledShape, inputs.Tokens.DataType), options, stream);
        var outputGrid = new TokenGrid(checked((int)pooledShape[1]), checked((int)pooledShape[2]), checked((int)pooledShape[3]));
        return new DeviceRun(new TensorShape(inputs.Batch, outputGrid.PatchTokens, inputs.Channels), outputGrid,
                             () => SourceMap(grid, outputGrid, inputs.Batch, settings));
    }

    // Each patch's output cell, the same for every item.
    private int[] SourceMap(TokenGrid grid, TokenGrid outputGrid, int batch, MethodSettings settings)
    {
        var map = new int[(long)batch * grid.PatchTokens];
        for (int t = 0; t < grid.Frames; t++)
        {
            for (int h = 0; h < grid.Height; h++)
            {
                for (int w = 0; w < grid.Width; w++)
                {
                    int row = Cell(grid, outputGrid, settings, t, h, w) is (int ot, int oh, int ow)
                        ? (ot * outputGrid.Height + oh) * outputGrid.Width + ow
                        : -1;
                    for (int b = 0; b < batch; b++)
                    {
                        map[(long)b * grid.PatchTokens + (t * grid.Height + h) * grid.Width + w] = row;
                    }
                }
            }
        }
        return map;
    }

    public sealed override MethodOutcome<T> Run<T>(MethodInputs<T> inputs, MethodSettings settings, MethodOutcome<T>? previous = null)
    {
        TokenGrid grid = inputs.Grid;
        var inputShape = new TensorShape(inputs.Batch, grid.Frames, grid.Height, grid.Width, inputs.Channels);
        PoolOptions options = Options(grid, settings);
        TensorShape pooledShape = Pooling.GetOutputShape(inputShape, options);
        T[] pooled = Reuse(previous?.Tokens, pooledShape.ElementCount);
        Pooling.Pool(new ReadOnlyHostTensor<T>(inputs.Tokens, inputShape), new HostTensor<T>(pooled, pooledShape), options);
        var outputGrid = new TokenGrid(checked((int)pooledShape[1]), checked((int)pooledShape[2]), checked((int)pooledShape[3]));
        var tokensShape = new TensorShape(inputs.Batch, outputGrid.PatchTokens, inputs.Channels);
        if (previous is not null)
        {
            // The cells depend on the shapes alone.
            return new MethodOutcome<T>(pooled, tokensShape, previous.SourceMap, previous.SourceMapShape, outputGrid: outputGrid);
        }
        int[] map = SourceMap(grid, outputGrid, inputs.Batch, settings);
        return new MethodOutcome<T>(pooled, tokensShape, map, new TensorShape(inputs.Batch, grid.PatchTokens), outputGrid: outputGrid);
    }
}

/// <summary>LLaVA-Video: 2 x 2 average pooling of each frame (27 x 27 to 13 x 13, the last row and column dropped).</summary>
internal sealed class AveragePoolMethod : PoolingMethod
{
    private static readonly MethodParameter Stride = MethodParameter.Integer("stride", "mm_spatial_pool_stride: the window and step along height and width", 2, 1);

    public override string Name => "avgpool";

    public override string Title => "LLaVA-Video (Zhang et al., 2024): each frame average-pooled in stride x stride windows";

    public override IReadOnlyList<MethodParameter> Parameters { get; } = new[] { Stride };

    protected override PoolOptions Options(TokenGrid grid, MethodSettings settings) => PoolOptions.LlavaVideo(settings.Integer(Stride));

    protected override (int, int, int)? Cell(TokenGrid input, TokenGrid output, MethodSettings settings, int t, int h, int w)
    {
        int stride = settings.Integer(Stride);
        int oh = h / stride, ow = w / stride;
        return oh < output.Height && ow < output.Width ? (t, oh, ow) : null;
    }
}

/// <summary>LLaVA-OneVision: each frame resized bilinearly to ceil(H / stride) x ceil(W / stride) (27 x 27 to 14 x 14).</summary>
internal sealed class BilinearMethod : PoolingMethod
{
    private static readonly MethodParameter Stride = MethodParameter.Integer("stride", "mm_spatial_pool_stride: the output is ceil(H / stride) x ceil(W / stride)", 2, 1);

    public override string Name => "bilinear";

    public override string Title => "LLaVA-OneVision (Li et al., 2024): each frame resized bilinearly (align_corners = False)";

    public override IReadOnlyList<MethodParameter> Parameters { get; } = new[] { Stride };

    protected override PoolOptions Options(TokenGrid grid, MethodSettings settings)
        => PoolOptions.LlavaOneVision(grid.Height, grid.Width, settings.Integer(Stride));

    // The output cell whose centre lies nearest the patch's centre.
    protected override (int, int, int)? Cell(TokenGrid input, TokenGrid output, MethodSettings settings, int t, int h, int w)
        => (t, Math.Min((int)((h + 0.5) * output.Height / input.Height), output.Height - 1),
               Math.Min((int)((w + 0.5) * output.Width / input.Width), output.Width - 1));
}

/// <summary>PLLaVA: the video adaptive-average-pooled to (T', H', W') = (16, 12, 12).</summary>
internal sealed class AdaptiveAveragePoolMethod : PoolingMethod
{
    private static readonly MethodParameter Frames = MethodParameter.Integer("out-frames", "T' of pooling_shape (PLLaVA: 16), at most T", 16, 1);
    private static readonly MethodParameter Height = MethodParameter.Integer("out-height", "H' of pooling_shape (PLLaVA: 12), at most H", 12, 1);
    private static readonly MethodParameter Width = MethodParameter.Integer("out-width", "W' of pooling_shape (PLLaVA: 12), at most W", 12, 1);

    public override string Name => "adaptive-avg";

    public override string Title => "PLLaVA (Xu et al., 2024): adaptive average pooling of the video to pooling_shape (T', H', W'), never above the input's";

    public override IReadOnlyList<MethodParameter> Parameters { get; } = new[] { Frames, Height, Width };

    protected override PoolOptions Options(TokenGrid grid, MethodSettings settings)
        => PoolOptions.Pllava((Math.Min(settings.Integer(Frames), grid.Frames), Math.Min(settings.Integer(Height), grid.Height), Math.Min(settings.Integer(Width), grid.Width)));

    // Adaptive bin i covers [floor(i In / Out), ceil((i + 1) In / Out)); the first bin holding index x is floor(x Out / In).
    protected override (int, int, int)? Cell(TokenGrid input, TokenGrid output, MethodSettings settings, int t, int h, int w)
        => ((int)((long)t * output.Frames / input.Frames), (int)((long)h * output.Height / input.Height), (int)((long)w * output.Width / input.Width));
}
