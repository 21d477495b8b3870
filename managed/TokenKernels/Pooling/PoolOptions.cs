using System;
using TokenKernels.Interop;

namespace TokenKernels;

/// <summary>
/// What a pooling call computes: the mode and its (time, height, width) kernel and stride, or output size. Maps to
/// <c>tk_pool_params</c>. Build it with <see cref="WindowAvg"/>, <see cref="WindowMax"/>, <see cref="AdaptiveAvg"/>,
/// <see cref="AdaptiveMax"/> or <see cref="Bilinear"/>, which check every value.
/// </summary>
public readonly struct PoolOptions : IEquatable<PoolOptions>
{
    private PoolOptions(PoolMode mode, (int Time, int Height, int Width) kernel, (int Time, int Height, int Width) stride, (int Time, int Height, int Width) outputSize)
    {
        Mode = mode;
        Kernel = kernel;
        Stride = stride;
        OutputSize = outputSize;
    }

    /// <summary>The pooling mode.</summary>
    public PoolMode Mode { get; }

    /// <summary>Window modes: the window size along time, height and width; (0, 0, 0) otherwise.</summary>
    public (int Time, int Height, int Width) Kernel { get; }

    /// <summary>Window modes: the step between windows along time, height and width; (0, 0, 0) otherwise.</summary>
    public (int Time, int Height, int Width) Stride { get; }

    /// <summary>
    /// Adaptive modes: the output size (T', H', W'). Bilinear: (0, H', W'), since every frame is resized and T' is
    /// the input's T. (0, 0, 0) for window modes.
    /// </summary>
    public (int Time, int Height, int Width) OutputSize { get; }

    /// <summary>Window average pooling; LLaVA-Video uses kernel (1, 2, 2): 27x27 to 13x13.</summary>
    /// <param name="kernel">Window size, each at least 1.</param>
    /// <param name="stride">Step between windows, each at least 1; null means equal to <paramref name="kernel"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException">A kernel or stride value is below 1.</exception>
    public static PoolOptions WindowAvg((int Time, int Height, int Width) kernel, (int Time, int Height, int Width)? stride = null)
        => Window(PoolMode.WindowAvg, kernel, stride);

    /// <summary>Window max pooling (NaN propagating).</summary>
    /// <inheritdoc cref="WindowAvg"/>
    public static PoolOptions WindowMax((int Time, int Height, int Width) kernel, (int Time, int Height, int Width)? stride = null)
        => Window(PoolMode.WindowMax, kernel, stride);

    /// <summary>Adaptive average pooling to a fixed output size; PLLaVA pools (16, 24, 24) to (16, 12, 12).</summary>
    /// <param name="outputSize">(T', H', W'), each at least 1.</param>
    /// <exception cref="ArgumentOutOfRangeException">An output size is below 1.</exception>
    public static PoolOptions AdaptiveAvg((int Time, int Height, int Width) outputSize)
        => Adaptive(PoolMode.AdaptiveAvg, outputSize);

    /// <summary>Adaptive max pooling to a fixed output size (NaN propagating).</summary>
    /// <inheritdoc cref="AdaptiveAvg"/>
    public static PoolOptions AdaptiveMax((int Time, int Height, int Width) outputSize)
        => Adaptive(PoolMode.AdaptiveMax, outputSize);

    /// <summary>Bilinear resize of every frame to <paramref name="height"/> x <paramref name="width"/>; LLaVA-OneVision resizes 27x27 to 14x14.</summary>
    /// <param name="height">H', at least 1.</param>
    /// <param name="width">W', at least 1.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is below 1.</exception>
    public static PoolOptions Bilinear(int height, int width)
    {
        RequirePositive(height, nameof(height));
        RequirePositive(width, nameof(width));
        return new PoolOptions(PoolMode.Bilinear, default, default, (0, height, width));
    }

    // ---- The published methods ----

    /// <summary>
    /// LLaVA-Video (LLaVA-NeXT <c>get_2dPool</c> with <c>mm_spatial_pool_mode = "average"</c>): each frame's grid average
    /// pooled with kernel = stride = <paramref name="stride"/> (<c>mm_spatial_pool_stride</c>, 2), floor size: 27x27 SigLIP
    /// frames to 13x13 (the last row and column dropped).
    /// </summary>
    /// <param name="stride">The pooling stride, at least 1.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="stride"/> is below 1.</exception>
    public static PoolOptions LlavaVideo(int stride = 2) => WindowAvg((1, stride, stride));

    /// <summary>
    /// LLaVA-OneVision (LLaVA-NeXT <c>get_2dPool</c> with <c>mm_spatial_pool_mode = "bilinear"</c>): each frame resized to
    /// ceil(H / stride) x ceil(W / stride), align_corners = False: 27x27 to 14x14.
    /// </summary>
    /// <param name="height">H of the input frames, at least 1.</param>
    /// <param name="width">W of the input frames, at least 1.</param>
    /// <param name="stride">The pooling stride (<c>mm_spatial_pool_stride</c>, 2), at least 1.</param>
    /// <exception cref="ArgumentOutOfRangeException">A value is below 1.</exception>
    public static PoolOptions LlavaOneVision(int height, int width, int stride = 2)
    {
        RequirePositive(height, nameof(height));
        RequirePositive(width, nameof(width));
        RequirePositive(stride, nameof(stride));
        return Bilinear((height + stride - 1) / stride, (width + stride - 1) / stride);
    }

    /// <summary>
    /// PLLaVA (<c>magic-research/PLLaVA</c>, its projector's <c>adaptive_avg_pool3d</c>): the video pooled to
    /// <paramref name="poolingShape"/> (T', H', W'), by default PLLaVA's (16, 12, 12): 16 frames of 24x24 to 16 x 12x12.
    /// </summary>
    /// <param name="poolingShape">(T', H', W'), each at least 1; null for (16, 12, 12).</param>
    /// <exception cref="ArgumentOutOfRangeException">An output size is below 1.</exception>
    public static PoolOptions Pllava((int Time, int Height, int Width)? poolingShape = null) => AdaptiveAvg(poolingShape ?? (16, 12, 12));

    /// <summary>
    /// Video-ChatGPT's temporal features (<c>mbzuai-oryx/Video-ChatGPT</c>, the mean of each frame's tokens): one token per
    /// frame, (T, 1, 1). Its spatial features are <see cref="VideoChatGptSpatial"/>; the method concatenates both.
    /// </summary>
    /// <param name="frames">T, the input's frame count, at least 1.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="frames"/> is below 1.</exception>
    public static PoolOptions VideoChatGptTemporal(int frames) => AdaptiveAvg((frames, 1, 1));

    /// <summary>Video-ChatGPT's spatial features: each grid position averaged over the frames, (1, H, W).</summary>
    /// <param name="height">H of the input frames, at least 1.</param>
    /// <param name="width">W of the input frames, at least 1.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is below 1.</exception>
    public static PoolOptions VideoChatGptSpatial(int height, int width) => AdaptiveAvg((1, height, width));

    /// <summary>True when mode and every value are equal.</summary>
    public bool Equals(PoolOptions other)
        => Mode == other.Mode && Kernel == other.Kernel && Stride == other.Stride && OutputSize == other.OutputSize;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is PoolOptions other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => ((int)Mode, Kernel, Stride, OutputSize).GetHashCode();

    /// <summary>True when mode and every value are equal.</summary>
    public static bool operator ==(PoolOptions left, PoolOptions right) => left.Equals(right);

    /// <summary>True when the mode or a value differs.</summary>
    public static bool operator !=(PoolOptions left, PoolOptions right) => !left.Equals(right);

    /// <summary>"WindowAvg kernel (1, 2, 2) stride (1, 2, 2)", "AdaptiveAvg output (16, 12, 12)", "Bilinear output 14x14".</summary>
    public override string ToString() => Mode switch
    {
        PoolMode.WindowAvg or PoolMode.WindowMax => Mode + " kernel " + Kernel + " stride " + Stride,
        PoolMode.Bilinear => Mode + " output " + OutputSize.Height + "x" + OutputSize.Width,
        _ => Mode + " output " + OutputSize,
    };

    /// <summary>
    /// Throws unless the options came from a factory (a default <see cref="PoolOptions"/> has a zero kernel).
    /// </summary>
    internal void Validate(string parameter)
    {
        bool valid = Mode switch
        {
            PoolMode.WindowAvg or PoolMode.WindowMax => AllPositive(Kernel) && AllPositive(Stride),
            PoolMode.AdaptiveAvg or PoolMode.AdaptiveMax => AllPositive(OutputSize),
            PoolMode.Bilinear => OutputSize.Height >= 1 && OutputSize.Width >= 1,
            _ => false,
        };
        if (!valid)
        {
            throw new ArgumentException(
                "The pool options (" + this + ") are incomplete: build them with PoolOptions.WindowAvg, WindowMax, AdaptiveAvg, AdaptiveMax or Bilinear.",
                parameter);
        }
    }

    /// <summary>The native parameters for an input with <paramref name="inputFrames"/> frames (bilinear keeps T).</summary>
    internal unsafe TkPoolParams ToNative(long inputFrames)
    {
        TkPoolParams native;
        native.Mode = (int)Mode;
        native.Kernel[0] = Kernel.Time;
        native.Kernel[1] = Kernel.Height;
        native.Kernel[2] = Kernel.Width;
        native.Stride[0] = Stride.Time;
        native.Stride[1] = Stride.Height;
        native.Stride[2] = Stride.Width;
        // T beyond int range cannot be expressed in tk_pool_params; clamping lets the native check reject it by name.
        native.OutputSize[0] = Mode == PoolMode.Bilinear ? (int)Math.Min(inputFrames, int.MaxValue) : OutputSize.Time;
        native.OutputSize[1] = OutputSize.Height;
        native.OutputSize[2] = OutputSize.Width;
        return native;
    }

    private static PoolOptions Window(PoolMode mode, (int Time, int Height, int Width) kernel, (int Time, int Height, int Width)? stride)
    {
        RequireAllPositive(kernel, nameof(kernel));
        (int Time, int Height, int Width) step = stride ?? kernel;
        RequireAllPositive(step, nameof(stride));
        return new PoolOptions(mode, kernel, step, default);
    }

    private static PoolOptions Adaptive(PoolMode mode, (int Time, int Height, int Width) outputSize)
    {
        RequireAllPositive(outputSize, nameof(outputSize));
        return new PoolOptions(mode, default, default, outputSize);
    }

    private static bool AllPositive((int Time, int Height, int Width) value) => value.Time >= 1 && value.Height >= 1 && value.Width >= 1;

    private static void RequireAllPositive((int Time, int Height, int Width) value, string parameter)
    {
        if (!AllPositive(value))
        {
            throw new ArgumentOutOfRangeException(parameter, value, "Each of (time, height, width) must be at least 1.");
        }
    }

    private static void RequirePositive(int value, string parameter)
    {
        if (value < 1)
        {
            throw new ArgumentOutOfRangeException(parameter, value, "Must be at least 1.");
        }
    }
}
