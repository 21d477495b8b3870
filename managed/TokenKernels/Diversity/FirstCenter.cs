using TokenKernels.Interop;

namespace TokenKernels;

/// <summary>How <see cref="DiversitySelection"/> picks the first token of each item (<c>tk_first_center</c>, docs/SPEC.md, section 4).</summary>
public enum FirstCenter
{
    /// <summary>DivPrune's: the token whose distance to its nearest other token is largest (token 0 of an item of length 1); the default.</summary>
    MostIsolated = NativeMethods.TK_FIRST_MOST_ISOLATED,

    /// <summary>A given token per item: the <c>firstIndex</c> tensor <c>[B]</c>.</summary>
    Index = NativeMethods.TK_FIRST_INDEX,

    /// <summary>The argmax of a given score per token (for example CLS attention): the <c>firstScore</c> tensor <c>[B, N]</c>.</summary>
    Score = NativeMethods.TK_FIRST_SCORE,
}
