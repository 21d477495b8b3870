using System.Collections.Generic;

namespace TokenKernels.Cli;

/// <summary>One published pooling step on a real-sized input.</summary>
internal sealed record Workload(string Method, string Description, TensorShape InputShape, PoolOptions Options)
{
    /// <summary>The three methods of the README, with <paramref name="frames"/> SigLIP frames.</summary>
    public static IReadOnlyList<Workload> All(int frames)
    {
        // SigLIP so400m-384: 27x27 patches of 1152 channels per frame.
        var siglip = new TensorShape(1, frames, 27, 27, 1152);
        return new[]
        {
            new Workload("LLaVA-Video", "2x2 window avg", siglip, PoolOptions.WindowAvg((1, 2, 2))),
            new Workload("LLaVA-OneVision", "bilinear 27->14", siglip, PoolOptions.Bilinear(14, 14)),
            // PLLaVA pools 16 frames of 24x24 CLIP-L/336 tokens projected to the LLM width (4096 for Vicuna-7B).
            new Workload("PLLaVA", "adaptive avg ->16x12x12", new TensorShape(1, 16, 24, 24, 4096), PoolOptions.AdaptiveAvg((16, 12, 12))),
        };
    }

    /// <summary>Tokens per [B, T, H, W, C] tensor: B * T * H * W.</summary>
    public static long Tokens(TensorShape shape) => shape.ElementCount / shape[4];
}
