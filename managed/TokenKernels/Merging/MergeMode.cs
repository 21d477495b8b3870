using TokenKernels.Interop;

namespace TokenKernels;

/// <summary>How <see cref="TokenMerging"/> combines a destination token with the sources merged into it (<c>tk_merge_mode</c>, docs/SPEC.md, section 2).</summary>
public enum MergeMode
{
    /// <summary>
    /// (size_d x_d + sum size_a x_a) / (size_d + sum size_a), ToMe's <c>merge_wavg</c>; the default. Without sizes every
    /// token counts once.
    /// </summary>
    WeightedMean = NativeMethods.TK_MERGE_WEIGHTED_MEAN,

    /// <summary>(x_d + sum x_a) / (1 + number of merged sources), ToMe's <c>mode="mean"</c>, ignoring sizes.</summary>
    Mean = NativeMethods.TK_MERGE_MEAN,

    /// <summary>x_d + sum x_a.</summary>
    Sum = NativeMethods.TK_MERGE_SUM,

    /// <summary>Elementwise maximum of the destination and its merged sources (NaN propagates).</summary>
    Amax = NativeMethods.TK_MERGE_AMAX,

    /// <summary>Merged sources vanish and destinations are unchanged (pruning by redundancy); their size stays size_d.</summary>
    Drop = NativeMethods.TK_MERGE_DROP,
}
