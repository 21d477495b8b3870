using TokenKernels.Interop;

namespace TokenKernels;

/// <summary>What each greedy step of <see cref="DiversitySelection"/> maximises (<c>tk_diversity_objective</c>, docs/SPEC.md, section 4).</summary>
public enum DiversityObjective
{
    /// <summary>Greedy k-center (DivPrune): the next token is the one farthest from its nearest chosen token; the default.</summary>
    MaxMin = NativeMethods.TK_DIVERSITY_MAX_MIN,

    /// <summary>Greedy max-sum diversification: the next token is the one with the largest sum of distances to the chosen tokens.</summary>
    MaxSum = NativeMethods.TK_DIVERSITY_MAX_SUM,
}
