using System;
using System.Linq;
using TokenKernels.Cli.Methods;

namespace TokenKernels.Cli.Demo;

/// <summary>
/// The demo compares methods at one token budget, as the papers compare them at 64 of LLaVA-1.5's 576: each method's parameters
/// are set so that it keeps <c>keep</c> tokens (ToMe keeps at least half: one bipartite step merges at most half the tokens).
/// </summary>
internal static class DemoBudget
{
    /// <summary>Whether the demo can run <paramref name="method"/>: any method that needs no text (the video ones on a pan across the photograph).</summary>
    public static bool Supports(TokenMethod method) => !method.Requires.Contains(AuxiliaryRole.TextEmbeddings);

    /// <summary>
    /// The settings that make an image method keep <paramref name="keep"/> of <paramref name="patches"/> patches; a video method keeps
    /// its paper's defaults (EVS drops three quarters, VidCom2 keeps a quarter, ...).
    /// </summary>
    public static MethodSettings For(TokenMethod method, int patches, int keep)
    {
        MethodSettings settings = MethodSettings.Defaults;
        int stride = Math.Max(1, (int)Math.Round(Math.Sqrt((double)patches / keep)));
        int side = Math.Max(1, (int)Math.Round(Math.Sqrt(keep)));
        return method switch
        {
            ToMeMethod => settings.With("r", Math.Min(patches - keep, patches / 2)),
            VisionZipMethod => settings.With("contextual", Contextual(keep)).With("dominant", keep - Contextual(keep)),
            FastVMethod => settings.With("r", 1 - (double)keep / patches),
            DivPruneMethod => settings.With("ratio", (double)keep / patches),
            DpcKnnMethod or KMeansMethod => settings.With("clusters", keep),
            AveragePoolMethod or BilinearMethod => settings.With("stride", stride),
            AdaptiveAveragePoolMethod => settings.With("out-frames", 1).With("out-height", side).With("out-width", side),
            _ => settings,
        };
    }

    // VisionZip's 10 contextual of 64, in proportion; the class token counts among the dominant ones.
    private static int Contextual(int keep) => Math.Clamp((int)Math.Round(keep * 10.0 / 64), 0, keep - 2);
}
