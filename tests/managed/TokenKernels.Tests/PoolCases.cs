using System.Collections.Generic;
using TokenKernels.Tests.Reference;

namespace TokenKernels.Tests;

/// <summary>One pooling problem: an input shape [B, T, H, W, C] and what to compute.</summary>
public sealed class PoolCase
{
    public PoolCase(string name, long[] shape, PoolOptions options)
    {
        Name = name;
        Shape = shape;
        Options = options;
    }

    public string Name { get; }

    public long[] Shape { get; }

    public PoolOptions Options { get; }

    public override string ToString() => Name;

    /// <summary>Every mode on the shapes the methods use and on awkward ones (odd T, C = 1, C = 13, B > 1, non-divisible sizes).</summary>
    public static IEnumerable<PoolCase> All()
    {
        yield return new("LLaVA-Video window avg 1x2x2, 27x27 to 13x13", new long[] { 1, 3, 27, 27, 8 }, PoolOptions.LlavaVideo());
        yield return new("window max 1x2x2, 27x27 to 13x13", new long[] { 1, 3, 27, 27, 8 }, PoolOptions.WindowMax((1, 2, 2)));
        yield return new("window avg kernel (2,3,2) stride (1,2,3), B=2, T=5, C=13", new long[] { 2, 5, 7, 9, 13 }, PoolOptions.WindowAvg((2, 3, 2), (1, 2, 3)));
        yield return new("window max kernel (2,3,2) stride (1,2,3), B=2, T=5, C=13", new long[] { 2, 5, 7, 9, 13 }, PoolOptions.WindowMax((2, 3, 2), (1, 2, 3)));
        yield return new("window max overlapping 3x3 stride 1, C=1", new long[] { 1, 3, 6, 5, 1 }, PoolOptions.WindowMax((1, 3, 3), (1, 1, 1)));
        yield return new("window avg over the whole input, C=1", new long[] { 2, 3, 4, 4, 1 }, PoolOptions.WindowAvg((3, 4, 4)));
        yield return new("window avg over time only, audio H=W=1, T=7", new long[] { 2, 7, 1, 1, 13 }, PoolOptions.WindowAvg((2, 1, 1)));
        yield return new("PLLaVA adaptive avg (16,24,24) to (16,12,12)", new long[] { 1, 16, 24, 24, 4 }, PoolOptions.Pllava());
        yield return new("adaptive max 24x24 to 12x12, T=3", new long[] { 1, 3, 24, 24, 4 }, PoolOptions.AdaptiveMax((3, 12, 12)));
        yield return new("adaptive avg non-divisible (7,10,13) to (3,4,5), B=2, C=13", new long[] { 2, 7, 10, 13, 13 }, PoolOptions.AdaptiveAvg((3, 4, 5)));
        yield return new("adaptive max non-divisible (7,10,13) to (3,4,5), B=2, C=13", new long[] { 2, 7, 10, 13, 13 }, PoolOptions.AdaptiveMax((3, 4, 5)));
        yield return new("adaptive avg upsampling (2,3,5) to (3,7,6), C=1", new long[] { 1, 2, 3, 5, 1 }, PoolOptions.AdaptiveAvg((3, 7, 6)));
        yield return new("Video-ChatGPT temporal tokens (T,1,1), T=5", new long[] { 1, 5, 6, 6, 2 }, PoolOptions.VideoChatGptTemporal(5));
        yield return new("Video-ChatGPT spatial tokens (1,H,W), T=5", new long[] { 1, 5, 6, 7, 3 }, PoolOptions.VideoChatGptSpatial(6, 7));
        yield return new("LLaVA-OneVision bilinear 27x27 to 14x14", new long[] { 1, 3, 27, 27, 8 }, PoolOptions.LlavaOneVision(27, 27));
        yield return new("bilinear (5,7) to (9,4), B=2, T=3, C=13", new long[] { 2, 3, 5, 7, 13 }, PoolOptions.Bilinear(9, 4));
        yield return new("bilinear 1x1 to 3x3, C=1", new long[] { 1, 1, 1, 1, 1 }, PoolOptions.Bilinear(3, 3));
        yield return new("bilinear identity 6x6", new long[] { 1, 2, 6, 6, 2 }, PoolOptions.Bilinear(6, 6));
    }

    /// <summary>Every case in every memory layout.</summary>
    public static IEnumerable<object[]> WithLayouts()
    {
        foreach (PoolCase c in All())
        {
            foreach (Layout layout in new[] { Layout.Contiguous, Layout.ChannelSlice, Layout.FrameAndRowStrides })
            {
                yield return new object[] { c, layout };
            }
        }
    }
}
