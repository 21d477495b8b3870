using System;
using System.Collections.Generic;
using TokenKernels;
using TokenKernels.Cli.Methods;

namespace TokenKernels.Cli.Bench;

/// <summary>One method at one model's real shapes.</summary>
/// <param name="Method">The method.</param>
/// <param name="Workload">The model setting the shapes come from, e.g. "LLaVA-1.5 (CLIP ViT-L/14-336)".</param>
/// <param name="Batch">B.</param>
/// <param name="Grid">The patch grid, with any prefix.</param>
/// <param name="Channels">C.</param>
/// <param name="TrailingTokens">Tokens after the grid (FastV's text after the image).</param>
/// <param name="Auxiliary">The auxiliary inputs' shapes.</param>
/// <param name="IsLong">Whether the case is one of the long ones <c>--quick</c> leaves out.</param>
internal sealed record BenchCase(
    TokenMethod Method,
    string Workload,
    int Batch,
    TokenGrid Grid,
    int Channels,
    int TrailingTokens,
    IReadOnlyDictionary<AuxiliaryRole, TensorShape> Auxiliary,
    bool IsLong)
{
    /// <summary>N: tokens per item.</summary>
    public int Length => Grid.Prefix + Grid.PatchTokens + TrailingTokens;

    /// <summary>The token shape <c>[B, N, C]</c>.</summary>
    public TensorShape Shape => new(Batch, Length, Channels);
}

/// <summary>Every method's cases: the shapes of the models each was published on, or is served with.</summary>
internal static class BenchCases
{
    // The model settings; the table's input column gives the shapes.
    private const string Llava15 = "LLaVA-1.5 (CLIP-L/336)";
    private const string OneVisionImage = "LLaVA-OneVision image (SigLIP)";
    private const string LlavaVideo64 = "LLaVA-Video 64 frames (SigLIP)";
    private const string Pllava = "PLLaVA 16 frames";
    private const string Video64 = "LLaVA-Video 64 frames (LLM)";
    private const string LongVideo = "long video 256 frames (LLM)";

    private static readonly IReadOnlyDictionary<AuxiliaryRole, TensorShape> None = new Dictionary<AuxiliaryRole, TensorShape>();

    /// <summary>The cases of <paramref name="method"/>.</summary>
    public static IEnumerable<BenchCase> For(TokenMethod method)
    {
        switch (method)
        {
            case AveragePoolMethod or BilinearMethod:
                yield return new BenchCase(method, LlavaVideo64, 1, new TokenGrid(64, 27, 27), 1152, 0, None, IsLong: false);
                break;
            case AdaptiveAveragePoolMethod:
                yield return new BenchCase(method, Pllava, 1, new TokenGrid(16, 24, 24), 4096, 0, None, IsLong: false);
                break;
            case ToMeMethod:
                yield return new BenchCase(method, Llava15 + " + CLS", 1, new TokenGrid(1, 24, 24, 1), 1024, 0, None, IsLong: false);
                yield return new BenchCase(method, OneVisionImage, 1, new TokenGrid(1, 27, 27), 1152, 0, None, IsLong: false);
                break;
            case VisionZipMethod:
                // The vision tower's second-to-last layer: 16 heads over CLS + 576 patches, keys of 64 channels averaged over heads.
                yield return new BenchCase(method, Llava15 + " + CLS", 1, new TokenGrid(1, 24, 24, 1), 1024, 0,
                    new Dictionary<AuxiliaryRole, TensorShape>
                    {
                        [AuxiliaryRole.Attention] = new TensorShape(1, 16, 577, 577),
                        [AuxiliaryRole.Metric] = new TensorShape(1, 577, 64),
                    }, IsLong: false);
                break;
            case FastVMethod:
                // Vicuna-7B's layer 2: 32 heads over a prompt of 35 text tokens, the image's 576 and 40 more.
                yield return new BenchCase(method, "LLaVA-1.5 7B, layer 2", 1, new TokenGrid(1, 24, 24, 35), 4096, 40,
                    new Dictionary<AuxiliaryRole, TensorShape> { [AuxiliaryRole.Attention] = new TensorShape(1, 32, 651, 651) }, IsLong: false);
                break;
            case CDPrunerMethod:
                // CLIP ViT-L/14-336's projection space (768) for the image and 32 instruction tokens.
                yield return new BenchCase(method, Llava15, 1, new TokenGrid(1, 24, 24), 1024, 0,
                    new Dictionary<AuxiliaryRole, TensorShape>
                    {
                        [AuxiliaryRole.TextEmbeddings] = new TensorShape(1, 32, 768),
                        [AuxiliaryRole.VisualEmbeddings] = new TensorShape(1, 576, 768),
                    }, IsLong: false);
                break;
            case DivPruneMethod or DpcKnnMethod or KMeansMethod:
                yield return new BenchCase(method, Llava15, 1, new TokenGrid(1, 24, 24), 1024, 0, None, IsLong: false);
                yield return new BenchCase(method, OneVisionImage, 1, new TokenGrid(1, 27, 27), 1152, 0, None, IsLong: false);
                break;
            case PruneVidMethod:
                yield return new BenchCase(method, "PruneVid 16 frames", 1, new TokenGrid(16, 12, 12), 4096, 0, None, IsLong: false);
                break;
            default:
                if (method.IsVideo)
                {
                    yield return new BenchCase(method, Video64, 1, new TokenGrid(64, 13, 13), 3584, 0, None, IsLong: false);
                    yield return new BenchCase(method, LongVideo, 1, new TokenGrid(256, 13, 13), 3584, 0, None, IsLong: true);
                }
                else
                {
                    throw new InvalidOperationException("No bench case for " + method.Name + ".");
                }
                break;
        }
    }
}
